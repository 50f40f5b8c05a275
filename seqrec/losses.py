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
* ``"per_target"`` — the same, with one draw per target position (a gather).

Accidental hits (a negative equal to the target) arrive as ``-inf`` logits and contribute nothing.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class BCELoss:
    """Binary cross-entropy of the target against each negative (SASRec, Kang & McAuley 2018,
    binary loss): ``-log σ(s⁺) - Σⱼ log(1 - σ(s⁻ⱼ))``, averaged over targets."""

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        pos, neg = _positive_and_negatives(logits, labels)
        return (-F.logsigmoid(pos) - F.logsigmoid(-neg).sum(dim=1)).mean()


@dataclass(frozen=True)
class GBCELoss:
    """Generalised BCE of gSASRec (Petrov & Macdonald, RecSys 2023, arXiv 2308.07192, the gBCE definition):
    ``-β log σ(s⁺) - Σⱼ log(1 - σ(s⁻ⱼ))`` with ``β = α (t (1 - 1/α) + 1/α)`` and
    ``α = n_negatives / (n_items - 1)`` (the same paper). ``t = 0`` gives β = 1, plain BCE.

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
        pos, neg = _positive_and_negatives(logits, labels)
        return (-self.beta * F.logsigmoid(pos) - F.logsigmoid(-neg).sum(dim=1)).mean()


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
    else:
        negative = torch.einsum("td,tnd->tn", hidden, embeddings[negative_ids])
        hit = negative_ids == targets[:, None]
    if log_q is not None:
        positive = positive - log_q[targets, None]
        negative = negative - log_q[negative_ids]
    negative = negative.masked_fill(hit, float("-inf"))  # accidental hits never count
    logits = torch.cat([positive, negative], dim=1)  # (n_targets, 1 + n_negatives)
    return logits, torch.zeros(len(targets), dtype=torch.int64, device=hidden.device)
