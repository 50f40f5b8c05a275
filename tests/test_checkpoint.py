"""Model directories: save → load gives identical recommendations; nothing is ever unpickled."""

import json
import pickle

import pandas as pd
import pytest
import torch
from conftest import pattern_interactions, small_config

from seqrec import (
    PopularRecommender,
    SequentialRecommender,
    build_dataset,
    leave_one_out,
    load_model,
)
from seqrec.checkpoint import read_metadata

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


@pytest.fixture(scope="module", params=["esasrec", "bert4rec", "popular"])
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
    loaded = load_model(fitted.save(tmp_path / "model", metrics={"ndcg@10": 0.5}))
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
    path = fitted.save(tmp_path / "model")
    names = sorted(p.name for p in path.iterdir())
    expected = {"model.json", "arrays.safetensors", "ids.json", "item_info.parquet"}
    if isinstance(fitted, SequentialRecommender):
        expected |= {"config.toml", "weights.safetensors"}
    assert set(names) == expected
    for file in path.iterdir():
        assert not file.name.endswith(PICKLE_SUFFIXES)
        assert not file.read_bytes().startswith(b"\x80")  # pickle protocol >= 2 header
    json.loads((path / "model.json").read_text())


def test_loading_never_unpickles(fitted, tmp_path, monkeypatch):
    path = fitted.save(tmp_path / "model")
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
    path = model.save(tmp_path / "model")
    (path / file).write_bytes(b"\x00garbage bytes, not safetensors\xff" * 4)
    with pytest.raises(ValueError, match=file):
        load_model(path)
    marker = tmp_path / "exploited"
    (path / file).write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        load_model(path)
    assert not marker.exists()


def test_missing_model_json_or_weights_raise_naming_the_file(data, tmp_path):
    dataset, split = data
    model = SequentialRecommender(small_config(epochs=1))
    model.fit(dataset, split.train)
    with pytest.raises(FileNotFoundError, match="model.json"):
        load_model(tmp_path)
    path = model.save(tmp_path / "model")
    (path / "weights.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="weights.safetensors"):
        load_model(path)


def test_save_over_an_existing_directory_replaces_it_whole(data, tmp_path):
    dataset, split = data
    sequential = SequentialRecommender(small_config(epochs=1))
    sequential.fit(dataset, split.train)
    path = tmp_path / "model"
    sequential.save(path)
    (path / "stale.txt").write_text("left over from an older model")
    popular = PopularRecommender()
    popular.fit(dataset, split.train)
    popular.save(path)
    assert not (path / "stale.txt").exists()
    assert not (path / "weights.safetensors").exists() and not (path / "config.toml").exists()
    assert isinstance(load_model(path), PopularRecommender)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary or .old siblings


def test_saving_an_unfitted_model_raises(tmp_path):
    with pytest.raises(RuntimeError, match="not fitted"):
        SequentialRecommender().save(tmp_path / "model")


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
        path = model.save(tmp_path / "model")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    for item in path.iterdir():
        assert stat.S_IMODE(item.stat().st_mode) == 0o644, item.name
