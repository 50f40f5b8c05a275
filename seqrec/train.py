"""Our training loop: ``fit()`` and ``train_step()`` on Lightning Fabric.

Fabric places the model on the device, applies mixed precision and runs data-parallel (DDP)
training across GPUs or nodes; everything else is plain PyTorch in this file. Each epoch:

1. rows of the training sequences are shuffled and grouped into length buckets
   (:func:`seqrec.batches.bucketed_batches`), each rank taking a disjoint shard;
2. each batch is cut from the CSR arrays, encoded, and scored only at real target positions
   against the candidates of the parts' layout (:func:`seqrec.losses.candidate_logits`);
3. validation NDCG@10 decides early stopping; a checkpoint is written atomically
   (:mod:`seqrec.checkpoint`); ``on_epoch`` receives an :class:`EpochRecord`.

The loop prints nothing (progress goes to ``on_batch`` / ``on_epoch``). Randomness comes from
``(seed, epoch)`` at every epoch's start: a resumed run continues as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed
from lightning_fabric import Fabric
from torch import Tensor, nn
from torch.autograd.graph import increment_version

from seqrec.batches import bucketed_batches, shard
from seqrec.build import Parts
from seqrec.checkpoint import (
    EpochRecord,
    FitResult,
    TrainState,
    find_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from seqrec.config import Config, Runtime
from seqrec.losses import candidate_logits
from seqrec.memory import check_softmax_memory
from seqrec.objectives import Times
from seqrec.optim import LazyAdam, touched_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchRecord:
    """One optimisation step, handed to ``fit(on_batch=...)``.

    Attributes:
        rank: global rank of the process that took the step (0 without DDP).
        epoch: 1-based epoch.
        index: 0-based batch number within the epoch on this process.
        n_batches: batches this process steps on in this epoch.
        rows: ``(batch,)`` int64 training rows of the step.
        loss: the step's mean loss over its targets.
        n_targets: target positions in the step.
    """

    rank: int
    epoch: int
    index: int
    n_batches: int
    rows: np.ndarray
    loss: float
    n_targets: int


OnEpoch = Callable[[EpochRecord], None]
OnBatch = Callable[[BatchRecord], None]


class TrainingModule(nn.Module):
    """Encoder + loss as one ``forward`` so that DDP sees every parameter use in one call."""

    def __init__(self, parts: Parts) -> None:
        super().__init__()
        self.encoder = parts.encoder
        self.parts = parts

    def forward(self, inputs: Tensor, targets: Tensor, is_target: Tensor,
                negative_ids: Tensor | None, log_q: Tensor | None,
                times: Times | None = None) -> Tensor:
        """Loss of one batch; shapes as in :class:`seqrec.objectives.Batch`, negatives as the
        layout says (:func:`seqrec.losses.candidate_logits`)."""
        if self.parts.sparse_items:
            table, inputs, targets, negative_ids, log_q = self._touched(inputs, targets,
                                                                       negative_ids, log_q)
            candidates = self.encoder.output_rows(table)
        else:
            table = self.encoder.item_table()  # one item-dropout mask for inputs and candidates
            candidates = self.encoder.candidate_embeddings(table)
        sequence_hidden = self.encoder.encode(inputs, causal=self.parts.objective.causal,
                                              table=table, times=times)  # (batch, seq_len, dim)
        hidden = sequence_hidden[is_target]  # (n_targets, dim): the loss never sees other positions
        logits, labels = candidate_logits(hidden, targets[is_target], candidates, self.parts.layout,
                                          negative_ids, log_q, sequence_hidden=sequence_hidden,
                                          is_target=is_target)
        return self.parts.loss(logits, labels)

    def _touched(self, inputs: Tensor, targets: Tensor, negative_ids: Tensor | None,
                 log_q: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
        """The rows this step touches as a small table, and every index remapped into it.

        PAD is always row 0 of the small table (the encoder finds padding as ``inputs == PAD``);
        one item-dropout mask covers inputs and candidates, as on the full table.
        """
        ids = [inputs, targets] + ([] if negative_ids is None else [negative_ids])
        flat = torch.cat([x.reshape(-1) for x in ids])
        touched, inverse = touched_rows(flat, self.encoder.item_embedding.num_embeddings)
        table = self.encoder.item_rows(touched)  # (n_touched, dim)
        remapped = torch.split(inverse, [x.numel() for x in ids])
        inputs, targets = remapped[0].view_as(inputs), remapped[1].view_as(targets)
        if negative_ids is not None:
            negative_ids = remapped[2].view_as(negative_ids)
        return table, inputs, targets, negative_ids, None if log_q is None else log_q[touched]


def make_fabric(runtime: Runtime | None = None) -> Fabric:
    """A Fabric for ``runtime``'s accelerator, devices, nodes and precision (DDP when > 1
    process), not launched yet (see :func:`launch`)."""
    runtime = runtime or Runtime()
    precision = runtime.precision
    if precision == "auto":
        precision = "bf16-mixed" if runtime.accelerator == "cuda" else "32-true"
    return Fabric(accelerator=runtime.accelerator, devices=runtime.devices,
                  num_nodes=runtime.num_nodes, precision=precision,
                  strategy="ddp" if runtime.world_size > 1 else "auto")


def launch(fabric: Fabric) -> Fabric:
    """Start the data-parallel processes of ``fabric`` unless they exist already.

    With several processes, ``fabric.launch()`` re-runs the calling script once per extra
    process (or, under ``torchrun``, only joins the processes torchrun made). Under Lightning's
    ``fabric run`` the processes exist and Fabric has joined them when it was built: the process
    group is then initialised and launching again is refused, so it is skipped. Returns
    ``fabric``.
    """
    if fabric.world_size > 1 and not torch.distributed.is_initialized():
        fabric.launch()
    return fabric


def make_optimizers(module: TrainingModule, config: Config) -> list[torch.optim.Optimizer]:
    """Adam for the model; with sparse item updates the item table gets its own
    :class:`~seqrec.optim.LazyAdam` (moments and rows change only where a step has a
    gradient)."""
    betas = (config.adam_beta1, config.adam_beta2)
    if not module.parts.sparse_items:
        # the fused kernel updates all parameters in one pass: on CPU it is ~10x faster than the
        # default per-tensor loop, which otherwise dominates an epoch (catalogue-sized embedding)
        return [torch.optim.Adam(module.parameters(), lr=config.lr, betas=betas, fused=True)]
    table = module.encoder.item_embedding.weight
    dense = [p for p in module.parameters() if p is not table]
    return [torch.optim.Adam(dense, lr=config.lr, betas=betas, fused=True),
            LazyAdam([table], lr=config.lr, betas=betas)]


def train_step(module: nn.Module, parts: Parts, rows: np.ndarray, items: np.ndarray,
               offsets: np.ndarray, optimizers: list[torch.optim.Optimizer], fabric: Fabric,
               rng: np.random.Generator, generator: torch.Generator,
               targets_per_batch: float | None = None,
               timestamps: np.ndarray | None = None) -> tuple[float, int]:
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
    times_in = timestamps if parts.encoder.uses_times else None
    batch = parts.objective.training_batch(items, offsets, rows, rng, times_in)
    targets = batch.targets[batch.is_target]
    negative_ids = log_q = None
    if parts.layout != "catalogue":
        if parts.sampler is None:
            raise ValueError(f"candidate layout {parts.layout!r} needs a negative sampler")
        leading = {"per_batch": (), "per_sequence": (len(rows),),
                   "per_target": (len(targets),)}[parts.layout]
        negatives = parts.sampler.sample(targets, leading, generator)
        negative_ids, log_q = negatives.ids, negatives.log_q
    stamps = None if batch.times is None else (batch.times.inputs, batch.times.queries)
    inputs, all_targets, is_target, negative_ids, log_q, stamps = fabric.to_device(
        (batch.inputs, batch.targets, batch.is_target, negative_ids, log_q, stamps))
    times = None if stamps is None else Times(*stamps)
    loss = module(inputs, all_targets, is_target, negative_ids, log_q, times)
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    fabric.backward(loss if targets_per_batch is None else loss * (len(targets) / targets_per_batch))
    for optimizer in optimizers:
        optimizer.step()  # fused Adam does not advance version counters; caches rely on them
        increment_version([p for group in optimizer.param_groups for p in group["params"]])
    return float(loss.detach()), int(len(targets))


def _training_lengths(parts: Parts, offsets: np.ndarray) -> np.ndarray:
    lengths = np.diff(offsets)
    return np.where(lengths >= parts.objective.min_length, lengths, 0)


def fit(parts: Parts, config: Config, items: np.ndarray, offsets: np.ndarray, *,
        validate: Callable[[nn.Module], float] | None = None,
        checkpoint_dir: str | Path | None = None, resume: bool = False,
        fabric: Fabric | None = None, runtime: Runtime | None = None,
        on_epoch: OnEpoch | None = None, on_batch: OnBatch | None = None,
        sharded: bool = False, timestamps: np.ndarray | None = None) -> FitResult:
    """Train ``parts.encoder`` in place on CSR sequences and keep the best weights.

    Args:
        parts: encoder, objective, loss, sampler and candidate layout
            (from :func:`seqrec.build.build_parts`).
        config: training settings (lr, batch_size, epochs, patience, seed...).
        items: ``(n_interactions,)`` int64 item indices of the training sequences.
        offsets: ``(n_sequences + 1,)`` int64 CSR offsets.
        validate: returns validation NDCG@10 of the encoder (full ranking); with it, training
            stops after ``patience`` epochs without improvement and the best weights are restored.
        checkpoint_dir: where a checkpoint is written after every epoch (atomically).
        resume: continue from the checkpoint in ``checkpoint_dir`` if there is one.
        fabric: a Fabric the caller made and launched (e.g. for DDP); default one made from
            ``runtime`` and launched here (:func:`make_fabric`, :func:`launch`).
        runtime: devices and precision when no ``fabric`` is given (default: one CPU process).
        on_epoch: called after every epoch with its :class:`EpochRecord` (on the process of
            global rank 0 only).
        on_batch: called after every optimisation step with its :class:`BatchRecord`, on every
            process (``record.rank`` tells them apart).
        sharded: every process holds its own sequences (e.g. its users of a partitioned log,
            :func:`seqrec.data.partitioned.read_shard`) instead of all of them: its batches are
            not split across processes, and every process takes as many steps per epoch as the
            process with the fewest batches (DDP all-reduces gradients in lock step). The
            ``validate`` callback must then return the metric over all processes.
        timestamps: ``(n_interactions,)`` int64 seconds aligned with ``items``, for layers that
            read event times (HSTU, FuXi-α; without them every time gap counts as 0).

    Returns:
        :class:`~seqrec.checkpoint.FitResult`.

    Raises:
        ValueError: no sequence is long enough to train on.
        MemoryError: a full softmax too large for memory (:func:`check_softmax_memory`).
        FloatingPointError: the loss became NaN or infinite.
    """
    check_softmax_memory(config, parts.encoder.n_items)
    fabric = fabric if fabric is not None else launch(make_fabric(runtime))
    lengths = _training_lengths(parts, offsets)
    if not lengths.any():
        raise ValueError(f"no training sequence has >= {parts.objective.min_length} items")
    targets_per_batch = None  # "batch": each step's mean over its own targets
    if config.target_weighting == "uniform":
        targets_per_batch = config.batch_size * parts.objective.mean_targets(lengths)
    if parts.sparse_items and fabric.world_size > 1:
        # DDP all-reduces gradients in dense buckets; a sparse gradient cannot join them
        log.info("data-parallel training updates the item table densely")
        parts = dataclasses.replace(parts, sparse_items=False)
    torch.manual_seed(config.seed)
    plain = TrainingModule(parts)  # checkpoints read and write this one's parameters
    optimizers = make_optimizers(plain, config)
    state, best_weights = TrainState(), None
    ckpt = Path(checkpoint_dir) / "checkpoint" if checkpoint_dir else None
    found = find_checkpoint(ckpt) if resume and ckpt is not None else None
    if found is not None:
        state, best_weights = load_checkpoint(found, plain, optimizers)
        log.info("resumed after epoch %d", state.epoch)
    resumed_after = state.epoch
    compiled = torch.compile(plain, dynamic=True) if runtime and runtime.compile else plain
    module, *optimizers = fabric.setup(compiled, *optimizers)
    for epoch in range(state.epoch + 1, config.epochs + 1):
        if _out_of_patience(config, state, validate):
            break
        loss, seconds, rate = _run_epoch(module, parts, config, items, offsets, lengths,
                                         optimizers, fabric, epoch, targets_per_batch, on_batch,
                                         sharded, timestamps)
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
        record = EpochRecord(epoch, loss, seconds, rate, metric, state.best_epoch, config.epochs)
        state.history.append(record)
        state.epoch = epoch
        log.info("epoch %d loss %.4f %.1fs val_ndcg %s", epoch, loss, seconds, metric)
        if ckpt is not None and fabric.global_rank == 0:
            save_checkpoint(ckpt, plain, optimizers, state, best_weights)
        fabric.barrier()
        if on_epoch is not None and fabric.global_rank == 0:
            on_epoch(record)
    if best_weights is not None:
        parts.encoder.load_state_dict(best_weights)
    parts.encoder.eval()
    return FitResult(state.best_metric, state.best_epoch, tuple(state.history),
                     _out_of_patience(config, state, validate), resumed_after)


def _out_of_patience(config: Config, state: TrainState, validate: object) -> bool:
    return validate is not None and config.patience > 0 and state.bad_epochs >= config.patience


def _run_epoch(module: nn.Module, parts: Parts, config: Config, items: np.ndarray,
               offsets: np.ndarray, lengths: np.ndarray,
               optimizers: list[torch.optim.Optimizer], fabric: Fabric, epoch: int,
               targets_per_batch: float | None, on_batch: OnBatch | None,
               sharded: bool = False,
               timestamps: np.ndarray | None = None) -> tuple[float, float, float]:
    # every source of randomness is a function of (seed, epoch): resuming reproduces the run
    rng = np.random.default_rng([config.seed, epoch])
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    torch.manual_seed(config.seed * 7_919 + epoch)  # dropout
    batches = bucketed_batches(lengths, config.batch_size, rng, config.bucket_batches)
    if not sharded:
        batches = shard(batches, fabric.global_rank, fabric.world_size)
    elif fabric.world_size > 1:  # own data on every process: as many steps as the fewest
        fewest = fabric.all_reduce(torch.tensor(len(batches)),
                                   reduce_op=torch.distributed.ReduceOp.MIN)
        batches = batches[: int(fewest)]
    module.train()
    start, total, n_seq = time.perf_counter(), 0.0, 0
    for i, rows in enumerate(batches):
        loss, n_targets = train_step(module, parts, rows, items, offsets, optimizers, fabric, rng,
                                     generator, targets_per_batch, timestamps)
        if not math.isfinite(loss):
            raise FloatingPointError(f"epoch {epoch} batch {i}: loss is {loss}; lower lr?")
        total += loss
        n_seq += len(rows)
        if on_batch is not None:
            on_batch(BatchRecord(fabric.global_rank, epoch, i, len(batches), rows, loss,
                                 n_targets))
    seconds = time.perf_counter() - start
    return total / max(len(batches), 1), seconds, n_seq * fabric.world_size / max(seconds, 1e-9)


__all__ = ["BatchRecord", "EpochRecord", "FitResult", "fit", "launch", "make_fabric",
           "make_optimizers", "train_step"]
