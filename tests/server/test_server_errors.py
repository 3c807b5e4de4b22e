"""Raw HTTP (httpx) against a real server: every error case, auth on and off, and routing order."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from server_support import QUALITY, make_runtime, serve

from murakkab_lg.backends.engines import FunctionEngine
from murakkab_lg.runtime import Runtime
from murakkab_lg.server import ServeConfig, create_app
from murakkab_lg.spec import Intent, Workflow, WorkflowNode
from murakkab_lg.testing.instant_engine import instant_deployments, synthetic_profiles

CHAT = "/v1/chat/completions"


def body(model: str = "murakkab/classify", text: str = "hi", **extra: object) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def assert_envelope(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert "Traceback" not in r.text
    if code is not None:
        assert err["code"] == code
    return err


@pytest.fixture(scope="module")
def http(base_url: str) -> httpx.Client:
    with httpx.Client(base_url=base_url, timeout=30) as c:
        yield c


def test_malformed_json_and_invalid_fields_are_400(http: httpx.Client) -> None:
    err = assert_envelope(http.post(CHAT, content=b'{"model": "murakkab/classify", "messages": [',
                                    headers={"content-type": "application/json"}), 400)
    assert "malformed JSON" in err["message"]
    assert_envelope(http.post(CHAT, json=[1, 2]), 400)
    err = assert_envelope(http.post(CHAT, json=body(temperature=5)), 400)
    assert err["param"] == "temperature"
    assert_envelope(http.post(CHAT, json={"model": "murakkab/classify", "messages": []}), 400)
    assert_envelope(http.post(CHAT, json={"model": "fast", "messages": [{"role": "wizard", "content": "x"}]}), 400)
    assert_envelope(http.post(CHAT, json=body(stream_options={"include_usage": True})), 400)  # needs stream
    err = assert_envelope(http.post(CHAT, json=body(murakkab={"intent": "classify", "min_quality": 2})), 400)
    assert err["param"].startswith("murakkab")
    assert_envelope(http.post(CHAT, json=body(murakkab={"colour": "red"})), 400)


def test_unknown_model_intent_or_deployment_is_404_listing_valid_names(http: httpx.Client) -> None:
    err = assert_envelope(http.post(CHAT, json=body(model="gpt-4o")), 404, "model_not_found")
    assert "murakkab/classify" in err["message"] and "smart" in err["message"]
    assert_envelope(http.post(CHAT, json=body(model="murakkab/astrology")), 404, "model_not_found")
    assert_envelope(http.post(CHAT, json=body(murakkab={"intent": "astrology"})), 404, "model_not_found")
    assert_envelope(http.post(CHAT, json=body(), headers={"X-Murakkab-Intent": "astrology"}), 404, "model_not_found")
    assert_envelope(http.post(CHAT, json=body(), headers={"X-Murakkab-Deployment": "nope"}), 404, "model_not_found")


def test_unknown_path_and_method_are_enveloped(http: httpx.Client) -> None:
    assert_envelope(http.get("/v1/nothing"), 404, "not_found")
    assert_envelope(http.get(CHAT), 405, "method_not_allowed")


def test_engine_errors_map_to_4xx_passthrough_and_503(http: httpx.Client) -> None:
    err = assert_envelope(http.post(CHAT, json=body(model="fast", text="@instant status=422")), 422)
    assert "scripted status 422" in err["message"]
    # Streams fail before the status line is sent, so they get the same statuses (not an SSE body).
    assert_envelope(http.post(CHAT, json=body(model="fast", text="@instant status=422", stream=True)), 422)
    assert_envelope(http.post(CHAT, json=body(model="gpt-4o", stream=True)), 404, "model_not_found")
    # A constraint no deployment meets: 503 naming the best available quality.
    err = assert_envelope(http.post(CHAT, json=body(murakkab={"intent": "classify", "min_quality": 0.99})), 503,
                          "plan_infeasible")
    assert "0.90" in err["message"]


def test_engine_503_is_retried_then_503_and_the_open_breaker_is_named(instant_url: str) -> None:
    rt = make_runtime(instant_url)  # its own runtime: the breaker it opens must not leak into other tests
    with serve(create_app(rt, ServeConfig(), api_keys=())) as url:
        r = httpx.post(url + CHAT, json=body(model="fast", text="@instant status=503"), timeout=30)
        err = assert_envelope(r, 503, "engine_unavailable")
        assert "scripted status 503" in err["message"] and r.headers["retry-after"] == "1"
        # Three 503s in a row opened the replica's breaker: the next call fails fast and says so.
        r = httpx.post(url + CHAT, json=body(model="fast", text="@instant status=503", stream=True), timeout=30)
        err = assert_envelope(r, 503, "engine_unavailable")
        assert "fast: replica 0: breaker open" in err["message"]
    rt.close()


def test_unreachable_engine_is_503_not_500(instant_url: str) -> None:
    deps = instant_deployments(["gone"], base_url="http://127.0.0.1:9")  # nothing listens on port 9
    from murakkab_lg.testing.instant_engine import engine_factory

    rt = Runtime(deps, synthetic_profiles(deps, {}), engine_factory=engine_factory, default="gone", start_timeout_s=0.5)
    with serve(create_app(rt, ServeConfig(), api_keys=())) as url:
        r = httpx.post(url + CHAT, json=body(model="gone"), timeout=30)
    assert_envelope(r, 503, "engine_unavailable")
    assert r.headers["retry-after"] == "1"


def test_unexpected_exception_is_a_500_envelope_without_traceback() -> None:
    def broken(_: dict) -> dict:
        raise RuntimeError("secret internal detail")

    deps = instant_deployments(["broken"])
    rt = Runtime(deps, synthetic_profiles(deps, {}), engine_factory=lambda d, i: FunctionEngine(d.name, broken),
                 default="broken")
    with serve(create_app(rt, ServeConfig(), api_keys=())) as url:
        r = httpx.post(url + CHAT, json=body(model="broken"), timeout=30)
    err = assert_envelope(r, 500, "internal_error")
    assert "secret internal detail" not in r.text and "ref " in err["message"]


def test_body_limit_413_with_and_without_content_length(runtime: Runtime) -> None:
    with serve(create_app(runtime, ServeConfig(body_limit_bytes=2048), api_keys=())) as url:
        big = body(text="x" * 4000)
        assert_envelope(httpx.post(url + CHAT, json=big), 413, "request_too_large")

        def chunked():  # no Content-Length: the server must count as it reads
            yield b'{"model": "fast", "messages": [{"role": "user", "content": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}]}'

        assert_envelope(httpx.post(url + CHAT, content=chunked()), 413, "request_too_large")
        assert httpx.post(url + CHAT, json=body()).status_code == 200


def test_admission_control_429_with_retry_after(runtime: Runtime) -> None:
    cfg = ServeConfig(max_inflight=1, max_queue=0, retry_after_s=3)
    with serve(create_app(runtime, cfg, api_keys=())) as url:
        slow = threading.Thread(target=httpx.post, args=(url + CHAT,),
                                kwargs={"json": body(model="fast", text="@instant delay=1.5"), "timeout": 30})
        slow.start()
        time.sleep(0.5)
        r = httpx.post(url + CHAT, json=body())
        slow.join()
        assert_envelope(r, 429, "server_overloaded")
        assert r.headers["retry-after"] == "3"
        assert httpx.post(url + CHAT, json=body()).status_code == 200  # the slot is free again
        assert "murakkab_admission_rejected_total 1.0" in httpx.get(url + "/metrics").text


def test_auth_on_off_and_from_environment(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(create_app(runtime, ServeConfig(), api_keys=["k-0123456789"])) as url:
        assert_envelope(httpx.post(url + CHAT, json=body()), 401, "invalid_api_key")
        r = httpx.post(url + CHAT, json=body(), headers={"Authorization": "Bearer wrong-key"})
        assert_envelope(r, 401, "invalid_api_key")
        assert r.headers["www-authenticate"] == "Bearer"
        assert_envelope(httpx.get(url + "/v1/models"), 401)
        ok = httpx.post(url + CHAT, json=body(), headers={"Authorization": "Bearer k-0123456789"})
        assert ok.status_code == 200
        assert httpx.get(url + "/health").status_code == 200  # probes need no key
    monkeypatch.setenv("MURAKKAB_API_KEYS", "env-key-1, env-key-2")
    with serve(create_app(runtime, ServeConfig())) as url:
        assert httpx.post(url + CHAT, json=body()).status_code == 401
        r = httpx.post(url + CHAT, json=body(), headers={"Authorization": "Bearer env-key-2"})
        assert r.status_code == 200
    monkeypatch.delenv("MURAKKAB_API_KEYS")
    with serve(create_app(runtime, ServeConfig())) as url:  # no keys anywhere: auth off
        assert httpx.post(url + CHAT, json=body()).status_code == 200


def test_disconnect_mid_stream_cancels_the_engine_request(http: httpx.Client, instant_url: str) -> None:
    before = httpx.get(instant_url + "/stats").json()["streams_disconnected"]
    req = body(model="fast", text="@instant chunk_delay=0.2 words=100", stream=True)
    with http.stream("POST", CHAT, json=req) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")
    # Leaving the block closes the connection after one chunk of ~100.
    deadline = time.monotonic() + 10
    while httpx.get(instant_url + "/stats").json()["streams_disconnected"] == before:
        assert time.monotonic() < deadline, "the engine never saw the client go away"
        time.sleep(0.1)


def test_route_precedence(instant_url: str) -> None:
    rt = make_runtime(instant_url, default="fast")
    wf = Workflow(name="wf", nodes=(WorkflowNode(name="n1", intent=Intent("code", min_quality=0.5)),))
    rt.apply(rt.plan(wf), start=False)
    with serve(create_app(rt, ServeConfig(), api_keys=())) as url, httpx.Client(base_url=url) as c:
        def where(req: dict, **headers: str) -> str:
            r = c.post(CHAT, json=req, headers=headers)
            assert r.status_code == 200, r.text
            return r.headers["x-murakkab-deployment"]

        assert where(body(model="murakkab")) == "fast"  # the configured default
        assert where(body(model="smart")) == "smart"  # a concrete deployment
        assert where(body(model="murakkab/classify")) == "fast"  # intent: cheapest feasible
        # A header intent beats the model's deployment; the body's annotation beats the header.
        assert where(body(model="smart"), **{"X-Murakkab-Intent": "classify"}) == "fast"
        strict = {"intent": "classify", "min_quality": 0.8}
        assert where(body(murakkab=strict), **{"X-Murakkab-Intent": "classify"}) == "smart"
        # A planned node (from headers) wins over the model's intent.
        assert where(body(), **{"X-Murakkab-Node": "n1", "X-Murakkab-Workflow": "wf"}) == "smart"
        assert where(body(murakkab={"workflow": "wf", "node": "n1"})) == "smart"
        # Body deployment beats header deployment.
        assert where(body(murakkab={"deployment": "fast"}), **{"X-Murakkab-Deployment": "smart"}) == "fast"
        # Constraints in the body apply to the model's (or the header's) intent.
        assert where(body(model="murakkab/classify", murakkab={"min_quality": 0.8})) == "smart"
        floor = body(model="murakkab", murakkab={"min_quality": 0.8})
        assert where(floor, **{"X-Murakkab-Intent": "classify"}) == "smart"
        r = c.post(CHAT, json=body(model="murakkab", murakkab={"min_quality": 0.8}))
        assert r.status_code == 400 and "need an intent" in r.json()["error"]["message"]
        assert r.json()["error"]["param"] == "murakkab"
    rt.close()
    assert QUALITY["smart"]["code"] >= 0.5 > QUALITY["fast"].get("code", 0.0)
