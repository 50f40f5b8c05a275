"""Losses: pure functions of ``(logits, labels)`` over real target positions only, and the one
function that builds those logits for every candidate layout.

The training step gathers hidden states at ``is_target`` positions before scoring, so padding and
non-target positions never enter a loss (their gradient is exactly zero). Which candidates a
target is scored against is the *candidate layout*, decided once by :mod:`seqrec.build` from the
config and read here by :func:`candidate_logits`:

* ``"catalogue"`` — logits ``(n_targets, n_items + 1)`` over every item (PAD column at -inf),
  labels = target item index (full softmax);
* ``"per_batch"`` — logits ``(n_targets, 1 + n_negatives)``: column 0 the target, then one draw of
  negatives shared by the whole batch (one matmul); labels are all 0;
* ``"per_sequence"`` — the same, with one draw per sequence shared by its positions (one batched
  matmul);
* ``"per_target"`` — the same, with one draw per target position: a matmul against every
  row of ``embeddings`` and a pick (:func:`picked_logits`, in cache-sized blocks of targets)
  when that is no larger than gathering the drawn rows (``rows <= n_negatives * dim``: small
  catalogues, or the small table of touched rows of a sparse step), a gather otherwise.

Accidental hits (a negative equal to the target) arrive as ``-inf`` logits and contribute nothing.

The binary losses (BCE, gBCE) score ``logits + b`` with ``b`` the prior logit
(:func:`prior_logit`): the constant logit that minimises them while the model tells no item
from another, ``log(β / n_negatives)`` (0 for BCE with one negative). The encoder's scores
``h · e`` have no bias term and start near 0, so without ``b`` the ``n_negatives`` terms at
``σ ≈ 1/2`` outweigh the target's term in every item row's gradient (with 256 negatives on
MovieLens-100K: 53x for the most popular item, 240x for the median one), all rows get nearly the
same push, and the model settles at "the same logit for every item" (it had not left it after
15 epochs). ``b`` shifts every candidate alike, so rankings are unchanged; ``σ(score + b)`` is
the probability gBCE calibrates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

CandidateLayout = Literal["catalogue", "per_batch", "per_sequence", "per_target"]
"""Which candidates each target is scored against (see the module docstring)."""


class Loss(Protocol):
    """A training loss: a pure function of the logits of a target and its candidates."""

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Args:
            logits: ``(n_targets, n_candidates)`` float.
            labels: ``(n_targets,)`` int64 column of the positive candidate.

        Returns:
            scalar mean loss over targets.
        """
        ...


@dataclass(frozen=True)
class SoftmaxLoss:
    """Cross-entropy over the full catalogue (BERT4Rec; "SASRec+" of Klenitskiy & Vasilev 2023)."""

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        return F.cross_entropy(logits.float(), labels)


@dataclass(frozen=True)
class SampledSoftmaxLoss:
    """Cross-entropy over the target and sampled negatives (eSASRec, arXiv 2508.06450;
    Jean et al. 2015). Column 0 is the target."""

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        return F.cross_entropy(logits.float(), labels)


def _positive_and_negatives(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    if bool((labels != 0).any()):
        raise ValueError("binary losses expect the positive in column 0 (labels all 0)")
    logits = logits.float()
    return logits[:, 0], logits[:, 1:]


def _binary_loss(logits: Tensor, labels: Tensor, beta: float, offset: float) -> Tensor:
    """``-β log σ(s⁺ + b) - Σⱼ log(1 - σ(s⁻ⱼ + b))`` averaged over targets, ``b = offset``."""
    pos, neg = _positive_and_negatives(logits, labels)
    pos, neg = pos + offset, neg + offset
    return (-beta * F.logsigmoid(pos) - F.logsigmoid(-neg).sum(dim=1)).mean()


def prior_logit(beta: float, n_negatives: int) -> float:
    """The constant logit ``b`` minimising ``-β log σ(b) - n_negatives log(1 - σ(b))``:
    ``σ(b) = β / (β + n_negatives)``, so ``b = log(β / n_negatives)``.

    The binary losses add it to every logit, as detectors start their classifier's bias at the
    log prior odds so that the many easy negatives do not swamp early training (Lin et al.,
    "Focal Loss for Dense Object Detection", ICCV 2017, section 4.1 "Initialization"); here it is
    a constant, since the optimum it stands for is known in closed form.
    """
    return math.log(beta / max(n_negatives, 1))


@dataclass(frozen=True)
class BCELoss:
    """Binary cross-entropy of the target against each negative (SASRec, Kang & McAuley 2018,
    binary loss): ``-log σ(s⁺ + b) - Σⱼ log(1 - σ(s⁻ⱼ + b))``, averaged over targets, with the
    prior logit ``b = -log n_negatives`` (:func:`prior_logit`; 0 with one negative, SASRec as
    published). ``n_negatives`` is read from the logits: ``n_candidates - 1``."""

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        return _binary_loss(logits, labels, 1.0, prior_logit(1.0, logits.shape[1] - 1))


@dataclass(frozen=True)
class GBCELoss:
    """Generalised BCE of gSASRec (Petrov & Macdonald, RecSys 2023, arXiv 2308.07192, the gBCE definition):
    ``-β log σ(s⁺ + b) - Σⱼ log(1 - σ(s⁻ⱼ + b))`` with ``β = α (t (1 - 1/α) + 1/α)``,
    ``α = n_negatives / (n_items - 1)`` (the same paper) and the prior logit
    ``b = log(β / n_negatives)`` (:func:`prior_logit`). ``t = 0`` gives β = 1, plain BCE.

    The reference code (github.com/asash/gSASRec-pytorch, ``train_gsasrec.py``) averages the
    ``1 + n_negatives`` terms instead of summing them: a constant factor, which Adam's update
    does not see. It has no prior logit, and starts from ``N(0, 1)`` item tables.

    Args:
        n_items: catalogue size.
        n_negatives: negatives per target.
        t: calibration parameter in [0, 1].
    """

    n_items: int
    n_negatives: int
    t: float = 0.75

    @property
    def beta(self) -> float:
        """gBCE's positive-logit exponent β = α (t (1 − 1/α) + 1/α), α = n_negatives / (n_items − 1)
        (gSASRec, arXiv 2308.07192, the definition of gBCE)."""
        alpha = self.n_negatives / max(self.n_items - 1, 1)
        return alpha * (self.t * (1 - 1 / alpha) + 1 / alpha)

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        return _binary_loss(logits, labels, self.beta, prior_logit(self.beta, self.n_negatives))


def candidate_logits(hidden: Tensor, targets: Tensor, embeddings: Tensor, layout: CandidateLayout,
                     negative_ids: Tensor | None, log_q: Tensor | None, *,
                     sequence_hidden: Tensor | None = None,
                     is_target: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Score each target position against the candidates of ``layout``.

    Args:
        hidden: ``(n_targets, dim)`` hidden states at target positions.
        targets: ``(n_targets,)`` int64 target items.
        embeddings: ``(n_items + 1, dim)`` candidate embeddings (row 0 = PAD).
        layout: the candidate layout (see the module docstring).
        negative_ids: ``(n_negatives,)`` for ``"per_batch"``, ``(batch, n_negatives)`` for
            ``"per_sequence"``, ``(n_targets, n_negatives)`` for ``"per_target"``; unused for
            ``"catalogue"``.
        log_q: ``(n_items + 1,)`` proposal log-probabilities for logQ correction, or None.
        sequence_hidden: ``(batch, seq_len, dim)`` hidden states before gathering; needed by
            ``"per_sequence"`` (one batched matmul, no per-target gather).
        is_target: ``(batch, seq_len)`` bool, which positions ``hidden`` was gathered from;
            needed by ``"per_sequence"``.

    Returns:
        ``(logits, labels)``: ``(n_targets, n_candidates)`` float and ``(n_targets,)`` int64.

    Raises:
        ValueError: negatives whose shape does not fit ``layout``, or ``"per_sequence"``
            without ``sequence_hidden`` / ``is_target``.
    """
    if layout == "catalogue":
        logits = hidden @ embeddings.T  # (n_targets, n_items + 1)
        logits[:, 0] = float("-inf")
        return logits, targets
    expected_dims = {"per_batch": 1, "per_sequence": 2, "per_target": 2}[layout]
    if negative_ids is None or negative_ids.dim() != expected_dims:
        shape = None if negative_ids is None else tuple(negative_ids.shape)
        raise ValueError(f"layout {layout!r}: negative_ids of shape {shape} do not fit")
    positive = (hidden * embeddings[targets]).sum(-1, keepdim=True)  # (n_targets, 1)
    if layout == "per_batch":
        negative = hidden @ embeddings[negative_ids].T  # (n_targets, n_negatives): one matmul
        hit = negative_ids[None, :] == targets[:, None]
    elif layout == "per_sequence":
        if sequence_hidden is None or is_target is None:
            raise ValueError("negatives drawn per sequence need sequence_hidden and is_target")
        negative = torch.bmm(sequence_hidden, embeddings[negative_ids].transpose(1, 2))  # (batch, seq_len, n_negatives)
        negative = negative[is_target]  # (n_targets, n_negatives)
        negative_ids = negative_ids[is_target.nonzero()[:, 0]]  # (n_targets, n_negatives), for the masks
        hit = negative_ids == targets[:, None]
    elif len(embeddings) <= negative_ids.shape[1] * embeddings.shape[1]:
        # every row scored once by one matmul, then picked: no more memory than the gathered
        # (n_targets, n_negatives, dim) rows, and ~10x faster on CPU (the gather's backward is a
        # scatter-add of n_targets * n_negatives rows)
        negative = picked_logits(hidden, embeddings, negative_ids)  # (n_targets, n_negatives)
        hit = negative_ids == targets[:, None]
    else:
        negative = torch.einsum("td,tnd->tn", hidden, embeddings[negative_ids])
        hit = negative_ids == targets[:, None]
    if log_q is not None:
        positive = positive - log_q[targets, None]
        negative = negative - log_q[negative_ids]
    negative = negative.masked_fill(hit, float("-inf"))  # accidental hits never count
    logits = torch.cat([positive, negative], dim=1)  # (n_targets, 1 + n_negatives)
    return logits, torch.zeros(len(targets), dtype=torch.int64, device=hidden.device)


PICK_BLOCK_BYTES = 4 << 20
"""Bytes of one block of full logits in :func:`picked_logits` (about one core's L2 cache)."""


def picked_logits(hidden: Tensor, embeddings: Tensor, ids: Tensor) -> Tensor:
    """``(hidden @ embeddings.T).gather(1, ids)`` without the full ``(n_targets, rows)`` matrix.

    The full logits of a block of targets are computed, picked and dropped while they sit in
    cache; the backward pass rebuilds each block's sparse gradient the same way and multiplies
    it out (``d hidden = G @ embeddings``, ``d embeddings += Gᵀ @ hidden``). On one CPU core with
    750 targets x 12,000 rows x 256 picks this takes 2.3x less time than the plain expression at
    dim 64 and 1.3x less at dim 256 (forward and backward), which reads and writes the
    ``(n_targets, rows)`` matrix four times through memory.

    Args:
        hidden: ``(n_targets, dim)`` float.
        embeddings: ``(rows, dim)`` float.
        ids: ``(n_targets, n_picks)`` int64 row indices into ``embeddings``.

    Returns:
        ``(n_targets, n_picks)`` logits, differentiable in ``hidden`` and ``embeddings``.
    """
    block = max(1, PICK_BLOCK_BYTES // (4 * max(len(embeddings), 1)))
    return _PickedLogits.apply(hidden, embeddings, ids, block)


class _PickedLogits(torch.autograd.Function):
    """Blocked forward and backward of :func:`picked_logits`."""

    @staticmethod
    def forward(ctx, hidden: Tensor, embeddings: Tensor, ids: Tensor, block: int) -> Tensor:
        dtype = torch.promote_types(hidden.dtype, embeddings.dtype)
        h, e = hidden.to(dtype), embeddings.to(dtype)
        ctx.save_for_backward(h, e, ids)
        ctx.block, ctx.dtypes = block, (hidden.dtype, embeddings.dtype)
        return torch.cat([(h[s:s + block] @ e.T).gather(1, ids[s:s + block])
                          for s in range(0, len(h), block)]) if len(h) else h.new_empty(ids.shape)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        h, e, ids = ctx.saved_tensors
        block = ctx.block
        need_h, need_e = ctx.needs_input_grad[:2]
        grad = grad.to(h.dtype)
        grad_h = torch.empty_like(h) if need_h else None
        grad_e = torch.zeros_like(e) if need_e else None
        dense = h.new_empty(min(block, len(h)), len(e))  # one block's sparse gradient, dense
        for s in range(0, len(h), block):
            end = min(s + block, len(h))
            g = dense[: end - s].zero_().scatter_add_(1, ids[s:end], grad[s:end])
            if grad_h is not None:
                torch.mm(g, e, out=grad_h[s:end])
            if grad_e is not None:
                grad_e.addmm_(g.T, h[s:end])
        return (None if grad_h is None else grad_h.to(ctx.dtypes[0]),
                None if grad_e is None else grad_e.to(ctx.dtypes[1]), None, None)
