"""Model directories: save → load gives identical recommendations; nothing is ever unpickled;
damaged, mixed or invalid directories are refused with a named reason; a loaded model owns its
memory."""

import json
import pickle

import pandas as pd
import pytest
import torch
from conftest import pattern_interactions, small_config

from seqrec import (
    ModelDirectoryError,
    OutputExistsError,
    PopularRecommender,
    SequentialRecommender,
    build_dataset,
    leave_one_out,
    load_model,
    save_model,
)
from seqrec.model_dir import read_metadata

PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".joblib", ".npy", ".npz")


@pytest.fixture(scope="module", params=["int_ids", "str_ids"])
def data(request):
    frame = pattern_interactions(n_users=80, n_items=30)
    if request.param == "str_ids":
        frame = frame.assign(user_id="u" + frame.user_id.astype(str),
                             item_id="i" + frame.item_id.astype(str))
    items = sorted(frame.item_id.unique())
    info = pd.DataFrame({"title": [f"title {i}" for i in items]}, index=pd.Index(items, name="item_id"))
    dataset = build_dataset(frame, item_info=info)
    return dataset, leave_one_out(dataset)


@pytest.fixture(scope="module", params=["esasrec", "bert4rec", "hstu", "popular"])
def fitted(request, data):
    dataset, split = data
    model = (PopularRecommender() if request.param == "popular"
             else SequentialRecommender(small_config(request.param, epochs=3)))
    model.fit(dataset, split.train)
    return model


def _lists(model, users):
    return model.recommend(users, k=10, exclude_items=[model.catalogue.ids[0]])


def test_recommendations_are_identical_after_save_and_load(fitted, tmp_path):
    users = fitted.user_index.ids[:30].tolist()
    before = _lists(fitted, users)
    histories = [fitted.catalogue.ids[[3, 4, 5]].tolist()]
    before_anonymous = fitted.recommend_for_histories(histories, k=5)
    loaded = load_model(save_model(fitted, tmp_path / "model", metrics={"ndcg@10": 0.5}))
    assert type(loaded) is type(fitted)
    pd.testing.assert_frame_equal(_lists(loaded, users), before)
    pd.testing.assert_frame_equal(loaded.recommend_for_histories(histories, k=5), before_anonymous)
    assert loaded.user_index.ids.tolist() == fitted.user_index.ids.tolist()
    assert loaded.catalogue.ids.tolist() == fitted.catalogue.ids.tolist()
    pd.testing.assert_frame_equal(loaded.item_info, fitted.item_info, check_index_type=False)
    assert read_metadata(tmp_path / "model")["metrics"] == {"ndcg@10": 0.5}
    if isinstance(fitted, SequentialRecommender):
        assert loaded.config == fitted.config
        for key, value in fitted.parts.encoder.state_dict().items():
            assert torch.equal(loaded.parts.encoder.state_dict()[key], value), key


def test_model_directory_holds_no_pickle(fitted, tmp_path):
    path = save_model(fitted, tmp_path / "model")
    names = sorted(p.name for p in path.iterdir())
    expected = {"model.json", "arrays.safetensors", "ids.json", "item_info.parquet", "manifest.json"}
    if isinstance(fitted, SequentialRecommender):
        expected |= {"config.toml", "weights.safetensors"}
    assert set(names) == expected
    for file in path.iterdir():
        assert not file.name.endswith(PICKLE_SUFFIXES)
        assert not file.read_bytes().startswith(b"\x80")  # pickle protocol >= 2 header
    json.loads((path / "model.json").read_text())


def test_loading_never_unpickles(fitted, tmp_path, monkeypatch):
    path = save_model(fitted, tmp_path / "model")
    users = fitted.user_index.ids[:5].tolist()

    def forbidden(*_args, **_kwargs):
        raise AssertionError("load_model must not unpickle")

    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads"),
                         (pickle, "Unpickler")):
        monkeypatch.setattr(module, name, forbidden)
    loaded = load_model(path)
    pd.testing.assert_frame_equal(_lists(loaded, users), _lists(fitted, users))


class _Exploit:
    """A pickle that would create a marker file if anything unpickled it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("file", ["weights.safetensors", "arrays.safetensors"])
def test_a_tampered_tensor_file_raises_a_clear_error_and_runs_no_code(data, tmp_path, file):
    dataset, split = data
    model = SequentialRecommender(small_config(epochs=1))
    model.fit(dataset, split.train)
    path = save_model(model, tmp_path / "model")
    (path / file).write_bytes(b"\x00garbage bytes, not safetensors\xff" * 4)
    with pytest.raises(ModelDirectoryError, match=f"{file}: does not match manifest.json"):
        load_model(path)
    (path / "manifest.json").unlink()  # as in a directory written before manifests existed
    with pytest.raises(ModelDirectoryError, match=f"{file}: not a valid safetensors file"):
        load_model(path)
    marker = tmp_path / "exploited"
    (path / file).write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(ModelDirectoryError, match="not a valid safetensors file"):
        load_model(path)
    assert not marker.exists()


def test_missing_model_json_or_weights_raise_naming_the_file(data, tmp_path):
    dataset, split = data
    model = SequentialRecommender(small_config(epochs=1))
    model.fit(dataset, split.train)
    with pytest.raises(ModelDirectoryError, match="no model.json"):
        load_model(tmp_path)
    with pytest.raises(ModelDirectoryError, match="not found"):
        load_model(tmp_path / "nowhere")
    path = save_model(model, tmp_path / "model")
    (path / "weights.safetensors").unlink()
    with pytest.raises(ModelDirectoryError, match="weights.safetensors: listed in manifest.json"):
        load_model(path)


def test_save_over_an_existing_directory_replaces_it_whole(data, tmp_path):
    dataset, split = data
    sequential = SequentialRecommender(small_config(epochs=1))
    sequential.fit(dataset, split.train)
    path = tmp_path / "model"
    save_model(sequential, path)
    (path / "stale.txt").write_text("left over from an older model")
    popular = PopularRecommender()
    popular.fit(dataset, split.train)
    save_model(popular, path)
    assert not (path / "stale.txt").exists()
    assert not (path / "weights.safetensors").exists() and not (path / "config.toml").exists()
    assert isinstance(load_model(path), PopularRecommender)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary or .old siblings


def test_saving_an_unfitted_model_raises(tmp_path):
    with pytest.raises(RuntimeError, match="not fitted"):
        save_model(SequentialRecommender(), tmp_path / "model")


def test_saved_model_directory_follows_the_umask_not_private_temp_modes(tmp_path):
    import os
    import stat

    import numpy as np
    import pandas as pd

    import seqrec

    frame = pd.DataFrame({"user_id": np.repeat(np.arange(5), 4), "item_id": np.arange(20) % 7,
                          "timestamp": np.arange(20)})
    model = seqrec.build_model("popular")
    model.fit(seqrec.build_dataset(frame))
    old = os.umask(0o022)
    try:
        path = save_model(model, tmp_path / "model")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    for item in path.iterdir():
        assert stat.S_IMODE(item.stat().st_mode) == 0o644, item.name


# ---- what a load refuses, and what a loaded model survives --------------------------------------
@pytest.fixture(scope="module")
def saved_pair(data, tmp_path_factory):
    """Two sequential models of the same data (different seeds), saved."""
    dataset, split = data
    root = tmp_path_factory.mktemp("pair")
    paths = []
    for seed in (0, 1):
        model = SequentialRecommender(small_config(epochs=1, seed=seed))
        model.fit(dataset, split.train)
        paths.append(save_model(model, root / f"model{seed}"))
    return paths


def _copy(path, tmp_path):
    import shutil

    return shutil.copytree(path, tmp_path / "copy")


def test_a_directory_mixing_two_models_is_refused_naming_the_file(saved_pair, tmp_path):
    import shutil

    mixed = _copy(saved_pair[0], tmp_path)
    shutil.copy(saved_pair[1] / "weights.safetensors", mixed / "weights.safetensors")
    with pytest.raises(ModelDirectoryError, match="weights.safetensors: does not match manifest"):
        load_model(mixed)


def test_the_version_names_the_files_not_only_model_json(saved_pair, tmp_path):
    first = load_model(saved_pair[0]).metadata["model_version"]
    copy = _copy(saved_pair[0], tmp_path)
    assert load_model(copy).metadata["model_version"] == first
    second = load_model(saved_pair[1]).metadata["model_version"]
    assert second != first


def _rewrite(path, name, tensors):
    """Replace a tensor file and re-seal the manifest: a consistent but invalid directory."""
    from safetensors.torch import save_file

    from seqrec.model_dir import _manifest

    save_file(tensors, path / name)
    (path / "manifest.json").write_text(json.dumps(_manifest(path)))


def test_nan_weights_are_refused_at_load(saved_pair, tmp_path):
    from safetensors.torch import load_file

    path = _copy(saved_pair[0], tmp_path)
    state = load_file(path / "weights.safetensors")
    name = next(iter(state))
    state[name] = torch.full_like(state[name], float("nan"))
    _rewrite(path, "weights.safetensors", state)
    with pytest.raises(ModelDirectoryError, match="NaN or infinite weights"):
        load_model(path)


def test_history_indices_out_of_range_are_refused_at_load(saved_pair, tmp_path):
    from safetensors.torch import load_file

    path = _copy(saved_pair[0], tmp_path)
    arrays = load_file(path / "arrays.safetensors")
    arrays["items"] = arrays["items"].clone()
    arrays["items"][0] = 10_000
    _rewrite(path, "arrays.safetensors", arrays)
    with pytest.raises(ModelDirectoryError, match="item indices outside"):
        load_model(path)


def test_ids_of_another_size_are_refused_at_load(saved_pair, tmp_path):
    from seqrec.model_dir import _manifest

    path = _copy(saved_pair[0], tmp_path)
    ids = json.loads((path / "ids.json").read_text())
    ids["items"]["ids"] = ids["items"]["ids"][:-1]
    (path / "ids.json").write_text(json.dumps(ids))
    (path / "manifest.json").write_text(json.dumps(_manifest(path)))
    with pytest.raises(ModelDirectoryError, match="n_items"):
        load_model(path)


def test_a_loaded_model_owns_its_memory_overwritten_files_change_nothing(saved_pair, tmp_path):
    path = _copy(saved_pair[0], tmp_path)
    model = load_model(path)
    users = model.user_index.ids[:5].tolist()
    before = model.recommend(users, k=5)
    for file in path.iterdir():
        file.write_bytes(b"")  # truncate every file in place
    pd.testing.assert_frame_equal(model.recommend(users, k=5), before)


def test_save_refuses_to_replace_a_directory_that_is_not_a_model(fitted, tmp_path):
    target = tmp_path / "photos"
    target.mkdir()
    (target / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="not a seqrec model directory"):
        save_model(fitted, target)
    assert (target / "holiday.jpg").read_bytes() == b"precious"


def test_a_parts_override_that_changes_the_encoder_is_refused_a_loss_swap_is_saved(data, tmp_path):
    import dataclasses

    from seqrec.build import build_encoder
    from seqrec.losses import BCELoss

    dataset, split = data
    config = small_config(epochs=1)
    swapped_loss = SequentialRecommender(config, parts_override=lambda p: dataclasses.replace(
        p, loss=BCELoss(), layout="per_target"))
    swapped_loss.fit(dataset, split.train)
    assert isinstance(load_model(save_model(swapped_loss, tmp_path / "loss")),
                      SequentialRecommender)
    wider = config.replace(dim=48)
    swapped_encoder = SequentialRecommender(config, parts_override=lambda p: dataclasses.replace(
        p, encoder=build_encoder(wider, dataset.n_items, False)))
    swapped_encoder.fit(dataset, split.train)
    with pytest.raises(ValueError, match="parts_override replaced the encoder"):
        save_model(swapped_encoder, tmp_path / "encoder")
    assert not (tmp_path / "encoder").exists()
