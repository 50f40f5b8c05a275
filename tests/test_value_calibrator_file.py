"""Saved calibrators (seqrec.value.calibrator_file): JSON round trips, clear refusals of bad or
mismatched files, atomic saves under a real kill, and `seqrec simulate calibrate` ->
`simulate rank --calibrator`."""

import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import seqrec
from seqrec.value.calibration import calibrate
from seqrec.value.calibrator_file import (
    CalibratorFileError,
    CalibratorMismatchError,
    load_calibrator,
    save_calibrator,
)
from seqrec.value.calibrators import (
    PlattCalibrator,
    TemperatureCalibrator,
    fit_calibrator,
)
from seqrec.value.cli import app
from seqrec.value.model_scores import fit_model_calibrator
from seqrec.value.online import OnlinePlatt

VERSION = "2026-01-01T00:00:00+00:00+0123456789ab"


def _scores_and_answers(n=400, seed=0):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=n)
    return scores, (rng.random(n) < 1 / (1 + np.exp(-2 * scores))).astype(float)


@pytest.mark.parametrize("method", ["platt", "temperature", "isotonic"])
def test_a_saved_calibrator_predicts_exactly_what_the_fitted_one_did(tmp_path, method):
    scores, answers = _scores_and_answers()
    fitted = fit_calibrator(scores, answers, method)
    save_calibrator(fitted, tmp_path / "c.json", model=VERSION, normalise="eligible")
    saved = load_calibrator(tmp_path / "c.json", model=VERSION)
    assert saved.method == method and saved.normalise == "eligible"
    assert saved.model_version == VERSION and saved.report is None
    grid = np.linspace(-4, 4, 101)
    np.testing.assert_array_equal(saved.calibrator.predict(grid), fitted.predict(grid))
    content = json.loads((tmp_path / "c.json").read_text())
    assert content["format"] == "seqrec-value-calibrator" and content["format_version"] == 1


def test_a_report_is_saved_with_its_held_out_metrics(tmp_path):
    scores, answers = _scores_and_answers()
    log = pd.DataFrame({"user_id": np.arange(400) % 40, "score": scores, "answered": answers,
                        "timestamp": np.arange(400)})
    report = calibrate(log, lambda rows: rows["score"].to_numpy(), "platt")
    save_calibrator(report, tmp_path / "c.json", model=VERSION)
    saved = load_calibrator(tmp_path / "c.json")
    assert saved.calibrator == report.calibrator
    assert saved.report.holdout == "time"
    assert (saved.report.n_train_rows, saved.report.n_test_rows) == (280, 120)
    assert saved.report.before == report.before and saved.report.after == report.after


def test_only_known_calibrators_and_models_with_a_version_can_be_saved(tmp_path):
    with pytest.raises(ValueError, match="cannot save a OnlinePlatt"):
        save_calibrator(OnlinePlatt(), tmp_path / "c.json", model=VERSION)
    unsaved = seqrec.build_model("esasrec", dim=8, epochs=1)
    with pytest.raises(ValueError, match="model has no model_version"):
        save_calibrator(PlattCalibrator(1.0, 0.0), tmp_path / "c.json", model=unsaved)
    with pytest.raises(ValueError, match="normalise must be one of"):
        save_calibrator(PlattCalibrator(1.0, 0.0), tmp_path / "c.json", model=VERSION,
                        normalise="softmax")
    assert not (tmp_path / "c.json").exists()


def _good() -> dict:
    return {"format": "seqrec-value-calibrator", "format_version": 1, "method": "platt",
            "parameters": {"slope": 1.0, "intercept": 0.0}, "normalise": "catalogue",
            "model_version": VERSION, "saved_at": "", "report": None}


@pytest.mark.parametrize("content, match", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (json.dumps([1, 2]).encode(), "expected a JSON object"),
    (json.dumps(_good() | {"format": "something-else"}).encode(),
     "not a seqrec value calibrator .format 'something-else', expected 'seqrec-value-calibrator'"),
    (json.dumps(_good() | {"format_version": 2}).encode(), "format_version 2, expected 1"),
    (json.dumps(_good() | {"method": "beta"}).encode(), "unknown calibrator 'beta'"),
    (json.dumps(_good() | {"parameters": {"slope": "1"}}).encode(), "parameters.slope"),
    (json.dumps(_good() | {"parameters": {"slope": 1.0}}).encode(), "parameters.intercept"),
    (json.dumps(_good() | {"method": "temperature", "parameters": {"temperature": -1}}).encode(),
     "parameters.temperature: expected > 0"),
    (json.dumps(_good() | {"method": "isotonic", "parameters": {
        "thresholds": [0.0, 1.0], "probabilities": [0.9, 0.1]}}).encode(), "non-decreasing"),
    (json.dumps(_good() | {"normalise": "softmax"}).encode(), "normalise: expected one of"),
    (json.dumps(_good() | {"model_version": None}).encode(), "model_version: expected"),
    (json.dumps(_good() | {"report": {"before": {}}}).encode(), "report.before.log_loss"),
])
def test_a_malformed_file_is_refused_naming_the_file_and_what_was_expected(tmp_path, content,
                                                                           match):
    path = tmp_path / "c.json"
    path.write_bytes(content)
    with pytest.raises(CalibratorFileError, match=match) as caught:
        load_calibrator(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_missing_file_or_another_model_version_is_refused(tmp_path):
    with pytest.raises(CalibratorFileError, match="not found"):
        load_calibrator(tmp_path / "missing.json")
    save_calibrator(TemperatureCalibrator(2.0), tmp_path / "c.json", model=VERSION)
    expected = re.escape(f"fitted for model version {VERSION}, but the model is version other")
    with pytest.raises(CalibratorMismatchError, match=expected) as caught:
        load_calibrator(tmp_path / "c.json", model="other")
    assert (caught.value.fitted_for, caught.value.model_version) == (VERSION, "other")
    assert load_calibrator(tmp_path / "c.json", model=VERSION).calibrator.temperature == 2.0


# The child saves a new calibrator over the old file and is killed with SIGKILL by the test at
# the chosen moment: half-way through writing the temporary file, or just before the rename.
KILLED_SAVE = textwrap.dedent("""
    import os, pathlib, sys, time
    from seqrec.value.calibrator_file import save_calibrator
    from seqrec.value.calibrators import PlattCalibrator

    def stop_here():
        print("ready", flush=True)
        time.sleep(60)

    if sys.argv[2] == "write":
        def half(self, data):
            with open(self, "wb") as f:
                f.write(data[: len(data) // 2])
                f.flush()
            stop_here()
        pathlib.Path.write_bytes = half
    else:
        os.replace = lambda *args: stop_here()
    save_calibrator(PlattCalibrator(2.0, -1.0), sys.argv[1], model="new")
""")


@pytest.mark.parametrize("moment", ["write", "rename"])
def test_a_save_killed_midway_leaves_the_old_file_whole(tmp_path, moment):
    path = tmp_path / "calibrator.json"
    save_calibrator(PlattCalibrator(0.5, 0.25), path, model=VERSION)
    before = path.read_bytes()
    script = tmp_path / "save.py"
    script.write_text(KILLED_SAVE)
    child = subprocess.Popen([sys.executable, str(script), str(path), moment],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        child.kill()  # SIGKILL: no clean-up runs
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert path.read_bytes() == before
    saved = load_calibrator(path, model=VERSION)
    assert saved.calibrator == PlattCalibrator(0.5, 0.25)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".calibrator.json.tmp-")]
    save_calibrator(PlattCalibrator(2.0, -1.0), path, model="new")  # a later save succeeds
    assert load_calibrator(path, model="new").calibrator == PlattCalibrator(2.0, -1.0)


# ---- the command line ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A saved model on a ring of 20 items (ids 100..119) with its interactions, impressions
    after them (the walk's next item answered with probability 0.8, others 0.1) and candidates."""
    root = tmp_path_factory.mktemp("calibrate_cli")
    rng = np.random.default_rng(0)
    starts = rng.integers(0, 20, size=40)
    rows = [(u, 100 + (s + t) % 20, t) for u, s in enumerate(starts) for t in range(10)]
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    model = seqrec.build_model("esasrec", dim=16, epochs=3, n_negatives=8, batch_size=16, seed=0)
    model.fit(seqrec.build_dataset(interactions))
    seqrec.save_model(model, root / "model")
    shown = []
    for u, s in enumerate(starts):
        for k in range(6):
            nxt = 100 + (s + 10) % 20
            item = nxt if rng.random() < 0.5 else 100 + int(rng.integers(0, 20))
            shown.append((u, item, 20 + u + k / 10, int(rng.random() < (0.8 if item == nxt else 0.1))))
    impressions = pd.DataFrame(shown, columns=["user_id", "item_id", "timestamp", "answered"])
    interactions.to_csv(root / "interactions.csv", index=False)
    impressions.to_csv(root / "impressions.csv", index=False)
    pd.DataFrame({"item_id": [108, 109, 110, 115], "price": [1.0, 1.0, 5.0, 2.0],
                  "continuation": [0.9, 0.9, 0.5, 0.8]}).to_csv(root / "items.csv", index=False)
    return root


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _listed(output):
    return [line.split("│")[1:8] for line in output.splitlines() if line.startswith("│")]


def test_calibrate_then_rank_with_the_file_equals_fitting_in_rank(files, tmp_path):
    model, out = files / "model", tmp_path / "calibrator.json"
    fit_args = ("--impressions", files / "impressions.csv", "--interactions",
                files / "interactions.csv")
    done = _invoke("calibrate", "--model", model, *fit_args, "--method", "platt", "--out", out)
    assert done.exit_code == 0, done.output
    assert "time holdout" in done.output and f"saved to {out}" in done.output
    loaded = seqrec.load_model(model)
    saved = load_calibrator(out, model=loaded)
    report = fit_model_calibrator(loaded, pd.read_csv(files / "impressions.csv"),
                                  pd.read_csv(files / "interactions.csv"))
    assert saved.calibrator == report.calibrator and saved.report.after == report.after
    rank_args = ("rank", "--model", model, "--items", files / "items.csv", "--history",
                 "105,106,107", "--cap", "2", "--exclude", "110")
    with_file = _invoke(*rank_args, "--calibrator", out)
    fitted_here = _invoke(*rank_args, *fit_args)
    assert with_file.exit_code == 0 and fitted_here.exit_code == 0, with_file.output
    assert _listed(with_file.output) == _listed(fitted_here.output)
    assert len(_listed(with_file.output)) == 2
    assert "110" not in [row[1].strip() for row in _listed(with_file.output)]
    assert f"{out}: calibration (platt, time holdout" in with_file.output


def test_calibrate_does_not_replace_a_file_unless_forced(files, tmp_path):
    out = tmp_path / "calibrator.json"
    out.write_text("mine")
    args = ("calibrate", "--model", files / "model", "--impressions", files / "impressions.csv",
            "--interactions", files / "interactions.csv", "--out", out)
    refused = _invoke(*args)
    assert refused.exit_code != 0 and "pass --force" in refused.output
    assert out.read_text() == "mine"
    assert _invoke(*args, "--force").exit_code == 0
    assert load_calibrator(out).method == "platt"


def test_rank_takes_exactly_one_way_to_calibrate(files, tmp_path):
    save_calibrator(PlattCalibrator(1.0, 0.0), tmp_path / "c.json", model=VERSION)
    base = ("rank", "--model", files / "model", "--items", files / "items.csv")
    neither = _invoke(*base)
    assert neither.exit_code != 0 and "give --calibrator FILE, or both" in neither.output
    both = _invoke(*base, "--calibrator", tmp_path / "c.json", "--impressions",
                   files / "impressions.csv")
    assert both.exit_code != 0 and "not both" in both.output
    method = _invoke(*base, "--calibrator", tmp_path / "c.json", "--method", "isotonic")
    assert method.exit_code != 0 and "only for fitting" in method.output
    other = _invoke(*base, "--calibrator", tmp_path / "c.json")
    assert other.exit_code != 0 and f"fitted for model version {VERSION}" in other.output
