"""One frozen configuration record for a sequential recommender, with presets and TOML round trips.

Strings live here and in :mod:`seqrec.build` only; the core receives objects. Unknown keys raise,
every value is checked in ``__post_init__`` with a message naming the field, the value and what is
allowed.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from seqrec.runtime import Runtime as Runtime  # re-exported: seqrec.config.Runtime
from seqrec.size_rules import RULES as _SIZE_RULES
from seqrec.size_rules import item_dropout_for_width as item_dropout_for_width  # re-exported

Objective = Literal["next_item", "masked_item"]
Layer = Literal["sasrec", "ligr", "hstu", "fuxi_alpha"]
LossName = Literal["softmax", "sampled_softmax", "bce", "gbce"]
SamplerName = Literal["uniform", "in_batch", "mixed"]

_CHOICES: dict[str, tuple[str, ...]] = {
    "objective": ("next_item", "masked_item"),
    "layer": ("sasrec", "ligr", "hstu", "fuxi_alpha"),
    "loss": ("softmax", "sampled_softmax", "bce", "gbce"),
    "sampler": ("uniform", "in_batch", "mixed"),
    "negative_sharing": ("batch", "sequence", "target"),
    "target_weighting": ("batch", "uniform"),
    "item_updates": ("sparse", "dense"),
    "similarity": ("dot", "cosine"),
}

RUNTIME_KEYS = ("accelerator", "devices", "num_nodes", "precision", "threads", "compile")
"""Settings of the machine a run happens on (:class:`Runtime`): never part of a model's config."""

_RETIRED_KEYS = ("eval_batch_size",)
"""Keys older config files hold that no longer mean anything (ignored when a file is loaded)."""


@dataclass(frozen=True)
class Config:
    """Everything that defines a model and how it is trained.

    Model parts (see :mod:`seqrec.build` for what each name means): ``objective``, ``layer``,
    ``loss``, ``sampler``; ``negative_sharing`` says how sampled-softmax negatives are shared:
    ``"batch"`` (one draw for the whole batch, one matmul) or ``"sequence"`` (one draw per
    sequence, shared by its positions: ``batch`` times more distinct negatives per step for
    the same FLOPs, scored with one batched matmul) or ``"target"`` (one draw per target position,
    as RecTools does: the most negatives per step, at the cost of a ``(n_targets, n_negatives,
    dim)`` gather). BCE and gBCE always draw per target. Sizes: ``dim`` (embedding width), ``n_layers``, ``n_heads``,
    ``max_seq_len`` (items of history the model reads), ``ff_multiplier`` (feed-forward width =
    ff_multiplier × dim). Training: ``lr`` (Adam), ``batch_size`` (sequences), ``epochs`` (upper
    bound), ``patience`` (epochs without a better validation NDCG@10 before stopping; 0 = never stop
    early; 30 as in the recipe that reproduces the eSASRec paper on Beauty), ``seed``. ``n_negatives``: sampled negatives per draw (shared as ``negative_sharing`` says for
    sampled softmax, per position for bce/gbce). ``gbce_t``: gSASRec calibration parameter t
    (arXiv 2308.07192). ``mask_prob``: share of positions masked by the masked_item
    objective (BERT4Rec). ``mixed_uniform_share``: share of uniform negatives in the mixed sampler.
    ``dropout``: dropout inside the blocks and on the input embeddings, a rate in [0, 1), or
    ``"depth"`` for :func:`~seqrec.size_rules.dropout_for_depth` of ``n_layers`` (0.2 up to 2
    blocks, 0.3 at 4: a deeper stack fits the training sequences sooner and needs more of it).
    ``item_dropout``: dropout on the item embedding table during training, one mask per step
    for the input lookups and the scored candidates (RecTools 0.13, which the eSASRec reference
    code runs on, applies its dropout rate there); a rate in [0, 1), or ``"width"`` for
    :func:`~seqrec.size_rules.item_dropout_for_width` of ``dim`` (0.2 at dim 64, 0.4 at dim 256: a wider item
    table memorises the training sequences sooner and needs more of it). ``stochastic_depth``:
    the chance that training skips the last block for a sequence, rising linearly from 0 at the
    first block (Huang et al., ECCV 2016; see :class:`seqrec.model.SequenceEncoder`); no effect
    with one block. ``final_norm``: a layer norm after the last
    block. ``adam_beta1`` / ``adam_beta2``: Adam's betas. ``bucket_batches``: batches per
    length-sorting chunk (1 = plain shuffled batches, each padded to its own longest row).
    ``target_weighting``: ``"batch"`` minimises each batch's mean loss over its targets;
    ``"uniform"`` divides the batch's summed loss by the expected targets per batch, so that
    length-bucketed batches weigh every target alike, as randomly mixed batches would.

    Where and how fast a run happens (devices, precision, threads) is not part of a config: see
    :class:`Runtime`.
    """

    objective: Objective = "next_item"
    layer: Layer = "ligr"
    loss: LossName = "sampled_softmax"
    sampler: SamplerName = "uniform"
    n_negatives: int = 256
    negative_sharing: Literal["batch", "sequence", "target"] = "batch"
    gbce_t: float = 0.75
    mask_prob: float = 0.2
    mixed_uniform_share: float = 0.5
    dim: int = 64
    n_layers: int = 1
    n_heads: int = 1
    dropout: float | Literal["depth"] = 0.2
    item_dropout: float | Literal["width"] = 0.0
    stochastic_depth: float = 0.0
    final_norm: bool = True
    max_seq_len: int = 50
    ff_multiplier: int = 4
    lr: float = 1e-3
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    batch_size: int = 128
    bucket_batches: int = 64
    target_weighting: Literal["batch", "uniform"] = "uniform"
    item_updates: Literal["sparse", "dense"] = "sparse"
    similarity: Literal["dot", "cosine"] = "dot"
    temperature: float = 0.05
    epochs: int = 200
    patience: int = 30
    seed: int = 0

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"config {name}={value!r}: expected one of {', '.join(allowed)}")
        positive = ("n_negatives", "dim", "n_layers", "n_heads", "max_seq_len", "ff_multiplier",
                    "batch_size", "bucket_batches", "epochs")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"config {name}={value!r}: expected an integer >= 1")
        if not isinstance(self.patience, int) or self.patience < 0:
            raise ValueError(f"config patience={self.patience!r}: expected an integer >= 0")
        if not isinstance(self.seed, int):
            raise ValueError(f"config seed={self.seed!r}: expected an integer")
        for name, low, high in (("mask_prob", 0.0, 1.0), ("mixed_uniform_share", 0.0, 1.0),
                                ("gbce_t", 0.0, 1.0)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValueError(f"config {name}={value!r}: expected a number in [{low}, {high}]")
        for name in ("dropout", "item_dropout", "stochastic_depth", "adam_beta1", "adam_beta2"):
            value = getattr(self, name)
            rule = _SIZE_RULES[name][0] if name in _SIZE_RULES else None
            if rule is not None and value == rule:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                also = f' or "{rule}"' if rule else ""
                raise ValueError(f"config {name}={value!r}: expected a number in [0, 1){also}")
        if not isinstance(self.final_norm, bool):
            raise ValueError(f"config final_norm={self.final_norm!r}: expected true or false")
        for name in ("lr", "temperature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 < value < float("inf"):
                raise ValueError(f"config {name}={value!r}: expected a finite number > 0")
        if self.dim % self.n_heads:
            raise ValueError(f"config dim={self.dim} must be divisible by n_heads={self.n_heads}")
        if self.objective == "masked_item" and self.loss != "softmax" and self.sampler != "uniform":
            raise ValueError("config sampler: masked_item supports only the uniform sampler")

    @property
    def dropout_rate(self) -> float:
        """The dropout rate of the blocks and the input embeddings: ``dropout``, or
        :func:`~seqrec.size_rules.dropout_for_depth` of ``n_layers`` when it is ``"depth"``."""
        return self._rate("dropout")

    @property
    def item_dropout_rate(self) -> float:
        """The item-table dropout rate training uses: ``item_dropout``, or
        :func:`~seqrec.size_rules.item_dropout_for_width` of ``dim`` when it is ``"width"``."""
        return self._rate("item_dropout")

    def rule_rates(self) -> dict[str, float]:
        """The rates rules gave this config, by key (``{"dropout": 0.3}`` for ``"depth"`` at 4 blocks)."""
        return {name: self._rate(name) for name in _SIZE_RULES if isinstance(getattr(self, name), str)}

    def _rate(self, name: str) -> float:
        word, size, rule = _SIZE_RULES[name]
        return rule(getattr(self, size)) if getattr(self, name) == word else float(getattr(self, name))

    # ---- dict / TOML round trips -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], base: Config | None = None) -> Config:
        """Build a config from ``values`` on top of ``base`` (default: the class defaults).

        Raises:
            ValueError: an unknown key (the message lists the known ones) or a bad value.
        """
        known = {f.name for f in fields(cls)}
        runtime = sorted(set(values) & set(RUNTIME_KEYS))
        if runtime:
            raise ValueError(f"config key(s) {runtime}: a runtime setting, not part of a model "
                             "(seqrec.Runtime in Python; --accelerator/--devices/--num-nodes/"
                             "--threads on the command line)")
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; known keys: {', '.join(sorted(known))}")
        merged = {**(base or cls()).to_dict(), **values}
        return cls(**merged)

    def replace(self, **values: Any) -> Config:
        """A copy with ``values`` changed (checked like :meth:`from_dict`)."""
        return Config.from_dict(values, base=self)

    def to_toml(self) -> str:
        """The config as TOML text (flat table; strings quoted, numbers as written)."""
        lines = []
        for key, value in self.to_dict().items():
            lines.append(f"{key} = {json.dumps(value)}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, text: str, base: Config | None = None) -> Config:
        """Parse TOML text written by :meth:`to_toml` or by hand (flat keys, or a ``[model]`` table)."""
        data = tomllib.loads(text)
        if set(data) == {"model"} and isinstance(data["model"], dict):
            data = data["model"]
        return cls.from_dict(data, base=base)

    @classmethod
    def from_saved(cls, saved: str | dict[str, Any]) -> Config:
        """Parse the ``config.toml`` text of a model directory or checkpoint (or the config dict
        of its ``model.json``). Files written before :class:`Runtime` existed also hold hardware
        keys (``devices``, ...) and ``eval_batch_size``: they are ignored, since they never
        changed the model."""
        data = tomllib.loads(saved) if isinstance(saved, str) else dict(saved)
        for key in (*RUNTIME_KEYS, *_RETIRED_KEYS):
            data.pop(key, None)
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path, base: Config | None = None) -> Config:
        """Read a TOML file.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: the TOML does not parse or holds an unknown key / bad value.
        """
        text = Path(path).read_text()
        try:
            return cls.from_toml(text, base=base)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{path}: not valid TOML ({error})") from None


_APPLIES_WHEN: dict[str, tuple[str, str, Any]] = {
    "temperature": ("similarity", '"cosine"', lambda c: c.similarity == "cosine"),
    "gbce_t": ("loss", '"gbce"', lambda c: c.loss == "gbce"),
    "mask_prob": ("objective", '"masked_item"', lambda c: c.objective == "masked_item"),
    "mixed_uniform_share": ("sampler", '"mixed"', lambda c: c.sampler == "mixed"),
    "negative_sharing": ("loss", '"sampled_softmax"', lambda c: c.loss == "sampled_softmax"),
    "n_negatives": ("loss", '!= "softmax"', lambda c: c.loss != "softmax"),
    "sampler": ("loss", '!= "softmax"', lambda c: c.loss != "softmax"),
    "item_updates": ("loss", '!= "softmax"', lambda c: c.loss != "softmax"),
    "stochastic_depth": ("n_layers", "> 1", lambda c: c.n_layers > 1),
}
"""Setting → (the key it depends on, the values of that key under which it acts, the test)."""


def inert_settings(config: Config, names: Iterable[str]) -> list[str]:
    """For each key in ``names`` that changes nothing under ``config`` (``temperature`` with dot
    similarity, ``gbce_t`` without the gBCE loss, ...): ``'gbce_t: no effect unless loss =
    "gbce" (it is "sampled_softmax")'``."""
    messages = []
    for name in names:
        if name in _APPLIES_WHEN:
            key, when, applies = _APPLIES_WHEN[name]
            if not applies(config):
                joint = " " if when[0] in "!>" else " = "
                messages.append(f"{name}: no effect unless {key}{joint}{when} "
                                f"(it is {json.dumps(getattr(config, key))})")
    return messages


PRESETS: dict[str, dict[str, Any]] = {
    # eSASRec (arXiv 2508.06450): shifted sequence + LiGR layers + sampled softmax, 256 negatives
    # (drawn per sequence: on Beauty, test NDCG@10 0.0442 against 0.0426 with one draw per batch)
    # and dropout on the item table as in the reference code's RecTools 0.13 (Beauty, dim 64,
    # seed 0, per-batch target weighting: Recall@10 / NDCG@10 0.0801 / 0.0475 against 0.0726 /
    # 0.0445 without it; with uniform target weighting 0.0889 / 0.0524); its rate grows with
    # the width (item_dropout_for_width: 0.2 at dim 64; at dim 256, 0.4 reaches the paper's
    # Beauty figures where 0.2 overfits after 12 epochs); the blocks' dropout grows with the
    # depth (dropout_for_depth: 0.2 up to 2 blocks; 4 blocks overfit with 0.2 and hold with 0.3)
    "esasrec": dict(objective="next_item", layer="ligr", loss="sampled_softmax", n_negatives=256,
                    negative_sharing="sequence", ff_multiplier=4, dropout="depth",
                    item_dropout="width"),
    # SASRec as published (Kang & McAuley 2018): BCE with one negative per position
    "sasrec": dict(objective="next_item", layer="sasrec", loss="bce", n_negatives=1,
                   ff_multiplier=1),
    # SASRec + sampled softmax as the eSASRec paper runs it (RecTools 0.13: item-table dropout)
    "sasrec_ss": dict(objective="next_item", layer="sasrec", loss="sampled_softmax",
                      n_negatives=256, negative_sharing="sequence", ff_multiplier=1,
                      item_dropout=0.2),
    # gSASRec (arXiv 2308.07192): gBCE with t = 0.75 and 256 negatives per position
    "gsasrec": dict(objective="next_item", layer="sasrec", loss="gbce", n_negatives=256,
                    gbce_t=0.75, ff_multiplier=1),
    # HSTU (Zhai et al., ICML 2024, arXiv 2402.17152) and FuXi-α (Ye et al., arXiv 2502.00679):
    # time-aware attention (relative position and time-gap biases), trained as the eSASRec
    # benchmark trains them: shifted sequence + sampled softmax, 256 negatives per sequence
    "hstu": dict(objective="next_item", layer="hstu", loss="sampled_softmax", n_negatives=256,
                 negative_sharing="sequence", n_layers=2),
    "fuxi_alpha": dict(objective="next_item", layer="fuxi_alpha", loss="sampled_softmax",
                       n_negatives=256, negative_sharing="sequence", n_layers=2,
                       ff_multiplier=1),
    # BERT4Rec (Sun et al. 2019): masked items, bidirectional attention, full softmax
    "bert4rec": dict(objective="masked_item", layer="sasrec", loss="softmax", mask_prob=0.2,
                     ff_multiplier=4),
}


def preset(name: str, **overrides: Any) -> Config:
    """The config of a named preset with ``overrides`` applied.

    Raises:
        ValueError: unknown preset name (the message lists them) or a bad override.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return Config.from_dict({**PRESETS[name], **overrides})


def parse_set(assignments: list[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings from the command line into typed values.

    Values are parsed as TOML scalars (``dim=128``, ``lr=3e-4``, ``layer="ligr"`` or bare
    ``layer=ligr``).

    Raises:
        ValueError: an item without ``=`` or an unknown key.
    """
    known = {f.name for f in fields(Config)}
    out: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected key=value")
        if key in RUNTIME_KEYS:
            raise ValueError(f"--set {key}: a runtime setting, not a model config key; use "
                             f"--{key.replace('_', '-')}")
        if key not in known:
            raise ValueError(f"--set {key}: unknown config key; known keys: {', '.join(sorted(known))}")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        out[key] = value
    return out
