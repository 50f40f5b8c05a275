"""Interaction logs → validated tables → chronological per-user sequences → leakage-proof splits.

The only package of seqrec where pandas / polars / pyarrow appear.
"""

from seqrec.data.build import build_dataset
from seqrec.data.interactions import (
    ITEM_ID,
    TIMESTAMP,
    USER_ID,
    WEIGHT,
    FilterReport,
    filter_interactions,
    read_interactions,
)
from seqrec.data.loaders import (
    load_dataset,
    load_interactions,
    load_movielens,
    load_recbole,
    load_s3rec,
    load_sasrec,
)
from seqrec.data.sequences import PAD, Dataset, HeldOut, IdIndex, Sequences
from seqrec.data.split import HeldOutReport, Split, SplitReport, leave_one_out, time_split

__all__ = [
    "ITEM_ID",
    "PAD",
    "TIMESTAMP",
    "USER_ID",
    "WEIGHT",
    "Dataset",
    "FilterReport",
    "HeldOut",
    "HeldOutReport",
    "IdIndex",
    "Sequences",
    "Split",
    "SplitReport",
    "build_dataset",
    "filter_interactions",
    "load_dataset",
    "load_interactions",
    "load_movielens",
    "load_recbole",
    "load_s3rec",
    "load_sasrec",
    "leave_one_out",
    "read_interactions",
    "time_split",
]
