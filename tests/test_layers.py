"""Transformer layers (contract tests over every TransformerLayer): padding content never changes
real positions, causal attention does not leak the future, last_only equals the full forward."""

import math

import pytest
import torch

from seqrec.layers import LiGRLayer, SASRecLayer, attention_mask
from seqrec.objectives import Times
from seqrec.time_layers import FuXiAlphaLayer, HSTULayer

LAYERS = {"sasrec": SASRecLayer, "ligr": LiGRLayer, "hstu": HSTULayer,
          "fuxi_alpha": FuXiAlphaLayer}
TIME_LAYERS = ("hstu", "fuxi_alpha")
ATOL = 1e-5
DIM, HEADS, MAX_LEN = 16, 2, 9


def _layer(name: str):
    torch.manual_seed(0)
    extra = {"max_seq_len": MAX_LEN} if name in TIME_LAYERS else {}
    layer = LAYERS[name](DIM, HEADS, dropout=0.3, ff_multiplier=2, **extra).eval()
    if name in TIME_LAYERS:  # the relative-bias weights start at N(0, 0.02): make them count
        with torch.no_grad():
            layer.bias.position.normal_(std=1.0)
            layer.bias.time.normal_(std=1.0)
    return layer


def _padding(lengths: list[int], seq_len: int) -> torch.Tensor:
    """``(batch, seq_len)`` bool, left padding."""
    return torch.arange(seq_len)[None, :] < (seq_len - torch.tensor(lengths))[:, None]


def test_attention_mask_written_out():
    is_padding = torch.tensor([[True, False, False]])
    causal = attention_mask(is_padding, causal=True)[0, 0].int().tolist()
    both = attention_mask(is_padding, causal=False)[0, 0].int().tolist()
    # row = query, column = key; a padding query sees only itself (no NaN rows)
    assert causal == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert both == [[1, 1, 1], [0, 1, 1], [0, 1, 1]]


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_padding_content_never_changes_real_positions(name, causal):
    layer = _layer(name)
    is_padding = _padding([5, 2, 7], seq_len=7)
    mask = attention_mask(is_padding, causal)
    x = torch.randn(3, 7, DIM)
    garbage = torch.where(is_padding[..., None], 1e3 * torch.randn(3, 7, DIM), x)
    with torch.no_grad():
        clean, dirty = layer(x, mask), layer(garbage, mask)
    real = ~is_padding
    torch.testing.assert_close(dirty[real], clean[real], atol=ATOL, rtol=0)


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_extra_left_padding_never_changes_real_positions(name, causal):
    layer = _layer(name)
    x = torch.randn(2, 4, DIM)
    padded = torch.cat([torch.zeros(2, 5, DIM), x], dim=1)
    with torch.no_grad():
        short = layer(x, attention_mask(_padding([4, 4], 4), causal))
        long = layer(padded, attention_mask(_padding([4, 4], 9), causal))
    torch.testing.assert_close(long[:, 5:], short, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_causal_outputs_up_to_t_ignore_position_t_plus_1(name):
    layer = _layer(name)
    mask = attention_mask(_padding([6, 6], 6), causal=True)
    x = torch.randn(2, 6, DIM)
    t = 2
    changed = x.clone()
    changed[:, t + 1] = torch.randn(2, DIM)
    with torch.no_grad():
        before, after = layer(x, mask), layer(changed, mask)
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], atol=ATOL, rtol=0)
    assert not torch.allclose(after[:, t + 1], before[:, t + 1], atol=ATOL)  # the probe is live


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_bidirectional_outputs_do_see_later_positions(name):
    layer = _layer(name)
    mask = attention_mask(_padding([6], 6), causal=False)
    x = torch.randn(1, 6, DIM)
    changed = x.clone()
    changed[:, 3] = torch.randn(DIM)
    with torch.no_grad():
        assert not torch.allclose(layer(x, mask)[:, 0], layer(changed, mask)[:, 0], atol=ATOL)


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_last_only_equals_last_position_of_full_forward(name, causal):
    layer = _layer(name)
    mask = attention_mask(_padding([7, 3, 1], 7), causal)
    x = torch.randn(3, 7, DIM)
    with torch.no_grad():
        full, last = layer(x, mask), layer(x, mask, last_only=True)
    assert last.shape == (3, 1, DIM)
    torch.testing.assert_close(last, full[:, -1:], atol=ATOL, rtol=0)


def test_dropout_keeps_each_element_with_probability_one_minus_p_and_preserves_the_mean():
    from seqrec.layers import dropout

    torch.manual_seed(0)
    x = torch.ones(2000, 500)
    y = dropout(x, 0.2)
    kept = (y != 0).float().mean().item()
    assert abs(kept - 0.8) < 0.002  # 1e6 draws: standard error 4e-4
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 65536 / (65536 - 13107)))
    assert abs(y.mean().item() - 1.0) < 0.003
    assert torch.equal(dropout(x, 0.2, training=False), x)
    torch.manual_seed(1)
    first = dropout(x[:3], 0.5)
    torch.manual_seed(1)
    assert torch.equal(dropout(x[:3], 0.5), first)  # the global seed decides, as for nn.Dropout


def _times(batch: int, seq_len: int, seed: int = 0) -> Times:
    """Increasing event times, gaps of seconds to days; each position queries the next time."""
    generator = torch.Generator().manual_seed(seed)
    stamps = torch.cumsum(torch.randint(1, 200_000, (batch, seq_len + 1), generator=generator), 1)
    return Times(stamps[:, :-1], stamps[:, 1:])


@pytest.mark.parametrize("name", TIME_LAYERS)
def test_time_aware_layers_read_times_and_padding_times_never_matter(name):
    layer = _layer(name)
    is_padding = _padding([5, 2, 7], seq_len=7)
    mask = attention_mask(is_padding, causal=True)
    x = torch.randn(3, 7, DIM)
    times = _times(3, 7)
    other = Times(torch.where(is_padding, times.inputs + 10**9, times.inputs), times.queries)
    with torch.no_grad():
        timed, untimed = layer(x, mask, times=times), layer(x, mask)
        padded_differently = layer(x, mask, times=other)
    real = ~is_padding
    assert not torch.allclose(timed[real], untimed[real], atol=ATOL)  # times are read
    torch.testing.assert_close(padded_differently[real], timed[real], atol=ATOL, rtol=0)
    with torch.no_grad():
        last = layer(x, mask, last_only=True, times=times)
    torch.testing.assert_close(last, timed[:, -1:], atol=ATOL, rtol=0)


def _bucket(gap: int) -> int:
    return min(max(int(math.log(max(abs(gap), 1)) / 0.301), 0), 128)


def _reference_attention(layer, x, times, n_heads):
    """The papers' equations, one query and one key at a time (causal, no padding)."""
    batch, n, dim = x.shape
    if isinstance(layer, HSTULayer):  # HSTU's reference normalises with layer norms
        normed = torch.nn.functional.layer_norm(x, (dim,), eps=1e-6)
    else:  # FuXi-α's with RMS norms (USTC-StarTeam/FuXi-alpha)
        normed = torch.nn.functional.rms_norm(x, (dim,), eps=1e-6)
    projected = torch.nn.functional.silu(normed @ layer.uvqk)
    u_size = projected.shape[-1] - 3 * dim
    u, v, q, k = projected.split([u_size, dim, dim, dim], dim=-1)
    head = dim // n_heads
    semantic = torch.zeros(batch, n, dim)
    positional = torch.zeros(batch, n, dim)
    temporal = torch.zeros(batch, n, dim)
    for b in range(batch):
        for i in range(n):
            for j in range(i + 1):
                p = layer.bias.position[j - i + layer.max_seq_len - 1]
                t = layer.bias.time[_bucket(int(times.queries[b, i] - times.inputs[b, j]))]
                for h in range(n_heads):
                    cols = slice(h * head, (h + 1) * head)
                    score = q[b, i, cols] @ k[b, j, cols]
                    if isinstance(layer, HSTULayer):
                        score = score + p + t
                    weight = torch.nn.functional.silu(score) / layer.max_seq_len
                    semantic[b, i, cols] += weight * v[b, j, cols]
                positional[b, i] += p * v[b, j]
                temporal[b, i] += t * v[b, j]
    return u, semantic, positional, temporal


@pytest.mark.parametrize("name", TIME_LAYERS)
def test_time_aware_layers_match_the_papers_equations_written_as_loops(name):
    layer = _layer(name)
    x = torch.randn(2, 5, DIM)
    times = _times(2, 5, seed=1)
    mask = attention_mask(_padding([5, 5], 5), causal=True)
    with torch.no_grad():
        out = layer(x, mask, times=times)
        u, semantic, positional, temporal = _reference_attention(layer, x, times, HEADS)
        norm = torch.nn.functional.layer_norm
        if name == "hstu":  # y = x + f2(u * Norm(A V))
            expected = x + layer.out(u * norm(semantic, (DIM,), eps=1e-6))
        else:  # channels [positional, temporal, semantic]; then the two feed-forward stages
            channels = torch.cat([positional, temporal, semantic], dim=-1)
            rms = torch.nn.functional.rms_norm
            h = x + layer.project(u * rms(channels, (3 * DIM,), eps=1e-6))
            r = torch.nn.functional.rms_norm(h, (DIM,), eps=1e-6)
            expected = h + layer.down(torch.nn.functional.silu(layer.gate(r)) * layer.up(r))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
