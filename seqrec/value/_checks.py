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
