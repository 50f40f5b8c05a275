"""RecTools side of ``benchmarks/vs_rectools.py`` (our own code; runs in the RecTools venv's python).

Usage (the parent script calls it): ``python _rectools_driver.py SPEC.json``. The spec names the
data file (``.npz`` written once by the parent: train interactions, test histories, test users),
the model settings, the epochs, the seed, the torch thread count and where to write the result
(JSON plus the top-10 of every test user as ``.npy``). Nothing here imports seqrec.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import warnings
from pathlib import Path


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

    class EpochTimer(Callback):
        """Training time of each epoch (no validation runs: no val dataloader is given)."""

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self._start = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            epoch_seconds.append(time.perf_counter() - self._start)

    def trainer() -> Trainer:
        return Trainer(max_epochs=spec["epochs"], min_epochs=spec["epochs"], accelerator="cpu",
                       devices=1, deterministic=True, enable_progress_bar=False,
                       enable_model_summary=False, logger=False, enable_checkpointing=False,
                       callbacks=[EpochTimer()])

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
    model.fit(train)
    fit_seconds, fit_cpu_seconds = time.perf_counter() - start, time.process_time() - cpu

    all_users = np.unique(data["train_user"])
    start = time.perf_counter()
    reco_all = model.recommend(users=all_users, dataset=train, k=10, filter_viewed=True)
    recommend_all_seconds = time.perf_counter() - start
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
    out.write_text(json.dumps({
        "library": "rectools",
        "version": rectools.__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "epoch_seconds": epoch_seconds,
        "fit_seconds": fit_seconds,
        "fit_cpu_seconds": fit_cpu_seconds,
        "n_train_sequences": n_train_sequences,
        "recommend_all_seconds": recommend_all_seconds,
        "recommend_all_users": int(len(all_users)),
        "recommend_test_seconds": recommend_test_seconds,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "pid": os.getpid(),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
