"""Approximate retrieval for large catalogues: a FAISS index over the item table, with the
exact masks, exact rescoring and the tie rule of :mod:`seqrec.rank`.

A model's score of item ``i`` is ``hidden · E[i]``, so the index searches ``E[1..n_items]`` by
inner product. It only proposes candidates; :func:`rank_rows_ann` makes the lists exactly:

1. the index returns ``overfetch × k`` candidates per row, plus as many as the largest seen
   set in the block (at most ``max_candidates``);
2. the masks of :mod:`seqrec.filters` (seen, include, exclude) are applied to the candidates
   exactly and the model rescores them, so listed scores are the model's, not the index's;
3. :func:`seqrec.rank.top_k_candidates` cuts the list under the tie rule;
4. a row left with fewer than ``min(k, n_items)`` eligible candidates is ranked again, once, by
   the exact chunked path :func:`seqrec.rank.rank_rows` (no re-query loop): every list has
   exactly ``min(k, eligible items)`` items and never a filtered one.

Only *which* items reach a list is approximate (recall@10 against exact ranking:
``benchmarks/results/ann.md``); :func:`seqrec.evaluate` always ranks exactly. A model directory keeps the index as ``ann.safetensors``: the
FAISS bytes as one uint8 tensor and, in the header, the catalogue size, width and sha256 of the
item table it was built from, so a stale index is refused at load. FAISS is optional (``pip
install 'seqrec[ann]'``), imported only to build, search or load an index; its threads follow
``OMP_NUM_THREADS`` (this module sets no global).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import struct
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays
from torch import Tensor

from seqrec.errors import MissingDependencyError, ModelDirectoryError
from seqrec.filters import Filters, ItemSets, eligible_candidates
from seqrec.rank import RowScorer, TopK, in_row_order, rank_rows, top_k_candidates

logger = logging.getLogger(__name__)

AnnKind = Literal["ivf", "hnsw", "flat"]
ANN_FILE = "ann.safetensors"
FORMAT = "seqrec-ann/1"


def require_faiss() -> Any:
    """The ``faiss`` module, or :class:`~seqrec.errors.MissingDependencyError` naming the extra."""
    try:
        import faiss
    except ImportError:
        raise MissingDependencyError("approximate retrieval needs FAISS: pip install "
                                     "'seqrec[ann]' (faiss-cpu)") from None
    return faiss


@dataclass(frozen=True)
class AnnConfig:
    """How the index is built and searched.

    Attributes:
        kind: ``"ivf"`` (IVF-Flat: k-means lists, exact inner products inside the probed lists;
            the default: fast to build), ``"hnsw"`` (HNSW-Flat graph: slower to build) or
            ``"flat"`` (brute force: exact, for tests and small catalogues).
        n_lists: ivf lists; None = ``round(4 √n_items)``; at most ``n_items``.
        n_probe: ivf lists searched per query, ``1..n_lists``.
        train_per_list: ivf k-means training points per list (a sample of the table).
        hnsw_m: hnsw neighbours per node, 4..128.
        ef_construction: hnsw build beam width.
        ef_search: hnsw search beam width (FAISS uses at least the number asked for).
        overfetch: candidates per row = ``overfetch × k`` (+ the block's largest seen set).
        max_candidates: cap on candidates per row.
        auto_min_items: ``retrieval="auto"`` uses the index from this catalogue size on.
        seed: k-means seed.
    """

    kind: AnnKind = "ivf"
    n_lists: int | None = None
    n_probe: int = 32
    train_per_list: int = 64
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    overfetch: int = 4
    max_candidates: int = 4096
    auto_min_items: int = 100_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("ivf", "hnsw", "flat"):
            raise ValueError(f"AnnConfig.kind={self.kind!r}: expected 'ivf', 'hnsw' or 'flat'")
        bounds = {"n_lists": (1, None), "n_probe": (1, self.n_lists), "train_per_list": (1, None),
                  "hnsw_m": (4, 128), "ef_construction": (1, None), "ef_search": (1, None),
                  "overfetch": (1, None), "max_candidates": (1, None),
                  "auto_min_items": (0, None), "seed": (0, None)}
        for name, (low, high) in bounds.items():
            number = getattr(self, name)
            if number is None and name == "n_lists":
                continue
            if isinstance(number, bool) or not isinstance(number, int) or number < low \
                    or (high is not None and number > high):
                allowed = f"{low}..{high}" if high is not None else f">= {low}"
                raise ValueError(f"AnnConfig.{name}={number!r}: expected an integer {allowed}"
                                 + (" (n_lists)" if name == "n_probe" else ""))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnnConfig:
        """Raises ``ValueError`` naming unknown keys."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"AnnConfig: unknown settings {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class ItemIndex:
    """A FAISS inner-product index over items ``1..n_items`` (index row ``r`` = item ``r + 1``).

    Attributes:
        index: the ``faiss.Index``.
        config: build and search settings (``n_lists`` resolved).
        n_items / dim: the item table's shape without PAD.
        table_sha256: :func:`table_checksum` of the table it was built from.
    """

    index: Any = field(repr=False)
    config: AnnConfig
    n_items: int
    dim: int
    table_sha256: str

    def search(self, queries: Tensor, n: int) -> Tensor:
        """``(n_rows, n)`` int64 item indices of the best ``n`` by inner product (approximate),
        PAD where the index found fewer, for ``(n_rows, dim)`` float queries (any device)."""
        faiss = require_faiss()
        params = None
        if self.config.kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=self.config.n_probe)
        elif self.config.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=self.config.ef_search)
        x = np.ascontiguousarray(queries.detach().float().cpu().numpy())
        _, found = self.index.search(x, n, params=params)  # (n_rows, n); -1 = nothing
        return torch.from_numpy(found + 1)  # -1 becomes PAD


def table_checksum(table: Tensor) -> str:
    """sha256 of the shape and float32 bytes of ``(n_items + 1, dim)`` ``table`` without PAD."""
    rows = np.ascontiguousarray(table[1:].detach().float().cpu().numpy())
    digest = hashlib.sha256(f"{rows.shape[0]}x{rows.shape[1]}:".encode())
    digest.update(memoryview(rows).cast("B"))
    return digest.hexdigest()


def build_index(table: Tensor, config: AnnConfig | None = None) -> ItemIndex:
    """Index the item table (e.g. ``model.item_embeddings()``); attach it with
    ``model.ann_index = build_index(...)``.

    Args:
        table: ``(n_items + 1, dim)`` float item embeddings, row 0 = PAD (not indexed).
        config: settings (default :class:`AnnConfig`).

    Raises:
        ValueError: an empty table, or ``n_lists`` / ``n_probe`` that this catalogue cannot
            have (named).
        MissingDependencyError: FAISS is not installed.
    """
    config = config or AnnConfig()
    n_items, dim = table.shape[0] - 1, table.shape[1]
    if table.ndim != 2 or n_items < 1:
        raise ValueError(f"table: expected (n_items + 1, dim) with n_items >= 1, got "
                         f"{tuple(table.shape)}")
    faiss = require_faiss()
    rows = np.ascontiguousarray(table[1:].detach().float().cpu().numpy())
    if config.kind == "ivf":
        n_lists = config.n_lists or max(1, min(n_items, round(4 * math.sqrt(n_items))))
        if n_lists > n_items:
            raise ValueError(f"AnnConfig.n_lists={n_lists}: more than the {n_items} items")
        if config.n_probe > n_lists:
            raise ValueError(f"AnnConfig.n_probe={config.n_probe}: more than n_lists={n_lists}")
        config = AnnConfig(**{**asdict(config), "n_lists": n_lists})
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, n_lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = config.seed
        index.cp.max_points_per_centroid = config.train_per_list
        index.cp.min_points_per_centroid = 1  # FAISS would print a warning below 39 per list
        index.train(rows)
    elif config.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = config.ef_construction
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(rows)
    return ItemIndex(index, config, n_items, dim, table_checksum(table))


def index_bytes(index: ItemIndex, table: Tensor) -> bytes:
    """``ann.safetensors`` content: the FAISS bytes and, in the header, what it was built from.

    Raises:
        ValueError: ``index`` was not built from ``table`` (the model's current item table).
    """
    if (index.n_items, index.dim) != (table.shape[0] - 1, table.shape[1]) \
            or index.table_sha256 != table_checksum(table):
        raise ValueError("ann_index: built from another item table (the model changed after "
                         "build_index); rebuild it")
    faiss = require_faiss()
    meta = {"format": FORMAT, "n_items": str(index.n_items), "dim": str(index.dim),
            "table_sha256": index.table_sha256, "config": json.dumps(asdict(index.config)),
            "faiss_version": faiss.__version__}
    return save_arrays({"index": faiss.serialize_index(index.index)}, metadata=meta)


def index_metadata(content: bytes) -> dict[str, str]:
    """The header metadata of ``ann.safetensors`` content (read without FAISS).

    Raises:
        ValueError: not a seqrec ANN file.
    """
    try:
        (size,) = struct.unpack("<Q", content[:8])
        meta = json.loads(content[8 : 8 + size]).get("__metadata__") or {}
    except (struct.error, ValueError, AttributeError):
        raise ValueError("not a safetensors file") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


def load_index(content: bytes, table: Tensor) -> ItemIndex:
    """An index from ``ann.safetensors`` content, checked against the model's item table.

    Raises:
        ValueError: the index was built for another catalogue size, width or table (e.g. stale
            after retraining), or the file is damaged; the message says which.
        MissingDependencyError: FAISS is not installed (checked after the table).
    """
    meta = index_metadata(content)
    n_items, dim = table.shape[0] - 1, table.shape[1]
    try:
        built = (int(meta["n_items"]), int(meta["dim"]))
        config = AnnConfig.from_dict(json.loads(meta["config"]))
    except (KeyError, ValueError, TypeError) as error:
        raise ValueError(f"unreadable metadata ({error})") from None
    if built != (n_items, dim):
        raise ValueError(f"index built for {built[0]} items of width {built[1]}, the model has "
                         f"{n_items} of width {dim}: rebuild it")
    if meta.get("table_sha256") != table_checksum(table):
        raise ValueError("index built from another item table (stale after retraining?): "
                         "rebuild it")
    faiss = require_faiss()
    try:
        index = faiss.deserialize_index(load_arrays(content)["index"])
    except Exception as error:  # FAISS raises RuntimeError; safetensors its own type
        raise ValueError(f"damaged index ({str(error).splitlines()[0][:200]})") from None
    if index.ntotal != n_items or index.d != dim:
        raise ValueError(f"index holds {index.ntotal} vectors of width {index.d}")
    return ItemIndex(index, config, n_items, dim, meta["table_sha256"])


def read_index(file: Path, content: bytes, table: Tensor) -> ItemIndex | None:
    """:func:`load_index` for a model directory's ``file``: None, with a warning, when FAISS is
    not installed (lists are then exact).

    Raises:
        ModelDirectoryError: the index does not match ``table`` or is damaged (names ``file``).
    """
    try:
        return load_index(content, table)
    except MissingDependencyError as error:
        warnings.warn(f"{file}: not loaded, lists use exact retrieval ({error})", stacklevel=3)
        return None
    except ValueError as error:
        raise ModelDirectoryError(f"{file}: {error}") from None


class CandidateScorer(RowScorer, Protocol):
    """A :class:`~seqrec.rank.RowScorer` that also scores given items per row."""

    def score_candidates(self, query: Tensor, items: Tensor) -> Tensor:
        """``(n, n_candidates)`` float32 scores of ``(n, n_candidates)`` int64 items."""
        ...


@dataclass(frozen=True)
class _Rows:
    """Rows ``rows`` of a scorer's rows, renumbered from 0 (for :func:`rank_rows`)."""

    scorer: RowScorer
    rows: np.ndarray

    def encode(self, rows: np.ndarray) -> Tensor:
        return self.scorer.encode(self.rows[rows])

    def score(self, query: Tensor, start: int, stop: int) -> Tensor:
        return self.scorer.score(query, start, stop)


def rank_rows_ann(scorer: CandidateScorer, index: ItemIndex, n_rows: int, n_items: int, k: int,
                  filters: Filters | None = None, *, lengths: np.ndarray | None = None,
                  fallback: np.ndarray | None = None, fallback_scores: Tensor | None = None,
                  batch_size: int = 1024) -> TopK:
    """:func:`seqrec.rank.rank_rows` with candidates from ``index`` (see the module docstring):
    same arguments, same result shape and guarantees (exactly ``min(k, eligible items)`` items
    per row, masks exact, order by the tie rule); which items are listed is approximate.

    Raises:
        ValueError: ``k < 1``, an index of another catalogue size, or ``fallback`` without
            ``fallback_scores``.
        ScoringError: the model gave NaN or ``+inf`` scores.
    """
    if k < 1:
        raise ValueError(f"k={k}: expected k >= 1")
    if index.n_items != n_items:
        raise ValueError(f"ANN index of {index.n_items} items for a catalogue of {n_items}")
    filters, config, want = filters or Filters(), index.config, min(k, n_items)
    fallback = np.zeros(n_rows, dtype=bool) if fallback is None else np.asarray(fallback, bool)
    seen = (filters.seen.lengths() if isinstance(filters.seen, ItemSets)
            else np.zeros(n_rows, dtype=np.int64))
    model_rows = np.flatnonzero(~fallback)
    if lengths is not None:  # blocks of similar history length, as in rank_rows
        model_rows = model_rows[np.argsort(np.minimum(lengths[model_rows], 10_000), kind="stable")]
    parts: list[tuple[np.ndarray, TopK]] = []
    exact = [np.flatnonzero(fallback)]
    for first in range(0, len(model_rows), batch_size):
        block = model_rows[first : first + batch_size]
        query = scorer.encode(block)
        fetch = min(config.overfetch * k + int(seen[block].max()), config.max_candidates)
        items = index.search(query, min(n_items, max(k, fetch)))  # (len(block), fetch)
        keep = eligible_candidates(items, filters.select(block))
        scores = scorer.score_candidates(query, items).masked_fill(~keep, float("-inf"))
        best = top_k_candidates(scores, items, k)
        full = torch.from_numpy(best.lengths >= want)
        parts.append((block[full.numpy()], TopK(best.items[full], best.scores[full])))
        exact.append(block[~full.numpy()])
    rows = np.concatenate(exact)
    logger.debug("ann: %d of %d model rows ranked exactly (too few eligible candidates)",
                 len(rows) - int(fallback.sum()), len(model_rows))
    if len(rows):  # once, by the exact chunked path: no re-query loop
        parts.append((rows, rank_rows(_Rows(scorer, rows), len(rows), n_items, k,
                                      filters.select(rows), fallback=fallback[rows],
                                      lengths=None if lengths is None else lengths[rows],
                                      fallback_scores=fallback_scores, batch_size=batch_size)))
    return in_row_order(parts, n_rows, want)

