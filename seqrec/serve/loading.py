"""The served model: loaded and validated whole, swapped whole on reload, never mutated.

A load goes through :func:`seqrec.load_model`, which reads every file into memory this process
owns, checks the manifest and smoke-scores the model: a directory that cannot serve is refused
before it replaces anything, and overwriting the files of a loaded model cannot crash the server
or change its answers.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqrec.errors import ModelDirectoryError
from seqrec.lists import Fitted
from seqrec.model_dir import load_model
from seqrec.recommender import Recommender, SequentialRecommender

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A model directory loaded for serving.

    Attributes:
        model: the validated recommender.
        metadata: ``model.json``.
        version: ``trained_at+hash`` of the files that were loaded (see :mod:`seqrec.model_dir`).
        history_rows: ``(n_users + 1,)`` int64 history row of each user index, -1 without one.
    """

    model: Recommender
    metadata: dict[str, Any]
    version: str
    history_rows: Any

    @property
    def fitted(self) -> Fitted:
        assert self.model.fitted is not None
        return self.model.fitted

    @property
    def has_embeddings(self) -> bool:
        return isinstance(self.model, SequentialRecommender)


def load_for_serving(model_dir: str | Path, attempts: int = 5) -> LoadedModel:
    """Load and validate a model directory (see :func:`seqrec.load_model`).

    A save replaces the directory in one step, but a load may start just while it happens; a
    missing file is then retried (bounded).

    Raises:
        ModelDirectoryError: the directory cannot be served (after the last attempt).
    """
    path = Path(model_dir)
    for attempt in range(attempts):
        try:
            model = load_model(path)
            break
        except (ModelDirectoryError, FileNotFoundError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    meta = dict(model.metadata or {})
    version = str(meta.pop("model_version", "unknown"))
    if isinstance(model, SequentialRecommender):
        model.unit_item_embeddings()  # computed once here, not on the first /similar
    assert model.fitted is not None
    return LoadedModel(model, meta, version, model.fitted.history_rows())


class ModelHolder:
    """The current :class:`LoadedModel` and the reload that replaces it."""

    def __init__(self, model_dir: str | Path) -> None:
        self.model_dir = Path(model_dir)
        self.current = load_for_serving(self.model_dir)
        self._lock = asyncio.Lock()

    async def reload(self) -> tuple[str, str]:
        """Load the directory again in a thread and swap the reference; on any failure the
        current model stays and the error is raised (and logged).

        Returns:
            ``(previous_version, new_version)``.
        """
        async with self._lock:
            try:
                loaded = await asyncio.to_thread(load_for_serving, self.model_dir)
            except Exception as error:
                log.error("reload of %s failed (%s); still serving %s", self.model_dir, error,
                          self.current.version)
                raise
            previous, self.current = self.current, loaded
        gc.freeze()  # the new model too; the old one is still freed by reference counting
        log.info("model reloaded: %s -> %s", previous.version, loaded.version)
        return previous.version, loaded.version
