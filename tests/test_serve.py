"""HTTP API (seqrec.serve) through FastAPI's TestClient over a tiny model trained here."""

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

import seqrec
from seqrec.serve import create_app

LOCAL = ("127.0.0.1", 50000)


def _dataset(string_ids: bool = False):
    # 30 users walk a ring of 20 items (ids 100..119) from different starting points
    rng = np.random.default_rng(0)
    rows = []
    for user in range(30):
        start = int(rng.integers(0, 20))
        for t in range(10):
            item = 100 + (start + t) % 20
            rows.append((f"u{user}" if string_ids else user, f"i{item}" if string_ids else item, t))
    return seqrec.build_dataset(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))


def _train(path, seed: int = 0, string_ids: bool = False):
    model = seqrec.build_model("esasrec", dim=16, epochs=2, n_negatives=8, batch_size=16, seed=seed)
    model.fit(_dataset(string_ids))
    seqrec.save_model(model, path, metrics={"ndcg@10": 0.5})
    return model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "model"
    _train(path)
    return path


@pytest.fixture(scope="module")
def client(model_dir):
    with TestClient(create_app(model_dir), client=LOCAL) as c:
        yield c


def _ids(response):
    return [x["item_id"] for x in response.json()["items"]]


class CountingScoreBlock:
    """Counts model calls: each ranking call encodes its rows once (then scores them)."""

    def __init__(self, model):
        self.calls = 0
        self.inner = model.encode_histories
        model.encode_histories = self

    def __call__(self, items, offsets, rows, *times):
        self.calls += 1
        return self.inner(items, offsets, rows, *times)


# ---- endpoints ---------------------------------------------------------------------------------
def test_health_ready_and_model_info(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["ready"] is True
    info = client.get("/model").json()
    assert info["model_version"] == ready["model_version"]
    assert info["kind"] == "sequential" and info["dim"] == 16 and info["n_items"] == 20
    assert info["config"]["layer"] == "ligr" and info["metrics"] == {"ndcg@10": 0.5}
    assert info["model_version"].startswith(info["trained_at"] + "+")
    assert info["item_id_type"] == "int"


def test_openapi_schema_lists_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/recommend", "/recommend/batch", "/similar", "/health", "/ready", "/model",
                 "/admin/reload"):
        assert path in paths


def test_recommend_known_user_matches_the_library(client, model_dir):
    response = client.post("/recommend", json={"user_id": 3, "k": 5})
    assert response.status_code == 200
    body = response.json()
    assert [x["rank"] for x in body["items"]] == [1, 2, 3, 4, 5]
    assert body["unknown_items_dropped"] == 0 and body["source"] == "model"
    expected = seqrec.load_model(model_dir).recommend([3], k=5)
    assert _ids(response) == expected["item_id"].tolist()
    np.testing.assert_allclose([x["score"] for x in body["items"]], expected["score"], rtol=1e-5)


def test_recommend_history_matches_the_library(client, model_dir):
    history = [105, 106, 107]
    response = client.post("/recommend", json={"history": history, "k": 4})
    expected = seqrec.load_model(model_dir).recommend_for_histories([history], k=4)
    assert _ids(response) == expected["item_id"].tolist()


def test_batch_equals_single_requests_and_uses_one_model_call(client):
    requests = [{"user_id": 1, "k": 3}, {"history": [110, 111], "k": 5},
                {"user_id": 2, "k": 2, "exclude_items": [100]}]
    singles = [_ids(client.post("/recommend", json=r)) for r in requests]
    counter = CountingScoreBlock(client.app.state.models.current.model)
    response = client.post("/recommend/batch", json={"requests": requests})
    assert response.status_code == 200
    assert counter.calls == 1
    results = response.json()["results"]
    assert [[x["item_id"] for x in r["items"]] for r in results] == singles


def test_one_model_call_per_request(client):
    counter = CountingScoreBlock(client.app.state.models.current.model)
    bodies = [{"user_id": 4, "k": 5}, {"history": [101], "k": 20, "include_items": [101, 102]},
              {"history": [103, 104], "k": 3}, {"user_id": 5, "k": 1000, "exclude_items": [100, 999]}]
    for n, body in enumerate(bodies, start=1):
        assert client.post("/recommend", json=body).status_code == 200
        assert counter.calls == n


def test_similar_items_never_returns_the_item(client, model_dir):
    response = client.post("/similar", json={"item_id": 105, "k": 5})
    assert response.status_code == 200
    ids = _ids(response)
    assert len(ids) == 5 and 105 not in ids
    expected = seqrec.load_model(model_dir).similar_items([105], k=5)
    assert ids == expected["similar_item_id"].tolist()
    assert client.post("/similar", json={"item_id": 999}).status_code == 404


# ---- filter contract ---------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 5, 9, 10, 15, 1000])
def test_filters_give_exactly_min_k_eligible_and_no_filtered_item(client, model_dir, k):
    model = seqrec.load_model(model_dir)
    seen = set(model.catalogue.to_external(model.histories.row(7)).tolist())
    exclude = [100, 101, 102]
    response = client.post("/recommend", json={"user_id": 7, "k": k, "exclude_items": exclude})
    ids = _ids(response)
    eligible = 20 - len(seen | set(exclude))
    assert len(ids) == min(k, eligible)
    assert not set(ids) & (seen | set(exclude))


def test_include_items_whitelist_and_filter_viewed_off(client):
    body = {"history": [100, 101], "k": 10, "include_items": [100, 101, 102], "filter_viewed": False}
    assert sorted(_ids(client.post("/recommend", json=body))) == [100, 101, 102]
    body["filter_viewed"] = True
    assert _ids(client.post("/recommend", json=body)) == [102]
    body["include_items"] = []
    assert _ids(client.post("/recommend", json=body)) == []


# ---- bad input ---------------------------------------------------------------------------------
def test_unknown_user_is_404_naming_the_field(client):
    response = client.post("/recommend", json={"user_id": 12345})
    assert response.status_code == 404
    assert "user_id" in response.json()["detail"]
    assert response.json()["errors"] == [{"field": "user_id", "message": "unknown user 12345",
                                          "type": "unknown_user"}]
    batch = client.post("/recommend/batch", json={"requests": [{"user_id": 1}, {"user_id": 999}]})
    assert batch.status_code == 404 and "requests[1].user_id" in batch.json()["detail"]


def test_unknown_user_gets_popular_items_with_the_flag(model_dir):
    app = create_app(model_dir, unknown_user="popular")
    with TestClient(app) as c:
        counter = CountingScoreBlock(app.state.models.current.model)
        body = c.post("/recommend", json={"user_id": 12345, "k": 5, "exclude_items": [100]}).json()
        assert counter.calls == 0
    assert body["source"] == "popular" and len(body["items"]) == 5
    assert 100 not in [x["item_id"] for x in body["items"]]


def test_unknown_history_items_are_dropped_and_counted(client):
    with_unknown = client.post("/recommend", json={"history": [105, 99999, "nope", 106], "k": 5})
    assert with_unknown.status_code == 200
    assert with_unknown.json()["unknown_items_dropped"] == 2
    clean = client.post("/recommend", json={"history": [105, 106], "k": 5})
    assert _ids(with_unknown) == _ids(clean)
    assert client.post("/recommend", json={"history": [105], "exclude_items": [1, 2]}).json()[
        "unknown_items_dropped"] == 2


def test_a_history_with_no_known_item_is_an_unknown_user(client, model_dir):
    for history in ([], [1, "nope"]):
        response = client.post("/recommend", json={"history": history, "k": 7})
        assert response.status_code == 404, response.text
        assert response.json()["errors"][0]["field"] == "history"
    app = create_app(model_dir, unknown_user="popular")
    with TestClient(app) as c:
        body = c.post("/recommend", json={"history": [], "k": 7}).json()
    assert body["source"] == "popular" and len(body["items"]) == 7


def test_int_model_accepts_canonical_decimal_strings_only(client):
    as_int = client.post("/recommend", json={"history": [105, 106], "k": 5})
    as_str = client.post("/recommend", json={"history": ["105", "106"], "k": 5})
    assert _ids(as_str) == _ids(as_int) and as_str.json()["unknown_items_dropped"] == 0
    assert all(isinstance(i, int) for i in _ids(as_str))
    odd = client.post("/recommend", json={"history": ["0105", " 106", "106.0", 107], "k": 5})
    assert odd.json()["unknown_items_dropped"] == 3
    assert client.post("/recommend", json={"user_id": "3"}).status_code == 200


def test_string_model_reads_json_ints_as_their_decimal_string(tmp_path):
    path = tmp_path / "model"
    _train(path, string_ids=True)
    with TestClient(create_app(path)) as c:
        assert c.get("/model").json()["item_id_type"] == "str"
        ok = c.post("/recommend", json={"user_id": "u3", "k": 3})
        assert ok.status_code == 200 and all(isinstance(i, str) for i in _ids(ok))
        body = c.post("/recommend", json={"history": ["i105", 105], "k": 3}).json()
        assert body["unknown_items_dropped"] == 1  # 105 means "105", which this model lacks
        assert c.post("/recommend", json={"user_id": 3}).status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"user_id": 1, "k": 0}, "k"),
    ({"user_id": 1, "k": 1001}, "k"),
    ({"user_id": 1, "k": "10"}, "k"),
    ({"user_id": 1, "k": 2.5}, "k"),
    ({"user_id": True}, "user_id"),
    ({"user_id": 1.5}, "user_id"),
    ({"user_id": [1]}, "user_id"),
    ({"history": [1, {"a": 1}]}, "history[1]"),
    ({"history": "105"}, "history"),
    ({"user_id": 1, "filter_viewed": "yes"}, "filter_viewed"),
    ({"user_id": 1, "include_items": 5}, "include_items"),
    ({"user_id": 1, "colour": "red"}, "colour"),
    ({"user_id": 1, "history": [105]}, "body"),
    ({}, "body"),
    ({"user_id": "x" * 300}, "user_id"),
])
def test_wrong_input_is_422_naming_the_field(client, body, field):
    response = client.post("/recommend", json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]


def _assert_one_error_format(body: dict) -> None:
    assert set(body) == {"detail", "errors"} and body["errors"]
    assert all(set(e) == {"field", "message", "type"} for e in body["errors"])
    first = body["errors"][0]
    assert body["detail"].startswith(f"{first['field']}: {first['message']}")


@pytest.mark.parametrize("content", [b"{bad json", b"", b"\xff\xfe", b'{"user_id": 1} x',
                                     b"[" * 5000, b'{"history": ' + b"[" * 300 + b"]" * 300 + b"}"])
@pytest.mark.parametrize("path", ["/recommend", "/recommend/batch", "/similar"])
def test_malformed_json_is_422_naming_the_body(client, content, path):
    """Not JSON, not UTF-8, trailing bytes or nesting too deep: one status, one format."""
    response = client.post(path, content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    body = response.json()
    _assert_one_error_format(body)
    assert [(e["field"], e["type"]) for e in body["errors"]] == [("body", "json_invalid")]
    assert body["detail"].startswith("body: not valid JSON")


@pytest.mark.parametrize("method, path, content, content_type, status", [
    ("GET", "/nowhere", None, None, 404),
    ("GET", "/recommend", None, None, 405),
    ("POST", "/recommend", b"user_id=1", "application/x-www-form-urlencoded", 415),
    ("POST", "/recommend", b'{"user_id": 1, "k": 0}', "application/json", 422),
    ("POST", "/recommend", b'{"user_id": 12345}', "application/json", 404),
    ("POST", "/recommend", b'{"history": [' + b"1," * 600_000 + b'1]}', "application/json", 413),
    ("POST", "/recommend", b"[]", "application/json", 422),
    ("POST", "/recommend", b"null", "application/json", 422),
])
def test_every_4xx_has_the_documented_format(client, method, path, content, content_type, status):
    headers = {"content-type": content_type} if content_type else {}
    response = client.request(method, path, content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    _assert_one_error_format(response.json())


def test_oversize_lists_and_bodies_are_413(model_dir):
    with TestClient(create_app(model_dir, max_batch=4, max_items=50, max_body_bytes=2000)) as c:
        response = c.post("/recommend", json={"history": [105] * 51})
        assert response.status_code == 413 and "history" in response.json()["detail"]
        response = c.post("/recommend", json={"user_id": 1, "exclude_items": [1] * 51})
        assert response.status_code == 413
        response = c.post("/recommend/batch", json={"requests": [{"user_id": 1}] * 5})
        assert response.status_code == 413 and "requests" in response.json()["detail"]
        big = b'{"history": [' + b"105," * 600 + b"105]}"
        assert c.post("/recommend", content=big, headers={"content-type": "application/json"}).status_code == 413

        def chunks():  # no Content-Length: counted while reading
            for _ in range(10):
                yield b" " * 500
        response = c.post("/recommend", content=chunks(), headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert c.get("/health").status_code == 200  # still serving


def test_reload_is_refused_from_other_hosts(model_dir):
    with TestClient(create_app(model_dir)) as c:  # TestClient's default client host: "testclient"
        assert c.post("/admin/reload").status_code == 403


def test_create_app_rejects_bad_settings(model_dir, tmp_path):
    with pytest.raises(ValueError, match="unknown_user"):
        create_app(model_dir, unknown_user="skip")
    with pytest.raises(ValueError, match="max_batch"):
        create_app(model_dir, max_batch=0)
    with pytest.raises(seqrec.ModelDirectoryError, match="not found"):
        create_app(tmp_path / "missing")


# ---- hot reload ------------------------------------------------------------------------------
def test_reload_swaps_the_model_and_requests_during_reload_succeed(tmp_path):
    path = tmp_path / "model"
    _train(path, seed=0)
    app = create_app(path)
    with TestClient(app, client=LOCAL) as c:
        old_version = c.get("/model").json()["model_version"]
        time.sleep(1.1)  # trained_at has one-second resolution; the hash changes anyway
        _train(path, seed=1)
        statuses: list[int] = []
        stop = threading.Event()

        def hammer():
            while not stop.is_set() and len(statuses) < 2000:
                statuses.append(c.post("/recommend", json={"user_id": 1, "k": 5}).status_code)

        thread = threading.Thread(target=hammer)
        thread.start()
        try:
            reload = c.post("/admin/reload")
        finally:
            time.sleep(0.05)
            stop.set()
            thread.join(timeout=30)
        assert reload.status_code == 200, reload.text
        assert reload.json()["previous_version"] == old_version
        assert reload.json()["changed"] is True
        new_version = c.get("/model").json()["model_version"]
        assert new_version != old_version and new_version == reload.json()["model_version"]
        assert statuses and set(statuses) == {200}
        assert c.post("/recommend", json={"user_id": 1}).json()["model_version"] == new_version


def test_requests_in_flight_finish_on_the_model_they_started_with(model_dir):
    app = create_app(model_dir)
    holder = app.state.models
    old = holder.current

    async def scenario():
        # a job queued against the old model is scored by the old model after the swap
        from seqrec.serve import Job

        task = asyncio.ensure_future(app.state.scorer.rank(old, [Job(np.array([1]), 3, True)]))
        await asyncio.sleep(0)
        await holder.reload()
        assert holder.current is not old
        return await task

    [(items, _)] = asyncio.run(scenario())
    assert len(items) == 3


def test_micro_batching_gives_the_same_lists_as_single_requests(model_dir):
    app = create_app(model_dir)
    loaded = app.state.models.current
    from seqrec.serve import Job, rank_jobs

    jobs = [Job(np.array([1, 2, 3]), 5, True), Job(np.zeros(0, dtype=np.int64), 5, True, popular=True),
            Job(np.arange(1, 21), 5, False, exclude=np.array([4])),
            Job(np.array([5]), 3, True, include=np.array([1, 2, 3, 4, 5, 6]))]
    together = rank_jobs(loaded, jobs)
    for job, (items, scores) in zip(jobs, together, strict=True):
        [(alone_items, alone_scores)] = rank_jobs(loaded, [job])
        assert items.tolist() == alone_items.tolist()
        np.testing.assert_allclose(scores, alone_scores, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="needs SIGHUP")
def test_sighup_reloads_a_running_server(tmp_path):
    import socket

    path = tmp_path / "model"
    _train(path, seed=0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = f"from seqrec.serve import serve; serve({str(path)!r}, port={port}, log_level='warning')"
    server = subprocess.Popen([sys.executable, "-c", code])
    url = f"http://127.0.0.1:{port}"

    def version():
        with urllib.request.urlopen(f"{url}/model", timeout=2) as r:
            import json
            return json.loads(r.read())["model_version"]

    try:
        deadline = time.monotonic() + 60
        old = None
        while old is None and time.monotonic() < deadline:
            try:
                old = version()
            except OSError:
                time.sleep(0.2)
        assert old is not None, "server did not start"
        time.sleep(1.1)
        _train(path, seed=1)
        os.kill(server.pid, signal.SIGHUP)
        new = old
        while new == old and time.monotonic() < deadline:
            time.sleep(0.1)
            new = version()
        assert new != old
        assert server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=10)


# ---- schema fuzzing ----------------------------------------------------------------------------
def test_fuzzed_requests_never_get_a_server_error(model_dir):
    """Requests generated from the OpenAPI schema (valid and invalid) never get a 5xx."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(model_dir))
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def check(case):
            response = case.call()
            assert response.status_code < 500, (case.path, case.body, response.text)

        check()


def test_a_time_aware_model_serves_known_users_with_their_event_times(tmp_path):
    path = tmp_path / "hstu"
    model = seqrec.build_model("hstu", dim=16, epochs=2, n_negatives=8, batch_size=16)
    model.fit(_dataset())
    seqrec.save_model(model, path)
    loaded = seqrec.load_model(path)
    with TestClient(create_app(path)) as c:
        served = _ids(c.post("/recommend", json={"user_id": 3, "k": 5}))
    assert served == loaded.recommend([3], k=5).item_id.tolist()
