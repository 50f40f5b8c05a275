"""A lazy Adam for the item table: rows and moments change only where a step has a gradient.

With sampled losses a training step touches a few thousand rows of a table that may hold
millions; dense Adam would still read and write every row every step (its momentum keeps moving
rows with zero gradient). :class:`LazyAdam` updates only the rows of a sparse gradient, with
exactly dense Adam's formula on those rows (Kingma & Ba, arXiv 1412.6980, Algorithm 1; bias
correction by the global step; ``eps`` added after the bias correction, as
``torch.optim.Adam`` does — ``torch.optim.SparseAdam`` adds it before, which changes small
updates by up to ~3 % at the first steps). Dense and lazy Adam therefore take the same first
step, and later agree on every row a step touches; they differ on rows a step does not touch.
:func:`touched_rows` finds a step's rows.

It subclasses ``torch.optim.Optimizer`` because that is PyTorch's extension point for
optimizers (Fabric wraps optimizers by that type), as layers subclass ``nn.Module``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor


class LazyAdam(torch.optim.Optimizer):
    """Adam on sparse gradients: only the rows present in ``param.grad`` (a sparse COO tensor
    over dim 0, e.g. from ``F.embedding(..., sparse=True)``) are updated.

    Args:
        params: parameters whose gradients are sparse.
        lr: learning rate.
        betas: Adam's ``(beta1, beta2)``.
        eps: added to the bias-corrected square root of the second moment.

    Raises:
        ValueError: a bad ``lr``, ``betas`` or ``eps``; a dense gradient at ``step()``.
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        if not lr > 0 or not eps >= 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"LazyAdam: lr={lr!r}, betas={betas!r}, eps={eps!r} out of range")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One update of the rows each parameter's sparse gradient holds."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                if not param.grad.is_sparse:
                    raise ValueError("LazyAdam: expected a sparse gradient (a dense one updates "
                                     "every row: use torch.optim.Adam)")
                self._update(param, param.grad.coalesce(), group["lr"], beta1, beta2,
                             group["eps"])
        return loss

    def _update(self, param: Tensor, grad: Tensor, lr: float, beta1: float, beta2: float,
                eps: float) -> None:
        state = self.state[param]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32)
            # first and second moments side by side: one gather and one scatter per step
            state["moments"] = torch.zeros((param.shape[0], 2, *param.shape[1:]),
                                           dtype=param.dtype, device=param.device)
        state["step"] += 1
        step = float(state["step"])
        rows, values = grad.indices()[0], grad.values()  # (n_rows,), (n_rows, dim)
        moments = state["moments"].index_select(0, rows)  # (n_rows, 2, dim)
        exp_avg, exp_avg_sq = moments[:, 0], moments[:, 1]
        exp_avg.mul_(beta1).add_(values, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(values, values, value=1 - beta2)
        state["moments"].index_copy_(0, rows, moments)
        denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2**step)).add_(eps)
        param.index_add_(0, rows, exp_avg / denom, alpha=-lr / (1 - beta1**step))


def touched_rows(flat: Tensor, n_rows: int) -> tuple[Tensor, Tensor]:
    """The sorted distinct rows of ``flat`` with PAD (row 0) always first, and each entry's
    position among them.

    Args:
        flat: ``(n,)`` int64 row ids in ``[0, n_rows)``.
        n_rows: rows of the full table.
    Returns:
        ``touched`` ``(n_touched,)`` sorted ascending with ``touched[0] == 0``, and ``inverse``
        ``(n,)`` with ``touched[inverse] == flat``. Equal to ``torch.unique(..., return_inverse)``
        over ``[0] + flat``; when ``flat`` holds at least ``n_rows / 8`` ids a presence mask over
        the table (linear) replaces the sort, which dominated steps with 256 negatives per
        position.
    """
    if flat.numel() * 8 >= n_rows:
        present = torch.zeros(n_rows, dtype=torch.bool, device=flat.device)
        present[flat] = True
        present[0] = True
        touched = present.nonzero().squeeze(1)
        position = torch.cumsum(present, 0) - 1
        return touched, position[flat]
    pad = torch.zeros(1, dtype=torch.int64, device=flat.device)
    touched, inverse = torch.unique(torch.cat([pad, flat]), return_inverse=True)
    return touched, inverse[1:]
