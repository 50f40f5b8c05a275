"""Fault injection: a process killed at every rename of a save, a checkpoint or a publish leaves
the old model or the new one at the path (never nothing, never a mix), and what it left behind is
cleaned or reused. Kills are real (``os._exit`` in a subprocess, no clean-up runs), at each call
of ``os.rename`` / ``os.replace`` / the atomic exchange, with and without RENAME_EXCHANGE."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from seqrec import load_model

TESTS = Path(__file__).resolve().parent

# Runs a job with the N-th rename-like call replaced by an immediate exit (code 9).
HARNESS = textwrap.dedent("""
    import errno, os, sys
    sys.path.insert(0, {tests!r})
    import seqrec.files as files

    kill_at, fallback = int(sys.argv[1]), sys.argv[2] == "fallback"
    calls = [0]

    def counted(function):
        def wrapper(*args, **kwargs):
            calls[0] += 1
            if calls[0] == kill_at:
                os._exit(9)
            return function(*args, **kwargs)
        return wrapper

    def no_exchange(a, b):
        raise OSError(errno.ENOSYS, "no RENAME_EXCHANGE here")

    os.rename, os.replace = counted(os.rename), counted(os.replace)
    files._exchange = counted(no_exchange if fallback else files._exchange)
""")

SAVE_JOB = textwrap.dedent("""
    from conftest import pattern_interactions, small_config
    from seqrec import SequentialRecommender, build_dataset, save_model
    dataset = build_dataset(pattern_interactions(n_users=40, n_items=20))
    model = SequentialRecommender(small_config(epochs=1, seed=int(sys.argv[4])))
    model.fit(dataset)
    save_model(model, sys.argv[3])
""")

RUN_JOB = textwrap.dedent("""
    from conftest import pattern_interactions, small_config
    from seqrec import build_dataset, leave_one_out, train_and_save
    dataset = build_dataset(pattern_interactions(n_users=40, n_items=20))
    resume = sys.argv[4] == "resume"
    train_and_save(sys.argv[3], dataset, small_config(epochs=3, patience=0),
                   split=leave_one_out(dataset), resume=resume)
""")


def _run(tmp_path: Path, job: str, kill_at: int, mode: str, *args: str) -> int:
    script = tmp_path / "job.py"
    script.write_text(HARNESS.format(tests=str(TESTS)) + job)
    done = subprocess.run([sys.executable, str(script), str(kill_at), mode, *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 9), done.stderr[-2000:]
    return done.returncode


def _version(path: Path) -> str:
    return load_model(path).metadata["model_version"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["exchange", "fallback"])
def test_a_save_killed_at_any_rename_leaves_the_old_model_or_the_new_one(tmp_path, mode):
    path = tmp_path / "model"
    assert _run(tmp_path, SAVE_JOB, 0, mode, str(path), "0") == 0
    old = _version(path)
    seen = set()
    for kill_at in range(1, 20):
        code = _run(tmp_path, SAVE_JOB, kill_at, mode, str(path), str(kill_at))
        version = _version(path)  # never missing, never a mix: load validates the manifest
        assert version == old or code == 0
        seen.add("new" if version != old else "old")
        if code == 0:
            break
        old = version
    else:
        pytest.fail("the save never completed")
    assert seen == {"old", "new"} or kill_at == 1
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".model.")]
    assert leftovers == [], leftovers  # the last (complete) save cleaned up after the dead ones


@pytest.mark.slow
def test_a_run_killed_at_any_rename_resumes_or_publishes_and_never_loses_out(tmp_path):
    """For each rename of a whole run (checkpoints, the model save, the publish): kill there,
    then run again as a user would (--resume when a checkpoint or a staged model exists)."""
    for kill_at in range(1, 40):
        root = tmp_path / f"kill{kill_at}"
        root.mkdir()
        out, stage = root / "out", root / ".out.partial"
        code = _run(root, RUN_JOB, kill_at, "exchange", str(out), "fresh")
        if code == 0:
            break  # past the last rename: the run completed
        if out.exists():
            load_model(out)  # whatever is published loads
        resumable = ((stage / "checkpoint" / "state.json").is_file()
                     or (stage / "model" / "manifest.json").is_file())
        assert _run(root, RUN_JOB, 0, "exchange", str(out),
                    "resume" if resumable else "fresh") == 0
        state = json.loads((out / "checkpoint" / "state.json").read_text())["state"]
        assert state["epoch"] == 3, kill_at
        assert load_model(out).metadata["metrics"], kill_at
        assert not stage.exists(), kill_at
        assert [p.name for p in root.iterdir() if p.name.startswith(".")] == [], kill_at
    else:
        pytest.fail("the run never completed")
    assert kill_at > 5  # checkpoints, save and publish were all cut at least once
