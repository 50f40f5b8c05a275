"""The sequence encoder: item + positional embeddings → transformer layers → final layer norm.

Item embeddings are shared with the output layer: the score of item ``i`` for a hidden state
``h`` is ``h · E[i]`` (``similarity="dot"``), or with both sides L2-normalised and the hidden
side divided by a temperature (``"cosine"``: the output hidden states and candidate embeddings
carry the normalisation, so every consumer keeps scoring with a plain dot product). Index 0
(PAD) and, when the objective needs it, ``n_items + 1`` (MASK) have embeddings but are never
scored as candidates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqrec.data.catalogue import PAD
from seqrec.layers import Dropout, attention_mask, dropout
from seqrec.objectives import Times

COSINE_EPS = 1e-6
"""``eps`` of the L2 normalisation under ``similarity="cosine"`` (the reference codes' value)."""


class SequenceEncoder(nn.Module):
    """Transformer encoder over left-padded item sequences.

    Args:
        n_items: catalogue size; item indices are 1..n_items.
        dim: embedding width.
        max_seq_len: longest input window; positions are counted from the end of the window, so
            the most recent item always gets the same positional embedding (left padding and
            length-bucketed batches of any width then agree).
        dropout: dropout on the input embeddings (layers hold their own).
        layers: transformer blocks built by :mod:`seqrec.build`.
        with_mask_token: reserve index ``n_items + 1`` for MASK (masked-item objective).
        item_dropout: dropout on the rows of the item embedding table during training, one mask
            per step shared by the input lookups and the output scores (RecTools 0.13's id item
            network, used by the eSASRec reference code); 0 turns it off.
        final_norm: a layer norm after the last block (the LiGR reference has none).
        similarity: ``"dot"`` or ``"cosine"``: ``h / (|h| τ) · E[i] / |E[i]|``, as the HSTU
            (arXiv 2402.17152) and FuXi-α (arXiv 2502.00679) reference code trains.
        temperature: τ of ``"cosine"`` (0.05 in both reference codes); unused for ``"dot"``.
        stochastic_depth: stochastic depth (Huang et al., ECCV 2016, "Deep Networks with
            Stochastic Depth"; per block, as LayerDrop, Fan et al., ICLR 2020): in training, each
            block is skipped for a whole sequence with probability ``p_i``, rising linearly from 0
            at the first block to ``stochastic_depth`` at the last (timm's ``drop_path`` rule), and
            a kept block's change to its input is scaled by ``1 / (1 - p_i)``. A single block is
            never skipped; 0 turns it off.
    """

    def __init__(self, n_items: int, dim: int, max_seq_len: int, dropout: float,
                 layers: list[nn.Module], with_mask_token: bool = False,
                 item_dropout: float = 0.0, final_norm: bool = True,
                 similarity: str = "dot", temperature: float = 0.05,
                 stochastic_depth: float = 0.0) -> None:
        super().__init__()
        self.similarity = similarity
        self.temperature = temperature
        self.n_items = n_items
        self.max_seq_len = max_seq_len
        self.item_dropout = item_dropout
        self.item_embedding = nn.Embedding(n_items + 1 + int(with_mask_token), dim, padding_idx=PAD)
        self.position_embedding = nn.Embedding(max_seq_len, dim)
        self.dropout = Dropout(dropout)
        self.layers = nn.ModuleList(layers)
        last = max(len(layers) - 1, 1)
        self.skip_rates = [stochastic_depth * i / last for i in range(len(layers))]
        self.final_norm = nn.LayerNorm(dim) if final_norm else nn.Identity()
        # item and position embeddings on the same scale, so that neither drowns the other at
        # the input (nn.Embedding's default N(0, 1) position table would swamp the items)
        nn.init.normal_(self.item_embedding.weight, std=dim**-0.5)
        nn.init.normal_(self.position_embedding.weight, std=dim**-0.5)
        with torch.no_grad():
            self.item_embedding.weight[PAD].zero_()

    def item_table(self) -> Tensor:
        """``(n_items + 1 [+ 1 MASK], dim)`` item embeddings as this step sees them: with
        ``item_dropout`` applied in training mode, the plain table otherwise."""
        weight = self.item_embedding.weight
        if self.training and self.item_dropout > 0:
            return dropout(weight, self.item_dropout)
        return weight

    def item_rows(self, indices: Tensor) -> Tensor:
        """``(len(indices), dim)`` rows of the item table as this step sees them (item dropout in
        training mode), looked up with a sparse gradient: a step that reads only these rows
        makes only them change (see ``Config.item_updates``).

        Args:
            indices: ``(n,)`` int64 distinct item indices (PAD and MASK allowed).
        """
        rows = F.embedding(indices, self.item_embedding.weight, padding_idx=PAD, sparse=True)
        if self.training and self.item_dropout > 0:
            rows = dropout(rows, self.item_dropout)
        return rows

    @property
    def uses_times(self) -> bool:
        """True when a layer's attention reads event times (HSTU, FuXi-α)."""
        return any(getattr(layer, "uses_times", False) for layer in self.layers)

    def encode(self, inputs: Tensor, causal: bool, last_only: bool = False,
               table: Tensor | None = None, times: Times | None = None) -> Tensor:
        """Encode item windows.

        Args:
            inputs: ``(batch, seq_len)`` int64 item indices, left-padded with PAD;
                ``seq_len <= max_seq_len``.
            causal: attention direction, decided by the objective.
            last_only: return the last position only (inference).
            table: the item table to look inputs up in (from :meth:`item_table`, so that a
                training step scores its candidates with the same dropout mask); default
                :meth:`item_table`.
            times: the window's event times for time-aware layers (:attr:`uses_times`),
                ``(batch, seq_len)`` each; other layers ignore them.

        Returns:
            ``(batch, seq_len, dim)`` float hidden states, or ``(batch, dim)`` when ``last_only``.
            Rows at padding positions hold values that nothing downstream may use.

        Raises:
            ValueError: ``inputs`` is not 2-D or is longer than ``max_seq_len``.
        """
        if inputs.dim() != 2 or inputs.shape[1] > self.max_seq_len:
            raise ValueError(f"inputs: expected (batch, seq_len <= {self.max_seq_len}), got {tuple(inputs.shape)}")
        seq_len = inputs.shape[1]
        is_padding = inputs == PAD
        positions = torch.arange(self.max_seq_len - seq_len, self.max_seq_len, device=inputs.device)
        table = self.item_table() if table is None else table
        x = F.embedding(inputs, table) + self.position_embedding(positions)  # (batch, seq_len, dim)
        x = self.dropout(x) * (~is_padding).unsqueeze(-1)
        mask = attention_mask(is_padding, causal)
        for i, layer in enumerate(self.layers):
            out = layer(x, mask, last_only=last_only and i == len(self.layers) - 1, times=times)
            x = self._skip_block(x, out, self.skip_rates[i])
        x = self.final_norm(x)
        if self.similarity == "cosine":
            x = F.normalize(x, dim=-1, eps=COSINE_EPS) / self.temperature
        return x[:, -1] if last_only else x

    def _skip_block(self, x: Tensor, out: Tensor, rate: float) -> Tensor:
        """``out`` (a block's output for input ``x``, both ``(batch, seq_len, dim)``), or in
        training with ``rate > 0``: ``x`` for a share ``rate`` of the sequences and
        ``x + (out - x) / (1 - rate)`` for the rest (see ``stochastic_depth``)."""
        if not self.training or rate == 0:
            return out
        keep = torch.rand(x.shape[0], 1, 1, device=x.device) >= rate
        return x + (out - x) * (keep / (1 - rate))

    def output_rows(self, rows: Tensor) -> Tensor:
        """Item rows ``(n, dim)`` as candidates are scored: L2-normalised for ``"cosine"``,
        unchanged for ``"dot"``."""
        if self.similarity == "cosine":
            return F.normalize(rows, dim=-1, eps=COSINE_EPS)
        return rows

    def candidate_embeddings(self, table: Tensor | None = None) -> Tensor:
        """``(n_items + 1, dim)`` output embeddings of PAD and the catalogue (MASK excluded),
        taken from ``table`` (a training step's :meth:`item_table`) or the plain weights, as
        :meth:`output_rows` scores them."""
        table = self.item_embedding.weight if table is None else table
        return self.output_rows(table[: self.n_items + 1])

    def scores(self, hidden: Tensor) -> Tensor:
        """Full-catalogue scores.

        Args:
            hidden: ``(batch, dim)`` last-position hidden states.

        Returns:
            ``(batch, n_items + 1)`` float32; column 0 (PAD) is ``-inf``.
        """
        scores = hidden.float() @ self.candidate_embeddings().float().T
        scores[:, PAD] = float("-inf")
        return scores


