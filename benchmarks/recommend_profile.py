"""Recommend-all on Amazon Beauty, before and after a change, side by side in one run.

    python benchmarks/recommend_profile.py [--before HEAD] [--dims 64,256] [--repeats 5]

An eSASRec model per dim (the settings of ``vs_rectools.py``, one epoch: speed does not depend on
how well it is trained) is fitted on all of Beauty and saved once. Then, one process at a time,
each with one torch thread, alternating which goes first: the seqrec of git ref ``--before``
(exported with ``git archive`` to a temporary folder) and the seqrec of the working tree load
the same model directory and time ``model.recommend(every user, k=10, filter_viewed=True)``
``--repeats`` times after one warm-up call (process CPU seconds and wall seconds). The two
trees' lists are compared item by item (they must be equal: one ranking path, one tie rule).
A last pass per tree runs under cProfile with the CPU clock and splits the time into encoding,
the score matmul, masking, top-k and the rest.

Writes ``benchmarks/results/recommend_profile.md``.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import json
import os
import pstats
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import busiest_processes, cpu_model  # noqa: E402  (benchmarks/ helper)

from seqrec.files import write_atomic

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = REPO.parent / "shared" / "data" / "s3rec" / "Beauty.txt"
RESULTS = HERE / "results" / "recommend_profile.md"
SETTINGS = dict(n_layers=1, n_heads=1, dropout=0.2, max_seq_len=50, n_negatives=256,
                batch_size=128, lr=1e-3, ff_multiplier=4, epochs=1, patience=0, seed=0)
# cProfile rows (file suffix, function) -> stage; cumulative CPU seconds of each
STAGES = {
    "encode": [("recommender.py", "encode_histories")],
    "score matmul": [("recommender.py", "score_items")],
    "masks": [("filters.py", "apply_filters")],
    "top-k (+ merge)": [("rank.py", "top_k"), ("rank.py", "merge_top_k")],
}


def child(tree: str, model_dir: str, out: str, repeats: int) -> None:
    """Time recommend-all with the seqrec under ``tree``; write times, lists and stages."""
    sys.path.insert(0, tree)
    import torch

    torch.set_num_threads(1)
    import seqrec

    assert Path(seqrec.__file__).resolve().is_relative_to(Path(tree).resolve()), seqrec.__file__
    model = seqrec.load_model(model_dir)
    users = model.user_index.ids
    model.recommend(users[:2000], k=10)  # warm-up: first-call allocations, lazy imports
    cpu, wall = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        lists = model.recommend(users, k=10, filter_viewed=True)
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    model.recommend(users, k=10, filter_viewed=True)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    total = max(ct for (_, _, name), (_, _, _, ct, _) in stats.items() if name == "recommend")
    stages = {stage: sum(ct for (file, _, name), (_, _, _, ct, _) in stats.items()
                         if any(file.endswith(f) and name == n for f, n in pairs))
              for stage, pairs in STAGES.items()}
    stages["rest"] = total - sum(stages.values())
    stages["total (profiled)"] = total
    np.save(out + ".items.npy", lists["item_id"].to_numpy())
    np.save(out + ".scores.npy", lists["score"].to_numpy())
    write_atomic(out, json.dumps({"cpu": cpu, "wall": wall, "stages": stages,
                                 "users": int(len(users))}))


def fit_models(dims: list[int], folder: Path) -> dict[int, Path]:
    """One saved eSASRec per dim, fitted on all of Beauty for one epoch (1 torch thread)."""
    import torch

    import seqrec

    torch.set_num_threads(1)
    dataset = seqrec.load_dataset(DATA, "s3rec")
    paths = {}
    for dim in dims:
        model = seqrec.build_model("esasrec", dim=dim, **SETTINGS)
        model.fit(dataset)
        paths[dim] = seqrec.save_model(model, folder / f"beauty_dim{dim}")
    return paths


def export(ref: str, folder: Path) -> Path:
    """The package ``seqrec/`` as of git ``ref``, unpacked under ``folder``."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "seqrec"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def run_child(tree: Path, model_dir: Path, out: Path, repeats: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, __file__, "--child", str(tree), str(model_dir), str(out),
                    str(repeats)], env=env, check=True, cwd=tree)
    result = json.loads(out.read_text())
    result["items"] = np.load(str(out) + ".items.npy", allow_pickle=True)
    result["scores"] = np.load(str(out) + ".scores.npy")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="HEAD", help="git ref of the 'before' seqrec")
    parser.add_argument("--dims", default="64,256")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per process")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2], int(args.child[3]))
        return
    if not DATA.exists():
        print(f"skipped: {DATA} not found (Amazon Beauty in the S3-Rec format)")
        return
    dims = [int(d) for d in args.dims.split(",")]
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.before],
                            capture_output=True, text=True, check=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "seqrec"],
                                capture_output=True, text=True).stdout.strip())
    started = datetime.datetime.now().astimezone()
    load_before, busy = os.getloadavg(), busiest_processes()
    rows, stage_rows = [], []
    with tempfile.TemporaryDirectory(prefix="recommend_profile_") as tmp_name:
        tmp = Path(tmp_name)
        models = fit_models(dims, tmp / "models")
        trees = {f"before ({commit})": export(args.before, tmp / "before"),
                 f"after ({head}{' + working tree' if dirty else ''})": REPO}
        for dim in dims:
            results: dict[str, dict] = {}
            for round_ in range(2):  # alternate the order, so background load hits both alike
                names = list(trees) if round_ == 0 else list(reversed(trees))
                for name in names:
                    out = tmp / f"{dim}-{round_}-{name.split()[0]}.json"
                    got = run_child(trees[name], models[dim], out, args.repeats)
                    if name in results:
                        results[name]["cpu"] += got["cpu"]
                        results[name]["wall"] += got["wall"]
                    else:
                        results[name] = got
            before, after = results.values()
            same = (np.array_equal(before["items"], after["items"])
                    and np.array_equal(before["scores"], after["scores"]))
            for name, r in results.items():
                rows.append(f"| {dim} | {name} | {min(r['cpu']):.3f} | {statistics.median(r['cpu']):.3f} | "
                            f"{min(r['wall']):.3f} | {statistics.median(r['wall']):.3f} | "
                            f"{len(r['cpu'])} | {'equal' if same else 'DIFFER'} |")
                stage_rows.append(f"| {dim} | {name} | " + " | ".join(
                    f"{v:.3f}" for v in r["stages"].values()) + " |")
            ratio = statistics.median(before["cpu"]) / statistics.median(after["cpu"])
            rows.append(f"| {dim} | after / before | | {ratio:.2f}x faster (median CPU) | | | | |")
            print("\n".join(rows[-3:]), flush=True)
    load_after = os.getloadavg()
    command = "python benchmarks/recommend_profile.py " + " ".join(map(shlex.quote, sys.argv[1:]))
    text = f"""# Recommend-all on Beauty: before and after, side by side

Command: `{command.strip()}` (repository root, seqrec's venv). Date: {started:%Y-%m-%d %H:%M %Z}.
Machine: {os.cpu_count()} CPUs, {cpu_model()}; 1 torch thread per process, one process at a
time; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; busiest other
processes at the start: {busy}.

Each row: `model.recommend(all {results[next(iter(results))]['users']:,} users, k=10,
filter_viewed=True)` on an eSASRec fitted for one epoch ({SETTINGS['n_layers']} layer,
max_seq_len {SETTINGS['max_seq_len']}, LiGR ×{SETTINGS['ff_multiplier']}), {args.repeats} timed
passes in each of two processes per tree (the order of the trees alternates), after one
warm-up call. "lists": the two trees' item ids and scores compared element by element.

| dim | seqrec | CPU s best | CPU s median | wall s best | wall s median | passes | lists |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Where the time goes (one more pass per process under cProfile with the CPU clock, cumulative
seconds; cProfile adds a little to every Python call, most to "rest", which also holds id
mapping, filters' set-up and building the DataFrame):

| dim | seqrec | {' | '.join(list(STAGES) + ['rest', 'total (profiled)'])} |
|---|---|{'---|' * (len(STAGES) + 2)}
{chr(10).join(stage_rows)}
"""
    write_atomic(RESULTS, text)
    print(text)


if __name__ == "__main__":
    main()
