"""The benchmark scripts write their results files atomically (``seqrec.files.write_atomic``), so a
run killed mid-write leaves the old file whole, and width_study's shared CSVs lose no rows when
two runs finish together."""

import ast
import multiprocessing
import sys
from pathlib import Path

import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRATCH = "a scratch input of a subprocess, in a temporary directory, written before it starts"
# plain writes that are not results files: (script, the called function as ast.unparse writes
# it) -> why it may stay a plain write
ALLOWED = {
    ("_common.py", "Path('/proc/self/clear_refs').write_text"):
        "a kernel control file (resets the peak RSS), not a file on disk",
    ("serve_load.py", "log.open"): "the server subprocess's stdout log; " + SCRATCH,
    ("serve_load.py", "bodies.write_text"): "request bodies wrk reads; " + SCRATCH,
    ("serve_load.py", "lua.write_text"): "the Lua script wrk runs; " + SCRATCH,
    ("time_to_quality.py", "spec_path.write_text"): "the child's spec JSON; " + SCRATCH,
    ("vs_rectools.py", "spec_path.write_text"): "the child's spec JSON; " + SCRATCH,
}


def _open_mode(call: ast.Call) -> ast.expr | None:
    """The mode argument of ``open(file, mode)`` or ``path.open(mode)``; None for ``os.open``."""
    func = call.func
    if isinstance(func, ast.Name) and func.id == "open":
        position = 1
    elif (isinstance(func, ast.Attribute) and func.attr == "open"
          and not (isinstance(func.value, ast.Name) and func.value.id == "os")):
        position = 0
    else:
        return None
    keyword = next((k.value for k in call.keywords if k.arg == "mode"), None)
    return keyword or (call.args[position] if len(call.args) > position else None)


def plain_writes(source: str) -> list[tuple[int, str]]:
    """``(line, called function)`` of every write in ``source`` that bypasses ``write_atomic``:
    ``.write_text``/``.write_bytes``, ``.savefig``, ``.to_csv`` given a path, and ``open`` for
    writing. Calls inside the arguments of ``write_atomic(...)`` (its writer callable) pass."""
    tree = ast.parse(source)
    inside_atomic = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(
                node.func, "attr", None)) == "write_atomic":
            for argument in [*node.args, *(k.value for k in node.keywords)]:
                inside_atomic.update(id(sub) for sub in ast.walk(argument))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or id(node) in inside_atomic:
            continue
        attr = getattr(node.func, "attr", None)
        mode = _open_mode(node)
        if (attr in ("write_text", "write_bytes", "savefig")
                or (attr == "to_csv" and (node.args or any(k.arg == "path_or_buf"
                                                           for k in node.keywords)))
                or (isinstance(mode, ast.Constant) and isinstance(mode.value, str)
                    and set(mode.value) & set("wax+"))):
            found.append((node.lineno, ast.unparse(node.func)))
    return sorted(found)


def _scripts() -> dict[str, list[tuple[int, str]]]:
    return {path.name: plain_writes(path.read_text())
            for path in sorted(BENCHMARKS.glob("*.py"))}


def test_the_detector_finds_the_plain_writes_and_passes_write_atomic():
    source = """
frame.to_csv(path, index=False)
frame.to_csv(path_or_buf=path)
fig.savefig(out / "a.png", dpi=110)
Path(out).write_text(text)
with CSV.open("w", newline="") as f: pass
with open(name, "a") as f: pass
text = frame.to_csv(index=False)
write_atomic(path, frame.to_csv(index=False))
write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
open(name).read()
Path(name).open("rb")
os.open(lock, os.O_RDWR | os.O_CREAT)
"""
    assert [line for line, _ in plain_writes(source)] == [2, 3, 4, 5, 6, 7]


def test_every_results_file_is_written_atomically():
    offenders = [f"benchmarks/{name}:{line}: {func}(...)"
                 for name, writes in _scripts().items() for line, func in writes
                 if (name, func) not in ALLOWED]
    assert not offenders, ("results written in place (a kill mid-write truncates them); use "
                           "seqrec.files.write_atomic:\n" + "\n".join(offenders))


def test_the_allow_list_names_only_writes_that_exist():
    found = {(name, func) for name, writes in _scripts().items() for _, func in writes}
    assert set(ALLOWED) <= found, f"stale allow-list entries: {set(ALLOWED) - found}"


def _replace_rows():
    """``replace_rows`` of benchmarks/width_study.py (benchmarks/ is not a package)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    from width_study import replace_rows

    return replace_rows


def _rows(label: str, epochs: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"label": label, "epoch": epochs, "value": [e / 10 for e in epochs]})


def test_replace_rows_replaces_the_label_and_keeps_the_others(tmp_path):
    replace_rows = _replace_rows()
    path = tmp_path / "runs.csv"
    replace_rows(path, _rows("a", [1, 2, 3]), "a")
    replace_rows(path, _rows("b", [1, 2]), "b")
    replace_rows(path, _rows("a", [7]), "a")
    frame = pd.read_csv(path)
    assert frame[frame["label"] == "b"]["epoch"].tolist() == [1, 2]
    assert frame[frame["label"] == "a"]["epoch"].tolist() == [7]
    assert frame[frame["label"] == "a"]["value"].tolist() == [0.7]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.csv", "runs.csv.lock"]


ROUNDS = 30  # calls per process


def _hammer(path: str, prefix: str, barrier) -> None:
    """One process: ROUNDS calls of replace_rows, each adding a label of its own."""
    replace_rows = _replace_rows()
    barrier.wait(timeout=300)  # both import torch first, then write at the same time
    for k in range(ROUNDS):
        replace_rows(Path(path), _rows(f"{prefix}{k}", [1, 2, 3]), f"{prefix}{k}")


@pytest.mark.timeout(600)
def test_two_processes_replacing_rows_at_once_lose_none(tmp_path):
    path = tmp_path / "runs.csv"
    replace_rows = _replace_rows()
    replace_rows(path, _rows("before", [1, 2]), "before")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    processes = [context.Process(target=_hammer, args=(str(path), prefix, barrier))
                 for prefix in ("p", "q")]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=500)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
    assert [p.exitcode for p in processes] == [0, 0]
    counts = pd.read_csv(path)["label"].value_counts().to_dict()
    expected = {f"{prefix}{k}": 3 for prefix in ("p", "q") for k in range(ROUNDS)}
    assert counts == {"before": 2, **expected}


def _die_mid_write(path: str, ready) -> None:
    """One process: replace_rows whose rename never comes (it waits there to be killed)."""
    import os
    import time

    replace_rows = _replace_rows()

    def stop_here(*args):
        ready.set()
        time.sleep(300)

    os.replace = stop_here  # write_atomic's last step: the new file is complete, not yet in place
    replace_rows(Path(path), _rows("new", [9]), "new")


@pytest.mark.timeout(600)
def test_a_run_killed_mid_write_leaves_the_old_rows_and_frees_the_lock(tmp_path):
    path = tmp_path / "runs.csv"
    replace_rows = _replace_rows()
    replace_rows(path, _rows("before", [1, 2]), "before")
    before = path.read_bytes()
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    child = context.Process(target=_die_mid_write, args=(str(path), ready))
    child.start()
    try:
        assert ready.wait(timeout=300), "the child never reached the rename"
        child.kill()  # SIGKILL while it holds the lock, its temporary file written
        child.join(timeout=60)
    finally:
        if child.is_alive():
            child.kill()
    assert path.read_bytes() == before  # the old file, whole
    replace_rows(path, _rows("after", [3]), "after")  # the lock died with its holder
    assert pd.read_csv(path)["label"].tolist() == ["before", "before", "after"]
