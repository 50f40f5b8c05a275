"""Memory guards: what this machine has, and refusing work that cannot fit before it starts."""

from __future__ import annotations

from pathlib import Path

from seqrec.config import Config


def available_memory_bytes() -> int | None:
    """``MemAvailable`` from /proc/meminfo in bytes (None where unreadable)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_softmax_memory(config: Config, n_items: int, available: int | None = None) -> int:
    """Refuse a full-catalogue softmax whose logits cannot fit in memory, before training starts.

    One batch holds up to ``batch_size × max_seq_len`` target positions, each scored against all
    ``n_items + 1`` items; logits, their softmax and its gradient make about three float32 copies.

    Args:
        config: the training config (only ``loss == "softmax"`` is checked).
        n_items: catalogue size.
        available: bytes of memory to compare with; default MemAvailable of this machine
            (for CUDA the check uses the same host figure: a conservative bound).

    Returns:
        the estimated peak bytes of the logits (0 for sampled losses).

    Raises:
        MemoryError: the estimate exceeds half of the available memory; the message gives the
            estimate and what to change.
    """
    if config.loss != "softmax":
        return 0
    estimate = 3 * 4 * config.batch_size * config.max_seq_len * (n_items + 1)
    available = available_memory_bytes() if available is None else available
    if available is not None and estimate > available // 2:
        raise MemoryError(
            f"full softmax over {n_items:,} items needs about {estimate / 2**30:.1f} GiB per batch "
            f"(3 × 4 bytes × batch_size {config.batch_size} × max_seq_len {config.max_seq_len} × "
            f"{n_items + 1:,} items) but only {available / 2**30:.1f} GiB is available: use "
            f"loss='sampled_softmax' (or a smaller batch_size / max_seq_len)")
    return estimate
