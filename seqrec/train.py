"""Our training loop: ``fit()`` and ``train_step()`` on Lightning Fabric.

Fabric places the model on the device, applies mixed precision and runs data-parallel (DDP)
training across GPUs or nodes; everything else is plain PyTorch in this file. Each epoch:

1. rows of the training sequences are shuffled and grouped into length buckets
   (:func:`seqrec.batches.bucketed_batches`), each rank taking a disjoint shard;
2. each batch is cut from the CSR arrays, encoded, and scored only at real target positions
   against the candidates its loss needs (shared negatives: one matmul);
3. validation NDCG@10 decides early stopping; a checkpoint is written atomically.

Randomness is derived from ``(seed, epoch)`` at the start of every epoch, so a run resumed from
the checkpoint of epoch ``e`` continues exactly like an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from lightning_fabric import Fabric
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from seqrec.batches import bucketed_batches, shard
from seqrec.build import Parts
from seqrec.config import Config
from seqrec.losses import candidate_logits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochLog:
    """What one epoch did. ``seconds`` is training time only (validation excluded)."""

    epoch: int
    loss: float
    seconds: float
    sequences_per_s: float
    validation_ndcg: float | None


@dataclass(frozen=True)
class FitResult:
    """Outcome of :func:`fit`: the best validation NDCG@10 (None without validation), the epoch
    whose weights were kept (1-based), and every epoch's log."""

    best_metric: float | None
    best_epoch: int
    history: tuple[EpochLog, ...]
    stopped_early: bool


class TrainingModule(nn.Module):
    """Encoder + loss as one ``forward`` so that DDP sees every parameter use in one call."""

    def __init__(self, parts: Parts) -> None:
        super().__init__()
        self.encoder = parts.encoder
        self.parts = parts

    def forward(self, inputs: Tensor, targets: Tensor, is_target: Tensor,
                negative_ids: Tensor | None, log_q: Tensor | None) -> Tensor:
        """Loss of one batch; shapes as in :class:`seqrec.objectives.Batch`."""
        table = self.encoder.item_table()  # one item-dropout mask for inputs and candidates
        sequence_hidden = self.encoder.encode(inputs, causal=self.parts.objective.causal,
                                              table=table)  # (batch, seq_len, dim)
        hidden = sequence_hidden[is_target]  # (n_targets, dim): the loss never sees other positions
        logits, labels = candidate_logits(hidden, targets[is_target],
                                          self.encoder.candidate_embeddings(table), self.parts.loss,
                                          negative_ids, log_q, sequence_hidden=sequence_hidden,
                                          is_target=is_target,
                                          per_sequence=self.parts.negative_sharing == "sequence")
        return self.parts.loss(logits, labels)


def available_memory_bytes() -> int | None:
    """``MemAvailable`` from /proc/meminfo in bytes (None where unreadable)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_softmax_memory(config: Config, n_items: int, available: int | None = None) -> int:
    """Refuse a full-catalogue softmax whose logits cannot fit in memory, before training starts.

    One batch holds up to ``batch_size × max_seq_len`` target positions, each scored against all
    ``n_items + 1`` items; logits, their softmax and its gradient make about three float32 copies.

    Args:
        config: the training config (only ``loss == "softmax"`` is checked).
        n_items: catalogue size.
        available: bytes of memory to compare with; default MemAvailable of this machine
            (for CUDA the check uses the same host figure: a conservative bound).

    Returns:
        the estimated peak bytes of the logits (0 for sampled losses).

    Raises:
        MemoryError: the estimate exceeds half of the available memory; the message gives the
            estimate and what to change.
    """
    if config.loss != "softmax":
        return 0
    estimate = 3 * 4 * config.batch_size * config.max_seq_len * (n_items + 1)
    available = available_memory_bytes() if available is None else available
    if available is not None and estimate > available // 2:
        raise MemoryError(
            f"full softmax over {n_items:,} items needs about {estimate / 2**30:.1f} GiB per batch "
            f"(3 × 4 bytes × batch_size {config.batch_size} × max_seq_len {config.max_seq_len} × "
            f"{n_items + 1:,} items) but only {available / 2**30:.1f} GiB is available: use "
            f"loss='sampled_softmax' (or a smaller batch_size / max_seq_len)")
    return estimate


def make_fabric(config: Config) -> Fabric:
    """A Fabric for ``config``'s accelerator, devices, nodes and precision (DDP when > 1 process)."""
    world = config.devices * config.num_nodes
    precision = config.precision
    if precision == "auto":
        precision = "bf16-mixed" if config.accelerator == "cuda" else "32-true"
    return Fabric(accelerator=config.accelerator, devices=config.devices, num_nodes=config.num_nodes,
                  precision=precision, strategy="ddp" if world > 1 else "auto")


def train_step(module: nn.Module, parts: Parts, rows: np.ndarray, items: np.ndarray,
               offsets: np.ndarray, optimizer: torch.optim.Optimizer, fabric: Fabric,
               rng: np.random.Generator, generator: torch.Generator,
               targets_per_batch: float | None = None) -> tuple[float, int]:
    """One optimisation step on the sequences ``rows``.

    Args:
        targets_per_batch: with ``None`` the step minimises the mean loss over this batch's
            target positions; with a number, the sum divided by it (the expected targets per
            batch), so that every target weighs the same whichever batch it lands in: with
            length-bucketed batches, a mean per batch gives a target of a short sequence up to
            ``max_seq_len`` times the weight of one in a long sequence.

    Returns:
        ``(loss, n_targets)``: the mean loss over this batch's targets, and their number.
    """
    batch = parts.objective.training_batch(items, offsets, rows, rng)
    targets = batch.targets[batch.is_target]
    negative_ids = log_q = None
    if parts.sampler is not None:
        per_sequence = parts.negative_sharing == "sequence" and parts.loss.candidates == "shared"
        per_target = parts.loss.candidates == "per_target" or parts.negative_sharing == "target"
        negatives = parts.sampler.sample(targets, per_target, generator,
                                         n_rows=len(rows) if per_sequence else None)
        negative_ids, log_q = negatives.ids, negatives.log_q
    inputs, all_targets, is_target, negative_ids, log_q = fabric.to_device(
        (batch.inputs, batch.targets, batch.is_target, negative_ids, log_q))
    loss = module(inputs, all_targets, is_target, negative_ids, log_q)
    optimizer.zero_grad(set_to_none=True)
    fabric.backward(loss if targets_per_batch is None else loss * (len(targets) / targets_per_batch))
    optimizer.step()
    return float(loss.detach()), int(len(targets))


def _training_lengths(parts: Parts, offsets: np.ndarray) -> np.ndarray:
    lengths = np.diff(offsets)
    return np.where(lengths >= parts.objective.min_length, lengths, 0)


def fit(parts: Parts, config: Config, items: np.ndarray, offsets: np.ndarray, *,
        validate: Callable[[nn.Module], float] | None = None,
        checkpoint_dir: str | Path | None = None, resume: bool = False,
        progress: bool = False, fabric: Fabric | None = None) -> FitResult:
    """Train ``parts.encoder`` in place on CSR sequences and keep the best weights.

    Args:
        parts: encoder, objective, loss and sampler (from :func:`seqrec.build.build_parts`).
        config: training settings (lr, batch_size, epochs, patience, seed, devices...).
        items: ``(n_interactions,)`` int64 item indices of the training sequences.
        offsets: ``(n_sequences + 1,)`` int64 CSR offsets.
        validate: returns validation NDCG@10 of the encoder (full ranking); with it, training
            stops after ``patience`` epochs without improvement and the best weights are restored.
        checkpoint_dir: where a checkpoint is written after every epoch (atomically).
        resume: continue from the checkpoint in ``checkpoint_dir`` if there is one.
        progress: show a progress bar (rank 0 only).
        fabric: a Fabric the caller made and launched (``fabric.launch()``), e.g. for DDP;
            default one made from ``config`` (and launched here when it has several processes).

    Returns:
        :class:`FitResult`.

    Raises:
        ValueError: no sequence is long enough to train on.
        MemoryError: a full softmax too large for memory (:func:`check_softmax_memory`).
    """
    check_softmax_memory(config, parts.encoder.n_items)
    if fabric is None:
        fabric = make_fabric(config)
        if fabric.world_size > 1:
            fabric.launch()  # Fabric re-runs the calling script once per extra process
    lengths = _training_lengths(parts, offsets)
    if not lengths.any():
        raise ValueError(f"no training sequence has >= {parts.objective.min_length} items")
    targets_per_batch = None  # "batch": each step's mean over its own targets
    if config.target_weighting == "uniform":
        targets_per_batch = config.batch_size * parts.objective.mean_targets(lengths)
    torch.manual_seed(config.seed)
    module = TrainingModule(parts)
    # the fused kernel updates all parameters in one pass: on CPU it is ~10x faster than the
    # default per-tensor loop, which otherwise dominates an epoch (catalogue-sized embedding)
    optimizer = torch.optim.Adam(module.parameters(), lr=config.lr,
                                 betas=(config.adam_beta1, config.adam_beta2), fused=True)
    state = _State(best_metric=None, best_epoch=0, bad_epochs=0, history=[], epoch=0)
    best_weights: dict[str, Tensor] | None = None
    ckpt = Path(checkpoint_dir) / "checkpoint" if checkpoint_dir else None
    found = _find_checkpoint(ckpt) if resume and ckpt is not None else None
    if found is not None:
        state, best_weights = _load_checkpoint(found, module, optimizer)
        log.info("resumed after epoch %d", state.epoch)
    module, optimizer = fabric.setup(module, optimizer)
    stopped_early = False
    for epoch in range(state.epoch + 1, config.epochs + 1):
        if validate is not None and config.patience and state.bad_epochs >= config.patience:
            stopped_early = True
            break
        epoch_log = _run_epoch(module, parts, config, items, offsets, lengths, optimizer, fabric,
                               epoch, progress and fabric.global_rank == 0, targets_per_batch)
        metric = None
        if validate is not None:
            parts.encoder.eval()
            metric = float(validate(parts.encoder))
            if state.best_metric is None or metric > state.best_metric:
                state.best_metric, state.best_epoch, state.bad_epochs = metric, epoch, 0
                best_weights = {k: v.detach().cpu().clone() for k, v in parts.encoder.state_dict().items()}
            else:
                state.bad_epochs += 1
        else:
            state.best_epoch = epoch
        state.history.append(EpochLog(epoch, epoch_log[0], epoch_log[1], epoch_log[2], metric))
        state.epoch = epoch
        log.info("epoch %d loss %.4f %.1fs %.0f seq/s val_ndcg@10 %s", epoch, *epoch_log, metric)
        if ckpt is not None and fabric.global_rank == 0:
            _save_checkpoint(ckpt, module, optimizer, state, best_weights)
        fabric.barrier()
    if validate is not None and config.patience and state.bad_epochs >= config.patience:
        stopped_early = True
    if best_weights is not None:
        parts.encoder.load_state_dict(best_weights)
    parts.encoder.eval()
    return FitResult(state.best_metric, state.best_epoch, tuple(state.history), stopped_early)


def _run_epoch(module: nn.Module, parts: Parts, config: Config, items: np.ndarray,
               offsets: np.ndarray, lengths: np.ndarray, optimizer: torch.optim.Optimizer,
               fabric: Fabric, epoch: int, progress: bool,
               targets_per_batch: float | None) -> tuple[float, float, float]:
    # every source of randomness is a function of (seed, epoch): resuming reproduces the run
    rng = np.random.default_rng([config.seed, epoch])
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    torch.manual_seed(config.seed * 7_919 + epoch)  # dropout
    batches = bucketed_batches(lengths, config.batch_size, rng, config.bucket_batches)
    batches = shard(batches, fabric.global_rank, fabric.world_size)
    module.train()
    start, total, n_seq = time.perf_counter(), 0.0, 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(batches), desc=f"epoch {epoch}", leave=False, unit="batch")
    for i, rows in enumerate(batches):
        loss, _ = train_step(module, parts, rows, items, offsets, optimizer, fabric, rng, generator,
                             targets_per_batch)
        if not math.isfinite(loss):
            raise FloatingPointError(f"epoch {epoch} batch {i}: loss is {loss}; lower lr?")
        total += loss
        n_seq += len(rows)
        if bar is not None:
            bar.update(1)
            if i % 20 == 0:
                rate = n_seq / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(loss=f"{total / (i + 1):.4f}", seq_s=f"{rate:.0f}")
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - start
    return total / max(len(batches), 1), seconds, n_seq * fabric.world_size / max(seconds, 1e-9)


@dataclass
class _State:
    best_metric: float | None
    best_epoch: int
    bad_epochs: int
    history: list[EpochLog]
    epoch: int


def _save_checkpoint(path: Path, module: nn.Module, optimizer: torch.optim.Optimizer,
                     state: _State, best_weights: dict[str, Tensor] | None) -> None:
    """Write weights, best weights, Adam state (safetensors) and loop state (JSON) atomically:
    into a temporary folder first, then swapped in, so a kill never leaves half a checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    inner = getattr(module, "module", module)
    save_file({k: v.detach().cpu().contiguous() for k, v in inner.state_dict().items()},
              tmp / "weights.safetensors")
    if best_weights is not None:
        save_file(best_weights, tmp / "best.safetensors")
    opt = optimizer.state_dict()
    tensors = {f"{i}.{k}": v.detach().cpu().contiguous().reshape(v.shape)
               for i, s in opt["state"].items() for k, v in s.items() if isinstance(v, Tensor)}
    save_file(tensors, tmp / "optimizer.safetensors")
    meta = {"state": {**asdict(state), "history": [asdict(h) for h in state.history]},
            "param_groups": opt["param_groups"]}
    (tmp / "state.json").write_text(json.dumps(meta))
    old = path.with_name(path.name + ".old")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)  # a kill during the last clean-up may leave one
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def _find_checkpoint(path: Path) -> Path | None:
    """The newest complete checkpoint: ``path``, or its ``.old`` copy when a kill struck between
    the two renames of :func:`_save_checkpoint`; None when there is none."""
    for candidate in (path, path.with_name(path.name + ".old")):
        if (candidate / "state.json").exists():
            return candidate
    return None


def _load_checkpoint(path: Path, module: nn.Module, optimizer: torch.optim.Optimizer
                     ) -> tuple[_State, dict[str, Tensor] | None]:
    module.load_state_dict(load_file(path / "weights.safetensors"))
    meta = json.loads((path / "state.json").read_text())
    tensors = load_file(path / "optimizer.safetensors")
    opt_state: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        opt_state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": meta["param_groups"]})
    s = meta["state"]
    history = [EpochLog(**h) for h in s["history"]]
    state = _State(s["best_metric"], s["best_epoch"], s["bad_epochs"], history, s["epoch"])
    best = load_file(path / "best.safetensors") if (path / "best.safetensors").exists() else None
    return state, best


def encode_histories(encoder: nn.Module, parts: Parts, items: np.ndarray, offsets: np.ndarray,
                     rows: np.ndarray, device: torch.device | str = "cpu") -> Tensor:
    """Last-position hidden states of the histories ``rows``.

    Returns:
        ``(len(rows), dim)`` float32. Only the last position is computed in the final layer.
    """
    inputs = torch.from_numpy(parts.objective.inference_inputs(items, offsets, rows)).to(device)
    if inputs.shape[1] == 0:  # all histories empty: one PAD column, the model sees nothing
        inputs = torch.zeros(len(rows), 1, dtype=torch.int64, device=device)
    with torch.no_grad():
        return parts.encoder.encode(inputs, causal=parts.objective.causal, last_only=True).float()


__all__ = ["EpochLog", "FitResult", "fit", "train_step", "make_fabric", "encode_histories"]
