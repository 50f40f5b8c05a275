"""User-level A/B assignment: canonical ids, canonical group order, a salted hash.

Assignment hashes ``canonical_user_id(user_id)`` with BLAKE2b (``hashlib``, keyed by the experiment
name as salt), never Python's per-process salted ``hash()``: a user gets the same group in every
session, process and machine, and different experiments are independent. The first 8 bytes of the
digest, read little-endian, give ``u = h / 2**64`` uniform in [0, 1); groups are taken **sorted by
name** and the user's group is the first whose cumulative weight exceeds ``u``, so listing the same
weights in another dict order assigns every user to the same group.

**The id rule** (:func:`canonical_user_id`), applied before hashing:

* integers (``int``, ``np.int64``) and integral floats (``7.0``, ``np.float32(7)``) are the same
  user: the decimal string ``"7"``; other finite floats use ``repr`` (``"7.5"``);
* strings are stripped of surrounding whitespace; a string that is a UUID (32 hex digits, with or
  without hyphens, braces or a ``urn:uuid:`` prefix, any case) becomes its canonical lowercase
  hyphenated form, so ``" 6FA459EA-EE8A-3CA4-894E-DB77E160355E"`` and
  ``"6fa459ea-ee8a-3ca4-894e-db77e160355e"`` are one user; other strings keep their case (ids
  such as ``"Alice"`` / ``"alice"`` may be distinct users); a decimal string ``"7"`` equals ``7``;
* ``uuid.UUID`` objects are their canonical string;
* booleans, NaN, infinities, empty strings and other types raise ``ValueError`` naming
  ``user_id``.

Version note: before this rule ids were hashed as ``str(id)`` and groups taken in dict order;
integer and canonical lowercase UUID ids keep their groups, other ids may move once.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping

import numpy as np

from seqrec.value._checks import as_float_array

WEIGHT_TOLERANCE = 1e-9
_UUID = re.compile(
    r"(urn:uuid:)?\{?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\}?",
    re.IGNORECASE,
)


def canonical_user_id(user_id: object) -> str:
    """The string hashed for ``user_id`` under the id rule of the module docstring.

    Raises:
        ValueError: naming ``user_id`` for booleans, NaN / infinite floats, empty strings and
            unsupported types.
    """
    if isinstance(user_id, bool | np.bool_):
        raise ValueError(f"user_id must not be a boolean; got {user_id!r}")
    if isinstance(user_id, int | np.integer):
        return str(int(user_id))
    if isinstance(user_id, float | np.floating):
        value = float(user_id)
        if not np.isfinite(value):
            raise ValueError(f"user_id must be finite; got {user_id!r}")
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(user_id, uuid.UUID):
        return str(user_id)
    if isinstance(user_id, str):
        text = user_id.strip()
        if not text:
            raise ValueError(f"user_id must not be empty; got {user_id!r}")
        return str(uuid.UUID(text)) if _UUID.fullmatch(text) else text
    raise ValueError(
        f"user_id must be an int, float, str or uuid.UUID; got {type(user_id).__name__} {user_id!r}"
    )


def check_weights(weights: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
    """Group names sorted by name and their cumulative weights ``(n_groups,) float64``.

    Raises:
        ValueError: naming ``weights`` when empty, negative, NaN or not summing to 1 (tolerance
            :data:`WEIGHT_TOLERANCE`).
    """
    if not weights:
        raise ValueError("weights must name at least one group; got {}")
    names = sorted(weights, key=str)
    w = as_float_array("weights", [weights[n] for n in names])
    if (w < 0).any():
        raise ValueError(f"weights must be >= 0; got {dict(weights)!r}")
    if abs(w.sum() - 1.0) > WEIGHT_TOLERANCE:
        raise ValueError(f"weights must sum to 1; got {dict(weights)!r} (sum {w.sum()!r})")
    return names, np.cumsum(w)


def _check_experiment(experiment: str) -> None:
    if not isinstance(experiment, str) or not experiment or len(experiment.encode()) > 64:
        raise ValueError(
            f"experiment must be a non-empty string of at most 64 bytes; got {experiment!r}"
        )


def assign_group(user_id: object, experiment: str, weights: Mapping[str, float]) -> str:
    """The group of one user in one experiment (deterministic everywhere).

    Args:
        user_id: any id under the id rule (:func:`canonical_user_id`).
        experiment: experiment name, used as the hash salt (<= 64 bytes).
        weights: group name -> share, summing to 1 (tolerance 1e-9), e.g. ``{"A": 0.5, "B": 0.5}``;
            the order of the mapping does not matter.

    Raises:
        ValueError: if the weights are negative, NaN or do not sum to 1, the experiment is empty,
            or the id breaks the id rule.
    """
    return str(assign_groups([user_id], experiment, weights)[0])


def _canonical_ids(user_ids: Iterable[object]) -> Iterable[str]:
    if isinstance(user_ids, np.ndarray) and user_ids.dtype.kind in "iu":
        return map(str, user_ids.tolist())  # fast path: integer arrays are already canonical
    return map(canonical_user_id, user_ids)


def assign_groups(
    user_ids: Iterable[object], experiment: str, weights: Mapping[str, float]
) -> np.ndarray:
    """Vectorised :func:`assign_group`: ``(n,)`` object array of group names.

    Hashing is one BLAKE2b call per id (about 0.6 s per million ids); the rest is numpy.

    Raises:
        ValueError: as :func:`assign_group`.
    """
    _check_experiment(experiment)
    names, cumulative = check_weights(weights)
    key = experiment.encode()
    hashes = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(u.encode(), digest_size=8, key=key).digest(), "little")
            for u in _canonical_ids(user_ids)
        ),
        dtype=np.uint64,
    )
    u = hashes.astype(np.float64) / 2.0**64  # rounding can give exactly 1.0: clip below
    index = np.minimum(np.searchsorted(cumulative, u, side="right"), len(names) - 1)
    return np.asarray(names, dtype=object)[index]
