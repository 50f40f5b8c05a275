"""External ids ↔ contiguous indices, PAD, and the one rule for reading ids (numpy only).

Items are numbered ``1..n_items``; index 0 is :data:`PAD` in every sequence, window and score
matrix. Users are numbered ``0..n_users - 1``.

**The id rule** (library, command line and service alike). A model's external ids are either
all integers or all strings. An id given to it is matched by value after one coercion:

* for an integer-id model, a string that is a canonical decimal integer (``"12"``, ``"-3"``)
  means that integer; any other string (``"012"``, ``" 12"``, ``"12.0"``, ``"abc"``) is unknown;
* for a string-id model, an integer ``12`` means ``"12"``;
* booleans and floats are never ids (unknown).

An unknown id is never guessed at: callers count it and drop it (items in a history or a filter
list) or apply their unknown-user policy (users).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from seqrec.errors import UnknownItemError, UnknownUserError

PAD = 0
"""Item index reserved for padding in every sequence, window and score matrix."""

_CANONICAL_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_NOT_AN_ID = object()


def coerce_id(value: Any, int_ids: bool) -> Any:
    """``value`` in the id type of a model (see the module's id rule), or a sentinel that matches
    no id when it cannot be one of the model's ids."""
    if isinstance(value, (bool, np.bool_)) or isinstance(value, (float, np.floating)):
        return _NOT_AN_ID
    if isinstance(value, np.integer):
        value = int(value)
    if int_ids:
        if isinstance(value, int):
            return value
        if isinstance(value, str) and _CANONICAL_INT.fullmatch(value):
            return int(value)
        return _NOT_AN_ID
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) else _NOT_AN_ID


@dataclass(frozen=True)
class IdIndex:
    """External id <-> contiguous internal index.

    Attributes:
        ids: ``(n,)`` external ids in index order (int64, or object for strings). The external id
            of index ``i`` is ``ids[i - start]``.
        start: first index: 1 for the item catalogue (0 is PAD), 0 for users.
        kind: ``"item"`` or ``"user"`` (default: ``"item"`` when ``start == 1``), for messages.

    Raises:
        ValueError: duplicate external ids.
    """

    ids: np.ndarray
    start: int = 0
    kind: Literal["item", "user"] | None = None
    _lookup: dict = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.kind is None:
            object.__setattr__(self, "kind", "item" if self.start == 1 else "user")
        if self._lookup is None:
            lookup = {v: i + self.start for i, v in enumerate(self.ids.tolist())}
            if len(lookup) != len(self.ids):
                raise ValueError(f"IdIndex: external {self.kind} ids must be unique")
            object.__setattr__(self, "_lookup", lookup)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, external_id: object) -> bool:
        return self.index_of(external_id) >= 0

    @property
    def int_ids(self) -> bool:
        """True when the external ids are integers."""
        return self.ids.dtype.kind in "iu"

    def index_of(self, external_id: Any) -> int:
        """The index of one id under the id rule, or -1 when it is unknown."""
        return self._lookup.get(coerce_id(external_id, self.int_ids), -1)

    def to_index(self, external_ids: Iterable[Any], *, unknown: Literal["error", "pad"] = "error",
                 where: str = "") -> np.ndarray:
        """Map external ids to indices under the id rule.

        Args:
            external_ids: iterable of external ids.
            unknown: ``"error"`` raises on an unknown id; ``"pad"`` maps it to ``-1``.
            where: what the ids are (e.g. ``"--users"``), for the error message.

        Returns:
            ``(n,)`` int64 indices.

        Raises:
            UnknownItemError / UnknownUserError: an id is unknown and ``unknown="error"``; the
                message names up to five of them (both are ``KeyError`` subclasses).
        """
        values = list(external_ids.tolist() if hasattr(external_ids, "tolist") else external_ids)
        int_ids, lookup = self.int_ids, self._lookup
        out = np.fromiter((lookup.get(coerce_id(v, int_ids), -1) for v in values),
                          dtype=np.int64, count=len(values))
        if unknown == "error" and (out < 0).any():
            missing = [values[i] for i in np.flatnonzero(out < 0)]
            error = UnknownItemError if self.kind == "item" else UnknownUserError
            raise error(missing, where=where)
        return out

    def to_external(self, indices: Any) -> np.ndarray:
        """Map indices back to external ids.

        Args:
            indices: int array of indices in ``start .. start + n - 1``.

        Returns:
            external ids, same shape as ``indices``.

        Raises:
            IndexError: an index is out of range (for items this includes PAD = 0).
        """
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < self.start or idx.max() >= self.start + len(self.ids)):
            raise IndexError(f"index out of range [{self.start}, {self.start + len(self.ids)})")
        return self.ids[idx - self.start]
