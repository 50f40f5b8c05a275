"""Config strings → model parts: the one place where names map to classes, and where decisions
that involve several parts are made once (the candidate layout)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from seqrec.config import Config
from seqrec.layers import LiGRLayer, SASRecLayer
from seqrec.losses import (
    BCELoss,
    CandidateLayout,
    GBCELoss,
    Loss,
    SampledSoftmaxLoss,
    SoftmaxLoss,
)
from seqrec.model import SequenceEncoder
from seqrec.negatives import InBatchSampler, MixedSampler, NegativeSampler, UniformSampler
from seqrec.objectives import MaskedItem, NextItem, Objective
from seqrec.time_layers import FuXiAlphaLayer, HSTULayer

LAYERS = {"sasrec": SASRecLayer, "ligr": LiGRLayer, "hstu": HSTULayer,
          "fuxi_alpha": FuXiAlphaLayer}
TIME_LAYERS = ("hstu", "fuxi_alpha")
"""Layers whose relative attention bias needs the window length and reads event times."""


@dataclass(frozen=True)
class Parts:
    """The pluggable parts of one model (see STYLE.md: composition, not inheritance).

    Attributes:
        encoder: item embeddings + transformer layers.
        objective: inputs/targets and attention direction.
        loss: a function of ``(logits, labels)``.
        sampler: negatives for sampled losses (None for the full softmax).
        layout: which candidates each target is scored against (:data:`CandidateLayout`),
            decided by :func:`candidate_layout`; whoever swaps ``loss`` or ``sampler`` by hand
            sets it to match.
        sparse_items: a training step reads and updates only the item rows it touches
            (``config.item_updates == "sparse"`` with sampled candidates).
    """

    encoder: SequenceEncoder
    objective: Objective
    loss: Loss
    sampler: NegativeSampler | None
    layout: CandidateLayout = "per_batch"
    sparse_items: bool = False


def candidate_layout(config: Config) -> CandidateLayout:
    """The candidate layout of ``config``: the full catalogue for ``softmax``; one draw of
    negatives per target position for the binary losses (``bce``, ``gbce``: SASRec and gSASRec
    draw per position); for ``sampled_softmax`` as ``config.negative_sharing`` says
    (``batch`` → ``"per_batch"``, ``sequence`` → ``"per_sequence"``, ``target`` →
    ``"per_target"``)."""
    if config.loss == "softmax":
        return "catalogue"
    if config.loss in ("bce", "gbce"):
        return "per_target"
    sharing: dict[str, CandidateLayout] = {"batch": "per_batch", "sequence": "per_sequence",
                                           "target": "per_target"}
    return sharing[config.negative_sharing]


def build_objective(config: Config, n_items: int) -> Objective:
    """``next_item`` → :class:`NextItem`; ``masked_item`` → :class:`MaskedItem` (MASK = n_items + 1)."""
    if config.objective == "next_item":
        return NextItem(config.max_seq_len)
    return MaskedItem(config.max_seq_len, mask_token=n_items + 1, mask_prob=config.mask_prob)


def build_loss(config: Config, n_items: int) -> Loss:
    """``softmax`` | ``sampled_softmax`` | ``bce`` | ``gbce`` (with ``config.gbce_t``) → a loss object."""
    losses: dict[str, Loss] = {
        "softmax": SoftmaxLoss(),
        "sampled_softmax": SampledSoftmaxLoss(),
        "bce": BCELoss(),
        "gbce": GBCELoss(n_items, config.n_negatives, config.gbce_t),
    }
    return losses[config.loss]


def build_sampler(config: Config, n_items: int) -> NegativeSampler | None:
    """``uniform`` | ``in_batch`` | ``mixed`` → a sampler of ``config.n_negatives``; None for the
    full softmax, which needs no negatives."""
    if config.loss == "softmax":
        return None
    samplers: dict[str, NegativeSampler] = {
        "uniform": UniformSampler(n_items, config.n_negatives),
        "in_batch": InBatchSampler(n_items, config.n_negatives),
        "mixed": MixedSampler(n_items, config.n_negatives, config.mixed_uniform_share),
    }
    return samplers[config.sampler]


def build_encoder(config: Config, n_items: int, with_mask_token: bool) -> SequenceEncoder:
    """``config.n_layers`` blocks of ``config.layer`` (``sasrec`` | ``ligr`` | ``hstu`` |
    ``fuxi_alpha``) in a
    :class:`SequenceEncoder` of width ``config.dim``."""
    layer_cls = LAYERS[config.layer]
    extra = {"max_seq_len": config.max_seq_len} if config.layer in TIME_LAYERS else {}
    layers: list[nn.Module] = [
        layer_cls(config.dim, config.n_heads, config.dropout_rate, config.ff_multiplier, **extra)
        for _ in range(config.n_layers)
    ]
    return SequenceEncoder(n_items, config.dim, config.max_seq_len, config.dropout_rate, layers,
                           with_mask_token=with_mask_token, item_dropout=config.item_dropout_rate,
                           final_norm=config.final_norm, similarity=config.similarity,
                           temperature=config.temperature,
                           stochastic_depth=config.stochastic_depth)


def build_parts(config: Config, n_items: int) -> Parts:
    """All parts for ``config`` over a catalogue of ``n_items`` items.

    Raises:
        ValueError: ``n_items < 1``.
    """
    if n_items < 1:
        raise ValueError(f"n_items={n_items}: the catalogue is empty")
    objective = build_objective(config, n_items)
    encoder = build_encoder(config, n_items, objective.needs_mask_token)
    layout = candidate_layout(config)
    return Parts(encoder, objective, build_loss(config, n_items), build_sampler(config, n_items),
                 layout, sparse_items=config.item_updates == "sparse" and layout != "catalogue")
