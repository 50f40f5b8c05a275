"""Negative samplers: which non-target items a sampled loss compares each target against.

A sampler returns :class:`Negatives`: item ids of the shape the training step asks for — one
draw for the whole batch ``(n_negatives,)``, one per sequence ``(batch, n_negatives)`` or one per
target ``(n_targets, n_negatives)``, as the candidate layout (:mod:`seqrec.build`) decides — and,
when the proposal is not uniform, ``log_q`` so that the training step applies the logQ
correction of sampled softmax (Bengio & Senécal 2008; Yi et al., "Sampling-bias-corrected neural modeling", RecSys 2019). PAD and
MASK are never sampled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor


@dataclass(frozen=True)
class Negatives:
    """Sampled negatives.

    Attributes:
        ids: ``(*leading, n_negatives)`` int64 in 1..n_items (``leading`` as asked of
            :meth:`NegativeSampler.sample`).
        log_q: ``None`` for a uniform proposal, else a function's values: ``(n_items + 1,)``
            float log-probability of proposing each item (index 0 unused), applied to both the
            target's and the negatives' logits.
    """

    ids: Tensor
    log_q: Tensor | None = None


class NegativeSampler(Protocol):
    """Draws negatives for the targets of one batch."""

    n_negatives: int

    def sample(self, targets: Tensor, leading: tuple[int, ...],
               generator: torch.Generator) -> Negatives:
        """Args:
            targets: ``(n_targets,)`` int64 target items of the batch (real positions only).
            leading: how many draws: ``()`` one for the batch, ``(batch,)`` one per sequence,
                ``(n_targets,)`` one per target; each draw has ``n_negatives`` ids.
            generator: CPU random generator (seeded by the training loop).

        Returns:
            :class:`Negatives` with ids of shape ``(*leading, n_negatives)``.
        """
        ...


@dataclass(frozen=True)
class UniformSampler:
    """Uniform over the catalogue 1..n_items (never PAD, never MASK)."""

    n_items: int
    n_negatives: int

    def sample(self, targets: Tensor, leading: tuple[int, ...],
               generator: torch.Generator) -> Negatives:
        """Uniform ids in 1..n_items; see :meth:`NegativeSampler.sample` for the shapes."""
        shape = (*leading, self.n_negatives)
        ids = torch.randint(1, self.n_items + 1, shape, generator=generator)
        return Negatives(ids.to(targets.device))


@dataclass(frozen=True)
class InBatchSampler:
    """Other targets of the same batch, drawn with replacement in proportion to their count
    (so popular items are proposed more often; logQ corrects for it)."""

    n_items: int
    n_negatives: int

    def sample(self, targets: Tensor, leading: tuple[int, ...],
               generator: torch.Generator) -> Negatives:
        """Ids drawn from ``targets`` with their log-probabilities; shapes as in
        :meth:`NegativeSampler.sample`."""
        shape = (*leading, self.n_negatives)
        cpu_targets = targets.cpu()
        picks = torch.randint(0, len(cpu_targets), shape, generator=generator)
        counts = torch.bincount(cpu_targets, minlength=self.n_items + 1).float()
        log_q = torch.log(counts / counts.sum())
        return Negatives(cpu_targets[picks].to(targets.device), log_q.to(targets.device))


@dataclass(frozen=True)
class MixedSampler:
    """A mixture: a share ``uniform_share`` of negatives drawn uniformly, the rest in-batch.

    The proposal probability of item ``i`` is ``s / n_items + (1 - s) · count_i / n_targets``.
    """

    n_items: int
    n_negatives: int
    uniform_share: float = 0.5

    def sample(self, targets: Tensor, leading: tuple[int, ...],
               generator: torch.Generator) -> Negatives:
        """Uniform and in-batch ids concatenated on the last axis, with the mixture's log_q."""
        n_uniform = round(self.n_negatives * self.uniform_share)
        uniform = UniformSampler(self.n_items, n_uniform).sample(targets, leading, generator)
        in_batch = InBatchSampler(self.n_items, self.n_negatives - n_uniform).sample(
            targets, leading, generator)
        ids = torch.cat([uniform.ids, in_batch.ids], dim=-1)
        assert in_batch.log_q is not None
        share = n_uniform / self.n_negatives
        q = share / self.n_items + (1 - share) * in_batch.log_q.exp()
        q[0] = 1.0
        return Negatives(ids, torch.log(q))
