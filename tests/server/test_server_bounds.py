"""Bounded everything through a real server: request caps (400), the runtime's per-deployment
admission (429 + Retry-After), optional auth for /metrics and the docs, the key-length rule for
every key source, and 1,000 concurrent requests through `murakkab serve` with bounded memory."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import openai
import pytest
from server_support import make_runtime, serve, start_serve, write_setup

from murakkab_lg.errors import ConfigError
from murakkab_lg.runtime.admission import AdmissionLimits, RequestCaps
from murakkab_lg.server import ServeConfig, create_app

CHAT = "/v1/chat/completions"


def body(model: str = "fast", text: str = "hi", **extra: object) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def test_caps_on_max_tokens_and_n_are_a_400_naming_the_field(instant_url: str) -> None:
    rt = make_runtime(instant_url, caps=RequestCaps(max_tokens=32, n=1))
    try:
        with serve(create_app(rt, ServeConfig(), api_keys=())) as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            with pytest.raises(openai.BadRequestError) as e:
                client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}],
                                               max_tokens=33)
            err = e.value.body
            assert err["code"] == "request_limit" and err["param"] == "max_tokens"
            assert "max_tokens=33 is over this runtime's cap of 32" in err["message"]
            r = httpx.post(url + CHAT, json=body(n=2, stream=True))
            assert r.status_code == 400 and r.json()["error"]["param"] == "n"
            ok = client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}],
                                                max_tokens=32)
            assert ok.choices[0].message.content
    finally:
        rt.close()


def test_serve_config_caps_and_admission_reach_the_runtime(tmp_path: Path) -> None:
    from murakkab_lg.server import build_runtime, load_config

    cfg = load_config(write_setup(tmp_path, max_tokens_cap=100, n_cap=2, deployment_max_inflight=3,
                                  deployment_max_queue=5, deployment_max_wait_s=0.5))
    rt = build_runtime(cfg)
    assert rt.caps == RequestCaps(max_tokens=100, n=2)
    assert rt.admission_limits == AdmissionLimits(max_inflight=3, max_queue=5, max_wait_s=0.5)


def test_runtime_admission_overload_is_a_429_with_retry_after(instant_url: str) -> None:
    rt = make_runtime(instant_url, admission=AdmissionLimits(max_inflight=1, max_queue=0, retry_after_s=2.5))
    try:
        with serve(create_app(rt, ServeConfig(), api_keys=())) as url:
            slow = threading.Thread(target=httpx.post, args=(url + CHAT,),
                                    kwargs={"json": body(text="@instant delay=1.5"), "timeout": 30})
            slow.start()
            time.sleep(0.5)
            r = httpx.post(url + CHAT, json=body())  # explicit deployment: no fallback to spill to
            slow.join()
            assert r.status_code == 429, r.text
            err = r.json()["error"]
            assert err["code"] == "server_overloaded" and err["type"] == "rate_limit_error"
            assert "fast: overloaded (1 in flight of 1, 0 waiting of 0)" in err["message"]
            assert r.headers["retry-after"] == "3"  # 2.5 s, rounded up to whole seconds
            assert httpx.post(url + CHAT, json=body()).status_code == 200
    finally:
        rt.close()


def test_metrics_and_docs_auth_is_optional_and_off_by_default(runtime) -> None:
    key = {"Authorization": "Bearer k-0123456789"}
    with serve(create_app(runtime, ServeConfig(), api_keys=["k-0123456789"])) as url:
        assert httpx.get(url + "/metrics").status_code == 200
        assert httpx.get(url + "/openapi.json").status_code == 200
    cfg = ServeConfig(auth_metrics=True, auth_docs=True)
    with serve(create_app(runtime, cfg, api_keys=["k-0123456789"])) as url:
        for path in ("/metrics", "/openapi.json", "/docs", "/redoc"):
            r = httpx.get(url + path)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", path
            assert httpx.get(url + path, headers=key).status_code == 200, path
        assert httpx.get(url + "/health").status_code == 200  # probes never need a key


def test_short_keys_are_refused_from_flags_and_environment_like_from_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MURAKKAB_API_KEYS", "long-enough-key,short")
    with pytest.raises(ConfigError, match=r"key #2 from \$MURAKKAB_API_KEYS has 5 characters; keys need at least 8"):
        ServeConfig().resolved_api_keys()
    monkeypatch.delenv("MURAKKAB_API_KEYS")
    with pytest.raises(ConfigError, match="API key #1 from --api-key has 3 characters") as e:
        ServeConfig().resolved_api_keys(["abc"])
    assert "abc" not in str(e.value).split("characters")[0]  # the key itself is never printed
    with pytest.raises(ValueError, match="at least 8"):
        ServeConfig(api_keys=["short"])


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


async def _burst(base: str, n: int) -> tuple[Counter, list[str]]:
    import aiohttp

    statuses: Counter = Counter()
    problems: list[str] = []
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=120)) as s:
        async def one(i: int) -> None:
            try:
                async with s.post(base + CHAT, json=body(model="murakkab/classify", text=f"q{i}",
                                                         max_tokens=4)) as r:
                    data = await r.json()
                    statuses[r.status] += 1
                    if r.status == 429:
                        if "Retry-After" not in r.headers or data["error"]["code"] != "server_overloaded":
                            problems.append(f"429 without Retry-After or code: {r.headers} {data}")
                    elif r.status != 200:
                        problems.append(f"{r.status}: {data}")
            except Exception as e:  # a connection error is a failure too
                problems.append(f"{type(e).__name__}: {e}")

        await asyncio.gather(*(one(i) for i in range(n)))
    return statuses, problems


def test_a_thousand_concurrent_requests_get_answers_or_429s_and_memory_stays_bounded(tmp_path: Path) -> None:
    """Acceptance (issue 11): 1,000 concurrent requests through `murakkab serve` on the instant
    engine: no error other than the intended 429s with Retry-After; the server's peak RSS is
    printed, and a second burst does not raise it more than a little (bounded, not growing)."""
    cfg = write_setup(tmp_path, max_inflight=64, max_queue=192, warm=["fast"])
    proc, base = start_serve(cfg)
    try:
        rss0 = _vm_hwm_kib(proc.pid)
        first, problems1 = asyncio.run(_burst(base, 1000))
        rss1 = _vm_hwm_kib(proc.pid)
        second, problems2 = asyncio.run(_burst(base, 1000))
        rss2 = _vm_hwm_kib(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    print(f"\n1,000 concurrent x2: {dict(first)} then {dict(second)}; server peak RSS (VmHWM) "
          f"{rss0 / 1024:.0f} MiB idle, {rss1 / 1024:.0f} MiB after burst 1, {rss2 / 1024:.0f} MiB after burst 2")
    assert problems1 == [] and problems2 == []
    assert set(first) <= {200, 429} and set(second) <= {200, 429}
    assert first[429] > 0 and first[200] >= 64 + 192  # admission refused the excess, served the rest
    assert sum(first.values()) == sum(second.values()) == 1000
    assert rss2 - rss1 <= max(0.1 * rss1, 16 * 1024), "peak RSS kept growing between identical bursts"
