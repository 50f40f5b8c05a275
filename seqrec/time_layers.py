"""Layers whose attention reads positions and event times: HSTU and FuXi-α.

* :class:`HSTULayer` — Hierarchical Sequential Transduction Unit (Zhai et al., "Actions Speak
  Louder than Words", ICML 2024, arXiv 2402.17152, eq. 1–3): ``U, V, Q, K = Split(φ₁(f₁(X)))``
  with SiLU for φ₁; pointwise aggregated attention ``A = φ₂(QKᵀ + rab(p, t)) / n`` with SiLU for
  φ₂, normalised by the sequence length instead of a softmax; ``Y = f₂(Norm(A V) ⊙ U)``, plus
  the residual.
* :class:`FuXiAlphaLayer` — FuXi-α (Ye et al., arXiv 2502.00679): adaptive multi-channel
  self-attention, where a semantic channel (HSTU's ``φ₂(QKᵀ) / n``), a positional channel
  (learned weights of relative position) and a temporal channel (learned weights of the bucketed
  time gap) each aggregate ``V`` separately, the three outputs concatenated and gated by ``U``;
  then a multi-stage feed-forward network: a projection back to ``dim`` with the residual, and a
  SwiGLU stage over an RMS-normalised input with its own residual. Its two attention-side norms
  (of the block input and of the concatenated channels) are RMS norms, as in the FuXi-α
  reference code (USTC-StarTeam/FuXi-alpha, ``fuxi.py``); HSTU's are layer norms. With a layer
  norm over the concatenated channels, the mean subtracted is shared by three channels of
  different scales (the semantic one is divided by the sequence length, the others are not).

Relative attention bias (:class:`RelativeBias`, both papers and the HSTU reference code): a
learned weight per relative position ``j - i`` (Toeplitz), and a learned weight per bucket of the
time gap ``t_query(i) - t(j)``, bucketed as ``floor(ln(max(|Δt|, 1)) / 0.301)`` (base-2
logarithm scaled, about 1.3 buckets per doubling) and clipped to ``n_buckets``. The query time of
position ``i`` is the time of the event it predicts (:class:`seqrec.objectives.Times`).

Both take and return ``(batch, seq_len, dim)`` like every layer (:mod:`seqrec.layers`), with the
boolean mask of :func:`seqrec.layers.attention_mask` (True = attend) and ``last_only``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqrec.layers import Dropout
from seqrec.objectives import Times


class RelativeBias(nn.Module):
    """Learned attention weights of relative position and bucketed time gap.

    Args:
        max_seq_len: longest window (relative positions ``-(n - 1) .. n - 1``).
        n_buckets: largest time bucket (the HSTU reference: 128).
    """

    def __init__(self, max_seq_len: int, n_buckets: int = 128) -> None:
        super().__init__()
        self.max_seq_len = max_seq_len
        self.n_buckets = n_buckets
        self.position = nn.Parameter(torch.empty(2 * max_seq_len - 1).normal_(std=0.02))
        self.time = nn.Parameter(torch.empty(n_buckets + 1).normal_(std=0.02))

    def forward(self, seq_len: int, times: Times | None,
                last_only: bool = False) -> tuple[Tensor, Tensor]:
        """Args:
            seq_len: window length ``n``.
            times: event times; None (no times known) gives every gap bucket 0.
            last_only: queries of the last position only.

        Returns:
            ``(position, time)``: ``(q_len, n)`` and ``(batch or 1, q_len, n)`` float weights,
            ``q_len`` = 1 with ``last_only`` else ``n``.
        """
        device = self.position.device
        keys = torch.arange(seq_len, device=device)
        queries = keys[-1:] if last_only else keys
        position = self.position[keys[None, :] - queries[:, None] + self.max_seq_len - 1]
        if times is None:
            return position, self.time[0].expand(1, len(queries), seq_len)
        query_times = times.queries[:, -1:] if last_only else times.queries  # (batch, q_len)
        gap = query_times[:, :, None] - times.inputs[:, None, :]  # (batch, q_len, n)
        buckets = (torch.log(gap.abs().clamp(min=1).float()) / 0.301).long()
        return position, self.time[buckets.clamp(0, self.n_buckets)]


def _norm(x: Tensor, kind: str) -> Tensor:
    """Normalisation without affine parameters over the last dimension: ``"layer"`` (HSTU's
    reference) or ``"rms"`` (FuXi-α's reference)."""
    if kind == "rms":
        return F.rms_norm(x, x.shape[-1:], eps=1e-6)
    return F.layer_norm(x, x.shape[-1:], eps=1e-6)


def _uvqk(x: Tensor, weight: Tensor, sizes: list[int], norm: str = "layer") -> list[Tensor]:
    """``Split(SiLU(Norm(x) W))`` (no affine norm, as the references)."""
    return list(F.silu(_norm(x, norm) @ weight).split(sizes, dim=-1))


def _semantic(q: Tensor, k: Tensor, mask: Tensor, n_heads: int, max_seq_len: int,
              bias: Tensor | None) -> Tensor:
    """``SiLU(QKᵀ (+ bias)) / max_seq_len`` over allowed keys: ``(batch, heads, q_len, n)``."""
    batch, q_len, _ = q.shape
    q = q.view(batch, q_len, n_heads, -1).transpose(1, 2)  # (batch, heads, q_len, d)
    k = k.view(batch, k.shape[1], n_heads, -1).transpose(1, 2)  # (batch, heads, n, d)
    scores = q @ k.transpose(-1, -2)  # (batch, heads, q_len, n)
    if bias is not None:
        scores = scores + bias[:, None]
    # normalised by the window length, not a softmax (HSTU eq. 2); a constant divisor keeps the
    # scale alike for windows of every length (our batches are padded to their own longest row)
    return F.silu(scores) / max_seq_len * mask


def _aggregate(weights: Tensor, v: Tensor, n_heads: int) -> Tensor:
    """``weights (batch, heads or 1, q_len, n) @ V`` → ``(batch, q_len, heads · d)``."""
    batch, n, _ = v.shape
    v = v.view(batch, n, n_heads, -1).transpose(1, 2)  # (batch, heads, n, d)
    out = weights @ v  # (batch, heads, q_len, d)
    return out.transpose(1, 2).reshape(batch, out.shape[2], -1)


class HSTULayer(nn.Module):
    """One HSTU block (see the module docstring); ``ff_multiplier`` is unused (HSTU has no
    feed-forward: ``f₂`` is one linear map)."""

    uses_times = True

    def __init__(self, dim: int, n_heads: int, dropout: float, ff_multiplier: int = 1,
                 max_seq_len: int = 50) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.max_seq_len = max_seq_len
        self.uvqk = nn.Parameter(torch.empty(dim, 4 * dim).normal_(std=0.02))
        self.bias = RelativeBias(max_seq_len)
        self.out = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.out.weight)
        self.drop = Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor, last_only: bool = False,
                times: Times | None = None) -> Tensor:
        """Args:
            x: ``(batch, seq_len, dim)`` float block input.
            mask: ``(batch, 1, seq_len, seq_len)`` bool, True = attend.
            last_only: compute the last position only.
            times: the window's event times (None: time gaps all count as 0).

        Returns:
            ``(batch, seq_len, dim)``, or ``(batch, 1, dim)`` with ``last_only``.
        """
        dim = x.shape[-1]
        u, v, q, k = _uvqk(x, self.uvqk, [dim, dim, dim, dim])
        x_q = x[:, -1:] if last_only else x
        if last_only:
            u, q, mask = u[:, -1:], q[:, -1:], mask[:, :, -1:]
        position, time = self.bias(x.shape[1], times, last_only)
        weights = _semantic(q, k, mask, self.n_heads, self.max_seq_len, position + time)
        attended = _aggregate(weights, v, self.n_heads)  # (batch, q_len, dim)
        gated = u * F.layer_norm(attended, attended.shape[-1:], eps=1e-6)
        return x_q + self.out(self.drop(gated))


class FuXiAlphaLayer(nn.Module):
    """One FuXi-α block (see the module docstring): adaptive multi-channel self-attention and a
    multi-stage feed-forward network of width ``ff_multiplier × dim``."""

    uses_times = True

    def __init__(self, dim: int, n_heads: int, dropout: float, ff_multiplier: int = 1,
                 max_seq_len: int = 50) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.max_seq_len = max_seq_len
        self.uvqk = nn.Parameter(torch.empty(dim, 6 * dim).normal_(std=0.02))  # u is 3 · dim
        self.bias = RelativeBias(max_seq_len)
        self.project = nn.Linear(3 * dim, dim)  # stage 1: the channels back to dim
        self.gate = nn.Linear(dim, ff_multiplier * dim, bias=False)  # stage 2: SwiGLU
        self.up = nn.Linear(dim, ff_multiplier * dim, bias=False)
        self.down = nn.Linear(ff_multiplier * dim, dim, bias=False)
        for linear in (self.project, self.gate, self.up, self.down):
            nn.init.xavier_uniform_(linear.weight)
        self.drop = Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor, last_only: bool = False,
                times: Times | None = None) -> Tensor:
        """Same contract as :meth:`HSTULayer.forward`."""
        dim = x.shape[-1]
        u, v, q, k = _uvqk(x, self.uvqk, [3 * dim, dim, dim, dim], norm="rms")
        x_q = x[:, -1:] if last_only else x
        if last_only:
            u, q, mask = u[:, -1:], q[:, -1:], mask[:, :, -1:]
        position, time = self.bias(x.shape[1], times, last_only)
        semantic = _aggregate(_semantic(q, k, mask, self.n_heads, self.max_seq_len, None), v,
                              self.n_heads)
        positional = _aggregate(position * mask, v, 1)  # one weight map for every head
        temporal = _aggregate(time[:, None] * mask, v, 1)
        channels = torch.cat([positional, temporal, semantic], dim=-1)  # (batch, q_len, 3 · dim)
        gated = u * _norm(channels, "rms")
        h = x_q + self.project(self.drop(gated))  # stage 1
        normed = self.drop(F.rms_norm(h, h.shape[-1:], eps=1e-6))
        return h + self.down(F.silu(self.gate(normed)) * self.up(normed))  # stage 2
