"""Library-owned runs (runs.py): train_and_save publishes a complete model directory; resume
continues only the same config and data, refusing anything else with one line and no change."""

import hashlib
from pathlib import Path

import pytest
from conftest import pattern_interactions, small_config

from seqrec import (
    OutputExistsError,
    ResumeError,
    build_dataset,
    leave_one_out,
    load_model,
    train_and_save,
)
from seqrec.runs import resume_config, staging_path


@pytest.fixture(scope="module")
def data():
    dataset = build_dataset(pattern_interactions(n_users=60, n_items=20))
    return dataset, leave_one_out(dataset)


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_a_run_publishes_a_model_serving_whole_histories_with_its_metrics(data, tmp_path):
    dataset, split = data
    result = train_and_save(tmp_path / "out", dataset, small_config(epochs=2), split=split)
    assert result.path == tmp_path / "out" and set(result.metrics) >= {"ndcg@10", "recall@10"}
    loaded = load_model(result.path)
    assert loaded.metadata["metrics"] == pytest.approx(result.metrics)
    assert loaded.histories.n_sequences == dataset.sequences.n_sequences
    assert (result.path / "checkpoint" / "state.json").is_file()
    assert not staging_path(result.path).exists()
    assert resume_config(result.path) == small_config(epochs=2)


def test_a_non_empty_out_is_refused_unless_forced(data, tmp_path):
    dataset, split = data
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not empty"):
        train_and_save(out, dataset, None, split=split)
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="force and resume"):
        train_and_save(out, dataset, None, split=split, force=True, resume=True)
    train_and_save(out, dataset, None, split=split, force=True)
    assert not (out / "notes.txt").exists() and load_model(out).metadata["kind"] == "popular"


def test_an_interrupted_runs_checkpoint_is_kept_unless_forced(data, tmp_path):
    dataset, split = data
    out = tmp_path / "out"
    checkpoint = staging_path(out) / "checkpoint" / "state.json"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_text("{}")  # what a run killed after its first epoch leaves
    with pytest.raises(OutputExistsError, match="interrupted run"):
        train_and_save(out, dataset, None, split=split)
    assert checkpoint.read_text() == "{}" and not out.exists()
    with pytest.warns(UserWarning, match="interrupted run"):
        train_and_save(out, dataset, None, split=split, force=True)
    assert not staging_path(out).exists() and load_model(out).metadata["kind"] == "popular"


@pytest.fixture()
def finished_run(data, tmp_path):
    dataset, split = data
    out = tmp_path / "run"
    train_and_save(out, dataset, small_config(epochs=2), split=split)
    return out, _tree_digest(tmp_path)


@pytest.mark.parametrize(("change", "needle"), [({"dim": 16}, "dim 32 -> 16"),
                                               ({"loss": "bce"}, "loss")])
def test_resume_with_another_config_is_refused_and_changes_nothing(data, finished_run, change,
                                                                  needle):
    dataset, split = data
    out, before = finished_run
    with pytest.raises(ResumeError, match=needle):
        train_and_save(out, dataset, small_config(epochs=3, **change), split=split, resume=True)
    assert _tree_digest(out.parent) == before


def test_resume_with_other_data_is_refused_and_changes_nothing(finished_run):
    out, before = finished_run
    other = build_dataset(pattern_interactions(n_users=60, n_items=20, seed=1))
    with pytest.raises(ResumeError, match="data differ"):
        train_and_save(out, other, small_config(epochs=3), split=leave_one_out(other), resume=True)
    assert _tree_digest(out.parent) == before


def test_resume_may_raise_epochs_and_continues_from_the_checkpoint(data, finished_run):
    dataset, split = data
    out, _ = finished_run
    result = train_and_save(out, dataset, small_config(epochs=4), split=split, resume=True)
    assert result.fit_result.resumed_after == 2 and len(result.fit_result.history) == 4


def test_resume_without_a_run_says_so(data, tmp_path):
    dataset, split = data
    with pytest.raises(ResumeError, match="no checkpoint"):
        train_and_save(tmp_path / "none", dataset, small_config(), split=split, resume=True)
