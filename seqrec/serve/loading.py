"""The served model: loaded and validated whole, swapped whole on reload, never mutated.

A load goes through :func:`seqrec.load_model`, which reads every file into memory this process
owns, checks the manifest and smoke-scores the model: a directory that cannot serve is refused
before it replaces anything, and overwriting the files of a loaded model cannot crash the server
or change its answers.

With a value calibrator file (``/rank/value``), every load reads it again beside the model and
the two are swapped as one pair: at start a calibrator that cannot serve the model (missing,
malformed, or fitted for another model version) is refused; after a reload the new model serves
and the pair carries the calibrator's error instead, so ``/rank/value`` answers 409 naming it
until a reload finds a calibrator fitted for the served model version.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from seqrec.errors import ModelDirectoryError
from seqrec.lists import Fitted
from seqrec.model_dir import load_model
from seqrec.recommender import Recommender, SequentialRecommender
from seqrec.value.calibrator_file import CalibratorFileError, SavedCalibrator, load_calibrator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A model directory loaded for serving.

    Attributes:
        model: the validated recommender.
        metadata: ``model.json``.
        version: ``trained_at+hash`` of the files that were loaded (see :mod:`seqrec.model_dir`).
        history_rows: ``(n_users + 1,)`` int64 history row of each user index, -1 without one.
        value_calibrator: the calibrator file loaded with this model (fitted for ``version``),
            or None.
        value_error: why the configured calibrator file cannot serve this model (then
            ``value_calibrator`` is None); None when it can, or when none is configured.
    """

    model: Recommender
    metadata: dict[str, Any]
    version: str
    history_rows: Any
    value_calibrator: SavedCalibrator | None = None
    value_error: Exception | None = None

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
    """The current :class:`LoadedModel` (with its value calibrator) and the reload that replaces
    it.

    Raises:
        ModelDirectoryError: the directory cannot be served.
        CalibratorFileError: ``value_calibrator`` is missing, malformed or fitted for another
            model version (at start only; see the module docstring for reloads).
    """

    def __init__(self, model_dir: str | Path, value_calibrator: str | Path | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.value_calibrator = None if value_calibrator is None else Path(value_calibrator)
        self.current = self._load()
        if self.current.value_error is not None:
            raise self.current.value_error
        self._lock = asyncio.Lock()

    def _load(self) -> LoadedModel:
        loaded = load_for_serving(self.model_dir)
        if self.value_calibrator is None:
            return loaded
        try:
            saved = load_calibrator(self.value_calibrator, loaded.version)
        except (CalibratorFileError, OSError) as error:
            return replace(loaded, value_error=error)
        return replace(loaded, value_calibrator=saved)

    async def reload(self) -> tuple[str, str]:
        """Load the directory (and the value calibrator file) again in a thread and swap the
        reference; on any failure to load the model the current pair stays and the error is
        raised (and logged). A calibrator that cannot serve the new model does not stop the
        reload: it is logged and carried as ``value_error``.

        Returns:
            ``(previous_version, new_version)``.
        """
        async with self._lock:
            try:
                loaded = await asyncio.to_thread(self._load)
            except Exception as error:
                log.error("reload of %s failed (%s); still serving %s", self.model_dir, error,
                          self.current.version)
                raise
            previous, self.current = self.current, loaded
        gc.freeze()  # the new model too; the old one is still freed by reference counting
        log.info("model reloaded: %s -> %s", previous.version, loaded.version)
        if loaded.value_error is not None:
            log.warning("/rank/value is off until a reload finds a calibrator for model %s: %s",
                        loaded.version, loaded.value_error)
        return previous.version, loaded.version
