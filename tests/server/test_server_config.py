"""The config file (validation with clear errors) and `murakkab serve` as a real subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from server_support import children_of, write_setup

from murakkab_lg.backends.engines.llamacpp import free_port
from murakkab_lg.errors import ConfigError
from murakkab_lg.server import ServeConfig, build_runtime, load_config


def test_valid_yaml_and_json_configs_build_a_runtime(tmp_path: Path) -> None:
    cfg = load_config(write_setup(tmp_path, max_queue=5))
    assert cfg.max_queue == 5 and cfg.profiles[0].is_absolute()
    rt = build_runtime(cfg)
    assert set(rt.deployments) == {"fast", "smart"} and rt.default == "fast"
    rt.close()
    js = tmp_path / "serve.json"
    js.write_text('{"body_limit_bytes": 4096, "max_inflight": 2}')
    assert load_config(js).body_limit_bytes == 4096
    assert load_config(None) == ServeConfig()


@pytest.mark.parametrize(("content", "needle"), [
    ("max_queue: -1\n", "max_queue"),
    ("objective: speed\n", "objective"),
    ("polcy: greedy\n", "polcy"),  # a typo is an error, not a silent default
    ("deployments: [{name: a, model: a, engine: {engine: llamacpp}}]\nembedded_models: [tiny]\n", "not both"),
    ("deployments: [{name: a, model: a, engine: {engine: openai, base_url: 'localhost:8000'}}]\n", "base_url"),
    ("engine_factory: not_dotted\n", "package.module:function"),
    ("- just\n- a list\n", "mapping"),
    ("max_queue: [\n", "not valid YAML"),
])
def test_invalid_configs_name_the_key_and_the_fix(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=needle):
        load_config(path)


def test_missing_file_and_unknown_warm_deployment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="murakkab profile --config"):
        build_runtime(load_config(write_setup(tmp_path, profiles=["not-measured-yet.json"])))
    with pytest.raises(ConfigError, match="warm names unknown deployment 'huge'"):
        build_runtime(load_config(write_setup(tmp_path, warm=["huge"])))


def test_api_keys_merge_file_environment_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEYS", "env-key-aaaa,env-key-bbbb")
    cfg = ServeConfig(api_keys=["file-key-1234"], api_keys_env="MY_KEYS")
    assert cfg.resolved_api_keys(["flag-key-5678"]) == ("file-key-1234", "env-key-aaaa", "env-key-bbbb",
                                                        "flag-key-5678")


def test_murakkab_serve_subprocess_serves_metrics_and_stops_its_engines(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "MURAKKAB_API_KEYS": "cli-key-123456"}
    proc = subprocess.Popen([sys.executable, "-m", "murakkab_lg.cli", "serve", "--config",
                             str(write_setup(tmp_path)), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Bearer cli-key-123456"}
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                health = httpx.get(base + "/health", timeout=1).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "murakkab serve did not come up"
                time.sleep(0.2)
        assert health["deployments"] == {"fast": "running", "smart": "stopped"}  # `warm` started fast
        body = {"model": "murakkab/classify", "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(base + "/v1/chat/completions", json=body).status_code == 401
        r = httpx.post(base + "/v1/chat/completions", json=body, headers=auth, timeout=30)
        assert r.status_code == 200 and r.headers["x-murakkab-deployment"] == "fast"
        metrics = httpx.get(base + "/metrics").text
        labels = 'deployment="fast",intent="classify",node=""'
        assert f'murakkab_engine_calls_total{{{labels},outcome="ok"}} 1.0' in metrics
        assert f"murakkab_engine_call_latency_seconds_count{{{labels}}} 1.0" in metrics
        assert ('murakkab_tokens_total{deployment="fast",intent="classify",kind="completion",node=""} 2.0'
                in metrics)
        # Energy is the engine process's CPU time times watts per core: labelled an estimate.
        assert 'murakkab_energy_joules_total{deployment="fast",intent="classify",label="estimated",node=""}' in metrics
        assert 'murakkab_http_responses_total{code="401"}' not in metrics  # auth refusals never reach the route
        assert "openapi" in httpx.get(base + "/openapi.json").json()
        children = children_of(proc.pid)
        assert children, "the warm deployment's engine should be a child process"
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out
    assert "auth on" in out and "2 deployments" in out
    time.sleep(0.2)
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()], "an engine outlived murakkab serve"


def test_server_bounds_runtime_telemetry_and_marks_stay_exact(instant_url: str) -> None:
    from server_support import make_runtime

    from murakkab_lg.runtime.telemetry import CallRecord
    from murakkab_lg.server import create_app

    rt = make_runtime(instant_url)
    create_app(rt, ServeConfig(telemetry_records=100), api_keys=())
    tel = rt.telemetry
    assert tel.max_records == 100

    def rec(i: int) -> CallRecord:
        return CallRecord(workflow=None, node=str(i), intent=None, deployment="fast", model="fast", started_at=0.0,
                          latency_s=0.0, ttft_s=None, prompt_tokens=0, completion_tokens=0, energy_j=None,
                          energy_label=None)

    for i in range(50):
        tel.record(rec(i))
    mark = tel.mark()
    for i in range(50, 400):
        tel.record(rec(i))
    assert len(tel.records()) <= 100 and tel.mark() == 400
    assert [r.node for r in tel.since(tel.mark() - 3)] == ["397", "398", "399"]
    rt.close()
    assert mark == 50
