"""Interaction logs → validated tables → chronological per-user sequences → leakage-proof splits.

The only package of seqrec where pandas / polars / pyarrow appear. Names are imported lazily
(PEP 562), so that ``seqrec.data.catalogue`` (numpy only) can be imported by the core without
loading the readers.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULE_OF = {
    "ITEM_ID": "interactions",
    "TIMESTAMP": "interactions",
    "USER_ID": "interactions",
    "WEIGHT": "interactions",
    "FilterReport": "interactions",
    "filter_interactions": "interactions",
    "read_interactions": "interactions",
    "load_dataset": "loaders",
    "load_interactions": "loaders",
    "load_movielens": "loaders",
    "load_recbole": "loaders",
    "load_s3rec": "loaders",
    "load_sasrec": "loaders",
    "PAD": "catalogue",
    "IdIndex": "catalogue",
    "Dataset": "sequences",
    "HeldOut": "sequences",
    "Sequences": "sequences",
    "build_dataset": "build",
    "align_to_catalogue": "align",
    "read_shard": "partitioned",
    "scan_items": "partitioned",
    "user_shards": "partitioned",
    "HeldOutReport": "held_out",
    "Split": "held_out",
    "SplitReport": "held_out",
    "leave_one_out": "split",
    "time_split": "split",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'seqrec.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"seqrec.data.{_MODULE_OF[name]}"), name)


def __dir__() -> list[str]:
    return __all__
