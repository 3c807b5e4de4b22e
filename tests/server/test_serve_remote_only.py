"""`murakkab serve --config` with only `openai` and `api` deployments and no profiles: it starts no
engine of its own, serves requests that name a deployment, and says how to measure profiles when a
request asks it to plan by intent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from test_server_config import children_of

from murakkab_lg.backends.engines.llamacpp import free_port
from murakkab_lg.testing.scripted_engine import ScriptedServer


def test_serve_with_remote_deployments_only(tmp_path: Path) -> None:
    with ScriptedServer(name="theirs", models=("their-model",)) as theirs:
        config = tmp_path / "remote.yaml"
        config.write_text(yaml.safe_dump({"deployments": [
            {"name": "their-server", "model": "their-model",
             "engine": {"engine": "openai", "base_url": theirs.url, "served_model": "their-model"}},
            {"name": "hosted", "model": "gpt-4.1-nano",
             "engine": {"engine": "api", "litellm_model": "gpt-4.1-nano", "mock_response": "mocked"}},
        ], "warm": ["their-server"]}))
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "murakkab_lg.cli", "serve", "--config", str(config),
                                 "--port", str(port)], env=dict(os.environ), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                try:
                    httpx.get(base + "/health", timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "murakkab serve did not come up"
                    time.sleep(0.3)
            msgs = [{"role": "user", "content": "hello there"}]
            r = httpx.post(base + "/v1/chat/completions", json={"model": "their-server", "messages": msgs},
                           timeout=30)
            assert r.status_code == 200, r.text
            assert r.headers["x-murakkab-deployment"] == "their-server"
            assert theirs.received(model="their-model"), "the request reached the existing server by its model name"
            r = httpx.post(base + "/v1/chat/completions", json={"model": "hosted", "messages": msgs}, timeout=60)
            assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "mocked", r.text
            r = httpx.post(base + "/v1/chat/completions", json={"model": "murakkab/classify", "messages": msgs},
                           timeout=30)
            assert r.status_code >= 400 and "murakkab profile --config" in r.json()["error"]["message"], r.text
            assert children_of(proc.pid) == [], "no local engine may be started for openai/api deployments"
        finally:
            proc.send_signal(signal.SIGINT)
            out = proc.communicate(timeout=30)[0].decode()
        assert proc.returncode == 0, out
