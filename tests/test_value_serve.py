"""POST /rank/value (seqrec.serve.value) through FastAPI's TestClient: the answer is the library's
rank_by_value, the service's conventions hold (limits, error format, unknown ids, scoring off the
event loop), and a calibrator never serves a model version it was not fitted for."""

import threading

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

import seqrec
from seqrec.serve import create_app
from seqrec.value.calibrator_file import CalibratorMismatchError, save_calibrator
from seqrec.value.calibrators import PlattCalibrator
from seqrec.value.value_rank import rank_by_value

LOCAL = ("127.0.0.1", 50000)
CALIBRATOR = PlattCalibrator(slope=1.2, intercept=1.5)


def _train(path, seed: int = 0):
    # 30 users walk a ring of 20 items (ids 100..119) from different starting points
    rng = np.random.default_rng(0)
    rows = [(user, 100 + (start + t) % 20, t)
            for user, start in enumerate(rng.integers(0, 20, size=30)) for t in range(10)]
    dataset = seqrec.build_dataset(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))
    model = seqrec.build_model("esasrec", dim=16, epochs=2, n_negatives=8, batch_size=16, seed=seed)
    model.fit(dataset)
    seqrec.save_model(model, path)
    return seqrec.load_model(path)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``(model, model_dir, calibrator_file)``: a model loaded from its directory and a Platt
    calibrator saved for its version."""
    root = tmp_path_factory.mktemp("value_serve")
    model = _train(root / "model")
    save_calibrator(CALIBRATOR, root / "calibrator.json", model=model)
    return model, root / "model", root / "calibrator.json"


@pytest.fixture(scope="module")
def client(served):
    _, model_dir, calibrator = served
    with TestClient(create_app(model_dir, value_calibrator=calibrator), client=LOCAL) as c:
        yield c


def _candidates(ids, prices, continuation):
    return [{"item_id": i, "price": r, "continuation": c}
            for i, r, c in zip(ids, prices, continuation, strict=True)]


IDS = [108, 110, 103, 115, 119]
PRICES = [1.0, 5.0, 2.0, 0.5, 3.0]
CONTINUATION = [0.9, 0.5, 0.8, 0.95, 0.0]


def _stored_history(model, user):
    data = model.fitted
    row = data.history_rows()[data.user_index.index_of(user)]
    h = data.histories
    return data.catalogue.to_external(h.items[h.offsets[row]:h.offsets[row + 1]]).tolist()


@pytest.mark.parametrize("normalise", ["catalogue", "eligible"])
@pytest.mark.parametrize("cap", [None, 2])
@pytest.mark.parametrize("source", ["history", "user_id"])
def test_the_answer_equals_rank_by_value(served, tmp_path, normalise, cap, source):
    model, model_dir, _ = served
    calibrator = tmp_path / "calibrator.json"
    save_calibrator(CALIBRATOR, calibrator, model=model, normalise=normalise)
    request = {"candidates": _candidates([*IDS, 9999], [*PRICES, 1.0], [*CONTINUATION, 0.5]),
               "exclude_items": [103, "nope"], "cap": cap}
    if source == "history":
        request["history"], history = [105, 106, 107, 12345], [105, 106, 107]
    else:
        request["user_id"], history = 3, _stored_history(model, 3)
    with TestClient(create_app(model_dir, value_calibrator=calibrator)) as c:
        response = c.post("/rank/value", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = rank_by_value(model, history, IDS, PRICES, CONTINUATION, CALIBRATOR, cap=cap,
                             is_eligible=np.array([i != 103 for i in IDS]), normalise=normalise)
    assert [x["item_id"] for x in body["items"]] == expected.item_ids.tolist()
    assert [x["rank"] for x in body["items"]] == list(range(1, len(expected.item_ids) + 1))
    for key, values in (("probability", expected.probabilities), ("log_prob", expected.log_probs),
                        ("price", expected.prices), ("continuation", expected.continuation),
                        ("key", expected.keys)):
        np.testing.assert_allclose([x[key] for x in body["items"]], values, rtol=1e-12)
    assert body["expected_revenue"] == pytest.approx(expected.expected_revenue, rel=1e-12)
    assert body["normalise"] == normalise and body["model_version"] == model.metadata[
        "model_version"]
    unknown = 3 if source == "history" else 2  # 12345 in the history, 9999, "nope"
    assert body["unknown_items_dropped"] == unknown


def test_excluded_and_unknown_candidates_are_never_returned(client):
    rng = np.random.default_rng(1)
    ids = list(range(100, 120))
    for _ in range(20):
        excluded = [int(i) for i in rng.choice(ids, size=int(rng.integers(0, 20)), replace=False)]
        cap = None if rng.random() < 0.3 else int(rng.integers(1, 6))
        candidates = _candidates([*ids, 500], rng.uniform(0, 5, 21).tolist(),
                                 rng.uniform(0, 1, 21).tolist())
        body = client.post("/rank/value", json={"history": [101, 102], "candidates": candidates,
                                                "exclude_items": excluded, "cap": cap}).json()
        returned = [x["item_id"] for x in body["items"]]
        eligible = 20 - len(excluded)
        assert not set(returned) & {*excluded, 500}
        assert len(returned) == (eligible if cap is None else min(cap, eligible))
        if not returned:
            assert body["expected_revenue"] == 0.0


def test_scoring_runs_off_the_event_loop_with_one_model_call(client):
    model = client.app.state.models.current.model
    threads: list[str] = []
    inner = model.encode_histories

    def recording(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return inner(*args, **kwargs)

    model.encode_histories = recording
    try:
        small = {"history": [101], "candidates": _candidates(IDS, PRICES, CONTINUATION)}
        big = {**small, "exclude_items": [f"unknown-{i}" for i in range(2000)]}  # > 16 KB body
        answers = [client.post("/rank/value", json=b).json() for b in (small, big)]
    finally:
        del model.encode_histories
    assert [t.split("_")[0] for t in threads] == ["seqrec-score", "seqrec-offload"]
    assert answers[0]["items"] == answers[1]["items"]
    assert answers[1]["unknown_items_dropped"] == 2000


def _one(**fields):
    return {"history": [105], "candidates": _candidates([108], [1.0], [0.5])} | fields


@pytest.mark.parametrize("body, field", [
    (_one(candidates=_candidates([108], [-1.0], [0.5])), "candidates[0].price"),
    (_one(candidates=_candidates([108, 109], [1.0, 1.0], [0.5, 1.5])), "candidates[1].continuation"),
    (_one(candidates=_candidates([108], [1.0], [-0.1])), "candidates[0].continuation"),
    (_one(candidates=_candidates([108], [True], [0.5])), "candidates[0].price"),
    (_one(candidates=_candidates([108], ["1"], [0.5])), "candidates[0].price"),
    (_one(candidates=[{"item_id": 108, "price": 1.0}]), "candidates[0].continuation"),
    (_one(candidates=[{"item_id": 108.5, "price": 1.0, "continuation": 0.5}]), "candidates[0].item_id"),
    (_one(candidates=_candidates([108, "108"], [1.0, 2.0], [0.5, 0.5])), "candidates[1].item_id"),
    (_one(candidates=[]), "candidates"),
    (_one(cap=0), "cap"),
    (_one(cap=101), "cap"),
    (_one(cap="2"), "cap"),
    (_one(normalise="softmax"), "normalise"),
    (_one(normalise="eligible"), "normalise"),  # the calibrator was fitted on "catalogue"
    (_one(k=3), "k"),
    (_one(user_id=1), "body"),
    ({"candidates": _candidates([108], [1.0], [0.5])}, "body"),
    ({"history": [105]}, "candidates"),
])
def test_bad_input_is_a_422_naming_the_field(client, body, field):
    response = client.post("/rank/value", json=body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["errors"][0]["field"] == field
    assert error["detail"].startswith(f"{field}: ")


def test_unknown_users_and_histories_are_404(client):
    candidates = _candidates([108], [1.0], [0.5])
    unknown = client.post("/rank/value", json={"user_id": 999, "candidates": candidates})
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["field"] == "user_id"
    nothing = client.post("/rank/value", json={"history": [1, "x"], "candidates": candidates})
    assert nothing.status_code == 404 and nothing.json()["errors"][0]["field"] == "history"


def test_the_request_limits_are_the_services(served):
    _, model_dir, calibrator = served
    with TestClient(create_app(model_dir, value_calibrator=calibrator, max_items=5,
                               max_ids=8, max_body_bytes=4000)) as c:
        many = _candidates(range(100, 106), [1.0] * 6, [0.5] * 6)
        too_long = c.post("/rank/value", json={"history": [105], "candidates": many})
        assert too_long.status_code == 413 and too_long.json()["errors"][0]["field"] == "candidates"
        ids = c.post("/rank/value", json={"history": [101, 102, 103, 104],
                                          "candidates": many[:5]})
        assert ids.status_code == 413 and ids.json()["errors"][0]["type"] == "too_many_ids"
        big = c.post("/rank/value", content=b"{" + b" " * 5000 + b"}",
                     headers={"content-type": "application/json"})
        assert big.status_code == 413 and big.json()["errors"][0]["field"] == "body"
        assert c.post("/rank/value", content=b"{", headers={"content-type": "application/json"}
                      ).json()["errors"][0]["type"] == "json_invalid"


def test_without_a_calibrator_the_endpoint_says_how_to_enable_it(served):
    _, model_dir, _ = served
    with TestClient(create_app(model_dir)) as c:
        response = c.post("/rank/value", json=_one())
        assert "/rank/value" in c.get("/openapi.json").json()["paths"]
    assert response.status_code == 404
    error = response.json()["errors"][0]
    assert error["type"] == "not_enabled" and "--value-calibrator" in error["message"]


def test_a_calibrator_for_another_model_version_is_refused_at_start(served, tmp_path):
    _, model_dir, _ = served
    save_calibrator(CALIBRATOR, tmp_path / "other.json", model="2020-01-01T00:00:00+00:00+abc")
    with pytest.raises(CalibratorMismatchError, match="fitted for model version 2020"):
        create_app(model_dir, value_calibrator=tmp_path / "other.json")


def test_after_a_reload_a_mismatched_calibrator_is_refused_until_a_matching_one_is_loaded(
        tmp_path):
    path, calibrator = tmp_path / "model", tmp_path / "calibrator.json"
    old = _train(path, seed=0)
    save_calibrator(CALIBRATOR, calibrator, model=old)
    with TestClient(create_app(path, value_calibrator=calibrator), client=LOCAL) as c:
        assert c.post("/rank/value", json=_one()).status_code == 200
        new = _train(path, seed=1)
        old_version, new_version = (m.metadata["model_version"] for m in (old, new))
        assert new_version != old_version
        reload = c.post("/admin/reload").json()
        assert reload["model_version"] == new_version
        assert reload["value_calibrator"]["ready"] is False
        refused = c.post("/rank/value", json=_one())
        assert refused.status_code == 409
        error = refused.json()["errors"][0]
        assert error["field"] == "value_calibrator" and error["type"] == "calibrator_mismatch"
        assert old_version in error["message"] and new_version in error["message"]
        assert c.post("/recommend", json={"user_id": 1}).json()["model_version"] == new_version
        save_calibrator(CALIBRATOR, calibrator, model=new)
        assert c.post("/admin/reload").json()["value_calibrator"] == {
            "ready": True, "model_version": new_version}
        answer = c.post("/rank/value", json=_one())
        assert answer.status_code == 200 and answer.json()["model_version"] == new_version


def test_a_broken_calibrator_file_at_reload_is_a_409_not_a_crash(tmp_path):
    path, calibrator = tmp_path / "model", tmp_path / "calibrator.json"
    save_calibrator(CALIBRATOR, calibrator, model=_train(path))
    with TestClient(create_app(path, value_calibrator=calibrator), client=LOCAL) as c:
        calibrator.write_text("{not json")
        assert c.post("/admin/reload").status_code == 200
        refused = c.post("/rank/value", json=_one())
        assert refused.status_code == 409
        assert refused.json()["errors"][0]["type"] == "calibrator_unavailable"
        assert "not valid JSON" in refused.json()["detail"]
        assert c.post("/recommend", json={"user_id": 1}).status_code == 200


def test_seqrec_serve_refuses_a_mismatched_calibrator_before_binding(served, tmp_path):
    from typer.testing import CliRunner

    from seqrec.cli import app

    _, model_dir, _ = served
    save_calibrator(CALIBRATOR, tmp_path / "other.json", model="2020-01-01T00:00:00+00:00+abc")
    result = CliRunner().invoke(app, ["serve", "--model", str(model_dir), "--value-calibrator",
                                      str(tmp_path / "other.json"), "--port", "1"])
    assert result.exit_code == 1
    assert "fitted for model version 2020" in result.output
