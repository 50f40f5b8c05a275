"""File-system helpers shared by the writers of model directories and output files (no heavy imports)."""

from __future__ import annotations

import os
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def apply_umask(path: str | Path) -> None:
    """Give ``path`` (a file, or a directory and everything in it) the permissions a plain
    ``open``/``mkdir`` would have given under the current umask.

    Temporary files and directories (``tempfile.mkstemp`` / ``mkdtemp``, safetensors' writer) are
    created private (0600 / 0700); a model directory or output file renamed into place from one
    would stay unreadable to the other users who serve or read it.
    """
    mask = _current_umask()
    path = Path(path)
    paths = [path, *path.rglob("*")] if path.is_dir() else [path]
    for item in paths:
        os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~mask)
