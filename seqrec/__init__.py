"""seqrec: sequential recommendation with transformers (eSASRec and its modular parts).

A newcomer reads the training path in this order: ``model.py`` → ``objectives.py`` →
``losses.py`` → ``negatives.py`` → ``train.py`` → ``rank.py`` → ``metrics.py``.

Names are imported lazily (PEP 562): ``import seqrec`` loads neither torch nor pandas until a
name that needs them is used, so ``seqrec --help`` starts at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_MODULE_OF = {
    # configuration
    "PRESETS": "config",
    "Config": "config",
    "Runtime": "runtime",
    "preset": "config",
    # data
    "Dataset": "data.sequences",
    "HeldOut": "data.sequences",
    "Sequences": "data.sequences",
    "Split": "data.held_out",
    "align_to_catalogue": "data.align",
    "build_dataset": "data.build",
    "leave_one_out": "data.split",
    "load_dataset": "data.loaders",
    "load_interactions": "data.loaders",
    "load_movielens": "data.loaders",
    "read_interactions": "data.interactions",
    "time_split": "data.split",
    # models, training, evaluation
    "PopularRecommender": "popular",
    "SequentialRecommender": "recommender",
    "build_model": "recommender",
    "esasrec": "recommender",
    "EpochRecord": "checkpoint",
    "FitResult": "checkpoint",
    "evaluate": "evaluation",
    "MetricReport": "metrics",
    "evaluate_lists": "evaluation",
    "evaluate_scores": "evaluation",
    # model directories and runs
    "load_model": "model_dir",
    "save_model": "model_dir",
    "RunResult": "runs",
    "train_and_save": "runs",
    # errors
    "SeqrecError": "errors",
    "UnknownUserError": "errors",
    "UnknownItemError": "errors",
    "NotFittedError": "errors",
    "ModelDirectoryError": "errors",
    "ScoringError": "errors",
    "OutputExistsError": "errors",
    "ResumeError": "errors",
    "MissingDependencyError": "errors",
}

__all__ = [
    "Config",
    "Dataset",
    "EpochRecord",
    "FitResult",
    "HeldOut",
    "MetricReport",
    "MissingDependencyError",
    "ModelDirectoryError",
    "NotFittedError",
    "OutputExistsError",
    "PRESETS",
    "PopularRecommender",
    "ResumeError",
    "RunResult",
    "Runtime",
    "ScoringError",
    "SeqrecError",
    "Sequences",
    "SequentialRecommender",
    "Split",
    "UnknownItemError",
    "UnknownUserError",
    "__version__",
    "align_to_catalogue",
    "build_dataset",
    "build_model",
    "esasrec",
    "evaluate",
    "evaluate_lists",
    "evaluate_scores",
    "leave_one_out",
    "load_dataset",
    "load_interactions",
    "load_model",
    "load_movielens",
    "preset",
    "read_interactions",
    "save_model",
    "time_split",
    "train_and_save",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load on first use
    from seqrec.checkpoint import EpochRecord, FitResult
    from seqrec.config import PRESETS, Config, preset
    from seqrec.data.align import align_to_catalogue
    from seqrec.data.build import build_dataset
    from seqrec.data.held_out import Split
    from seqrec.data.interactions import read_interactions
    from seqrec.data.loaders import load_dataset, load_interactions, load_movielens
    from seqrec.data.sequences import Dataset, HeldOut, Sequences
    from seqrec.data.split import leave_one_out, time_split
    from seqrec.errors import (
        MissingDependencyError,
        ModelDirectoryError,
        NotFittedError,
        OutputExistsError,
        ResumeError,
        ScoringError,
        SeqrecError,
        UnknownItemError,
        UnknownUserError,
    )
    from seqrec.evaluation import evaluate, evaluate_lists, evaluate_scores
    from seqrec.metrics import MetricReport
    from seqrec.model_dir import load_model, save_model
    from seqrec.popular import PopularRecommender
    from seqrec.recommender import SequentialRecommender, build_model, esasrec
    from seqrec.runs import RunResult, train_and_save
    from seqrec.runtime import Runtime


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'seqrec' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"seqrec.{_MODULE_OF[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
