"""Regularisation that grows with the model: the rates the ``esasrec`` preset derives from its size.

Two empirical rules, measured on Amazon Beauty, leave-one-out (``benchmarks/RESULTS.md``, section
1, "Width and depth"): a wider item table and a deeper stack each fit the training sequences
sooner than dim 64 / 1 block and, at the same dropout, stop improving on validation below it.
:class:`seqrec.config.Config` applies them when ``item_dropout = "width"`` or ``dropout =
"depth"``.
"""

from __future__ import annotations

import math


def item_dropout_for_width(dim: int) -> float:
    """The item-table dropout rate ``item_dropout="width"`` gives a table ``dim`` wide.

    ``0.2 + 0.1 * log2(dim / 64)``, clipped to [0, 0.5]: 0.2 at dim 64, 0.3 at 128, 0.4 at 256.
    With 0.2 at every width, dim 128 and 256 drive the training loss down several times faster
    than dim 64 and stop improving on validation after 12-26 epochs, below dim 64; 0.4 at dim
    256 holds it at the eSASRec paper's figures (Recall@10 / NDCG@10 0.0916 / 0.0527 over 3
    seeds, paper 0.0928 / 0.0523); 0.3 at dim 128 gives 0.0912 / 0.0549 (3 seeds; dim 64:
    0.0909 / 0.0539).

    Args:
        dim: embedding width (>= 1).

    Returns:
        The dropout rate, in [0, 0.5].
    """
    return round(min(0.5, max(0.0, 0.2 + 0.1 * math.log2(dim / 64))), 6)  # 0.3, not 0.30000000000000004


def dropout_for_depth(n_layers: int) -> float:
    """The dropout rate inside the blocks (and on the input embeddings) that ``dropout="depth"``
    gives a stack of ``n_layers`` blocks.

    0.2 up to 2 blocks, then 0.05 more per block, at most 0.4: 0.25 at 3 blocks, 0.3 at 4, 0.4
    from 6. Measured at 1, 2 and 4 blocks (dim 64): two blocks hold with 0.2 (test Recall@10 /
    NDCG@10 0.0920 / 0.0544 over 3 seeds; 1 block 0.0909 / 0.0539); four blocks overfit with 0.2
    (training loss below two blocks', 0.0892 / 0.0522) and hold with 0.3 (0.0923 / 0.0535 over 3
    seeds). The rates at 3 and at 5 or more blocks are interpolated and extrapolated, not
    measured.

    Args:
        n_layers: number of transformer blocks (>= 1).

    Returns:
        The dropout rate, in [0.2, 0.4].
    """
    return round(min(0.4, 0.2 + 0.05 * max(0, n_layers - 2)), 6)


RULES = {"dropout": ("depth", "n_layers", dropout_for_depth),
         "item_dropout": ("width", "dim", item_dropout_for_width)}
"""Config key → (the word that names its rule, the size field the rule reads, the rule)."""
