"""Leave-one-out table: the eSASRec paper's preliminary study, on this machine.

Protocol (eSASRec, arXiv 2508.06450): last item of each user = test target, second-to-last =
validation target (early stopping on validation NDCG@10), test targets the user already has in
the history dropped, every catalogue item ranked with seen items filtered, K = 10.

    python benchmarks/loo.py --dataset beauty --models popular,sasrec,sasrec_ss,gsasrec,bert4rec,esasrec

Any file :func:`seqrec.load_dataset` reads runs the same way, e.g. an S3-Rec-format data set:

    python benchmarks/loo.py --data path/to/Sports.txt --format s3rec --models esasrec

(the table and file names then carry ``--name``, default the file's stem in lower case).

Prints a Markdown table and writes it (and a CSV) under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd
import torch
from _common import cpu_model  # noqa: E402  (benchmarks/ helper)

import seqrec
from seqrec.config import parse_set
from seqrec.data import leave_one_out, load_movielens, load_recbole, load_s3rec, load_sasrec
from seqrec.data.loaders import DatasetFormat, load_dataset
from seqrec.data.sequences import Dataset
from seqrec.files import write_atomic

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASETS = {
    "beauty": lambda: load_s3rec(SHARED / "s3rec" / "Beauty.txt"),
    "video": lambda: load_sasrec(SHARED / "sasrec" / "Video.txt"),
    "ml100k": lambda: load_recbole(SHARED / "ml-100k"),
    "movielens": load_movielens,
}
# Amazon Beauty, leave-one-out, in the eSASRec paper (Recall@10, NDCG@10): SASRec as reported by
# its authors, the others as the paper calculated them (HSTU and FuXi-α on a Beauty copy with
# the reviews' real timestamps)
PAPER_BEAUTY = {
    "sasrec": (0.0605, 0.0318),
    "sasrec_ss": (0.0921, 0.0531),
    "esasrec": (0.0928, 0.0523),
    "hstu": (0.0788, 0.0439),
    "fuxi_alpha": (0.0809, 0.0451),
    "TIGER": (0.0648, 0.0384),
    "ActionPiece": (0.0775, 0.0424),
}


def machine(jobs: int = 1) -> str:
    """One line on how the runs used this machine: torch threads (per run when ``jobs > 1``),
    cores, CPU model, OS."""
    cpu = cpu_model()
    threads = f"{torch.get_num_threads()} torch threads"
    if jobs > 1:
        threads = f"{jobs} runs side by side, {max(1, torch.get_num_threads() // jobs)} torch thread(s) each"
    return f"{threads}, {len(__import__('os').sched_getaffinity(0))} cores, {cpu}, {platform.system()}"


def load(args: argparse.Namespace) -> Dataset:
    """The data set the command line names: ``--data FILE --format FMT`` or ``--dataset NAME``;
    with ``--positions-as-time`` its timestamps replaced by positions (0, 1, ... per user), as
    the S3-Rec and SASRec files give them."""
    dataset = load_dataset(args.data, args.format) if args.data is not None else DATASETS[args.dataset]()
    if not args.positions_as_time:
        return dataset
    seqs = dataset.sequences
    positions = np.arange(len(seqs.items), dtype=np.int64) - np.repeat(seqs.offsets[:-1], seqs.lengths)
    return dataclasses.replace(dataset, sequences=dataclasses.replace(seqs, timestamps=positions))


def run(dataset_name: str, model_name: str, seed: int, args: argparse.Namespace) -> dict:
    dataset = load(args)
    split = leave_one_out(dataset, filter_already_seen=True)
    if model_name == "popular":
        model = seqrec.build_model("popular")
        start = time.perf_counter()
        model.fit(dataset, split.train)
        result = None
    else:
        settings = dict(dim=args.dim, n_layers=1, n_heads=1, dropout=0.2, max_seq_len=50,
                        lr=1e-3, batch_size=128, epochs=args.epochs, patience=args.patience,
                        seed=seed)
        if args.negative_sharing and model_name in ("esasrec", "sasrec_ss"):
            settings["negative_sharing"] = args.negative_sharing
        settings.update(parse_set(args.set))
        model = seqrec.build_model(model_name, **settings)
        start = time.perf_counter()
        result = model.fit(dataset, split.train, validation=split.validation,
                           progress=args.progress)
    wall = time.perf_counter() - start
    means = seqrec.evaluate(model, split.test, k=10,
                            metrics=("recall", "ndcg", "coverage")).means
    row = {"dataset": dataset_name, "model": model_name, "seed": seed,
           "recall@10": means["recall@10"], "ndcg@10": means["ndcg@10"],
           "coverage@10": means["coverage@10"], "wall_s": wall}
    if result is not None:
        row.update(best_epoch=result.best_epoch, epochs_run=len(result.history),
                   epoch_s=statistics.median(h.seconds for h in result.history),
                   sequences_per_s=statistics.median(h.sequences_per_s for h in result.history))
    return row


def table(rows: pd.DataFrame, dataset: str) -> str:
    grouped = rows.groupby("model", sort=False)
    lines = ["| model | Recall@10 | NDCG@10 | coverage@10 | seeds | best epoch | epochs run | s/epoch | seq/s | wall s | paper R@10 / N@10 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]

    def fmt(series: pd.Series, digits: int = 4) -> str:
        if series.isna().all():
            return "–"
        if len(series) == 1:
            return f"{series.iloc[0]:.{digits}f}"
        return f"{series.mean():.{digits}f} ± {series.std(ddof=0):.{digits}f}"

    for name, g in grouped:
        paper = PAPER_BEAUTY.get(name) if dataset == "beauty" else None
        lines.append(
            f"| {name} | {fmt(g['recall@10'])} | {fmt(g['ndcg@10'])} | {fmt(g['coverage@10'])} | "
            f"{len(g)} | {fmt(g.get('best_epoch', pd.Series([np.nan])), 0)} | "
            f"{fmt(g.get('epochs_run', pd.Series([np.nan])), 0)} | "
            f"{fmt(g.get('epoch_s', pd.Series([np.nan])), 1)} | "
            f"{fmt(g.get('sequences_per_s', pd.Series([np.nan])), 0)} | {fmt(g['wall_s'], 0)} | "
            f"{f'{paper[0]:.4f} / {paper[1]:.4f}' if paper else '–'} |")
    if dataset == "beauty":
        for name in ("TIGER", "ActionPiece"):
            r, n = PAPER_BEAUTY[name]
            lines.append(f"| {name} (paper only) | – | – | – | – | – | – | – | – | – | {r:.4f} / {n:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="beauty",
                        help="a data set wired to ../shared/data (ignored with --data)")
    parser.add_argument("--data", type=Path, default=None,
                        help="a data file (or RecBole directory) to read instead of --dataset")
    parser.add_argument("--format", choices=get_args(DatasetFormat), default="s3rec",
                        help="format of --data (see seqrec.load_dataset); default s3rec")
    parser.add_argument("--name", default=None,
                        help="name of --data in the table and file names (default: its stem, "
                             "lower case; 'beauty' adds the paper's figures)")
    parser.add_argument("--models", default="popular,sasrec,sasrec_ss,gsasrec,bert4rec,esasrec")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="torch threads in all")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs (model, seed) side by side in this many processes")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--negative-sharing", choices=["batch", "sequence", "target"], default=None,
                        help="override the presets' negative_sharing (sampled-softmax models)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config field of the trained models, e.g. --set item_dropout=0.2")
    parser.add_argument("--tag", default="", help="suffix of the result file names")
    parser.add_argument("--positions-as-time", action="store_true",
                        help="replace the timestamps by positions (what time-aware layers see on "
                             "files without times), to measure how much the real times matter")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.data is not None:
        if not args.data.exists():
            parser.error(f"--data {args.data}: no such file or directory")
        args.dataset = args.name or args.data.stem.lower()
    elif args.dataset != "movielens" and not SHARED.exists():
        sys.exit(f"shared data not found at {SHARED}: this benchmark needs ../shared/data")
    torch.set_num_threads(args.threads)
    if args.progress:  # per-epoch loss, time and validation NDCG@10 from seqrec.train's log
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    runs = [(model_name, seed) for model_name in args.models.split(",")
            for seed in ([0] if model_name == "popular" else [int(s) for s in args.seeds.split(",")])]
    if args.jobs > 1:  # runs side by side, the threads split between them
        threads = max(1, args.threads // args.jobs)
        with ProcessPoolExecutor(args.jobs, initializer=torch.set_num_threads,
                                 initargs=(threads,)) as pool:
            futures = [pool.submit(run, args.dataset, name, seed, args) for name, seed in runs]
            rows = [future.result() for future in futures]
    else:
        rows = [run(args.dataset, name, seed, args) for name, seed in runs]
    for row in rows:
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    frame = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"loo_{args.dataset}_dim{args.dim}{'_' + args.tag if args.tag else ''}"
    write_atomic(args.out / f"{stem}.csv", frame.to_csv(index=False))
    text = (f"### Leave-one-out, {args.dataset}, dim {args.dim}\n\n"
            f"Command: `python benchmarks/loo.py {' '.join(sys.argv[1:])}`  \n"
            f"Date: {time.strftime('%Y-%m-%d')}; machine: {machine(args.jobs)}; seqrec {seqrec.__version__}, "
            f"torch {torch.__version__}\n\n{table(frame, args.dataset)}\n")
    write_atomic(args.out / f"{stem}.md", text)
    print(text)


if __name__ == "__main__":
    main()
