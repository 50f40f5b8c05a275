"""Benchmark: seqrec against RecTools (SASRecModel) on Amazon Beauty, same data, same settings.

Run: ``python benchmarks/vs_rectools.py [--epochs 1] [--seeds 0] [--threads 1]
[--configs esasrec256,esasrec64,sasrec_ss64] [--venv DIR]``

* RecTools lives in its own virtual environment (default ``.bench-venvs/rectools`` in the repo,
  which ``.git/info/exclude`` should list). If it is missing it is made with ``python3 -m venv``,
  then ``pip install torch==<the torch of this interpreter>`` (the pinned CPU wheel; never an
  unpinned torch, which would pull a CUDA build), then ``pip install "rectools[torch]"``; the script
  checks afterwards that torch was not replaced.
* Data: ``shared/data/s3rec/Beauty.txt`` beside the repository (exit 0 with a message when
  absent). seqrec's leave-one-out split with already-seen test targets dropped is made once here
  and written to one ``.npz``: train interactions (each user's sequence minus the last two items),
  test histories (minus the last item) and test targets (the last item). Both libraries read that
  file: both fit on the same train interactions and both rank for the same test histories; their
  catalogue is the items of the train interactions (138 test targets are items never seen in
  train and cannot be hit by either), seen items filtered. NDCG@10 / Recall@10 are computed here,
  by one function, from the top-10 lists each library returns.
* Every run is a separate process (seqrec: this file with ``--child``; RecTools:
  ``_rectools_driver.py`` in the RecTools venv), both with the same torch thread count. The order
  of the two libraries alternates run by run, so background load hits both alike.
* Figures: training seconds per epoch (seqrec: ``FitResult.history[i].seconds``; RecTools: a
  Lightning callback from epoch start to epoch end, no validation loop), sequences/s (training
  sequences / epoch seconds), seconds to recommend top-10 for every user with seen items filtered
  (``recommend`` of each library on the train histories), peak RSS of the child
  (``getrusage(RUSAGE_SELF).ru_maxrss``), NDCG@10 and Recall@10 on the test part.

Prints a table, writes ``benchmarks/results/vs_rectools.md`` and ``benchmarks/results/vs_rectools.csv``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from seqrec.files import write_atomic

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "s3rec" / "Beauty.txt"
DRIVER = HERE / "_rectools_driver.py"
RESULTS = HERE / "results" / "vs_rectools.md"
CSV = HERE / "results" / "vs_rectools.csv"

# settings common to every configuration (eSASRec paper / issue 5)
# item_dropout: RecTools drops the item table at its dropout_rate (0.2); seqrec's `esasrec` preset
# scales it with the width (0.4 at dim 256), so the recipe fixes it for both libraries
COMMON = dict(n_layers=1, n_heads=1, dropout=0.2, item_dropout=0.2, max_seq_len=50,
              n_negatives=256, batch_size=128, lr=1e-3)
CONFIGS = {
    "esasrec256": dict(preset="esasrec", layer="ligr", dim=256, ff_multiplier=4),
    "esasrec64": dict(preset="esasrec", layer="ligr", dim=64, ff_multiplier=4),
    "sasrec_ss64": dict(preset="sasrec_ss", layer="sasrec", dim=64, ff_multiplier=1),
}
TARGET_SPEED = {"esasrec256": 10.0, "esasrec64": 5.0, "sasrec_ss64": 5.0}
TARGET_RECOMMEND = 10.0  # issue 16


# ---- environment ---------------------------------------------------------------------------------
def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_rectools(venv: Path) -> None:
    """Make the RecTools venv if ``import rectools`` fails there; keep this interpreter's torch."""
    python = venv_python(venv)
    if python.exists() and subprocess.run([str(python), "-c", "import rectools, torch"],
                                          capture_output=True).returncode == 0:
        return
    import torch

    torch_pin = torch.__version__.split("+")[0]
    print(f"installing RecTools into {venv} (torch=={torch_pin} first) ...", flush=True)
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run(pip + [f"torch=={torch_pin}"], check=True)
    subprocess.run(pip + ["rectools[torch]"], check=True)
    got = subprocess.run([str(python), "-c", "import torch; print(torch.__version__)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    if got.split("+")[0] != torch_pin:
        raise SystemExit(f"rectools[torch] replaced torch {torch_pin} by {got} in {venv}")


def commit() -> str:
    """``git rev-parse --short HEAD`` of the repository, with ``+ working tree`` when ``seqrec/``
    or ``benchmarks/`` has uncommitted changes."""
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "seqrec", "benchmarks"],
                           capture_output=True, text=True).stdout.strip()
    return head + (" + working tree" if dirty else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ---- data ----------------------------------------------------------------------------------------
def prepare(path: Path, out: Path) -> dict[str, int]:
    """Leave-one-out split of ``path`` written as external ids to ``out`` (.npz): train
    interactions, test histories, test and validation users with their targets."""
    from seqrec.data import leave_one_out, load_s3rec

    dataset = load_s3rec(path)
    split = leave_one_out(dataset, filter_already_seen=True)

    def flat(seqs):
        users = dataset.user_index.to_external(np.repeat(seqs.users, seqs.lengths))
        return (users.astype(np.int64), dataset.catalogue.to_external(seqs.items).astype(np.int64),
                seqs.timestamps.astype(np.int64))

    train_user, train_item, train_time = flat(split.train)
    hist_user, hist_item, hist_time = flat(split.test.histories)
    targets, val_targets = split.test.targets, split.validation.targets
    assert (targets.lengths == 1).all() and (val_targets.lengths == 1).all()
    # validation: history = the train row of the user, target = the second-to-last item
    np.savez(out, train_user=train_user, train_item=train_item, train_time=train_time,
             hist_user=hist_user, hist_item=hist_item, hist_time=hist_time,
             test_user=dataset.user_index.to_external(targets.users).astype(np.int64),
             test_target=dataset.catalogue.to_external(targets.items).astype(np.int64),
             val_user=dataset.user_index.to_external(val_targets.users).astype(np.int64),
             val_target=dataset.catalogue.to_external(val_targets.items).astype(np.int64))
    return {"users": dataset.n_users, "items": dataset.n_items,
            "interactions": int(len(dataset.sequences.items)),
            "train_interactions": int(len(train_item)), "test_users": int(targets.n_sequences),
            "validation_users": int(val_targets.n_sequences),
            "test_targets_unseen_in_train": int((~np.isin(targets.items, split.train.items)).sum())}


def metrics_at_10(top: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """NDCG@10 and Recall@10 with one target per row (``top`` holds external ids, -1 = empty)."""
    hit = top[:, :10] == targets[:, None]
    rank = np.argmax(hit, axis=1)
    found = hit.any(axis=1)
    ndcg = np.where(found, 1.0 / np.log2(rank + 2.0), 0.0)
    return {"ndcg@10": float(ndcg.mean()), "recall@10": float(found.mean())}


# ---- seqrec child --------------------------------------------------------------------------------
def seqrec_setup(spec: dict) -> tuple[Any, Any, Any]:
    """``(dataset, model, data)`` of a seqrec child: torch threads set, the train rows of the
    ``.npz`` split as a dataset, an unfitted model with the spec's recipe (no early stopping)."""
    import torch

    torch.set_num_threads(spec["threads"])
    import pandas as pd

    from seqrec import SequentialRecommender
    from seqrec.config import preset
    from seqrec.data import build_dataset

    data = np.load(spec["data"])
    dataset = build_dataset(pd.DataFrame({"user_id": data["train_user"], "item_id": data["train_item"],
                                          "timestamp": data["train_time"]}))
    settings = {k: spec[k] for k in ("dim", "n_layers", "n_heads", "dropout", "item_dropout",
                                     "max_seq_len", "n_negatives", "batch_size", "lr",
                                     "ff_multiplier")}
    settings.update(spec.get("overrides", {}))  # a time-to-quality variant's --set
    model = SequentialRecommender(preset(spec["preset"], **settings, epochs=spec["epochs"],
                                         patience=0, seed=spec["seed"]))
    return dataset, model, data


def seqrec_child(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    import torch

    import seqrec

    dataset, model, data = seqrec_setup(spec)
    start, cpu = time.perf_counter(), time.process_time()
    epoch_ends = [cpu]  # process CPU at the start of fit, then at the end of every epoch
    result = model.fit(dataset, on_epoch=lambda record: epoch_ends.append(time.process_time()))
    fit_seconds, fit_cpu_seconds = time.perf_counter() - start, time.process_time() - cpu

    all_users = dataset.user_index.ids
    calls = []  # (wall, CPU) of two calls: the first after fit, then a warm one
    for _ in range(2):
        start, cpu = time.perf_counter(), time.process_time()
        reco_all = model.recommend(all_users, k=10)
        calls.append((time.perf_counter() - start, time.process_time() - cpu))
    assert reco_all["user_id"].nunique() == len(all_users)

    test_users = data["test_user"]
    hist_user, hist_item = data["hist_user"], data["hist_item"]
    bounds = np.flatnonzero(np.diff(hist_user)) + 1
    starts = np.concatenate([[0], bounds])
    assert (hist_user[starts] == test_users).all(), "test histories and test users disagree"
    histories = np.split(hist_item, bounds)
    start = time.perf_counter()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown (train-unseen) items are dropped, as in RecTools
        reco = model.recommend_for_histories(histories, k=10)
    recommend_test_seconds = time.perf_counter() - start
    top = np.full((len(test_users), 10), -1, dtype=np.int64)
    top[reco["history"].to_numpy(), reco["rank"].to_numpy() - 1] = reco["item_id"].to_numpy()
    out = Path(spec["out"])
    np.save(out.with_suffix(".top10.npy"), top)
    write_atomic(out, json.dumps({
        "library": "seqrec",
        "version": getattr(seqrec, "__version__", "unknown"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "epoch_seconds": [h.seconds for h in result.history],
        # epoch 1 from the start of fit (its set-up included), later ones from the previous end
        "epoch_cpu_seconds": np.diff(epoch_ends).tolist(),
        "fit_seconds": fit_seconds,
        "fit_cpu_seconds": fit_cpu_seconds,
        "n_train_sequences": int(round(result.history[0].sequences_per_s * result.history[0].seconds)),
        "recommend_all_first_seconds": calls[0][0],
        "recommend_all_first_cpu_seconds": calls[0][1],
        "recommend_all_seconds": calls[1][0],
        "recommend_all_cpu_seconds": calls[1][1],
        "recommend_all_users": int(len(all_users)),
        "recommend_test_seconds": recommend_test_seconds,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "pid": os.getpid(),
    }))


# ---- parent --------------------------------------------------------------------------------------
def run_child(library: str, spec: dict, tmp: Path, python: Path, threads: int) -> dict:
    spec_path = tmp / f"{library}-{spec['config']}-{spec['seed']}.json"
    out = spec_path.with_suffix(".result.json")
    spec_path.write_text(json.dumps({**spec, "out": str(out)}))
    if library == "seqrec":
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)]
    else:
        cmd = [str(python), str(DRIVER), str(spec_path)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"{library} run failed ({' '.join(cmd)})")
    result = json.loads(out.read_text())
    result["top10"] = np.load(out.with_suffix(".top10.npy"))
    result["wall_seconds"] = wall
    return result


def epochs_of(option: str, config: str) -> int:
    """Epochs of ``config`` from ``--epochs``: ``"2"`` (every config) or ``"esasrec256=1,..."``.

    Raises:
        SystemExit: a config without an epoch count in a per-config list.
    """
    if "=" not in option:
        return int(option)
    counts = dict(part.split("=") for part in option.split(","))
    if config not in counts:
        raise SystemExit(f"--epochs {option}: no epoch count for {config}")
    return int(counts[config])


def mean_sd(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", default="1",
                        help="epochs per run: N for every config, or per config, e.g. "
                             "esasrec256=1,esasrec64=2")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads of both libraries")
    parser.add_argument("--venv", type=Path, default=REPO / ".bench-venvs" / "rectools")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.child:
        seqrec_child(args.child)
        return
    if not args.data.exists():
        print(f"skipped: {args.data} not found (Amazon Beauty in the S3-Rec format)")
        return
    configs = args.configs.split(",")
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        raise SystemExit(f"unknown config(s) {unknown}; known: {', '.join(CONFIGS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    ensure_rectools(args.venv)
    python = venv_python(args.venv)
    rectools_version = subprocess.run(
        [str(python), "-c", "import rectools, torch; print(rectools.__version__, torch.__version__)"],
        capture_output=True, text=True, check=True).stdout.split()
    import torch

    import seqrec

    started = datetime.datetime.now().astimezone()
    load_before = os.getloadavg()
    sys.path.insert(0, str(HERE))
    from _common import busiest_processes

    args.busy = busiest_processes()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="vs_rectools_") as tmp_name:
        tmp = Path(tmp_name)
        data_path = tmp / "beauty_loo.npz"
        info = prepare(args.data, data_path)
        print(f"Beauty: {info}", flush=True)
        targets = np.load(data_path)["test_target"]
        n_run = 0
        for name in configs:
            for seed in seeds:
                spec = {**COMMON, **CONFIGS[name], "config": name, "seed": seed,
                        "epochs": epochs_of(args.epochs, name), "threads": args.threads,
                        "data": str(data_path)}
                order = ["seqrec", "rectools"] if n_run % 2 == 0 else ["rectools", "seqrec"]
                n_run += 1
                for library in order:
                    result = run_child(library, spec, tmp, python, args.threads)
                    result.update(metrics_at_10(result.pop("top10"), targets))
                    result.update(config=name, seed=seed, order=order.index(library) + 1)
                    rows.append(result)
                    print(f"{name:12s} seed {seed} {library:8s} epoch s "
                          f"{', '.join(f'{s:.1f}' for s in result['epoch_seconds'])} (CPU "
                          f"{', '.join(f'{s:.1f}' for s in result['epoch_cpu_seconds'])})  "
                          f"recommend-all {result['recommend_all_seconds']:.2f}s (CPU "
                          f"{result['recommend_all_cpu_seconds']:.2f})  "
                          f"peak {result['peak_rss_kib'] / 1024:.0f} MiB  "
                          f"NDCG@10 {result['ndcg@10']:.4f}  Recall@10 {result['recall@10']:.4f}",
                          flush=True)
    load_after = os.getloadavg()
    summary = summarise(rows, configs)
    table = format_table(summary)
    print()
    print(table)
    if args.no_write:
        return
    write_csv(rows)
    command = "python benchmarks/vs_rectools.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    write_results(table, summary, rows, info, command.strip(), started, load_before, load_after,
                  args, seqrec_version=getattr(seqrec, "__version__", "unknown"),
                  torch_version=torch.__version__, rectools_version=rectools_version)


def summarise(rows: list[dict], configs: list[str]) -> list[dict]:
    out = []
    for name in configs:
        entry: dict = {"config": name}
        for library in ("seqrec", "rectools"):
            runs = [r for r in rows if r["config"] == name and r["library"] == library]
            epochs = [s for r in runs for s in r["epoch_seconds"]]
            entry[library] = {
                "epoch_s": float(np.mean(epochs)),
                "epoch_cpu_s": float(np.mean([s for r in runs for s in r["epoch_cpu_seconds"]])),
                "seq_per_s": float(np.mean([r["n_train_sequences"] / s for r in runs
                                            for s in r["epoch_seconds"]])),
                "recommend_all_s": float(np.mean([r["recommend_all_seconds"] for r in runs])),
                "recommend_all_cpu_s": float(np.mean([r["recommend_all_cpu_seconds"]
                                                      for r in runs])),
                "fit_cpu_s": float(np.mean([r["fit_cpu_seconds"] for r in runs])),
                "peak_mib": float(np.max([r["peak_rss_kib"] for r in runs])) / 1024,
                "ndcg": mean_sd([r["ndcg@10"] for r in runs]),
                "recall": mean_sd([r["recall@10"] for r in runs]),
                "n_runs": len(runs),
                "n_epochs": len(epochs),
            }
        s, r = entry["seqrec"], entry["rectools"]
        for key in ("epoch_s", "epoch_cpu_s", "recommend_all_s", "recommend_all_cpu_s",
                    "peak_mib"):
            entry[f"ratio_{key}"] = r[key] / s[key]
        out.append(entry)
    return out


def format_table(summary: list[dict]) -> str:
    head = ("| config | library | epoch s wall | epoch s CPU | seq/s | fit CPU s | "
            "recommend-all s wall | recommend-all s CPU | peak RSS MiB | NDCG@10 | Recall@10 |")
    lines = [head, "|" + "---|" * 11]
    for entry in summary:
        for library in ("seqrec", "rectools"):
            x = entry[library]
            lines.append(
                f"| {entry['config']} | {library} | {x['epoch_s']:.2f} | {x['epoch_cpu_s']:.2f} | "
                f"{x['seq_per_s']:,.0f} | {x['fit_cpu_s']:.1f} | {x['recommend_all_s']:.2f} | "
                f"{x['recommend_all_cpu_s']:.2f} | {x['peak_mib']:,.0f} | "
                f"{x['ndcg'][0]:.4f} ± {x['ndcg'][1]:.4f} | {x['recall'][0]:.4f} ± {x['recall'][1]:.4f} |")
    lines += ["", "| config | epoch, wall: RecTools / seqrec | epoch, CPU | recommend-all, wall "
              "| recommend-all, CPU (target) | peak RSS | ΔNDCG@10 (seqrec − RecTools) |",
              "|---|---|---|---|---|---|---|"]
    for entry in summary:
        d = entry["seqrec"]["ndcg"][0] - entry["rectools"]["ndcg"][0]
        recommend = entry["ratio_recommend_all_cpu_s"]
        lines.append(
            f"| {entry['config']} | {entry['ratio_epoch_s']:.1f}x | {entry['ratio_epoch_cpu_s']:.1f}x | "
            f"{entry['ratio_recommend_all_s']:.1f}x | {recommend:.1f}x (>= {TARGET_RECOMMEND:.0f}x: "
            f"{'met' if recommend >= TARGET_RECOMMEND else 'MISSED'}) | "
            f"{entry['ratio_peak_mib']:.2f}x | {d:+.4f} |")
    return "\n".join(lines)


def write_csv(rows: list[dict]) -> None:
    fields = ["config", "seed", "library", "order", "version", "torch", "threads", "epoch",
              "epoch_seconds", "epoch_cpu_seconds", "sequences_per_s", "fit_seconds",
              "fit_cpu_seconds", "recommend_all_seconds", "recommend_all_cpu_seconds",
              "recommend_all_first_seconds", "recommend_all_first_cpu_seconds",
              "recommend_test_seconds", "peak_rss_kib", "ndcg@10", "recall@10"]
    buffer = io.StringIO()  # the csv module's own line ends, as open(newline="") keeps them
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for r in rows:
        for i, (seconds, cpu) in enumerate(zip(r["epoch_seconds"], r["epoch_cpu_seconds"],
                                               strict=True), start=1):
            writer.writerow({**{k: r.get(k) for k in fields}, "epoch": i,
                             "epoch_seconds": round(seconds, 3),
                             "epoch_cpu_seconds": round(cpu, 3),
                             "sequences_per_s": round(r["n_train_sequences"] / seconds, 1),
                             "fit_seconds": round(r["fit_seconds"], 3),
                             "fit_cpu_seconds": round(r["fit_cpu_seconds"], 3),
                             "recommend_all_seconds": round(r["recommend_all_seconds"], 3),
                             "recommend_all_cpu_seconds": round(r["recommend_all_cpu_seconds"], 3),
                             "recommend_all_first_seconds": round(r["recommend_all_first_seconds"], 3),
                             "recommend_all_first_cpu_seconds":
                                 round(r["recommend_all_first_cpu_seconds"], 3),
                             "recommend_test_seconds": round(r["recommend_test_seconds"], 3),
                             "ndcg@10": round(r["ndcg@10"], 5),
                             "recall@10": round(r["recall@10"], 5)})
    write_atomic(CSV, buffer.getvalue())


def write_results(table: str, summary: list[dict], rows: list[dict], info: dict, command: str,
                  started: datetime.datetime, load_before, load_after, args, *,
                  seqrec_version: str, torch_version: str, rectools_version: list[str]) -> None:
    seeds = sorted({r["seed"] for r in rows})
    text = f"""# seqrec vs RecTools on Amazon Beauty

Date: {started:%Y-%m-%d %H:%M %Z}. Command: `{command}` (from the repository root, seqrec's venv).
Commit: {commit()}.

Machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, Python {platform.python_version()}; load
average {load_before[0]:.2f} before and {load_after[0]:.2f} after the runs (other jobs shared the
machine; busiest other processes at the start: {args.busy}). Versions: seqrec {seqrec_version}, RecTools {rectools_version[0]}, torch
{torch_version} (seqrec) / {rectools_version[1]} (RecTools venv). Both libraries ran on CPU with
**{args.threads} torch thread(s)** each, in separate processes, one at a time; the order of the two
alternated from run to run (seqrec first, then RecTools first, ...), so background load hit both
alike.

Data: {info['users']:,} users, {info['items']:,} items, {info['interactions']:,} interactions.
Leave-one-out, already-seen test targets dropped: both fit on the same {info['train_interactions']:,}
train interactions and rank all train items for the same {info['test_users']:,} test histories
(seen items filtered); {info['test_targets_unseen_in_train']} test targets are items absent from
train, which neither library can recommend. NDCG@10 / Recall@10 come from one function applied to
each library's top-10 lists. Epochs per run: {args.epochs}; seed(s) {', '.join(map(str, seeds))}
(± is the sample standard deviation over seeds; 0 with one seed).

Settings (both): 1 layer, 1 head, dropout 0.2, max sequence length 50, batch 128, Adam lr 1e-3,
sampled softmax with 256 uniform negatives. eSASRec = LiGR layers (SwiGLU feed-forward, ×4);
SASRec+SS = the original SASRec block. RecTools: `SASRecModel(transformer_layers_type=LiGRLayers`
or `SASRecTransformerLayers, loss="sampled_softmax", n_negatives=256,
item_net_block_types=(IdEmbeddingsItemNet,), deterministic=True)`, a Lightning trainer on CPU
without progress bar, logger, checkpoints or validation; other arguments at their defaults.

seqrec runs its presets as they are (`esasrec`, `sasrec_ss`: 256 negatives drawn per sequence
and shared by its positions, dropout 0.2 on the item table, sparse item-table updates), with the
settings above as overrides. Known differences in what each library computes per step: RecTools
draws 256 negatives for every position of every sequence (`(batch, 50, 256)`) and pads every
batch to 50; seqrec pads each length bucket only to its longest sequence. Peak RSS is the
child's `ru_maxrss` over its whole life (data loading, training, recommending).

## Results

{table}

Columns: "epoch s wall / CPU" training seconds per epoch, wall clock and process CPU (user +
system; less sensitive to other jobs than wall time), mean over epochs and seeds (RecTools: a
Lightning callback from epoch start to end; seqrec: wall from `FitResult.history`, CPU between
`on_epoch` callbacks, epoch 1 counted from the start of `fit`, so its set-up is included);
"seq/s" training sequences per wall second; "fit CPU s" the process CPU time of the whole `fit`
(all epochs plus each library's data preparation); "recommend-all s" seconds for top-10 of all
{info['users']:,} users with seen items filtered (each library's `recommend`; the second of two
calls after `fit`, both in the CSV); "peak RSS" the largest over runs. Per-run figures:
`benchmarks/results/vs_rectools.csv`.
"""
    write_atomic(RESULTS, text)
    print(f"wrote {RESULTS} and {CSV}")


if __name__ == "__main__":
    main()
