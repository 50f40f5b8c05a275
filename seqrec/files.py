"""Atomic replacement of files and directories, written once for every writer in seqrec.

The promise, for a kill (``kill -9``, power loss after the data reached the disk) at any point of
a write: the path holds the old version or the new one, complete, never nothing and never a mix.

* **Files** (:func:`write_atomic`): written to a temporary file beside the target, flushed and
  fsynced, then renamed over it (``rename`` is atomic within a file system), then the directory
  is fsynced so that the rename itself is durable.
* **Directories** (:func:`staged_dir` + :func:`replace_dir`): built in a temporary directory
  beside the target, every file fsynced, then swapped with the target in one step with Linux's
  ``renameat2(RENAME_EXCHANGE)``. Where the file system or kernel lacks it, the fallback is two
  renames (target → ``.old``, staged → target) with recovery: :func:`recover_dir`, which every
  reader of a model directory calls first, puts the old directory back if a kill struck between
  the two renames.
* **Leftovers**: temporary names are ``.<name>.tmp-<pid>-<random>`` and
  ``.<name>.old-<pid>-<random>``, one scheme for all writers; :func:`clean_leftovers` removes
  those whose process is gone, so repeated kills do not pile up copies.

Permissions follow the umask, as a plain ``open``/``mkdir`` would (temporary files are private).
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

TMP = ".tmp-"
OLD = ".old-"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def apply_umask(path: str | Path) -> None:
    """Give ``path`` (a file, or a directory and everything in it) the permissions a plain
    ``open``/``mkdir`` would have given under the current umask (temporary files and
    directories are created private: 0600 / 0700)."""
    mask = _current_umask()
    path = Path(path)
    paths = [path, *path.rglob("*")] if path.is_dir() else [path]
    for item in paths:
        os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~mask)


def temp_name(target: Path, tag: str = TMP) -> Path:
    """A fresh sibling of ``target`` in the one naming scheme: ``.<name><tag><pid>-<random>``."""
    return target.parent / f".{target.name}{tag}{os.getpid()}-{secrets.token_hex(4)}"


def fsync_dir(path: str | Path) -> None:
    """Make the entries of directory ``path`` (renames, new files) durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a directory
        pass
    finally:
        os.close(fd)


def fsync_tree(path: str | Path) -> None:
    """fsync every file and directory under ``path`` (and ``path`` itself)."""
    root = Path(path)
    for directory, _, files in os.walk(root, topdown=False):
        for name in files:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(directory)


def write_atomic(path: str | Path, data: bytes | str | Callable[[Path], None]) -> Path:
    """Replace file ``path`` with ``data`` atomically (see the module docstring).

    Args:
        path: the file to write; its directory is created if missing.
        data: the bytes or text to write, or a function that writes the temporary file whose
            path it is given (e.g. ``lambda tmp: figure.savefig(tmp, format="png")``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        IsADirectoryError: ``path`` is a directory.
        OSError: the directory cannot be written (nothing is left behind).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        if callable(data):
            data(tmp)
        else:
            tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        apply_umask(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)
    return path


@contextmanager
def staged_dir(target: str | Path) -> Iterator[Path]:
    """A fresh temporary directory beside ``target`` to build its next version in.

    Leftovers of dead writers of the same target are removed first. The directory is removed on
    exit unless :func:`replace_dir` consumed it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(target)
    tmp = temp_name(target)
    tmp.mkdir()
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _exchange(a: Path, b: Path) -> None:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``)."""
    if not sys.platform.startswith("linux"):
        raise OSError(errno.ENOSYS, "RENAME_EXCHANGE needs Linux")
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "this C library has no renameat2")
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(a))


def replace_dir(staged: str | Path, target: str | Path) -> Path:
    """Make the complete directory ``staged`` the new ``target`` in one atomic step.

    Args:
        staged: a directory built beside ``target`` (same file system), e.g. by
            :func:`staged_dir`; it is consumed.
        target: the directory to create or replace whole.

    Returns:
        ``target`` as a :class:`~pathlib.Path`.

    Raises:
        NotADirectoryError: ``target`` exists and is a file.
    """
    staged, target = Path(staged), Path(target)
    apply_umask(staged)
    fsync_tree(staged)
    recover_dir(target)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", str(target))
    if not target.exists():
        os.rename(staged, target)
        fsync_dir(target.parent)
        return target
    try:
        _exchange(staged, target)  # staged now holds the old version
        fsync_dir(target.parent)
        shutil.rmtree(staged, ignore_errors=True)
    except OSError as error:
        if error.errno not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        old = temp_name(target, OLD)
        os.rename(target, old)
        os.rename(staged, target)  # a kill before this line: recover_dir() restores `old`
        fsync_dir(target.parent)
        shutil.rmtree(old, ignore_errors=True)
    return target


def _leftovers(target: Path, tag: str) -> list[Path]:
    prefix = f".{target.name}{tag}"
    if not target.parent.is_dir():
        return []
    return sorted((p for p in target.parent.iterdir() if p.name.startswith(prefix)),
                  key=lambda p: p.stat().st_mtime)


def recover_dir(target: str | Path) -> bool:
    """If ``target`` is missing because a kill struck between the two renames of the fallback in
    :func:`replace_dir`, rename its newest ``.old`` copy back. Returns True when it did."""
    target = Path(target)
    if target.exists():
        return False
    olds = [p for p in _leftovers(target, OLD) if p.is_dir()]
    if not olds:
        return False
    try:
        os.rename(olds[-1], target)
    except FileNotFoundError:  # another process recovered it first
        return target.exists()
    fsync_dir(target.parent)
    return True


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(target: str | Path) -> int:
    """Remove temporary siblings of ``target`` left by writers that no longer run (after
    :func:`recover_dir`). Returns how many were removed."""
    target = Path(target)
    recover_dir(target)
    removed = 0
    for tag in (TMP, OLD):
        for path in _leftovers(target, tag):
            pid_text = path.name[len(f".{target.name}{tag}"):].split("-", 1)[0]
            if pid_text.isdigit() and _alive(int(pid_text)):
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed += 1
    return removed
