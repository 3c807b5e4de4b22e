"""Live state over HTTP: GET /v1/murakkab/status, the Prometheus gauges, and `murakkab status --url`."""

from __future__ import annotations

import httpx
import openai
import pytest
from server_support import serve

from murakkab_lg.cli import main
from murakkab_lg.errors import ConfigError, EngineUnavailableError
from murakkab_lg.integrations.status import fetch_status
from murakkab_lg.server import ServeConfig, create_app


def test_status_route_gauges_and_cli_after_real_calls(runtime, base_url, capsys):
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="none")
    annotation = {"workflow": "triage", "node": "label", "min_quality": 0.8}
    for i in range(5):
        client.chat.completions.create(model="murakkab/classify", messages=[{"role": "user", "content": f"t{i}"}],
                                       extra_body={"murakkab": annotation})
    st = fetch_status(base_url)
    smart = st.deployments["smart"]  # classify's floor needs `smart` (server_support.QUALITY)
    assert smart.running and smart.window is not None and smart.window.calls >= 5
    assert smart.window.p95_s is not None and smart.window.p50_s <= smart.window.p95_s
    node = next(n for n in st.nodes if (n.workflow, n.node) == ("triage", "label"))
    assert node.calls == 5 and node.mean_input_tokens and node.deployments == {"smart": 5}
    metrics = httpx.get(base_url + "/metrics").text
    assert 'murakkab_deployment_window_latency_seconds{deployment="smart",quantile="0.95"}' in metrics
    assert 'murakkab_deployment_inflight{deployment="smart"} 0.0' in metrics
    assert main(["status", "--url", base_url + "/v1"]) == 0
    out = capsys.readouterr().out
    assert "deployments" in out and "smart" in out and "label" in out
    assert main(["status", "--url", base_url, "--json"]) == 0
    assert '"deployments"' in capsys.readouterr().out


def test_status_needs_the_key_when_keys_are_set(runtime):
    with serve(create_app(runtime, ServeConfig(), api_keys=("k" * 32,))) as url:
        assert httpx.get(url + "/v1/murakkab/status").status_code == 401
        with pytest.raises(ConfigError, match="--api-key"):
            fetch_status(url)
        assert fetch_status(url, api_key="k" * 32).deployments


def test_status_of_nothing_names_the_fix():
    with pytest.raises(EngineUnavailableError, match="murakkab serve"):
        fetch_status("http://127.0.0.1:9", timeout_s=2)
