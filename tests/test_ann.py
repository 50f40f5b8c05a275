"""Approximate retrieval (seqrec.ann): with an index exact enough the lists equal the exact
ones; filters hold exactly and lists are never short; a stale or foreign index is refused at
load; a bad ANN setting is an error naming it."""

import dataclasses
import hashlib
import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import pattern_interactions, small_config

pytest.importorskip("faiss")

from seqrec import (  # noqa: E402
    ModelDirectoryError,
    PopularRecommender,
    SequentialRecommender,
    build_dataset,
    load_model,
    save_model,
)
from seqrec.ann import AnnConfig, build_index, index_metadata, rank_rows_ann  # noqa: E402
from seqrec.filters import Filters, ItemSets, apply_filters, eligible_candidates, item_mask  # noqa: E402
from seqrec.rank import rank_rows  # noqa: E402

N_ITEMS = 120


@pytest.fixture(scope="module")
def model():
    dataset = build_dataset(pattern_interactions(n_users=60, n_items=N_ITEMS))
    fitted = SequentialRecommender(small_config(epochs=1))
    fitted.fit(dataset)
    return fitted


def _users(model, n=40):
    return model.user_index.ids[:n].tolist()


@pytest.mark.parametrize("config", [AnnConfig(kind="flat"),
                                    AnnConfig(kind="ivf", n_lists=4, n_probe=4),
                                    AnnConfig(kind="hnsw", hnsw_m=8, ef_search=200)],
                         ids=["flat", "ivf_all_lists", "hnsw_high_ef"])
def test_lists_equal_the_exact_lists_when_the_index_is_exact_enough(model, config):
    model.ann_index = build_index(model.item_embeddings(), config)
    users = _users(model)
    exclude = model.catalogue.ids[:5].tolist()
    for options in ({}, {"exclude_items": exclude}, {"filter_viewed": False}):
        exact = model.recommend(users, k=10, retrieval="exact", **options)
        approximate = model.recommend(users, k=10, retrieval="ann", **options)
        pd.testing.assert_frame_equal(approximate.drop(columns="score"),
                                      exact.drop(columns="score"))
        np.testing.assert_allclose(approximate.score, exact.score, rtol=1e-5, atol=1e-5)
    histories = [model.catalogue.ids[[3, 4, 5]].tolist(), model.catalogue.ids[[7]].tolist()]
    pd.testing.assert_frame_equal(
        model.recommend_for_histories(histories, k=7, retrieval="ann").drop(columns="score"),
        model.recommend_for_histories(histories, k=7, retrieval="exact").drop(columns="score"))


def test_filters_hold_and_lists_are_full_when_the_first_candidates_are_all_filtered(model,
                                                                                   caplog):
    """The index's best candidates of every row are excluded, so no row gets k eligible
    candidates from the index: each falls back to the exact path, once, and still gets
    exactly min(k, eligible) items, none of them filtered."""
    model.ann_index = build_index(model.item_embeddings(), AnnConfig(kind="flat", overfetch=1))
    users = _users(model)
    exact = model.recommend(users, k=10, retrieval="exact")
    excluded = sorted(set(exact.item_id))  # every item any user would be shown first
    with caplog.at_level(logging.DEBUG, logger="seqrec.ann"):
        got = model.recommend(users, k=10, retrieval="ann", exclude_items=excluded)
    assert "ann: 40 of 40 model rows ranked exactly" in caplog.text
    want = model.recommend(users, k=10, retrieval="exact", exclude_items=excluded)
    pd.testing.assert_frame_equal(got, want)
    assert not set(got.item_id) & set(excluded)
    assert (got.groupby("user_id").size() == 10).all()
    history_rows = model.histories.users  # user index of each history row
    for user, items in got.groupby("user_id").item_id:
        row = int(np.flatnonzero(history_rows == model.user_index.to_index([user])[0])[0])
        seen = model.histories.items[model.histories.offsets[row]:model.histories.offsets[row + 1]]
        assert not set(model.catalogue.to_index(items.tolist())) & set(seen.tolist())


def test_a_small_allow_list_gives_min_k_eligible_items(model):
    model.ann_index = build_index(model.item_embeddings(), AnnConfig(kind="flat", overfetch=1))
    allowed = model.catalogue.ids[-4:].tolist()
    got = model.recommend(_users(model, 10), k=10, retrieval="ann", include_items=allowed,
                          filter_viewed=False)
    assert set(got.item_id) <= set(allowed)
    assert (got.groupby("user_id").size() == 4).all()


def test_candidate_masks_equal_the_dense_masks():
    rng = np.random.default_rng(0)
    n_items, n_rows = 30, 6
    seen = ItemSets.from_lists([rng.choice(np.arange(1, n_items + 1), size=int(s), replace=False)
                                for s in rng.integers(0, 8, size=n_rows)])
    include = ItemSets.from_lists([rng.choice(np.arange(1, n_items + 1), 12, replace=False)
                                   for _ in range(n_rows)])
    filters = Filters(seen=seen, include=include, exclude=item_mask(n_items, [1, 2, 3]),
                      include_rows=np.array([True, False, True, True, False, True]))
    dense = torch.isfinite(apply_filters(torch.zeros(n_rows, n_items + 1), filters))
    items = torch.from_numpy(np.stack([rng.permutation(n_items + 1)[:20] for _ in range(n_rows)]))
    assert torch.equal(eligible_candidates(items, filters), dense.gather(1, items))


def test_rank_rows_ann_matches_rank_rows_with_fallback_rows(model):
    """Unknown-user (popular) rows and model rows mixed, through the scorer protocol."""
    from seqrec.lists import HistoryScorer

    model.ann_index = build_index(model.item_embeddings(), AnnConfig(kind="flat"))
    h = model.histories
    rows = ItemSets(h.items, h.offsets)
    fallback = np.zeros(rows.n_rows, dtype=bool)
    fallback[::3] = True
    options = dict(filters=Filters(seen=rows), lengths=rows.lengths(), fallback=fallback,
                   fallback_scores=model.fitted.popularity_scores(), batch_size=7)
    scorer = HistoryScorer(model, rows)
    exact = rank_rows(scorer, rows.n_rows, model.n_items, 10, **options)
    approximate = rank_rows_ann(scorer, model.ann_index, rows.n_rows, model.n_items, 10, **options)
    assert torch.equal(approximate.items, exact.items)


def test_auto_uses_the_index_only_for_large_catalogues(model, monkeypatch):
    calls = []

    def recording(*args, **kwargs):
        calls.append(1)
        return rank_rows_ann(*args, **kwargs)

    monkeypatch.setattr("seqrec.lists.rank_rows_ann", recording)
    model.ann_index = build_index(model.item_embeddings(), AnnConfig(kind="flat"))
    model.recommend(_users(model, 3), k=5)  # auto, 120 items < auto_min_items
    assert calls == []
    model.ann_index = build_index(model.item_embeddings(),
                                  AnnConfig(kind="flat", auto_min_items=N_ITEMS))
    model.recommend(_users(model, 3), k=5)
    assert calls == [1]
    model.recommend(_users(model, 3), k=5, include_items=model.catalogue.ids[:3].tolist())
    assert calls == [1]  # a small allow list: exact scoring is cheaper


def test_save_and_load_keep_the_index_and_the_lists(model, tmp_path):
    model.ann_index = build_index(model.item_embeddings(), AnnConfig(kind="ivf", n_lists=4,
                                                                     n_probe=2))
    before = model.recommend(_users(model), k=10, retrieval="ann")
    loaded = load_model(save_model(model, tmp_path / "m"))
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert "ann.safetensors" in manifest["files"]
    assert loaded.ann_index.config == model.ann_index.config
    pd.testing.assert_frame_equal(loaded.recommend(_users(model), k=10, retrieval="ann"), before)


def _relist(directory):
    """Rewrite the manifest for the files now present (as a careless copy script would)."""
    manifest = json.loads((directory / "manifest.json").read_text())
    for name in manifest["files"]:
        content = (directory / name).read_bytes()
        manifest["files"][name] = {"sha256": hashlib.sha256(content).hexdigest(),
                                   "bytes": len(content)}
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_a_stale_index_is_refused_at_load_naming_the_file(model, tmp_path):
    model.ann_index = build_index(model.item_embeddings(), AnnConfig(kind="flat"))
    old = save_model(model, tmp_path / "old")
    retrained = SequentialRecommender(small_config(epochs=1, seed=1))
    retrained.fit(build_dataset(pattern_interactions(n_users=60, n_items=N_ITEMS)))
    assert retrained.ann_index is None  # fit drops an index of the old table
    retrained.ann_index = build_index(retrained.item_embeddings(), AnnConfig(kind="flat"))
    new = save_model(retrained, tmp_path / "new")
    (new / "ann.safetensors").write_bytes((old / "ann.safetensors").read_bytes())
    _relist(new)
    with pytest.raises(ModelDirectoryError, match=r"ann\.safetensors: .*another item table"):
        load_model(new)


def test_an_index_of_another_width_is_refused_at_load(model, tmp_path):
    other = SequentialRecommender(small_config(epochs=1, dim=16))
    other.fit(build_dataset(pattern_interactions(n_users=60, n_items=N_ITEMS)))
    other.ann_index = build_index(other.item_embeddings(), AnnConfig(kind="flat"))
    foreign = (save_model(other, tmp_path / "other") / "ann.safetensors").read_bytes()
    assert index_metadata(foreign)["dim"] == "16"
    model.ann_index = build_index(model.item_embeddings(), AnnConfig(kind="flat"))
    target = save_model(model, tmp_path / "m")
    (target / "ann.safetensors").write_bytes(foreign)
    _relist(target)
    with pytest.raises(ModelDirectoryError, match=r"ann\.safetensors: index built for .* width 16"):
        load_model(target)


def test_saving_an_index_of_an_older_table_is_refused(model, tmp_path):
    model.ann_index = build_index(model.item_embeddings(), AnnConfig(kind="flat"))
    changed = dataclasses.replace(model.ann_index, table_sha256="0" * 64)
    model.ann_index = changed
    with pytest.raises(ValueError, match="ann_index: built from another item table"):
        save_model(model, tmp_path / "m")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("settings, name", [
    ({"kind": "lsh"}, "kind"), ({"n_probe": 0}, "n_probe"), ({"ef_search": -1}, "ef_search"),
    ({"overfetch": 0}, "overfetch"), ({"n_lists": 4, "n_probe": 8}, "n_probe"),
    ({"hnsw_m": 1000}, "hnsw_m"), ({"max_candidates": 2.5}, "max_candidates")])
def test_a_bad_ann_setting_is_an_error_naming_it(settings, name):
    with pytest.raises(ValueError, match=f"AnnConfig.{name}="):
        AnnConfig(**settings)


def test_settings_the_catalogue_cannot_have_are_errors_naming_them(model):
    table = model.item_embeddings()
    with pytest.raises(ValueError, match="n_lists=500: more than the 120 items"):
        build_index(table, AnnConfig(n_lists=500))
    with pytest.raises(ValueError, match="n_probe=64: more than n_lists=44"):
        build_index(table, AnnConfig(n_probe=64))  # default n_lists = round(4 sqrt(120)) = 44


def test_a_bad_retrieval_or_a_missing_index_is_an_error_naming_it(model):
    model.ann_index = None
    with pytest.raises(ValueError, match="retrieval='fast'"):
        model.recommend(_users(model, 2), retrieval="fast")
    with pytest.raises(ValueError, match="retrieval='ann': the model has no ANN index"):
        model.recommend(_users(model, 2), retrieval="ann")
    popular = PopularRecommender()
    popular.fit(build_dataset(pattern_interactions(n_users=10, n_items=20)))
    with pytest.raises(ValueError, match="no ANN index"):
        popular.recommend([0], retrieval="ann")
    assert len(popular.recommend([0], k=3)) == 3  # auto: exact


def test_without_faiss_the_error_names_the_extra_and_saved_models_load_exact(model, tmp_path,
                                                                              monkeypatch):
    from seqrec.errors import MissingDependencyError

    model.ann_index = build_index(model.item_embeddings(), AnnConfig(kind="flat"))
    saved = save_model(model, tmp_path / "m")
    monkeypatch.setitem(__import__("sys").modules, "faiss", None)  # import faiss fails
    with pytest.raises(MissingDependencyError, match=r"pip install 'seqrec\[ann\]'"):
        build_index(model.item_embeddings())
    with pytest.warns(UserWarning, match="ann.safetensors: not loaded.*seqrec\\[ann\\]"):
        loaded = load_model(saved)
    assert loaded.ann_index is None
    assert len(loaded.recommend(_users(model, 2), k=3)) == 6


def test_the_recommend_command_takes_retrieval(model, tmp_path):
    from test_cli import ok, one_line_error, run

    model.ann_index = None
    plain = save_model(model, tmp_path / "plain")
    users = ",".join(str(u) for u in _users(model, 5))
    one_line_error(run("recommend", "--model", plain, "--users", users, "--retrieval", "ann"),
                   "--retrieval ann", "no ANN index")
    model.ann_index = build_index(model.item_embeddings(), AnnConfig(kind="flat"))
    indexed = save_model(model, tmp_path / "indexed")
    exact = ok("recommend", "--model", indexed, "--users", users, "--retrieval", "exact")
    approximate = ok("recommend", "--model", indexed, "--users", users, "--retrieval", "ann")
    assert approximate.stdout == exact.stdout
