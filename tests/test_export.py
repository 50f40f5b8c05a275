"""ONNX export (seqrec.export): ONNX Runtime gives PyTorch's hidden states for any batch and
window length; the command refuses to clobber a file or to write into a model directory."""

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import pattern_interactions, small_config

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import onnx  # noqa: E402
import onnxruntime  # noqa: E402
from test_cli import TINY, ok, one_line_error, run, write_log  # noqa: E402

from seqrec import SequentialRecommender, build_dataset  # noqa: E402
from seqrec.export import export_onnx  # noqa: E402

TOLERANCE = 1e-4


@pytest.fixture(scope="module", params=["esasrec", "bert4rec"])
def model(request):
    fitted = SequentialRecommender(small_config(request.param, epochs=1, max_seq_len=12))
    fitted.fit(build_dataset(pattern_interactions(n_users=40, n_items=30)))
    return fitted


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "encoder.onnx")


def test_onnx_hidden_states_equal_torch_for_any_batch_and_length(model, exported):
    assert exported.max_abs_diff <= TOLERANCE
    session = onnxruntime.InferenceSession(str(exported.path),
                                           providers=["CPUExecutionProvider"])
    h = model.histories
    for rows in (np.arange(1), np.arange(5), np.arange(h.n_sequences)):
        inputs = model.parts.objective.inference_inputs(h.items, h.offsets, rows)
        (hidden,) = session.run(None, {"inputs": inputs})
        expected = model.encode_histories(h.items, h.offsets, rows).numpy()
        assert hidden.shape == expected.shape == (len(rows), 32)
        np.testing.assert_allclose(hidden, expected, atol=TOLERANCE, rtol=0)
    short = np.array([[0, 0, 3], [1, 2, 3]], dtype=np.int64)  # left-padded, seq_len 3 < 12
    with torch.no_grad():
        expected = model.parts.encoder.encode(torch.from_numpy(short),
                                              causal=model.parts.objective.causal,
                                              last_only=True).numpy()
    np.testing.assert_allclose(session.run(None, {"inputs": short})[0], expected, atol=TOLERANCE)


def test_the_file_says_what_it_computes(model, exported):
    meta = {p.key: p.value for p in onnx.load(str(exported.path)).metadata_props}
    assert meta["n_items"] == "30" and meta["dim"] == "32" and meta["max_seq_len"] == "12"
    assert meta["causal"] == str(model.parts.objective.causal).lower()
    assert exported.opset >= 18


def test_export_command_writes_and_refuses_to_clobber(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log.csv")
    model_dir = tmp_path / "model"
    ok("train", "--data", log, "--format", "csv", *TINY, "--out", model_dir, "--quiet")
    target = tmp_path / "encoder.onnx"
    result = ok("export", "--model", model_dir, "--onnx", target)
    assert target.is_file() and "max abs diff" in result.stdout
    before = target.read_bytes()
    one_line_error(run("export", "--model", model_dir, "--onnx", target), "exists", "--force")
    assert target.read_bytes() == before
    ok("export", "--model", model_dir, "--onnx", target, "--force")
    for inside in (model_dir / "encoder.onnx", model_dir / "checkpoint" / "encoder.onnx"):
        one_line_error(run("export", "--model", model_dir, "--onnx", inside, "--force"),
                       "model directory")
        assert not inside.exists()
    one_line_error(run("export", "--model", tmp_path / "missing", "--onnx", tmp_path / "x.onnx"),
                   "--model")


def test_without_onnx_the_error_names_the_extra(model, tmp_path, monkeypatch):
    from seqrec.errors import MissingDependencyError

    monkeypatch.setitem(__import__("sys").modules, "onnxscript", None)
    with pytest.raises(MissingDependencyError, match=r"onnxscript is missing.*seqrec\[onnx\]"):
        export_onnx(model, tmp_path / "e.onnx")
    assert not (tmp_path / "e.onnx").exists()
