"""Model directories: the one module that saves and loads recommenders (it imports
:mod:`seqrec.recommender`, never the reverse). Nothing is ever unpickled, so a tampered file
cannot run code.

Layout of a model directory::

    model.json          kind ("sequential" | "popular"), seqrec version, trained_at, metrics
    config.toml         the Config (sequential models)
    weights.safetensors encoder weights (sequential models)
    arrays.safetensors  histories (items, offsets, users, timestamps) and item counts
                        ("popularity")
    ids.json            external item and user ids, with their type
    item_info.parquet   optional titles / genres
    ann.safetensors     optional ANN index of the item table (seqrec.ann); refused when stale
    manifest.json       sha256 and size of every file above; written last
    checkpoint/         training checkpoint of `seqrec train` (not part of the model)

A save builds the directory beside ``path`` and swaps it in whole (:mod:`seqrec.files`), so the
path holds the old model or the new one at every instant. A load reads every file once into
memory the process owns (no memory map: overwriting the files later cannot crash or change a
loaded model), checks it against the manifest (a half-copied or mixed directory is refused),
and validates what it read before returning: shapes, id counts, index ranges, finite weights,
and a smoke score of a few histories. ``version`` = ``trained_at`` + the first 12 hex digits of
sha256(manifest.json), so it names the exact files that were loaded.

Directories written before the manifest existed load without the file check; their version
hashes ``model.json`` instead.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load, save_file

from seqrec.ann import ANN_FILE, index_bytes, read_index
from seqrec.build import build_parts
from seqrec.config import Config
from seqrec.data.catalogue import IdIndex
from seqrec.data.sequences import Sequences
from seqrec.errors import ModelDirectoryError, OutputExistsError
from seqrec.files import recover_dir, replace_dir, staged_dir
from seqrec.lists import Fitted, check_histories, fitted_state
from seqrec.popular import PopularRecommender
from seqrec.rank import check_finite
from seqrec.recommender import Recommender, SequentialRecommender

FORMAT_VERSION = 1
MODEL_FILES = ("model.json", "config.toml", "weights.safetensors", "arrays.safetensors",
               "ids.json", "item_info.parquet", ANN_FILE)  # the manifest lists those present


def _ids_to_json(index: IdIndex) -> dict[str, Any]:
    if index.int_ids:
        return {"type": "int", "ids": index.ids.astype(np.int64).tolist()}
    return {"type": "str", "ids": [str(x) for x in index.ids.tolist()]}


def _check_rebuildable(model: SequentialRecommender) -> None:
    """Refuse a model whose ``parts_override`` changed what ``config.toml`` rebuilds at load."""
    if model.parts_override is None:
        return
    assert model.parts is not None
    fresh = build_parts(model.config, model.n_items)
    mine, theirs = model.parts.encoder.state_dict(), fresh.encoder.state_dict()
    same = (type(model.parts.encoder) is type(fresh.encoder)
            and [type(layer) for layer in model.parts.encoder.layers]
            == [type(layer) for layer in fresh.encoder.layers]
            and {k: tuple(v.shape) for k, v in mine.items()}
            == {k: tuple(v.shape) for k, v in theirs.items()}
            and model.parts.objective == fresh.objective)
    if not same:
        raise ValueError("save_model: parts_override replaced the encoder or the objective, which "
                         "config.toml cannot rebuild at load; override only training parts "
                         "(loss, sampler, layout), or save encoder.state_dict() yourself")


def save_model(model: Recommender, path: str | Path, metrics: dict[str, float] | None = None,
               *, repeat: bool = False) -> Path:
    """Write a fitted recommender to directory ``path``, replacing a model directory there
    whole in one step (see the module docstring).

    Args:
        model: a fitted :class:`SequentialRecommender` or :class:`PopularRecommender`.
        path: the directory; created, or replaced when it holds a model.
        metrics: test metrics to record in ``model.json``.
        repeat: for repeat consumption (re-buys count): recorded in ``model.json``.

    Returns:
        the directory path.

    Raises:
        NotFittedError: the model is not fitted.
        OutputExistsError: ``path`` is a non-empty directory that is not a model directory, or
            a file (nothing of it is touched).
        ValueError: a ``parts_override`` model ``config.toml`` cannot rebuild; a stale ``ann_index``.
    """
    data = fitted_state(model)
    path = Path(path)
    recover_dir(path)
    if path.exists() and not (path.is_dir() and ((path / "model.json").is_file()
                                                 or not any(path.iterdir()))):
        raise OutputExistsError(f"{path}: exists and is not a seqrec model directory; "
                                "not replacing it")
    kind = "popular" if isinstance(model, PopularRecommender) else "sequential"
    meta: dict[str, Any] = {
        "kind": kind, "format_version": FORMAT_VERSION,
        "seqrec_version": __import__("seqrec").__version__,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "n_items": data.n_items, "n_users": len(data.user_index), "metrics": metrics or {},
        "repeat": repeat}  # seqrec recommend keeps seen items by default for repeat models
    with staged_dir(path) as tmp:
        if isinstance(model, SequentialRecommender):
            _check_rebuildable(model)
            assert model.parts is not None
            meta["preset_config"] = model.config.to_dict()
            if model.fit_result is not None:
                meta["best_epoch"] = model.fit_result.best_epoch
                meta["best_validation_ndcg@10"] = model.fit_result.best_metric
            (tmp / "config.toml").write_text(model.config.to_toml())
            state = {k: v.detach().cpu().contiguous()
                     for k, v in model.parts.encoder.state_dict().items()}
            save_file(state, tmp / "weights.safetensors")
            if model.ann_index is not None:  # ValueError when built from another table
                (tmp / ANN_FILE).write_bytes(index_bytes(model.ann_index, model.item_embeddings()))
        h = data.histories
        save_file({"items": torch.from_numpy(h.items.astype(np.int64)),
                   "offsets": torch.from_numpy(h.offsets.astype(np.int64)),
                   "users": torch.from_numpy(h.users.astype(np.int64)),
                   "timestamps": torch.from_numpy(h.timestamps.astype(np.int64)),
                   "popularity": torch.from_numpy(data.item_counts.astype(np.int64))},
                  tmp / "arrays.safetensors")
        (tmp / "ids.json").write_text(json.dumps({"items": _ids_to_json(data.catalogue),
                                                  "users": _ids_to_json(data.user_index)}))
        if data.item_info is not None:
            info = data.item_info.copy()
            info.index = info.index.map(str) if info.index.dtype == object else info.index
            info.to_parquet(tmp / "item_info.parquet")
        (tmp / "model.json").write_text(json.dumps(meta, indent=2, default=float))
        (tmp / "manifest.json").write_text(json.dumps(_manifest(tmp), indent=2))
        replace_dir(tmp, path)
    return path


def _manifest(directory: Path) -> dict[str, Any]:
    files = {}
    for name in (name for name in MODEL_FILES if (directory / name).is_file()):
        content = (directory / name).read_bytes()  # one file in memory at a time
        files[name] = {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}
    return {"format_version": FORMAT_VERSION, "files": files}


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``model.json`` of a model directory.

    Raises:
        ModelDirectoryError: not a model directory, or ``model.json`` is not valid JSON.
    """
    path = Path(path)
    recover_dir(path)
    file = path / "model.json"
    if not file.is_file():
        what = "not found" if not path.exists() else "not a seqrec model directory (no model.json)"
        raise ModelDirectoryError(f"{path}: {what}")
    return _json(file, file.read_bytes())


def _json(file: Path, content: bytes) -> Any:
    try:
        return json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelDirectoryError(f"{file}: not valid JSON ({error})") from None


def _read_files(path: Path) -> tuple[dict[str, bytes], str]:
    """Every model file's bytes, checked against the manifest, and the directory's version."""
    manifest_file = path / "manifest.json"
    contents = {name: (path / name).read_bytes() for name in MODEL_FILES
                if (path / name).is_file()}
    if "model.json" not in contents:
        raise ModelDirectoryError(f"{path}: not a seqrec model directory (no model.json)")
    meta = _json(path / "model.json", contents["model.json"])
    if not isinstance(meta, dict):
        raise ModelDirectoryError(f"{path / 'model.json'}: expected a JSON object")
    trained_at = meta.get("trained_at", "unknown")
    if not manifest_file.is_file():  # written before manifests existed
        return contents, f"{trained_at}+{hashlib.sha256(contents['model.json']).hexdigest()[:12]}"
    manifest_bytes = manifest_file.read_bytes()
    listed = _json(manifest_file, manifest_bytes).get("files", {})
    for name in sorted(set(listed) | set(contents)):
        if name not in contents:
            raise ModelDirectoryError(f"{path / name}: listed in manifest.json but missing")
        if name not in listed:
            raise ModelDirectoryError(f"{path / name}: not in manifest.json (a file of another "
                                      "model copied in?)")
        if hashlib.sha256(contents[name]).hexdigest() != listed[name].get("sha256"):
            raise ModelDirectoryError(
                f"{path / name}: does not match manifest.json (changed, damaged, or copied from "
                "another model; a half-copied directory?)")
    return contents, f"{trained_at}+{hashlib.sha256(manifest_bytes).hexdigest()[:12]}"


def _tensors(path: Path, name: str, contents: dict[str, bytes]) -> dict[str, torch.Tensor]:
    if name not in contents:
        raise ModelDirectoryError(f"{path / name}: missing from the model directory")
    try:
        return load(contents[name])  # copies: the process owns them
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise ModelDirectoryError(f"{path / name}: not a valid safetensors file ({error})") from None


def _ids(path: Path, contents: dict[str, bytes]) -> tuple[IdIndex, IdIndex]:
    if "ids.json" not in contents:
        raise ModelDirectoryError(f"{path / 'ids.json'}: missing from the model directory")
    data = _json(path / "ids.json", contents["ids.json"])
    out = []
    for key, start in (("items", 1), ("users", 0)):
        try:
            entry = data[key]
            dtype = np.int64 if entry["type"] == "int" else object
            if entry["type"] not in ("int", "str"):
                raise ValueError(f"type {entry['type']!r}")
            out.append(IdIndex(np.asarray(entry["ids"], dtype=dtype), start=start))
        except (KeyError, TypeError, ValueError, OverflowError) as error:
            raise ModelDirectoryError(f"{path / 'ids.json'}: bad {key} ids ({error})") from None
    return out[0], out[1]


def load_model(path: str | Path, map_location: str = "cpu") -> Recommender:
    """Load and validate a model directory written by :func:`save_model` (a GPU-trained model
    loads on CPU).

    Returns:
        a fitted :class:`SequentialRecommender` or :class:`PopularRecommender` whose
        recommendations equal the saved one's; ``model.metadata`` is its ``model.json`` and
        ``model.metadata["model_version"]`` its version (see the module docstring).

    Raises:
        ModelDirectoryError: a missing, damaged, mixed or invalid directory; the message names
            the file and what is wrong.
    """
    path = Path(path)
    recover_dir(path)
    if not path.is_dir():
        what = "not a seqrec model directory (a file)" if path.exists() else "not found"
        raise ModelDirectoryError(f"{path}: {what}")
    contents, version = _read_files(path)
    meta = _json(path / "model.json", contents["model.json"])
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelDirectoryError(f"{path}: model format {meta.get('format_version')!r}, "
                                  f"expected {FORMAT_VERSION}")
    catalogue, user_index = _ids(path, contents)
    arrays = {k: v.numpy() for k, v in _tensors(path, "arrays.safetensors", contents).items()}
    data = _fitted(path, meta, arrays, catalogue, user_index, contents)
    model: Recommender
    if meta.get("kind") == "popular":
        model = PopularRecommender()
    elif meta.get("kind") == "sequential":
        model = _sequential(path, contents, data.n_items, map_location)
    else:
        raise ModelDirectoryError(f"{path / 'model.json'}: unknown model kind {meta.get('kind')!r}")
    model.fitted = data
    if ANN_FILE in contents and isinstance(model, SequentialRecommender):  # checked vs the table
        model.ann_index = read_index(path / ANN_FILE, contents[ANN_FILE], model.item_embeddings())
    model.metadata = {**meta, "model_version": version}
    _smoke_score(path, model)
    return model


def _fitted(path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray], catalogue: IdIndex,
            user_index: IdIndex, contents: dict[str, bytes]) -> Fitted:
    file = path / "arrays.safetensors"
    missing = {"items", "offsets", "users", "timestamps", "popularity"} - set(arrays)
    if missing:
        raise ModelDirectoryError(f"{file}: arrays {sorted(missing)} missing")
    for key, size in (("n_items", len(catalogue)), ("n_users", len(user_index))):
        if meta.get(key) != size:
            raise ModelDirectoryError(f"{path}: model.json says {key} = {meta.get(key)!r} but "
                                      f"ids.json holds {size} (files of different models?)")
    histories = Sequences(arrays["items"], arrays["offsets"], arrays["users"],
                          arrays["timestamps"])
    try:
        check_histories(histories, len(catalogue), len(user_index))
    except ValueError as error:
        raise ModelDirectoryError(f"{file}: {error}") from None
    if len(histories.timestamps) != len(histories.items):
        raise ModelDirectoryError(f"{file}: timestamps and items differ in length")
    counts = arrays["popularity"]
    if counts.shape != (len(catalogue) + 1,) or (counts < 0).any():
        raise ModelDirectoryError(f"{file}: popularity must be {len(catalogue) + 1} counts >= 0, "
                                  f"got shape {counts.shape}")
    info = None
    if "item_info.parquet" in contents:
        try:
            info = pd.read_parquet(io.BytesIO(contents["item_info.parquet"]))
        except Exception as error:  # pyarrow raises its own types
            raise ModelDirectoryError(f"{path / 'item_info.parquet'}: unreadable ({error})") from None
    return Fitted(catalogue, user_index, histories, counts, info)


def _sequential(path: Path, contents: dict[str, bytes], n_items: int,
                map_location: str) -> SequentialRecommender:
    if "config.toml" not in contents:
        raise ModelDirectoryError(f"{path / 'config.toml'}: missing from the model directory")
    try:
        config = Config.from_saved(contents["config.toml"].decode())
    except (ValueError, UnicodeDecodeError) as error:  # TOMLDecodeError is a ValueError
        raise ModelDirectoryError(f"{path / 'config.toml'}: {error}") from None
    model = SequentialRecommender(config)
    model.parts = build_parts(config, n_items)
    state = _tensors(path, "weights.safetensors", contents)
    bad = [name for name, tensor in state.items()
           if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise ModelDirectoryError(f"{path / 'weights.safetensors'}: NaN or infinite weights in "
                                  f"{bad[:3]}")
    try:
        model.parts.encoder.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[1:2] or [str(error)[:200]]
        raise ModelDirectoryError(f"{path / 'weights.safetensors'}: does not fit config.toml "
                                  f"({first[0].strip()})") from None
    model.parts.encoder.to(map_location).eval()
    return model


def _smoke_score(path: Path, model: Recommender) -> None:
    """Score a few stored histories and an empty one: a model that loads but cannot score is
    refused here, not at its first request."""
    h = model.histories
    rows = np.arange(min(h.n_sequences, 8))
    items = np.concatenate([h.items[: h.offsets[len(rows)]], np.zeros(0, np.int64)])
    offsets = np.append(h.offsets[: len(rows) + 1], h.offsets[len(rows)])  # + an empty history
    try:
        with torch.inference_mode():
            scores = model.score_block(items, offsets, np.arange(len(rows) + 1))
        check_finite(scores[:, 1:], "smoke scores")
        if tuple(scores.shape) != (len(rows) + 1, model.n_items + 1):
            raise ValueError(f"scores of shape {tuple(scores.shape)}")
    except Exception as error:  # anything the model raises here means it cannot serve
        raise ModelDirectoryError(f"{path}: the model loads but cannot score ({error})") from None
