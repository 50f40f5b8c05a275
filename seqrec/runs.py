"""Training runs the library owns: :func:`train_and_save` stages, trains (DDP through Fabric's
public API), checkpoints, resumes, evaluates and publishes a model directory atomically.

A run writing ``out`` works in ``.<out>.partial/`` beside it::

    run.json       what the run is: the config and a fingerprint of the data (checked by resume)
    checkpoint/    the last finished epoch (replaced atomically after every epoch)
    model/         the finished model directory, just before it is published

and publishes ``model/`` (with ``checkpoint/`` and ``run.json`` moved inside its
``checkpoint/``) to ``out`` in one atomic swap (:func:`seqrec.files.replace_dir`). What a kill
leaves behind, and what ``resume=True`` then does:

* during training: the checkpoint of the last finished epoch → training continues from it;
* after the model was staged, before it was published: the finished model → it is published;
* after publishing: ``out`` with its ``checkpoint/`` → training continues from there (e.g. with
  more ``epochs``).

A resume refuses, with a one-line :class:`~seqrec.errors.ResumeError` and without changing
anything, a config or a data set other than the checkpoint's (only ``epochs`` and ``patience``
may change).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqrec.checkpoint import FitResult
from seqrec.config import Config, Runtime
from seqrec.data.sequences import Dataset
from seqrec.data.split import Split
from seqrec.errors import OutputExistsError, ResumeError
from seqrec.evaluation import evaluate
from seqrec.files import clean_leftovers, recover_dir, replace_dir, write_atomic
from seqrec.model_dir import load_model, save_model
from seqrec.popular import PopularRecommender
from seqrec.recommender import Recommender, SequentialRecommender
from seqrec.sharded import SHARDED_METRICS, gather_fitted, global_fingerprint, global_means
from seqrec.train import OnBatch, OnEpoch, launch, make_fabric

log = logging.getLogger(__name__)

RESUMABLE = ("epochs", "patience")
"""Config fields a resumed run may change; any other difference is refused."""


@dataclass(frozen=True)
class RunResult:
    """What :func:`train_and_save` produced.

    Attributes:
        path: the published model directory.
        model: the trained recommender (serving from each user's whole history in the data).
        metrics: test metrics at K = ``eval_k`` (empty without a test part).
        fit_result: the training record (None for the popular baseline or a published
            leftover).
    """

    path: Path
    model: Recommender
    metrics: dict[str, float]
    fit_result: FitResult | None


def staging_path(out: str | Path) -> Path:
    """The staging directory of a run writing ``out``: ``.<name>.partial`` beside it."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def data_fingerprint(dataset: Dataset, split: Split | None) -> str:
    """A digest of what training reads: the sequences, both id mappings and the train part."""
    digest = hashlib.blake2b(digest_size=16)
    seqs = dataset.sequences
    parts = [seqs.items, seqs.offsets, seqs.timestamps]
    if split is not None:
        parts += [split.train.items, split.train.offsets]
    for array in parts:
        digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    for index in (dataset.catalogue, dataset.user_index):
        ids = index.ids
        digest.update(ids.astype(np.int64).tobytes() if index.int_ids
                      else "\x00".join(map(str, ids.tolist())).encode())
    return digest.hexdigest()


def _run_files(out: Path) -> list[Path]:
    """Where a run's ``run.json`` may be, newest state first."""
    stage = staging_path(out)
    return [stage / "run.json", stage / "model" / "checkpoint" / "run.json",
            out / "checkpoint" / "run.json"]


def resume_config(out: str | Path) -> Config:
    """The config of the run that wrote (or is writing) ``out``, to change with ``replace()``
    before resuming it.

    Raises:
        ResumeError: there is no run to resume there.
    """
    for file in _run_files(Path(out)):
        if file.is_file():
            return Config.from_saved(json.loads(file.read_text())["config_toml"])
    raise ResumeError(f"{out}: no checkpoint to resume (nothing of an earlier run in {out} or "
                      f"{staging_path(out)})")


def _check_resume(out: Path, config: Config, fingerprint: str) -> None:
    saved_file = next((f for f in _run_files(out) if f.is_file()), None)
    if saved_file is None:
        raise ResumeError(f"{out}: no checkpoint to resume")
    saved = json.loads(saved_file.read_text())
    before = Config.from_saved(saved["config_toml"]).to_dict()
    changed = sorted(k for k, v in config.to_dict().items()
                     if k not in RESUMABLE and before.get(k) != v)
    if changed:
        shown = ", ".join(f"{k} {before.get(k)!r} -> {config.to_dict()[k]!r}" for k in changed[:4])
        raise ResumeError(f"resume: the checkpoint was trained with another config ({shown}); "
                          f"only {', '.join(RESUMABLE)} may change")
    if saved.get("data") != fingerprint:
        raise ResumeError("resume: the data differ from the data the checkpoint was trained on "
                          "(another file, or another split); nothing was changed")


def _prepare(out: Path, stage: Path, resume: bool, config: Config | None,
             fingerprint: str) -> None:
    """Make ``stage`` ready: fresh for a new run, holding the checkpoint for a resumed one."""
    if not resume:
        if stage.exists():
            warnings.warn(f"removing {stage}, left by an interrupted run", stacklevel=3)
            shutil.rmtree(stage)
        stage.mkdir(parents=True)
    elif not (stage / "checkpoint" / "state.json").is_file() and not (stage / "model").is_dir():
        shutil.rmtree(stage, ignore_errors=True)  # continue a published run from its checkpoint
        stage.mkdir(parents=True)
        shutil.copytree(out / "checkpoint", stage / "checkpoint")
    if config is not None:
        record = {"config_toml": config.to_toml(), "data": fingerprint}
        write_atomic(stage / "run.json", json.dumps(record, indent=2))


def _publish(stage: Path, out: Path) -> None:
    """Move the checkpoint and run record into the staged model, then swap it into ``out``."""
    model_dir = stage / "model"
    inner = model_dir / "checkpoint"
    if (stage / "checkpoint").is_dir():
        shutil.rmtree(inner, ignore_errors=True)
        os.replace(stage / "checkpoint", inner)
    if (stage / "run.json").is_file() and inner.is_dir():
        os.replace(stage / "run.json", inner / "run.json")
    replace_dir(model_dir, out)
    shutil.rmtree(stage, ignore_errors=True)


def _finish_sharded(out: Path, stage: Path, model: Any, shard: Dataset, split: Split | None,
                    eval_k: int, fabric: Any) -> RunResult | None:
    """Test metrics over every process's users, every user's histories on rank 0, publish."""
    metrics: dict[str, float] = {}
    if split is not None:
        n_users = split.test.targets.n_sequences
        means = (evaluate(model, split.test, k=eval_k, metrics=SHARDED_METRICS).means if n_users
                 else {f"{m}@{eval_k}": 0.0 for m in SHARDED_METRICS})
        metrics = global_means(fabric, means, n_users)
    fitted = gather_fitted(fabric, shard, model.config.max_seq_len)
    if fitted is None:
        return None
    model.fitted = fitted
    save_model(model, stage / "model", metrics=metrics)
    _publish(stage, out)
    return RunResult(out, model, metrics, model.fit_result)


def _publish_leftover(stage: Path, out: Path) -> RunResult | None:
    """Publish the finished model a killed run staged (on one process only: under ``torchrun``
    every rank runs this, and ``RANK`` tells them apart)."""
    if os.environ.get("RANK", "0") != "0":
        return None
    log.info("publishing the finished model left in %s", stage)
    _publish(stage, out)
    model = load_model(out)
    metrics = dict((model.metadata or {}).get("metrics", {}))
    return RunResult(out, model, metrics, None)


def check_out(out: str | Path, *, force: bool = False, resume: bool = False) -> Path:
    """Refuse an ``out`` that would lose something the caller did not say to replace.

    Raises:
        ValueError: both ``force`` and ``resume``.
        OutputExistsError: ``out`` is a file, or a non-empty directory, or an interrupted run
            left a checkpoint or a finished model beside it (``.<out>.partial/``), without
            ``force`` (replace / discard) or ``resume`` (continue).
    """
    out = Path(out)
    if force and resume:
        raise ValueError("force and resume: give one of them")
    recover_dir(out)
    clean_leftovers(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (force or resume):
        raise OutputExistsError(f"{out}: directory exists and is not empty (force replaces it, "
                                "resume continues its training)")
    stage = interrupted_run(out)
    if stage is not None and not (force or resume):
        raise OutputExistsError(f"{out}: an interrupted run left its checkpoint in {stage} "
                                "(resume continues it, force discards it)")
    return out


def interrupted_run(out: str | Path) -> Path | None:
    """The staging directory of a run writing ``out`` that was killed with something to resume
    (a finished epoch's checkpoint, or a finished model not yet published), else None."""
    stage = staging_path(out)
    resumable = ((stage / "checkpoint" / "state.json").is_file()
                 or (stage / "model" / "manifest.json").is_file())
    return stage if resumable else None


def train_and_save(out: str | Path, dataset: Dataset, config: Config | None = None, *,
                   split: Split | None = None, runtime: Runtime | None = None,
                   resume: bool = False, force: bool = False, on_epoch: OnEpoch | None = None,
                   on_batch: OnBatch | None = None, eval_k: int = 10,
                   fabric: Any = None, sharded: bool = False,
                   repeat: bool = False) -> RunResult | None:
    """Train a model, evaluate it and publish its model directory at ``out`` atomically.

    Args:
        out: the model directory to write.
        dataset: the whole log; the saved model serves from every user's whole history in it.
        config: the model (None: the popular baseline).
        split: train / validation / test parts (e.g. :func:`seqrec.leave_one_out`); None trains
            on everything without early stopping or test metrics.
        runtime: devices, precision, threads (never saved); more than one process trains with
            DDP: the processes are started here (Lightning Fabric's public launcher), or joined
            when ``torchrun`` / ``fabric run`` started them.
        resume: continue the run that wrote (or was writing) ``out`` (see the module docstring).
        force: replace a non-empty ``out`` (only once the new model is complete).
        on_epoch / on_batch: progress callbacks (see :func:`seqrec.train.fit`).
        eval_k: cutoff of the test metrics and of validation.
        fabric: a Fabric the caller made and launched (overrides ``runtime``'s devices).
        repeat: repeat consumption counts: the test metrics keep seen items eligible (use a
            split that keeps already-seen targets), and the model directory records it.
        sharded: ``dataset`` (and ``split``) hold only this process's users of a larger log
            (:func:`seqrec.data.partitioned.read_shard`, after launching ``fabric``): training
            steps on each process's own users, the test metrics are the per-user accuracy
            metrics over every process's users (:data:`seqrec.sharded.SHARDED_METRICS`), and the
            published model serves every user's last ``max_seq_len`` items, gathered on rank 0.

    Returns:
        :class:`RunResult` on the process of global rank 0; None on the other processes.

    Raises:
        OutputExistsError: a non-empty ``out`` without ``force`` or ``resume``.
        ResumeError: nothing to resume, or another config or data set than the checkpoint's.
        ValueError: ``force`` with ``resume``; ``resume`` for the popular baseline.
    """
    out = check_out(out, force=force, resume=resume)
    stage = staging_path(out)
    runtime = runtime or Runtime()
    runtime.apply_threads()
    if config is None and resume:
        raise ValueError("resume: the popular baseline has no training to resume")
    if sharded and fabric is None:
        if config is None:
            raise ValueError("sharded: the popular baseline trains on one process")
        fabric = launch(make_fabric(runtime))
    fingerprint = data_fingerprint(dataset, split)
    if sharded:
        fingerprint = global_fingerprint(fabric, fingerprint)
    if resume:
        assert config is not None
        _check_resume(out, config, fingerprint)
        if (stage / "model" / "manifest.json").is_file():  # finished, killed before publishing
            return _publish_leftover(stage, out)
    if config is not None and fabric is None:
        fabric = launch(make_fabric(runtime))
    rank0 = fabric is None or fabric.global_rank == 0
    if rank0:
        _prepare(out, stage, resume, config, fingerprint)
    if fabric is not None:
        fabric.barrier()
    model: Recommender
    if config is None:
        model = PopularRecommender()
        model.fit(dataset, None if split is None else split.train)
    else:
        model = SequentialRecommender(config, runtime=runtime)
        model.fit(dataset, None if split is None else split.train,
                  None if split is None else split.validation, checkpoint_dir=stage,
                  resume=resume, fabric=fabric, eval_k=eval_k, on_epoch=on_epoch,
                  on_batch=on_batch, sharded=sharded)
    if sharded:
        return _finish_sharded(out, stage, model, dataset, split, eval_k, fabric)
    if not rank0:
        return None
    metrics = ({} if split is None else
               evaluate(model, split.test, k=eval_k, filter_viewed=not repeat).means)
    model.set_histories(dataset.sequences)  # serve from each user's whole history
    save_model(model, stage / "model", metrics=metrics, repeat=repeat)
    _publish(stage, out)
    return RunResult(out, model, metrics, getattr(model, "fit_result", None))
