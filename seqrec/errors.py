"""Typed errors a caller can catch: every one is a :class:`SeqrecError`, and also the built-in
type a caller would catch without knowing seqrec (``KeyError`` for unknown ids, ``ValueError``
for bad input, ``RuntimeError`` for a model used before it is fitted).

The library, the command line and the service raise these same types, so the CLI's one-line
``error: ...`` and the service's 404 come from one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class SeqrecError(Exception):
    """Base of every error seqrec raises on purpose."""

    def __str__(self) -> str:  # KeyError's own str() would quote the message
        return str(self.args[0]) if self.args else type(self).__name__


class UnknownIdError(SeqrecError, KeyError):
    """Ids the model does not know.

    Attributes:
        ids: up to five of the unknown ids, as given.
        count: how many ids were unknown in all.
    """

    what = "id"

    def __init__(self, ids: Sequence[Any], count: int | None = None, where: str = "",
                 message: str | None = None) -> None:
        self.ids = list(ids)[:5]
        self.count = len(ids) if count is None else count
        if message is None:
            plural = "" if self.count == 1 else "s"
            shown = ", ".join(repr(i) for i in self.ids)
            more = ", ..." if self.count > len(self.ids) else ""
            prefix = f"{where}: " if where else ""
            message = f"{prefix}{self.count} unknown {self.what} id{plural}: {shown}{more}"
        super().__init__(message)


class UnknownUserError(UnknownIdError):
    """User ids the model has no history for (it never saw them in training)."""

    what = "user"


class UnknownItemError(UnknownIdError):
    """Item ids outside the model's catalogue."""

    what = "item"


class NotFittedError(SeqrecError, RuntimeError):
    """A recommender used before ``fit()`` or :func:`seqrec.load_model`."""


class ModelDirectoryError(SeqrecError, ValueError):
    """A model directory that cannot be loaded or served: missing, damaged, mixed or invalid.
    The message names the directory, the file and what is wrong with it."""


class ScoringError(SeqrecError, ValueError):
    """Scores that cannot be ranked (NaN or +inf): a broken model, never silently output."""


class OutputExistsError(SeqrecError, FileExistsError):
    """An output that already exists and was not asked to be replaced."""


class ResumeError(SeqrecError, ValueError):
    """A ``resume`` that cannot continue the run it names (no checkpoint, or another config or
    data set than the checkpoint was trained with). Nothing was changed."""


class MissingDependencyError(SeqrecError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it
    (e.g. ``pip install 'seqrec[ann]'``)."""
