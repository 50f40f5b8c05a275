"""Transformer layers: the original SASRec block and LinkedIn's LiGR block (the time-aware HSTU
and FuXi-α blocks are in :mod:`seqrec.time_layers`).

Both take ``x (batch, seq_len, dim)`` and an attention mask built once per batch by
:func:`attention_mask`, and use :func:`torch.nn.functional.scaled_dot_product_attention`.
With ``last_only=True`` a layer computes its output for the last position only
``(batch, 1, dim)``: inference needs nothing else, and the final layer then skips the
feed-forward work of every other position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from seqrec.objectives import Times


def attention_mask(is_padding: Tensor, causal: bool) -> Tensor:
    """Boolean mask of which keys each query may attend to (True = attend).

    Args:
        is_padding: ``(batch, seq_len)`` bool, True at PAD positions (sequences are left-padded).
        causal: if True, query ``t`` sees keys ``<= t`` only (next-item objective).

    Returns:
        ``(batch, 1, seq_len, seq_len)`` bool. Every query may always attend to itself, so that
        padding rows are never fully masked (which would give NaN); real positions never attend
        to padding keys, so padding content cannot change their outputs.
    """
    batch, seq_len = is_padding.shape
    allowed = ~is_padding[:, None, None, :]  # (batch, 1, 1, seq_len)
    if causal:
        lower = torch.ones(seq_len, seq_len, dtype=torch.bool, device=is_padding.device).tril()
        allowed = allowed & lower
    eye = torch.eye(seq_len, dtype=torch.bool, device=is_padding.device)
    return allowed | eye  # (batch, 1, seq_len, seq_len)


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Inverted dropout (Srivastava et al., JMLR 2014) drawn from 16-bit uniform integers.

    Each element is kept with probability ``1 - p_q`` and scaled by ``1 / (1 - p_q)``, where
    ``p_q = round(p · 65536) / 65536`` (``|p_q - p| <= 7.7e-6``). The random bits come from
    ``torch.randint`` over int64 words, four 16-bit draws per word: on CPU about three times
    faster than the per-element Bernoulli draws of ``torch.nn.functional.dropout``, which are
    the largest single cost of a training step.

    Args:
        x: any float tensor.
        p: share of elements zeroed, in [0, 1).
        training: identity when False.

    Returns:
        a tensor of ``x``'s shape and dtype.
    """
    if not training or p == 0:
        return x
    n = x.numel()
    words = torch.randint(-2**63, 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=x.device)
    bits = words.view(torch.int16)[:n].view(x.shape)  # uniform over -32768..32767
    dropped = round(p * 65536)
    keep = bits >= -32768 + dropped
    return x * keep * (65536 / (65536 - dropped))


class Dropout(nn.Module):
    """:func:`dropout` as a module (``nn.Dropout``'s interface)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class TransformerLayer(Protocol):
    """A transformer block: ``(batch, seq_len, dim) -> (batch, seq_len or 1, dim)``."""

    def __call__(self, x: Tensor, mask: Tensor, last_only: bool = False,
                 times: Times | None = None) -> Tensor:
        """``(batch, seq_len, dim)`` → the same (``(batch, 1, dim)`` with ``last_only``);
        ``times`` are the window's event times, read only by time-aware layers
        (:mod:`seqrec.time_layers`) and ignored here at no cost."""
        ...


class SelfAttention(nn.Module):
    """Multi-head self-attention with fused QKV projection and SDPA.

    With ``last_only`` only the last position's query is computed (keys/values use all
    positions): output ``(batch, 1, dim)``.
    """

    def __init__(self, dim: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, query_in: Tensor, kv_in: Tensor, mask: Tensor, last_only: bool = False) -> Tensor:
        """Args:
            query_in: ``(batch, seq_len, dim)`` source of the queries.
            kv_in: ``(batch, seq_len, dim)`` source of keys and values.
            mask: ``(batch, 1, seq_len, seq_len)`` bool, True = attend.
            last_only: queries of the last position only.

        Returns:
            ``(batch, seq_len or 1, dim)``.
        """
        batch, seq_len, dim = kv_in.shape
        head = dim // self.n_heads
        if query_in is kv_in and not last_only:
            q, k, v = self.qkv(kv_in).split(dim, dim=-1)
        else:
            w_q, w_kv = self.qkv.weight.split([dim, 2 * dim])
            b_q, b_kv = self.qkv.bias.split([dim, 2 * dim])
            q_src = query_in[:, -1:] if last_only else query_in
            q = F.linear(q_src, w_q, b_q)
            k, v = F.linear(kv_in, w_kv, b_kv).split(dim, dim=-1)
            if last_only:
                mask = mask[:, :, -1:, :]
        q = q.view(batch, -1, self.n_heads, head).transpose(1, 2)  # (batch, n_heads, q_len, head)
        k = k.view(batch, seq_len, self.n_heads, head).transpose(1, 2)
        v = v.view(batch, seq_len, self.n_heads, head).transpose(1, 2)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        y = y.transpose(1, 2).reshape(batch, -1, dim)  # (batch, q_len, dim)
        return self.out(y)


class SASRecLayer(nn.Module):
    """The original SASRec block (Kang & McAuley, ICDM 2018, self-attention and point-wise feed-forward blocks).

    ``q = LN(x)``; ``h = q + Attn(q, x, x)``; ``out = h' + FFN(h')`` with ``h' = LN(h)`` and a
    ReLU point-wise feed-forward of width ``ff_multiplier × dim`` (1 in the paper), dropout after
    attention and in the feed-forward.
    """

    def __init__(self, dim: int, n_heads: int, dropout: float, ff_multiplier: int = 1) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, n_heads, dropout)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(
            nn.Linear(dim, ff_multiplier * dim), nn.ReLU(), Dropout(dropout),
            nn.Linear(ff_multiplier * dim, dim), Dropout(dropout),
        )
        self.drop = Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor, last_only: bool = False,
                times: Times | None = None) -> Tensor:
        """Args:
            x: ``(batch, seq_len, dim)`` float block input.
            mask: ``(batch, 1, seq_len, seq_len)`` bool from :func:`attention_mask`.
            last_only: compute the last position only.
            times: ignored (SASRec reads positions through the input embeddings only).

        Returns:
            ``(batch, seq_len, dim)``, or ``(batch, 1, dim)`` with ``last_only``.
        """
        q = self.norm_attn(x)
        attn = self.drop(self.attn(q, x, mask, last_only))
        h = (q[:, -1:] if last_only else q) + attn
        h = self.norm_ff(h)
        return h + self.ff(h)


class SwiGLU(nn.Module):
    """SwiGLU feed-forward (Shazeer 2020, "GLU Variants Improve Transformer"), no biases:
    ``W_out (silu(W_gate x) * W_up x)`` with hidden width ``ff_multiplier × dim``."""

    def __init__(self, dim: int, ff_multiplier: int, dropout: float) -> None:
        super().__init__()
        self.gate_up = nn.Linear(dim, 2 * ff_multiplier * dim, bias=False)
        self.down = nn.Linear(ff_multiplier * dim, dim, bias=False)
        self.drop = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """``(..., dim) -> (..., dim)``."""
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(self.drop(F.silu(gate) * up))


class LiGRLayer(nn.Module):
    """LiGR block (LinkedIn, arXiv 2502.03417; as used by eSASRec, arXiv 2508.06450).

    Pre-layer-norm attention and SwiGLU feed-forward, each residual scaled by a sigmoid gate
    computed from the block input: ``h = x + σ(G₁ x) ⊙ Drop(Attn(LN(x)))``,
    ``out = h + σ(G₂ h) ⊙ Drop(SwiGLU(LN(h)))``.
    """

    def __init__(self, dim: int, n_heads: int, dropout: float, ff_multiplier: int = 4) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, n_heads, dropout)
        self.gate_attn = nn.Linear(dim, dim)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = SwiGLU(dim, ff_multiplier, dropout)
        self.gate_ff = nn.Linear(dim, dim)
        self.drop = Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor, last_only: bool = False,
                times: Times | None = None) -> Tensor:
        """Args:
            x: ``(batch, seq_len, dim)`` float block input.
            mask: ``(batch, 1, seq_len, seq_len)`` bool from :func:`attention_mask`.
            last_only: compute the last position only.
            times: ignored.

        Returns:
            ``(batch, seq_len, dim)``, or ``(batch, 1, dim)`` with ``last_only``.
        """
        normed = self.norm_attn(x)
        attn = self.attn(normed, normed, mask, last_only)
        x_q = x[:, -1:] if last_only else x
        h = x_q + torch.sigmoid(self.gate_attn(x_q)) * self.drop(attn)
        return h + torch.sigmoid(self.gate_ff(h)) * self.drop(self.ff(self.norm_ff(h)))
