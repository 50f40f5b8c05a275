"""Losses: pure functions of ``(logits, labels)`` over real target positions only.

The training step gathers hidden states at ``is_target`` positions before scoring, so padding and
non-target positions never enter a loss (their gradient is exactly zero). Each loss declares which
candidates it needs:

* ``"catalogue"`` — logits ``(n_targets, n_items + 1)`` over every item (PAD column at -inf),
  labels = target item index;
* ``"shared"`` — logits ``(n_targets, 1 + n_negatives)``: column 0 the target, then one shared
  draw of negatives; labels are all 0;
* ``"per_target"`` — the same layout with negatives drawn per target.

Accidental hits (a negative equal to the target) arrive as ``-inf`` logits and contribute nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

Candidates = Literal["catalogue", "shared", "per_target"]


class Loss(Protocol):
    """A training loss; ``candidates`` tells the training step how to build ``logits``."""

    candidates: Candidates

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

    candidates: Candidates = "catalogue"

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        return F.cross_entropy(logits.float(), labels)


@dataclass(frozen=True)
class SampledSoftmaxLoss:
    """Cross-entropy over the target and sampled negatives (eSASRec, arXiv 2508.06450;
    Jean et al. 2015). Column 0 is the target."""

    candidates: Candidates = "shared"

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

    candidates: Candidates = "per_target"

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
    candidates: Candidates = "per_target"

    @property
    def beta(self) -> float:
        """gBCE's positive-logit exponent β = α (t (1 − 1/α) + 1/α), α = n_negatives / (n_items − 1)
        (gSASRec, arXiv 2308.07192, the definition of gBCE)."""
        alpha = self.n_negatives / max(self.n_items - 1, 1)
        return alpha * (self.t * (1 - 1 / alpha) + 1 / alpha)

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        pos, neg = _positive_and_negatives(logits, labels)
        return (-self.beta * F.logsigmoid(pos) - F.logsigmoid(-neg).sum(dim=1)).mean()


def candidate_logits(hidden: Tensor, targets: Tensor, embeddings: Tensor, loss: Loss,
                     negatives_ids: Tensor | None, log_q: Tensor | None, *,
                     sequence_hidden: Tensor | None = None,
                     is_target: Tensor | None = None,
                     per_sequence: bool = True) -> tuple[Tensor, Tensor]:
    """Score each target position against the candidates its loss needs.

    Args:
        hidden: ``(n_targets, dim)`` hidden states at target positions.
        targets: ``(n_targets,)`` int64 target items.
        embeddings: ``(n_items + 1, dim)`` candidate embeddings (row 0 = PAD).
        loss: decides the candidate layout (see module docstring).
        negatives_ids: ``(n_negatives,)`` shared by the batch, ``(batch, n_negatives)`` shared by
            each sequence (needs ``sequence_hidden`` and ``is_target``), or ``(n_targets,
            n_negatives)`` per target (``"per_target"`` losses); unused for ``"catalogue"``.
        log_q: ``(n_items + 1,)`` proposal log-probabilities for logQ correction, or None.
        sequence_hidden: ``(batch, seq_len, dim)`` hidden states before gathering, for negatives
            drawn per sequence: scored with one batched matmul, no per-target gather.
        is_target: ``(batch, seq_len)`` bool, which positions ``hidden`` was gathered from.
        per_sequence: for a ``"shared"`` loss, read 2-D ``negatives_ids`` as one draw per
            sequence (True) or one per target (False).

    Returns:
        ``(logits, labels)``: ``(n_targets, n_candidates)`` float and ``(n_targets,)`` int64.
    """
    if loss.candidates == "catalogue":
        logits = hidden @ embeddings.T  # (n_targets, n_items + 1)
        logits[:, 0] = float("-inf")
        return logits, targets
    assert negatives_ids is not None
    positive = (hidden * embeddings[targets]).sum(-1, keepdim=True)  # (n_targets, 1)
    if negatives_ids.dim() == 1:
        negative = hidden @ embeddings[negatives_ids].T  # (n_targets, n_negatives): one matmul
        hit = negatives_ids[None, :] == targets[:, None]
    elif loss.candidates == "shared" and per_sequence:  # one draw per sequence
        if sequence_hidden is None or is_target is None:
            raise ValueError("negatives drawn per sequence need sequence_hidden and is_target")
        negative = torch.bmm(sequence_hidden, embeddings[negatives_ids].transpose(1, 2))  # (batch, seq_len, n_negatives)
        negative = negative[is_target]  # (n_targets, n_negatives)
        row_of_target = is_target.nonzero()[:, 0]
        negatives_ids = negatives_ids[row_of_target]  # (n_targets, n_negatives) ids, for the masks
        hit = negatives_ids == targets[:, None]
    else:
        negative = torch.einsum("td,tnd->tn", hidden, embeddings[negatives_ids])
        hit = negatives_ids == targets[:, None]
    if log_q is not None:
        positive = positive - log_q[targets, None]
        negative = negative - log_q[negatives_ids]
    negative = negative.masked_fill(hit, float("-inf"))  # accidental hits never count
    logits = torch.cat([positive, negative], dim=1)  # (n_targets, 1 + n_negatives)
    return logits, torch.zeros(len(targets), dtype=torch.int64, device=hidden.device)
