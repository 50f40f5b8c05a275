"""Training checkpoints, for resuming a run: weights, best weights, Adam state (safetensors) and
the loop's state (JSON), written as one directory that replaces the previous one atomically
(:func:`seqrec.files.replace_dir`), so a kill at any point leaves the last complete checkpoint.

Layout of ``<run>/checkpoint/``::

    weights.safetensors    the encoder after the last finished epoch
    best.safetensors       the best weights so far (with validation)
    optimizer.safetensors  the optimizers' moments, one tensor per (optimizer, parameter index,
                           name)
    state.json             epoch, best metric and epoch, bad epochs, the per-epoch history,
                           the optimizers' param_groups
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load, save_file
from torch import Tensor, nn

from seqrec.files import clean_leftovers, recover_dir, replace_dir, staged_dir


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch did, handed to ``fit(on_epoch=...)`` and kept in :class:`FitResult`.

    Attributes:
        epoch: 1-based epoch number.
        loss: mean training loss per batch.
        seconds: wall time of the training part (validation excluded).
        sequences_per_s: training sequences per second, all processes together.
        validation_ndcg: validation NDCG@k after the epoch (None without validation).
        best_epoch: the best epoch so far (this one when it improved; the last one without
            validation).
        epochs: the configured upper bound on epochs.
    """

    epoch: int
    loss: float
    seconds: float
    sequences_per_s: float
    validation_ndcg: float | None
    best_epoch: int = 0
    epochs: int = 0


@dataclass(frozen=True)
class FitResult:
    """Outcome of :func:`seqrec.train.fit`: the best validation NDCG (None without validation),
    the epoch whose weights were kept (1-based), every epoch's record, whether patience ended it,
    and the epoch a resumed run started after (0 for a fresh run)."""

    best_metric: float | None
    best_epoch: int
    history: tuple[EpochRecord, ...]
    stopped_early: bool
    resumed_after: int = 0


@dataclass
class TrainState:
    """The loop's state between epochs (what a checkpoint restores besides tensors)."""

    best_metric: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    epoch: int = 0


def save_checkpoint(path: Path, module: nn.Module, optimizers: list[torch.optim.Optimizer],
                    state: TrainState, best_weights: dict[str, Tensor] | None) -> None:
    """Write a checkpoint directory at ``path``, replacing the previous one in one step."""
    inner = getattr(module, "module", module)  # unwrap Fabric/DDP
    with staged_dir(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in inner.state_dict().items()},
                  tmp / "weights.safetensors")
        if best_weights is not None:
            save_file(best_weights, tmp / "best.safetensors")
        tensors, scalars, groups = {}, {}, []
        for o, optimizer in enumerate(optimizers):
            opt = optimizer.state_dict()
            groups.append(opt["param_groups"])
            for i, param_state in opt["state"].items():
                for k, v in param_state.items():  # SparseAdam keeps its step as a Python int
                    if isinstance(v, Tensor):
                        tensors[f"{o}.{i}.{k}"] = _dense(v)
                    else:
                        scalars[f"{o}.{i}.{k}"] = v
        save_file(tensors, tmp / "optimizer.safetensors")
        meta = {"state": {**asdict(state), "history": [asdict(h) for h in state.history]},
                "optimizers": groups, "optimizer_scalars": scalars}
        (tmp / "state.json").write_text(json.dumps(meta))
        replace_dir(tmp, path)


def _dense(tensor: Tensor) -> Tensor:
    tensor = tensor.detach().cpu()
    return (tensor.to_dense() if tensor.is_sparse else tensor).contiguous()


def find_checkpoint(path: Path) -> Path | None:
    """``path`` when it holds a complete checkpoint (after recovering it from a kill during its
    replacement), else None."""
    recover_dir(path)
    clean_leftovers(path)
    return path if (path / "state.json").is_file() else None


def _read(file: Path) -> dict[str, Tensor]:
    return load(file.read_bytes())  # owned tensors, no memory map of the file


def load_checkpoint(path: Path, module: nn.Module, optimizers: list[torch.optim.Optimizer]
                    ) -> tuple[TrainState, dict[str, Tensor] | None]:
    """Restore ``module`` and ``optimizers`` in place from the checkpoint at ``path``.

    Returns:
        the loop's :class:`TrainState` and the best weights (None without validation).

    Raises:
        RuntimeError: the checkpoint's tensors do not fit the module (another config).
    """
    module.load_state_dict(_read(path / "weights.safetensors"))
    meta = json.loads((path / "state.json").read_text())
    groups = meta.get("optimizers", [meta.get("param_groups")])
    if len(groups) != len(optimizers):
        raise RuntimeError(f"{path}: {len(groups)} optimizer(s) saved, {len(optimizers)} in use "
                           "(item_updates changed?)")
    opt_states: list[dict[int, dict[str, Any]]] = [{} for _ in optimizers]
    values = {**_read(path / "optimizer.safetensors"), **meta.get("optimizer_scalars", {})}
    for key, value in values.items():
        parts = key.split(".", 2)
        o, index, name = (0, *parts) if "optimizers" not in meta else parts
        opt_states[int(o)].setdefault(int(index), {})[name] = value
    for optimizer, opt_state, param_groups in zip(optimizers, opt_states, groups, strict=True):
        optimizer.load_state_dict({"state": opt_state, "param_groups": param_groups})
    s = meta["state"]
    known = {f.name for f in fields(EpochRecord)}
    history = [EpochRecord(**{k: v for k, v in h.items() if k in known}) for h in s["history"]]
    state = TrainState(s["best_metric"], s["best_epoch"], s["bad_epochs"], history, s["epoch"])
    best = path / "best.safetensors"
    return state, _read(best) if best.exists() else None
