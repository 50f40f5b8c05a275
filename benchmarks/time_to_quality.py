"""Time to quality: validation NDCG@10 against cumulative training CPU seconds, seqrec vs RecTools.

    python benchmarks/time_to_quality.py [--libraries seqrec,rectools] [--rectools-cap 1800]
        [--seqrec-cap 900] [--threads 1]

Both libraries train the eSASRec recipe of ``vs_rectools.py`` (config ``esasrec64``: dim 64, 1
LiGR layer, 1 head, dropout 0.2, max_seq_len 50, 256 negatives, batch 128, Adam lr 1e-3; seqrec
as its ``esasrec`` preset with those overrides) on the same leave-one-out split of Amazon Beauty
(``vs_rectools.prepare``: one ``.npz``, train rows = each user's sequence minus the last two
items), each in its own process with the same torch thread count, one after the other.

* Curve points: the top-10 lists (seen items filtered) of **every** validation user (history =
  the user's train row, target = the second-to-last item), written by each library's own
  ``recommend`` while training goes on: RecTools every ``--rectools-eval-batches`` steps and at
  every epoch's end (a Lightning callback), seqrec after epochs 1-10 and then every third epoch
  (``fit(on_epoch=...)``). Beside each point: training CPU seconds of the process (user + system)
  and wall seconds since the start of ``fit`` with the evaluation calls' own time taken out (data
  preparation inside ``fit`` counts as training on both sides).
* NDCG@10 of every point is computed here, by one function (``vs_rectools.metrics_at_10``), from
  the lists both libraries return. seqrec's points also carry the **test** NDCG@10 of the same
  weights (test histories = train row + validation item, target = the last item), so the
  validation level at which seqrec first reaches the paper's test NDCG@10 (0.0523) can be read.
* Caps: RecTools stops at the first curve point at or past ``--rectools-cap`` training CPU
  seconds (default 1,800 = 30 CPU minutes); seqrec at ``--seqrec-cap`` (default 900) or when its
  validation NDCG@10 has not improved for 30 epochs (flat). Nothing is extrapolated: a level
  not reached within the cap is reported as not reached.

**Variants** (``--variant NAME --set KEY=VALUE ...``): seqrec's curve with config overrides, to
measure a change of the recipe one at a time ("does it learn more per CPU-second?"). A variant's
curve goes to ``time_to_quality_seqrec_<NAME>.json`` and never into the main table; every saved
variant is compared in ``benchmarks/results/time_to_quality_variants.md`` (CPU seconds to fixed
validation levels, best validation NDCG@10 and the test NDCG@10 of the same weights).

Each library's curve is saved as it finishes (``benchmarks/results/time_to_quality_<library>.json``),
so the two may run in separate commands; the table (``benchmarks/results/time_to_quality.md``) and
the plot (``benchmarks/results/time_to_quality.png``) are built from the saved curves.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import busiest_processes, cpu_model, locked  # noqa: E402  (benchmarks/ helper)
from vs_rectools import (  # noqa: E402  (benchmarks/ helper)
    COMMON,
    CONFIGS,
    DATA,
    DRIVER,
    REPO,
    commit,
    ensure_rectools,
    metrics_at_10,
    prepare,
    seqrec_setup,
    venv_python,
)

from seqrec.config import parse_set
from seqrec.files import write_atomic

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PAPER_TEST_NDCG = 0.0523  # eSASRec on Beauty, arXiv 2508.06450
LEVELS = (0.02, 0.04)
FLAT_EPOCHS = 30


class _Stop(Exception):
    """Raised from seqrec's ``on_epoch`` callback to end training at a cap."""


def seqrec_child(spec_path: str) -> None:
    """Train seqrec epoch by epoch, writing validation (and test) top-10 lists at curve points."""
    spec = json.loads(Path(spec_path).read_text())
    import pandas as pd
    import torch

    dataset, model, data = seqrec_setup(spec)
    val_users, test_users = data["val_user"], data["test_user"]
    bounds = np.flatnonzero(np.diff(data["hist_user"])) + 1
    test_histories = np.split(data["hist_item"], bounds)

    def top10(reco: pd.DataFrame, key: str, n: int) -> np.ndarray:
        top = np.full((n, 10), -1, dtype=np.int64)
        top[reco[key].to_numpy(), reco["rank"].to_numpy() - 1] = reco["item_id"].to_numpy()
        return top

    points: list[dict] = []
    val_lists, test_lists = [], []
    clock = {"eval_cpu": 0.0, "eval_wall": 0.0, "best": -1.0, "best_epoch": 0}
    start_cpu, start_wall = time.process_time(), time.perf_counter()

    def on_epoch(record) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        train_cpu = cpu - start_cpu - clock["eval_cpu"]
        train_wall = wall - start_wall - clock["eval_wall"]
        if record.epoch <= 10 or record.epoch % 3 == 0 or train_cpu >= spec["cap_cpu_seconds"]:
            import warnings

            reco = model.recommend(val_users, k=10)
            reco["row"] = pd.Series(np.arange(len(val_users)), index=val_users).loc[
                reco["user_id"].to_numpy()].to_numpy()
            val_lists.append(top10(reco, "row", len(val_users)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # train-unseen history items dropped, as RecTools
                test_lists.append(top10(model.recommend_for_histories(test_histories, k=10),
                                        "history", len(test_users)))
            points.append({"epoch": record.epoch, "train_cpu_seconds": train_cpu,
                           "train_wall_seconds": train_wall})
            ndcg = metrics_at_10(val_lists[-1], data["val_target"])["ndcg@10"]
            if ndcg > clock["best"]:
                clock["best"], clock["best_epoch"] = ndcg, record.epoch
            clock["eval_cpu"] += time.process_time() - cpu
            clock["eval_wall"] += time.perf_counter() - wall
        if train_cpu >= spec["cap_cpu_seconds"]:
            raise _Stop(f"training CPU cap {spec['cap_cpu_seconds']} s reached")
        if record.epoch - clock["best_epoch"] >= FLAT_EPOCHS:
            raise _Stop(f"flat: no better validation NDCG@10 for {FLAT_EPOCHS} epochs")

    try:
        model.fit(dataset, on_epoch=on_epoch)
        stopped = "epoch limit"
    except _Stop as stop:
        stopped = str(stop)
    import resource

    import seqrec

    out = Path(spec["out"])
    np.save(out.with_suffix(".val_lists.npy"), np.stack(val_lists))
    np.save(out.with_suffix(".test_lists.npy"), np.stack(test_lists))
    write_atomic(out, json.dumps({
        "library": "seqrec", "version": seqrec.__version__, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "points": points, "stopped": stopped,
        "eval_cpu_seconds": clock["eval_cpu"],
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def run_library(library: str, args: argparse.Namespace, data_path: Path, tmp: Path) -> dict:
    """Run one library's child; return its curve with NDCG@10 per point (computed here)."""
    cap = args.seqrec_cap if library == "seqrec" else args.rectools_cap
    spec = {**COMMON, **CONFIGS["esasrec64"], "config": "esasrec64", "seed": args.seed,
            "overrides": parse_set(args.set) if library == "seqrec" else {},
            "epochs": 1000, "threads": args.threads, "data": str(data_path),
            "cap_cpu_seconds": cap, "out": str(tmp / f"{library}.json"),
            "curve": {"cap_cpu_seconds": cap, "eval_batches": args.rectools_eval_batches}}
    spec_path = tmp / f"{library}.spec.json"
    spec_path.write_text(json.dumps(spec))
    if library == "seqrec":
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)]
    else:
        ensure_rectools(args.venv)
        cmd = [str(venv_python(args.venv)), str(DRIVER), str(spec_path)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "MKL_NUM_THREADS": str(args.threads), "PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1"}
    started, load = datetime.datetime.now().astimezone(), os.getloadavg()
    busy, code = busiest_processes(), commit()  # the code the run starts with
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"{library} run failed ({' '.join(cmd)})")
    result = json.loads(Path(spec["out"]).read_text())
    data = np.load(data_path)
    val_lists = np.load(Path(spec["out"]).with_suffix(".val_lists.npy"))
    for point, lists in zip(result["points"], val_lists, strict=True):
        point.update({f"val_{k}": v for k, v in metrics_at_10(lists, data["val_target"]).items()})
    if library == "seqrec":
        test_lists = np.load(Path(spec["out"]).with_suffix(".test_lists.npy"))
        for point, lists in zip(result["points"], test_lists, strict=True):
            point.update({f"test_{k}": v for k, v in metrics_at_10(lists, data["test_target"]).items()})
    else:  # RecTools: test lists of the final weights only
        final = metrics_at_10(np.load(Path(spec["out"]).with_suffix(".top10.npy")), data["test_target"])
        result["points"][-1].update({f"test_{k}": v for k, v in final.items()})
    result.update(cap_cpu_seconds=cap, started=f"{started:%Y-%m-%d %H:%M %Z}", load_before=load[0],
                  load_after=os.getloadavg()[0], busy=busy, commit=code, seed=args.seed,
                  eval_users=int(len(data["val_user"])), test_users=int(len(data["test_user"])))
    return result


def first_reaching(points: list[dict], level: float) -> dict | None:
    """The first curve point whose validation NDCG@10 is at least ``level`` (None: never)."""
    return next((p for p in points if p["val_ndcg@10"] >= level), None)


def report(curves: dict[str, dict], command: str) -> str:
    """The markdown table of CPU seconds to each level, and the curves' summary."""
    seqrec = curves.get("seqrec")
    levels: list[tuple[str, float | None]] = [(f"{x:.2f}", x) for x in LEVELS]
    paper_note = "seqrec has no curve"
    if seqrec is not None:
        at_paper = next((p for p in seqrec["points"] if p.get("test_ndcg@10", 0) >= PAPER_TEST_NDCG),
                        None)
        if at_paper is None:
            best = max(p["test_ndcg@10"] for p in seqrec["points"])
            paper_note = (f"seqrec's test NDCG@10 never reached {PAPER_TEST_NDCG} within its run "
                          f"(best {best:.4f})")
            levels.append((f"paper level: not reached by seqrec (test best {best:.4f})", None))
        else:
            level = at_paper["val_ndcg@10"]
            paper_note = (f"seqrec's test NDCG@10 first reached {PAPER_TEST_NDCG} at epoch "
                          f"{at_paper['epoch']} (test {at_paper['test_ndcg@10']:.4f}), where its "
                          f"validation NDCG@10 was {level:.4f}")
            levels.append((f"{level:.4f} (seqrec's validation NDCG@10 when its test NDCG@10 "
                           f"first reached {PAPER_TEST_NDCG})", level))
    names = [n for n in ("seqrec", "rectools") if n in curves]
    lines = ["| validation NDCG@10 level | " + " | ".join(
        f"{n}: training CPU s (wall s, epoch)" for n in names) + " | RecTools / seqrec CPU |",
             "|---|" + "---|" * (len(names) + 1)]
    for label, level in levels:
        cells, cpu = [], {}
        for name in names:
            hit = first_reaching(curves[name]["points"], level) if level is not None else None
            if hit is None:
                cap = curves[name]["cap_cpu_seconds"]
                cells.append("–" if level is None else f"not reached within {cap:,.0f} CPU s")
            else:
                cpu[name] = hit["train_cpu_seconds"]
                cells.append(f"{hit['train_cpu_seconds']:,.0f} ({hit['train_wall_seconds']:,.0f}, "
                             f"{hit['epoch']:.4g})")
        ratio = (f"{cpu['rectools'] / cpu['seqrec']:.1f}x" if len(cpu) == 2 else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
    runs = []
    for name in names:
        c = curves[name]
        last, best = c["points"][-1], max(c["points"], key=lambda p: p["val_ndcg@10"])
        runs.append(
            f"| {name} {c['version']} | {c['started']} | {c['commit']} | {c['load_before']:.2f} → "
            f"{c['load_after']:.2f} | {c['busy']} | {len(c['points'])} | {last['epoch']:.4g} | "
            f"{last['train_cpu_seconds']:,.0f} ({last['train_wall_seconds']:,.0f}) | "
            f"{best['val_ndcg@10']:.4f} (epoch {best['epoch']:.4g}) | "
            f"{c.get('stopped', 'CPU cap (a new step starts only below it)')} |")
    seqrec_note = "" if seqrec is None else f" {paper_note}."
    return f"""# Time to quality on Amazon Beauty: seqrec vs RecTools

Command: `{command}` (repository root, seqrec's venv; each library's curve may come from its own
invocation: see the runs table). Machine: {os.cpu_count()} CPUs, {cpu_model()}, Python
{platform.python_version()}; {curves[names[0]]['threads']} torch thread(s) per library; what ran
beside each run is in the runs table.

Recipe on both sides: `vs_rectools.py`'s `esasrec64` (dim 64, 1 LiGR layer ×4, 1 head, dropout
0.2, max_seq_len 50, 256 sampled-softmax negatives, batch 128, Adam lr 1e-3; seqrec = its
`esasrec` preset with those overrides: per-sequence negatives, item-table dropout 0.2; RecTools
0.19 `SASRecModel` with `LiGRLayers`, negatives per position), seed {curves[names[0]]['seed']}.
Same leave-one-out split (`vs_rectools.prepare`), the same evaluation: NDCG@10 over all
{curves[names[0]]['eval_users']:,} validation users (target = second-to-last item, history =
train row, seen items filtered), computed by one function from each library's top-10 lists.
Training CPU / wall seconds are counted from the start of `fit` with the evaluation calls taken
out. RecTools is capped at {curves['rectools']['cap_cpu_seconds'] if 'rectools' in curves else '–'}
training CPU seconds, seqrec at {seqrec['cap_cpu_seconds'] if seqrec else '–'} or when flat for
{FLAT_EPOCHS} epochs; no level is extrapolated.{seqrec_note}

![validation NDCG@10 against training CPU seconds](time_to_quality.png)

{chr(10).join(lines)}

Cells: training CPU seconds at the first curve point at or above the level (wall seconds, epoch
at that point; RecTools points every {curves['rectools']['points'][0]['step'] if 'rectools' in curves else '–'} steps and
at epoch ends, seqrec's after epochs 1-10 and every third epoch after that).

| run | started | commit | load average | busiest other processes at the start | points | last epoch | training CPU s (wall) at the end | best validation NDCG@10 | stopped by |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(runs)}

Test NDCG@10 / Recall@10 at the end: """ + "; ".join(
        f"{n} {curves[n]['points'][-1]['test_ndcg@10']:.4f} / {curves[n]['points'][-1]['test_recall@10']:.4f}"
        for n in names) + f" ({curves[names[0]]['test_users']:,} test users).\n"


VARIANT_LEVELS = (0.02, 0.04, 0.05, 0.06)


def variants_report(base: dict | None, variants: dict[str, dict]) -> str:
    """Markdown table: each seqrec variant's CPU seconds to fixed validation levels."""
    rows = ([("esasrec64 (main curve)", base)] if base is not None else []) + sorted(variants.items())
    head = " | ".join(f"val {x:.2f}: CPU s (epoch)" for x in VARIANT_LEVELS)
    lines = [f"| variant | overrides | {head} | best val NDCG@10 (epoch, CPU s) | test NDCG@10 there "
             "| training CPU s per epoch | cap | commit, started, load |",
             "|---|---|" + "---|" * len(VARIANT_LEVELS) + "---|---|---|---|---|"]
    for name, c in rows:
        cells = []
        for level in VARIANT_LEVELS:
            hit = first_reaching(c["points"], level)
            cells.append("–" if hit is None else
                         f"{hit['train_cpu_seconds']:,.0f} ({hit['epoch']:.4g})")
        best = max(c["points"], key=lambda p: p["val_ndcg@10"])
        last = c["points"][-1]
        per_epoch = last["train_cpu_seconds"] / last["epoch"]
        overrides = " ".join(f"{k}={v}" for k, v in c.get("overrides", {}).items()) or "–"
        lines.append(f"| {name} | {overrides} | " + " | ".join(cells) +
                     f" | {best['val_ndcg@10']:.4f} ({best['epoch']:.4g}, "
                     f"{best['train_cpu_seconds']:,.0f}) | {best['test_ndcg@10']:.4f} | "
                     f"{per_epoch:.1f} | {c['cap_cpu_seconds']:,.0f} | {c['commit']}, "
                     f"{c['started']}, {c['load_before']:.1f} → {c['load_after']:.1f} |")
    commands = sorted({c["command"] for _, c in rows})
    return ("# Time to quality: seqrec recipe variants on Amazon Beauty\n\n"
            "The main curve's recipe (`esasrec64`, see time_to_quality.md) with one change at a "
            "time; validation NDCG@10 over all validation users against training CPU seconds "
            "(1 torch thread, evaluation excluded); `–`: not reached within the cap.\n\n"
            + "\n".join(lines) + "\n\nCommands: `" + "`; `".join(commands) + "`\n")


def plot(curves: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, c in curves.items():
        x = [p["train_cpu_seconds"] for p in c["points"]]
        ax.plot(x, [p["val_ndcg@10"] for p in c["points"]], marker=".", label=f"{name} validation")
        if name == "seqrec":
            ax.plot(x, [p["test_ndcg@10"] for p in c["points"]], linestyle=":",
                    label="seqrec test (same weights)")
    ax.axhline(PAPER_TEST_NDCG, color="grey", linewidth=0.8, linestyle="--",
               label=f"paper test NDCG@10 {PAPER_TEST_NDCG}")
    ax.set_xscale("log")
    ax.set_xlabel("training CPU seconds (1 torch thread, evaluation excluded)")
    ax.set_ylabel("NDCG@10")
    ax.set_title("Beauty leave-one-out, eSASRec recipe, dim 64")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format=path.suffix[1:] or "png", dpi=120))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--libraries", default="seqrec,rectools",
                        help="which curves to (re)measure; saved curves of the others are reused")
    parser.add_argument("--rectools-cap", type=float, default=1800.0,
                        help="RecTools training CPU seconds cap (default 30 minutes)")
    parser.add_argument("--seqrec-cap", type=float, default=900.0,
                        help="seqrec training CPU seconds cap (default 15 minutes)")
    parser.add_argument("--rectools-eval-batches", type=int, default=88,
                        help="RecTools steps between curve points (an epoch is 175 steps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--venv", type=Path, default=REPO / ".bench-venvs" / "rectools")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--variant", default=None,
                        help="name of a seqrec variant (with --set): its own curve and table")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="seqrec config override of a --variant (repeatable)")
    args = parser.parse_args()
    if args.set and not args.variant:
        parser.error("--set changes the recipe: name the curve with --variant")
    if args.child:
        seqrec_child(args.child)
        return
    if not args.data.exists():
        print(f"skipped: {args.data} not found (Amazon Beauty in the S3-Rec format)")
        return
    command = "python benchmarks/time_to_quality.py " + " ".join(map(shlex.quote, sys.argv[1:]))
    libraries = [name for name in args.libraries.split(",") if name]  # none: rebuild the report
    if args.variant:
        libraries = ["seqrec"]
    with tempfile.TemporaryDirectory(prefix="time_to_quality_") as tmp_name:
        tmp = Path(tmp_name)
        data_path = tmp / "beauty_loo.npz"
        if libraries:
            prepare(args.data, data_path)
        for library in libraries:
            start = time.perf_counter()
            curve = run_library(library, args, data_path, tmp)
            curve["command"] = command.strip()
            curve["overrides"] = parse_set(args.set)
            name = f"seqrec_{args.variant}" if args.variant else library
            write_atomic(RESULTS / f"time_to_quality_{name}.json", json.dumps(curve, indent=1))
            last = curve["points"][-1]
            print(f"{library}: {len(curve['points'])} points, {last['train_cpu_seconds']:.0f} "
                  f"training CPU s, best validation NDCG@10 "
                  f"{max(p['val_ndcg@10'] for p in curve['points']):.4f} "
                  f"({time.perf_counter() - start:.0f} s wall)", flush=True)
    # runs finishing together take turns to read the saved curves and write the report, so the
    # last report written holds every curve saved before it
    report_path = RESULTS / ("time_to_quality_variants.md" if args.variant else "time_to_quality.md")
    with locked(report_path):
        curves = {name: json.loads((RESULTS / f"time_to_quality_{name}.json").read_text())
                  for name in ("seqrec", "rectools")
                  if (RESULTS / f"time_to_quality_{name}.json").exists()}
        if args.variant:
            variants = {path.stem.removeprefix("time_to_quality_seqrec_"):
                        json.loads(path.read_text())
                        for path in sorted(RESULTS.glob("time_to_quality_seqrec_*.json"))}
            text = variants_report(curves.get("seqrec"), variants)
        else:
            commands = sorted({c["command"] for c in curves.values()})
            plot(curves, RESULTS / "time_to_quality.png")
            text = report(curves, "`; `".join(commands))
        write_atomic(report_path, text)
    print(text)


if __name__ == "__main__":
    main()
