"""ONNX export of the inference encoder: item windows in, last-position hidden states out.

The exported graph is :meth:`seqrec.model.SequenceEncoder.encode` with ``last_only=True`` and
the objective's attention direction, in eval mode (no dropout):

* input ``inputs``: ``(batch, seq_len)`` int64 item indices, left-padded with PAD (0), with
  ``1 <= seq_len <= max_seq_len``; both dimensions are dynamic. Build them as the model does
  (``model.parts.objective.inference_inputs``): the most recent items, and for a masked-item
  objective (BERT4Rec) a final MASK column (``n_items + 1``);
* output ``hidden``: ``(batch, dim)`` float32. Scores are ``hidden @ E[1..n_items].T`` with
  the item table ``model.item_embeddings()`` (or candidates from :mod:`seqrec.ann`).

The model's metadata (``metadata_props``) records the seqrec version, ``n_items``, ``dim``,
``max_seq_len``, ``causal`` and the MASK index. Before anything is written the graph is run by
ONNX Runtime on random windows of several shapes and compared with PyTorch; the largest
absolute difference is returned. Exporting uses torch's dynamo exporter, which needs
``onnxscript``; ``pip install 'seqrec[onnx]'`` brings it with ``onnx`` and ``onnxruntime``.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from seqrec.errors import MissingDependencyError, NotFittedError, ScoringError
from seqrec.files import write_atomic
from seqrec.recommender import SequentialRecommender

DEFAULT_TOLERANCE = 1e-4
"""Largest absolute difference from PyTorch accepted (float32 hidden states of norm ~ √dim)."""


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: the ``.onnx`` file.
        opset: its ONNX opset.
        max_abs_diff: largest ``|onnxruntime - torch|`` over the check windows' hidden states.
        checked: ``(batch, seq_len)`` shapes of the check windows.
    """

    path: Path
    opset: int
    max_abs_diff: float
    checked: tuple[tuple[int, int], ...]


def require_onnx() -> tuple[Any, Any]:
    """``(onnx, onnxruntime)``, or :class:`~seqrec.errors.MissingDependencyError` naming the
    extra (the exporter also needs ``onnxscript``)."""
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401  (torch's dynamo exporter imports it)
    except ImportError as error:
        raise MissingDependencyError(f"ONNX export needs onnx, onnxruntime and onnxscript "
                                     f"({error.name} is missing): pip install 'seqrec[onnx]'"
                                     ) from None
    return onnx, onnxruntime


class LastHidden(nn.Module):
    """The inference encoder as one module: ``(batch, seq_len)`` int64 windows →
    ``(batch, dim)`` float32 last-position hidden states."""

    def __init__(self, encoder: nn.Module, causal: bool) -> None:
        super().__init__()
        self.encoder = encoder
        self.causal = causal

    def forward(self, inputs: Tensor) -> Tensor:
        return self.encoder.encode(inputs, causal=self.causal, last_only=True).float()


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter logs notes (missing torchvision, skipped constant folding) as warnings;
    library code does not print, so they are held back while it runs."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def check_windows(model: SequentialRecommender, seed: int = 0) -> list[np.ndarray]:
    """Random ``(batch, seq_len)`` int64 windows of several shapes (batch 1..8, seq_len 1 to
    ``max_seq_len``, rows of every length down to an empty history), built by the model's
    objective as at inference."""
    assert model.parts is not None
    rng = np.random.default_rng(seed)
    objective, n_items = model.parts.objective, model.parts.encoder.n_items
    max_len = model.parts.encoder.max_seq_len
    out = []
    for batch, longest in ((1, 1), (3, max(1, max_len // 3)), (8, max_len), (2, max_len)):
        lengths = rng.integers(0, longest + 1, size=batch)
        lengths[0] = longest
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        items = rng.integers(1, n_items + 1, size=int(offsets[-1]), dtype=np.int64)
        window = objective.inference_inputs(items, offsets, np.arange(batch))
        out.append(window if window.shape[1] else np.zeros((batch, 1), dtype=np.int64))
    return out


def export_onnx(model: SequentialRecommender, path: str | Path, *,
                tolerance: float = DEFAULT_TOLERANCE, seed: int = 0) -> OnnxExport:
    """Write the model's inference encoder to ``path`` as ONNX (see the module docstring),
    after checking it against PyTorch; replaces ``path`` atomically, writes nothing on failure.

    Args:
        model: a fitted or loaded :class:`~seqrec.recommender.SequentialRecommender`.
        path: the ``.onnx`` file (the caller decides whether an existing one may be replaced).
        tolerance: largest absolute difference from PyTorch accepted.
        seed: of the random check windows.

    Returns:
        :class:`OnnxExport`.

    Raises:
        NotFittedError: the model has no weights yet.
        MissingDependencyError: onnx / onnxruntime / onnxscript not installed.
        ScoringError: ONNX Runtime's outputs differ from PyTorch's by more than ``tolerance``.
    """
    if not isinstance(model, SequentialRecommender):
        raise TypeError(f"export_onnx: expected a SequentialRecommender, got "
                        f"{type(model).__name__} (a popular baseline has no encoder)")
    if model.parts is None:
        raise NotFittedError("the model is not fitted: call fit() or seqrec.load_model() first")
    onnx, onnxruntime = require_onnx()
    encoder = model.parts.encoder
    module = LastHidden(copy.deepcopy(encoder).cpu().eval(), model.parts.objective.causal).eval()
    max_len = encoder.max_seq_len
    example = torch.ones(2, max_len, dtype=torch.int64)
    # seq_len stays dynamic only when the example is not 1 long (torch.export specialises 1)
    seq_len = torch.export.Dim("seq_len", min=1, max=max_len) if max_len > 1 else None
    shapes = {"inputs": {0: torch.export.Dim("batch", min=1), **({1: seq_len} if seq_len else {})}}
    with _quiet_exporter():
        program = torch.onnx.export(module, (example,), None, input_names=["inputs"],
                                    output_names=["hidden"], dynamic_shapes=shapes, dynamo=True,
                                    verbose=False)
    proto = program.model_proto
    mask = encoder.item_embedding.num_embeddings - 1 if model.parts.objective.needs_mask_token \
        else -1
    onnx.helper.set_model_props(proto, {
        "seqrec_version": __import__("seqrec").__version__, "n_items": str(encoder.n_items),
        "dim": str(encoder.item_embedding.embedding_dim), "max_seq_len": str(max_len),
        "causal": str(model.parts.objective.causal).lower(), "mask_token": str(mask),
        "inputs": "(batch, seq_len) int64 item indices, left-padded with PAD=0",
        "hidden": "(batch, dim) float32 last-position hidden states"})
    content = proto.SerializeToString()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(content, options, providers=["CPUExecutionProvider"])
    windows = check_windows(model, seed)
    diff = 0.0
    with torch.no_grad():
        for window in windows:
            expected = module(torch.from_numpy(window)).numpy()
            (got,) = session.run(None, {"inputs": window})
            diff = max(diff, float(np.abs(got - expected).max()))
    if not diff <= tolerance:
        raise ScoringError(f"ONNX export: outputs differ from PyTorch by {diff:.3g} (> "
                           f"tolerance {tolerance:g}); nothing written")
    path = write_atomic(path, content)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    return OnnxExport(path, int(opset), diff, tuple((w.shape[0], w.shape[1]) for w in windows))
