"""Input checks shared by the value modules: every failure names the parameter and the bad value."""

from __future__ import annotations

import numpy as np


def as_float_array(name: str, values: object) -> np.ndarray:
    """Return ``values`` as a float64 array, rejecting NaN and infinities.

    Raises:
        ValueError: if any entry is NaN or infinite (the message names ``name`` and the value).
    """
    array = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(f"{name} must be finite; got {array[bad].flat[0]!r}")
    return array


def check_probabilities(name: str, values: object) -> np.ndarray:
    """Return ``values`` as float64, checking every entry is a probability in [0, 1].

    Raises:
        ValueError: on NaN, infinities or entries outside [0, 1].
    """
    array = as_float_array(name, values)
    bad = (array < 0.0) | (array > 1.0)
    if bad.any():
        raise ValueError(f"{name} must lie in [0, 1]; got {array[bad].flat[0]!r}")
    return array


def check_nonnegative(name: str, values: object) -> np.ndarray:
    """Return ``values`` as float64, checking every entry is finite and >= 0 (prices in dollars).

    Raises:
        ValueError: on NaN, infinities or negative entries.
    """
    array = as_float_array(name, values)
    bad = array < 0.0
    if bad.any():
        raise ValueError(f"{name} must be >= 0; got {array[bad].flat[0]!r}")
    return array


def check_binary(name: str, values: object) -> np.ndarray:
    """Return ``values`` as float64 0/1 outcomes.

    Raises:
        ValueError: on entries other than 0 and 1 (NaN included).
    """
    array = np.asarray(values, dtype=np.float64)
    bad = (array != 0.0) & (array != 1.0)
    if bad.any():
        raise ValueError(f"{name} must contain only 0 and 1; got {array[bad].flat[0]!r}")
    return array


def check_same_length(**arrays: np.ndarray) -> int:
    """Return the common length of 1-D arrays, raising ValueError naming the shapes otherwise."""
    shapes = {name: np.shape(a) for name, a in arrays.items()}
    lengths = {s[0] if len(s) == 1 else None for s in shapes.values()}
    if len(lengths) != 1 or None in lengths:
        raise ValueError(f"expected 1-D arrays of one length; got shapes {shapes}")
    return lengths.pop()


PROBABILITY_EPS = 1e-6
"""Probabilities entering a ranking key are clipped to ``[PROBABILITY_EPS, 1 - PROBABILITY_EPS]``,
so no key is infinite (a calibrator may output exactly 0 abandonment)."""


def clip_probabilities(values: np.ndarray) -> np.ndarray:
    """``values`` clipped to ``[PROBABILITY_EPS, 1 - PROBABILITY_EPS]`` (float64, any shape)."""
    return np.clip(np.asarray(values, dtype=np.float64), PROBABILITY_EPS, 1.0 - PROBABILITY_EPS)


def check_mask(name: str, mask: object, n_items: int) -> np.ndarray:
    """Return ``mask`` as a ``(n_items,) bool`` array (True = the item may be shown).

    Raises:
        ValueError: naming ``name`` if the mask is not boolean or not of length ``n_items``.
    """
    array = np.asarray(mask)
    if array.dtype != np.bool_:
        raise ValueError(f"{name} must be a boolean array; got dtype {array.dtype}")
    if array.shape != (n_items,):
        raise ValueError(f"{name} must have shape ({n_items},), one entry per item; got {array.shape}")
    return array


def check_cap(cap: object) -> int:
    """Return ``cap`` (items a session may show) as an int, checking it is an integer >= 1.

    Raises:
        ValueError: naming ``cap`` for a non-integer or a value below 1.
    """
    if isinstance(cap, bool) or not isinstance(cap, int | np.integer) or cap < 1:
        raise ValueError(f"cap must be an integer >= 1; got {cap!r}")
    return int(cap)
