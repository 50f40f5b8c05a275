"""Model directories: config (TOML), weights (safetensors), id mappings and histories (JSON +
safetensors), item info (Parquet). Nothing is ever unpickled, so a tampered file cannot run code.

Layout of a model directory::

    model.json          kind ("sequential" | "popular"), seqrec version, trained_at, metrics
    config.toml         the Config (sequential models)
    weights.safetensors encoder weights (sequential models)
    arrays.safetensors  histories (items, offsets, users, timestamps) and item popularity
    ids.json            external item and user ids, with their type
    item_info.parquet   optional titles / genres
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from seqrec.config import Config
from seqrec.data.sequences import IdIndex, Sequences
from seqrec.files import apply_umask

FORMAT_VERSION = 1


def _ids_to_json(index: IdIndex) -> dict[str, Any]:
    ids = index.ids
    if ids.dtype.kind in "iu":
        return {"type": "int", "ids": ids.astype(np.int64).tolist()}
    if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in ids.tolist()):
        return {"type": "int", "ids": [int(x) for x in ids.tolist()]}
    return {"type": "str", "ids": [str(x) for x in ids.tolist()]}


def _ids_from_json(data: dict[str, Any], start: int) -> IdIndex:
    if data["type"] == "int":
        return IdIndex(np.asarray(data["ids"], dtype=np.int64), start=start)
    return IdIndex(np.asarray(data["ids"], dtype=object), start=start)


def save_model(model: Any, path: str | Path, metrics: dict[str, float] | None = None) -> Path:
    """Write a fitted recommender to directory ``path``.

    The directory is written to a temporary sibling and renamed into place, so an existing
    directory is replaced whole or not at all (never half-written).

    Returns:
        the directory path.

    Raises:
        RuntimeError: the model is not fitted.
    """
    from seqrec.recommender import PopularRecommender

    model._check_fitted()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        kind = "popular" if isinstance(model, PopularRecommender) else "sequential"
        meta = {"kind": kind, "format_version": FORMAT_VERSION,
                "seqrec_version": __import__("seqrec").__version__,
                "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "n_items": model.n_items, "n_users": len(model.user_index),
                "metrics": metrics or {}}
        if kind == "sequential":
            meta["preset_config"] = model.config.to_dict()
            if model.fit_result is not None:
                meta["best_epoch"] = model.fit_result.best_epoch
                meta["best_validation_ndcg@10"] = model.fit_result.best_metric
            (tmp / "config.toml").write_text(model.config.to_toml())
            state = {k: v.detach().cpu().contiguous() for k, v in model.parts.encoder.state_dict().items()}
            save_file(state, tmp / "weights.safetensors")
        h = model.histories
        save_file({"items": torch.from_numpy(h.items.astype(np.int64)),
                   "offsets": torch.from_numpy(h.offsets.astype(np.int64)),
                   "users": torch.from_numpy(h.users.astype(np.int64)),
                   "timestamps": torch.from_numpy(h.timestamps.astype(np.int64)),
                   "popularity": torch.from_numpy(model.popularity.astype(np.int64))},
                  tmp / "arrays.safetensors")
        (tmp / "ids.json").write_text(json.dumps({"items": _ids_to_json(model.catalogue),
                                                  "users": _ids_to_json(model.user_index)}))
        if model.item_info is not None:
            info = model.item_info.copy()
            info.index = info.index.map(str) if info.index.dtype == object else info.index
            info.to_parquet(tmp / "item_info.parquet")
        (tmp / "model.json").write_text(json.dumps(meta, indent=2, default=float))
        apply_umask(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``model.json`` of a model directory.

    Raises:
        FileNotFoundError: not a model directory (names the missing file).
    """
    file = Path(path) / "model.json"
    if not file.exists():
        raise FileNotFoundError(f"{path}: not a seqrec model directory (no model.json)")
    return json.loads(file.read_text())


def _read_tensors(file: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file; a damaged or tampered file raises naming it."""
    if not file.exists():
        raise FileNotFoundError(f"{file}: missing from the model directory")
    try:
        return load_file(file, device=device)
    except SafetensorError as error:
        raise ValueError(f"{file}: not a valid safetensors file ({error})") from None


def load_model(path: str | Path, map_location: str = "cpu") -> Any:
    """Load a model directory written by :func:`save_model` (a GPU-trained model loads on CPU).

    Returns:
        a fitted :class:`~seqrec.recommender.SequentialRecommender` or
        :class:`~seqrec.recommender.PopularRecommender` whose recommendations equal the saved one's.

    Raises:
        FileNotFoundError: missing directory or file.
        ValueError: an unknown model kind or format version, or a damaged weights/arrays file.
    """
    from seqrec.build import build_parts
    from seqrec.recommender import PopularRecommender, SequentialRecommender

    path = Path(path)
    meta = read_metadata(path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: model format {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
    arrays = {k: v.numpy() for k, v in _read_tensors(path / "arrays.safetensors").items()}
    ids = json.loads((path / "ids.json").read_text())
    if meta["kind"] == "popular":
        model: Any = PopularRecommender()
    elif meta["kind"] == "sequential":
        config = Config.load(path / "config.toml")
        model = SequentialRecommender(config)
        model.parts = build_parts(config, len(ids["items"]["ids"]))
        state = _read_tensors(path / "weights.safetensors", device=map_location)
        model.parts.encoder.load_state_dict(state)
        model.parts.encoder.to(map_location).eval()
    else:
        raise ValueError(f"{path}: unknown model kind {meta['kind']!r}")
    model.catalogue = _ids_from_json(ids["items"], start=1)
    model.user_index = _ids_from_json(ids["users"], start=0)
    model.histories = Sequences(arrays["items"], arrays["offsets"], arrays["users"], arrays["timestamps"])
    model.popularity = arrays["popularity"]
    info = path / "item_info.parquet"
    model.item_info = pd.read_parquet(info) if info.exists() else None
    model.metadata = meta
    return model
