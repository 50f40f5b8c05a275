"""LazyAdam: exactly dense Adam on the rows a sparse gradient holds, nothing elsewhere."""

import pytest
import torch

from seqrec.optim import LazyAdam


def _sparse(rows: list[int], values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    return torch.sparse_coo_tensor(torch.tensor([rows]), values, shape)


def test_lazy_adam_equals_dense_adam_on_touched_rows_and_leaves_the_others():
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(6, 3, generator=generator)
    lazy_param = start.clone().requires_grad_(True)
    dense_param = start.clone().requires_grad_(True)
    lazy, dense = LazyAdam([lazy_param], lr=0.1), torch.optim.Adam([dense_param], lr=0.1)
    grads = [([0, 2], torch.randn(2, 3, generator=generator)),
             ([0, 2], torch.randn(2, 3, generator=generator)),
             ([0, 2, 4], torch.randn(3, 3, generator=generator))]
    for rows, values in grads:
        lazy_param.grad = _sparse(rows, values, (6, 3))
        dense_param.grad = lazy_param.grad.to_dense()
        lazy.step()
        dense.step()
    # rows 0 and 2 had a gradient at every step: same as dense Adam
    torch.testing.assert_close(lazy_param[[0, 2]], dense_param[[0, 2]], atol=1e-6, rtol=1e-6)
    # row 4 only at the last step: dense Adam's first update of it is the same (m, v were 0)
    torch.testing.assert_close(lazy_param[4], dense_param[4], atol=1e-6, rtol=1e-6)
    # rows never touched never move
    torch.testing.assert_close(lazy_param[[1, 3, 5]], start[[1, 3, 5]], atol=0, rtol=0)


def test_lazy_adam_refuses_a_dense_gradient_and_bad_settings():
    param = torch.zeros(2, 2, requires_grad=True)
    param.grad = torch.ones(2, 2)
    with pytest.raises(ValueError, match="sparse gradient"):
        LazyAdam([param]).step()
    with pytest.raises(ValueError, match="lr"):
        LazyAdam([param], lr=0)
