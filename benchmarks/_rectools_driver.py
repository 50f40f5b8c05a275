"""RecTools side of ``benchmarks/vs_rectools.py`` (our own code; runs in the RecTools venv's python).

Usage (the parent script calls it): ``python _rectools_driver.py SPEC.json``. The spec names the
data file (``.npz`` written once by the parent: train interactions, test histories, test users),
the model settings, the epochs, the seed, the torch thread count and where to write the result
(JSON plus the top-10 of every test user as ``.npy``). Nothing here imports seqrec: the JSON,
written last, is replaced atomically by ``seqrec/files.py``'s ``write_atomic``, loaded from
its file (it needs only the standard library).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import warnings
from pathlib import Path


def _write_atomic(path: Path, text: str) -> None:
    """``seqrec.files.write_atomic`` without importing the seqrec package."""
    import importlib.util

    source = Path(__file__).resolve().parents[1] / "seqrec" / "files.py"
    spec = importlib.util.spec_from_file_location("_seqrec_files", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_atomic(path, text)


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    import torch

    torch.set_num_threads(spec["threads"])
    import numpy as np
    import pandas as pd
    import pytorch_lightning as pl
    import rectools
    from pytorch_lightning import Callback, Trainer
    from rectools import Columns
    from rectools.dataset import Dataset
    from rectools.models import SASRecModel
    from rectools.models.nn.item_net import IdEmbeddingsItemNet
    from rectools.models.nn.transformers.ligr import LiGRLayers
    from rectools.models.nn.transformers.sasrec import SASRecTransformerLayers

    warnings.filterwarnings("ignore")
    data = np.load(spec["data"])

    def frame(users, items, times) -> pd.DataFrame:
        return pd.DataFrame({
            Columns.User: users, Columns.Item: items, Columns.Weight: 1.0,
            Columns.Datetime: pd.to_datetime(times, unit="s"),
        })

    train = Dataset.construct(frame(data["train_user"], data["train_item"], data["train_time"]))
    test_hist = Dataset.construct(frame(data["hist_user"], data["hist_item"], data["hist_time"]))
    test_users = data["test_user"]

    epoch_seconds: list[float] = []
    epoch_cpu_seconds: list[float] = []

    class EpochTimer(Callback):
        """Training time of each epoch, wall and process CPU (no validation runs: no val
        dataloader is given)."""

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self._start, self._cpu = time.perf_counter(), time.process_time()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            epoch_seconds.append(time.perf_counter() - self._start)
            epoch_cpu_seconds.append(time.process_time() - self._cpu)

    curve = spec.get("curve")  # time-to-quality mode (benchmarks/time_to_quality.py)
    points: list[dict] = []
    val_lists: list[np.ndarray] = []
    clock = {"cpu": 0.0, "wall": 0.0, "eval_cpu": 0.0, "eval_wall": 0.0}

    class Curve(Callback):
        """Top-10 lists of the validation users every ``eval_batches`` steps and at the end of
        every epoch, with the training CPU and wall seconds so far (evaluation excluded); no new
        step once the training CPU reaches ``cap_cpu_seconds``."""

        steps = 0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.steps += 1
            if self.steps % curve["eval_batches"] == 0:
                self.evaluate(trainer, pl_module, batch_idx + 1)

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            if self.steps % curve["eval_batches"]:
                self.evaluate(trainer, pl_module, None)

        def evaluate(self, trainer, pl_module, batches_done) -> None:
            cpu, wall = time.process_time(), time.perf_counter()
            train_cpu = cpu - clock["cpu"] - clock["eval_cpu"]
            train_wall = wall - clock["wall"] - clock["eval_wall"]
            model.is_fitted = True  # recommend() refuses an unfitted model; the weights are live
            try:
                reco = model.recommend(users=data["val_user"], dataset=train, k=10,
                                       filter_viewed=True)
            finally:
                model.is_fitted = False
                pl_module.train()  # recommend() left the module in eval mode
            val_lists.append(top10(reco, data["val_user"]))
            epoch = trainer.current_epoch + (1.0 if batches_done is None
                                            else batches_done / trainer.num_training_batches)
            points.append({"epoch": epoch, "step": self.steps, "train_cpu_seconds": train_cpu,
                           "train_wall_seconds": train_wall})
            clock["eval_cpu"] += time.process_time() - cpu
            clock["eval_wall"] += time.perf_counter() - wall
            if train_cpu >= curve["cap_cpu_seconds"]:
                trainer.should_stop = True

    def top10(reco: pd.DataFrame, users: np.ndarray) -> np.ndarray:
        top = np.full((len(users), 10), -1, dtype=np.int64)
        row_of = pd.Series(np.arange(len(users)), index=users)
        rows = row_of.loc[reco[Columns.User].to_numpy()].to_numpy()
        top[rows, reco[Columns.Rank].to_numpy().astype(np.int64) - 1] = reco[Columns.Item].to_numpy()
        return top

    def trainer() -> Trainer:
        callbacks = [EpochTimer()] + ([Curve()] if curve else [])
        return Trainer(max_epochs=spec["epochs"], min_epochs=1 if curve else spec["epochs"],
                       accelerator="cpu", devices=1, deterministic=True,
                       enable_progress_bar=False, enable_model_summary=False, logger=False,
                       enable_checkpointing=False, callbacks=callbacks)

    layers = {"ligr": LiGRLayers, "sasrec": SASRecTransformerLayers}[spec["layer"]]
    layer_kwargs = {"ff_factors_multiplier": spec["ff_multiplier"]} if spec["layer"] == "ligr" else None
    pl.seed_everything(spec["seed"], workers=True)
    model = SASRecModel(
        n_blocks=spec["n_layers"], n_heads=spec["n_heads"], n_factors=spec["dim"],
        dropout_rate=spec["dropout"], session_max_len=spec["max_seq_len"],
        loss="sampled_softmax", n_negatives=spec["n_negatives"], lr=spec["lr"],
        batch_size=spec["batch_size"], epochs=spec["epochs"], deterministic=True, verbose=0,
        item_net_block_types=(IdEmbeddingsItemNet,), transformer_layers_type=layers,
        transformer_layers_kwargs=layer_kwargs, get_trainer_func=trainer,
        recommend_torch_device="cpu",
    )
    start, cpu = time.perf_counter(), time.process_time()
    clock["cpu"], clock["wall"] = cpu, start
    model.fit(train)
    fit_seconds, fit_cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    if curve:  # the curve and the final test lists; nothing else
        reco = model.recommend(users=data["test_user"], dataset=test_hist, k=10,
                               filter_viewed=True)
        out = Path(spec["out"])
        np.save(out.with_suffix(".val_lists.npy"), np.stack(val_lists))
        np.save(out.with_suffix(".top10.npy"), top10(reco, data["test_user"]))
        _write_atomic(out, json.dumps({
            "library": "rectools", "version": rectools.__version__, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "points": points,
            "epoch_seconds": epoch_seconds, "epoch_cpu_seconds": epoch_cpu_seconds,
            "eval_cpu_seconds": clock["eval_cpu"], "fit_cpu_seconds": fit_cpu_seconds,
            "fit_seconds": fit_seconds,
            "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
        return

    all_users = np.unique(data["train_user"])
    calls = []  # (wall, CPU) of two calls: the first after fit, then a warm one
    for _ in range(2):
        start, cpu = time.perf_counter(), time.process_time()
        reco_all = model.recommend(users=all_users, dataset=train, k=10, filter_viewed=True)
        calls.append((time.perf_counter() - start, time.process_time() - cpu))
    assert reco_all[Columns.User].nunique() == len(all_users)

    start = time.perf_counter()
    reco = model.recommend(users=test_users, dataset=test_hist, k=10, filter_viewed=True)
    recommend_test_seconds = time.perf_counter() - start
    top = np.full((len(test_users), 10), -1, dtype=np.int64)
    row_of = pd.Series(np.arange(len(test_users)), index=test_users)
    rows = row_of.loc[reco[Columns.User].to_numpy()].to_numpy()
    top[rows, reco[Columns.Rank].to_numpy().astype(np.int64) - 1] = reco[Columns.Item].to_numpy()
    out = Path(spec["out"])
    np.save(out.with_suffix(".top10.npy"), top)
    # the Lightning module is trained in place; count what RecTools actually trained on
    n_train_sequences = int((pd.Series(data["train_user"]).value_counts() >= 2).sum())
    _write_atomic(out, json.dumps({
        "library": "rectools",
        "version": rectools.__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "epoch_seconds": epoch_seconds,
        "epoch_cpu_seconds": epoch_cpu_seconds,
        "fit_seconds": fit_seconds,
        "fit_cpu_seconds": fit_cpu_seconds,
        "n_train_sequences": n_train_sequences,
        "recommend_all_first_seconds": calls[0][0],
        "recommend_all_first_cpu_seconds": calls[0][1],
        "recommend_all_seconds": calls[1][0],
        "recommend_all_cpu_seconds": calls[1][1],
        "recommend_all_users": int(len(all_users)),
        "recommend_test_seconds": recommend_test_seconds,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "pid": os.getpid(),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
