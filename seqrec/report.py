"""Comparing recommenders on two objectives: the Pareto front and its plot.

Accuracy (NDCG@10) and catalogue coverage (coverage@10) pull against each other: a model is worth
keeping only if no other model is at least as good on both and better on one. The command line
(``seqrec compare``) and the benchmarks use these two functions.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seqrec.files import apply_umask


def pareto_front(points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Which points no other point dominates, every coordinate to be maximised.

    Point ``a`` dominates ``b`` when ``a >= b`` in every coordinate and ``a > b`` in at least one.
    Equal points do not dominate each other, so duplicates on the front are all kept. A point with
    a NaN coordinate is never on the front and never dominates another. To minimise a coordinate
    (e.g. ARP), negate it first.

    Args:
        points: ``(n_points, n_objectives)`` float, e.g. columns ``(ndcg@10, coverage@10)``.

    Returns:
        ``(n_points,)`` bool; True where the point is Pareto-optimal.

    Raises:
        ValueError: ``points`` is not two-dimensional.

    Example:
        >>> pareto_front([[0.10, 0.2], [0.08, 0.5], [0.07, 0.1]]).tolist()
        [True, True, False]
    """
    values = np.asarray(points, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"points must be (n_points, n_objectives), got shape {values.shape}")
    valid = ~np.isnan(values).any(axis=1)
    # (n_points, n_points): row i dominates column j
    at_least = (values[:, None, :] >= values[None, :, :]).all(axis=2)
    better = (values[:, None, :] > values[None, :, :]).any(axis=2)
    dominates = at_least & better & valid[:, None]
    return valid & ~dominates.any(axis=0)


def plot_front(names: Sequence[str], x: Sequence[float], y: Sequence[float],
               on_front: Sequence[bool] | np.ndarray, path: str | Path, *,
               xlabel: str = "coverage@10", ylabel: str = "NDCG@10",
               title: str | None = None) -> Path:
    """Scatter the models with their names and join the Pareto-optimal ones into a front.

    The image is written to a temporary file beside ``path`` and renamed into place, so ``path``
    is never left half-written. The format comes from the suffix (``.png``, ``.svg``, ``.pdf``).

    Args:
        names: one label per model.
        x, y: the two objectives (both larger-is-better), e.g. coverage@10 and NDCG@10.
        on_front: True for the Pareto-optimal models (see :func:`pareto_front`).
        path: the image file.
        xlabel, ylabel, title: axis labels and an optional title.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: the sequences differ in length.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not len(names) == len(x) == len(y) == len(on_front):
        raise ValueError(f"names, x, y, on_front differ in length: "
                         f"{len(names)}, {len(x)}, {len(y)}, {len(on_front)}")
    path = Path(path)
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    front = np.asarray(on_front, dtype=bool)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    try:
        ax.scatter(xs[~front], ys[~front], color="tab:gray", label="dominated", zorder=2)
        ax.scatter(xs[front], ys[front], color="tab:red", label="Pareto-optimal", zorder=3)
        order = np.flatnonzero(front)[np.argsort(xs[front])]
        ax.plot(xs[order], ys[order], color="tab:red", linewidth=1, zorder=1)
        for name, xi, yi in zip(names, xs, ys, strict=True):
            ax.annotate(name, (xi, yi), textcoords="offset points", xytext=(5, 5), fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        try:
            fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120)
            apply_umask(tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    finally:
        plt.close(fig)
    return path
