"""seqrec: sequential recommendation with transformers (eSASRec and its modular parts).

A newcomer reads the training path in this order: ``model.py`` → ``objectives.py`` →
``losses.py`` → ``negatives.py`` → ``train.py`` → ``metrics.py``.
"""

__version__ = "0.1.0"

from seqrec.checkpoint import load_model
from seqrec.config import PRESETS, Config, preset
from seqrec.data import (
    Dataset,
    HeldOut,
    Sequences,
    Split,
    build_dataset,
    leave_one_out,
    load_dataset,
    load_interactions,
    load_movielens,
    read_interactions,
    time_split,
)
from seqrec.evaluate import evaluate
from seqrec.metrics import MetricReport, evaluate_lists, evaluate_scores
from seqrec.recommender import (
    PopularRecommender,
    SequentialRecommender,
    build_model,
    esasrec,
)
from seqrec.train import FitResult

ESASRec = esasrec

__all__ = [
    "PRESETS",
    "Config",
    "Dataset",
    "ESASRec",
    "FitResult",
    "HeldOut",
    "MetricReport",
    "PopularRecommender",
    "SequentialRecommender",
    "Sequences",
    "Split",
    "__version__",
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
    "time_split",
]
