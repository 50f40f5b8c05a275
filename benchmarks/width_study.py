"""Learning curves of one training configuration on Beauty, leave-one-out (issue 19).

Trains one model with ``--set`` overrides on top of a preset, on the split of
``benchmarks/loo.py`` (last item = test, second-to-last = validation, seen items filtered), and
records per epoch: training loss, validation NDCG@10 and Recall@10, the mean norm of the item
embeddings, training wall seconds, wall and CPU seconds of the whole epoch (validation included).
After training the best epoch's weights (by validation NDCG@10, as the library selects) are
evaluated on the test targets, and so are the weights of the best validation Recall@10 epoch
(the eSASRec reference code's trainer selects and stops by validation Recall@10).

    python benchmarks/width_study.py --label dim256 --set dim=256 --epochs 28
    python benchmarks/width_study.py --label dim256_ref_init --set dim=256 --init reference
    python benchmarks/width_study.py --plot dim256,dim256_ref_init --png width_study.png

``--init reference`` re-initialises the encoder after it is built as RecTools 0.13 does for the
eSASRec reference code (``TransformerLightningModule.on_train_start``: Xavier-normal on every
parameter of two or more dimensions; ``nn.MultiheadAttention``'s zero projection biases; the
SwiGLU's two input projections as two separate matrices). It exists to compare with the
library's own initialisation (``SequenceEncoder``: item and position tables drawn with std
dim^-0.5), one difference at a time.

Curves go to ``benchmarks/results/width_study_curves.csv`` (one row per label and epoch; a
label's old rows are replaced), results to ``width_study_runs.csv``; ``--plot`` draws validation
NDCG@10 and training loss per epoch for the given labels.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from _common import busiest_processes, cpu_model, locked  # noqa: E402  (benchmarks/ helper)
from torch import nn

import seqrec
from seqrec.build import Parts
from seqrec.checkpoint import EpochRecord
from seqrec.config import Runtime, parse_set, preset
from seqrec.data import leave_one_out, load_s3rec
from seqrec.data.catalogue import PAD
from seqrec.files import write_atomic
from seqrec.recommender import SequentialRecommender

HERE = Path(__file__).resolve().parent
BEAUTY = HERE.parents[1] / "shared" / "data" / "s3rec" / "Beauty.txt"
OUT = HERE / "results"
# the settings loo.py trains with (the eSASRec paper's Beauty config apart from dim); the two
# dropout rates are the preset's, by depth and by width (at 1 block and dim 64: 0.2 and 0.2)
LOO_SETTINGS = dict(n_layers=1, n_heads=1, max_seq_len=50, lr=1e-3, batch_size=128)


def reference_init(parts: Parts) -> Parts:
    """Re-initialise ``parts.encoder`` as RecTools 0.13 initialises its transformer models.

    RecTools draws every parameter with two or more dimensions from Xavier-normal (item and
    position tables, attention, gates, feed-forward), leaves vectors (biases, layer norms) as
    built, and its ``nn.MultiheadAttention`` starts with zero projection biases. Our SwiGLU holds
    its gate and up projections in one matrix: each half is drawn as the separate matrix it is
    there. The PAD row is zeroed again (it is never read).
    """
    encoder = parts.encoder
    with torch.no_grad():
        for name, param in encoder.named_parameters():
            if param.dim() < 2:
                if name.endswith(("attn.qkv.bias", "attn.out.bias")):
                    param.zero_()
                continue
            if name.endswith("ff.gate_up.weight"):
                for half in param.chunk(2, dim=0):
                    nn.init.xavier_normal_(half)
            else:
                nn.init.xavier_normal_(param)
        encoder.item_embedding.weight[PAD].zero_()
    return parts


def item_norm(model: SequentialRecommender) -> float:
    """Mean L2 norm of the catalogue's item embeddings (PAD excluded)."""
    assert model.parts is not None
    weight = model.parts.encoder.item_embedding.weight.detach()
    return float(weight[1: model.parts.encoder.n_items + 1].norm(dim=1).mean())


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=HERE, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def replace_rows(path: Path, frame: pd.DataFrame, label: str) -> None:
    """Write ``frame`` into the CSV at ``path`` in place of the rows of ``label``.

    Runs finishing together do not lose each other's rows (the read-modify-write holds an
    exclusive lock on ``<path>.lock``), and a kill mid-write leaves the old file whole.
    """
    with locked(path):
        if path.exists():
            old = pd.read_csv(path)
            frame = pd.concat([old[old["label"] != label], frame], ignore_index=True)
        write_atomic(path, frame.to_csv(index=False))


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    overrides = {**LOO_SETTINGS, "epochs": args.epochs, "patience": args.patience,
                 "seed": args.seed, **parse_set(args.set)}
    config = preset(args.preset, **overrides)
    dataset = load_s3rec(args.data)
    split = leave_one_out(dataset, filter_already_seen=True)
    override = reference_init if args.init == "reference" else None
    model = SequentialRecommender(config, parts_override=override,
                                  runtime=Runtime(threads=args.threads))
    rows: list[dict] = []
    loads: list[float] = []
    by_recall: dict = {"recall": -1.0, "epoch": 0, "weights": None}
    clock = {"wall": time.perf_counter(), "cpu": time.process_time()}
    start_wall, start_cpu = clock["wall"], clock["cpu"]

    def on_epoch(record: EpochRecord) -> None:
        assert model.parts is not None
        val_recall = seqrec.evaluate(model, split.validation, k=10,
                                     metrics=("recall",)).means["recall@10"]
        if val_recall > by_recall["recall"]:
            by_recall.update(recall=val_recall, epoch=record.epoch, weights={
                k: v.detach().clone() for k, v in model.parts.encoder.state_dict().items()})
        wall, cpu = time.perf_counter(), time.process_time()
        loads.append(os.getloadavg()[0])
        rows.append({"label": args.label, "epoch": record.epoch, "train_loss": record.loss,
                     "val_ndcg@10": record.validation_ndcg, "val_recall@10": val_recall,
                     "item_norm": item_norm(model),
                     "train_wall_s": record.seconds, "epoch_wall_s": wall - clock["wall"],
                     "epoch_cpu_s": cpu - clock["cpu"], "load1": loads[-1]})
        clock["wall"], clock["cpu"] = wall, cpu
        print(f"{args.label} epoch {record.epoch:3d} loss {record.loss:.4f} "
              f"val {record.validation_ndcg:.4f} / {val_recall:.4f} |e| {rows[-1]['item_norm']:.3f} "
              f"{rows[-1]['epoch_wall_s']:.0f}s wall {rows[-1]['epoch_cpu_s']:.0f}s cpu",
              flush=True)

    others, started_at = busiest_processes(), (commit(), time.strftime("%Y-%m-%d %H:%M"))
    result = model.fit(dataset, split.train, validation=split.validation, on_epoch=on_epoch)
    means = seqrec.evaluate(model, split.test, k=10, metrics=("recall", "ndcg", "coverage")).means
    assert model.parts is not None and by_recall["weights"] is not None
    model.parts.encoder.load_state_dict(by_recall["weights"])
    recall_means = seqrec.evaluate(model, split.test, k=10, metrics=("recall", "ndcg")).means
    curves = pd.DataFrame(rows)
    peak = curves.loc[curves["val_ndcg@10"].idxmax()]
    summary = {
        "label": args.label, "init": args.init, "settings": " ".join(args.set),
        "recall@10": means["recall@10"], "ndcg@10": means["ndcg@10"],
        "coverage@10": means["coverage@10"], "best_epoch": result.best_epoch,
        "recall@10_by_val_recall": recall_means["recall@10"],
        "ndcg@10_by_val_recall": recall_means["ndcg@10"], "best_epoch_by_val_recall": by_recall["epoch"],
        "peak_val_ndcg@10": peak["val_ndcg@10"], "epochs_run": len(result.history),
        "epochs_cap": args.epochs, "stopped_early": result.stopped_early,
        "train_wall_s_per_epoch": curves["train_wall_s"].median(),
        "wall_s_per_epoch": curves["epoch_wall_s"].median(),
        "cpu_s_per_epoch": curves["epoch_cpu_s"].median(),
        "wall_s": time.perf_counter() - start_wall, "cpu_s": time.process_time() - start_cpu,
        "load1_mean": sum(loads) / max(len(loads), 1),
        "command": "python benchmarks/width_study.py " + " ".join(sys.argv[1:]),
        "commit": started_at[0], "date": started_at[1],  # the code the run started with
        "machine": f"{args.threads} torch thread(s), {len(os.sched_getaffinity(0))} cores, "
                   f"{cpu_model()}, {platform.system()}, torch {torch.__version__}",
        "others": others, "config": str(dataclasses.asdict(config)),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    replace_rows(args.out / "width_study_curves.csv", curves, args.label)
    replace_rows(args.out / "width_study_runs.csv", pd.DataFrame([summary]), args.label)
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary.items()
           if k not in ("config", "others")})


def plot(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = pd.read_csv(args.out / "width_study_curves.csv")
    labels = args.plot.split(",")
    fig, (ax_val, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label in labels:
        c = curves[curves["label"] == label]
        if c.empty:
            raise SystemExit(f"--plot: no curve labelled {label!r} in width_study_curves.csv")
        line, = ax_val.plot(c["epoch"], c["val_ndcg@10"], label=label)
        ax_loss.plot(c["epoch"], c["train_loss"], color=line.get_color(), label=label)
    ax_val.set(xlabel="epoch", ylabel="validation NDCG@10", title=args.title)
    ax_loss.set(xlabel="epoch", ylabel="training loss (sampled softmax)", title="training loss")
    for ax in (ax_val, ax_loss):
        ax.grid(alpha=0.3)
    ax_val.legend(fontsize=8)
    fig.tight_layout()
    write_atomic(args.out / args.png,
                 lambda tmp: fig.savefig(tmp, format=Path(args.png).suffix[1:] or "png", dpi=110))
    print(f"wrote {args.out / args.png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", help="name of the run in the CSVs and the plot")
    parser.add_argument("--preset", default="esasrec")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. --set dim=256 (repeatable)")
    parser.add_argument("--init", choices=["library", "reference"], default="library",
                        help="reference: RecTools 0.13's Xavier-normal initialisation")
    parser.add_argument("--epochs", type=int, default=28)
    parser.add_argument("--patience", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", type=Path, default=BEAUTY)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--plot", default=None, help="comma-separated labels to plot instead")
    parser.add_argument("--png", default="width_study_beauty.png")
    parser.add_argument("--title", default="Beauty, leave-one-out: validation NDCG@10")
    args = parser.parse_args()
    if args.plot:
        plot(args)
    elif not args.label:
        parser.error("--label is required to train")
    else:
        train(args)


if __name__ == "__main__":
    main()
