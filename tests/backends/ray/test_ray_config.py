"""`cluster: {ray: ...}` in the serve config file: the runtime it builds, and doctor's view of the cluster."""

from __future__ import annotations

import pytest
from rich.console import Console

from murakkab_lg.backends.ray import RayBackend
from murakkab_lg.commands.doctor import collect_ray, render_ray
from murakkab_lg.server.config import build_runtime, load_config
from murakkab_lg.spec import Intent
from murakkab_lg.wire import Route

pytestmark = [pytest.mark.ray, pytest.mark.timeout(180)]


@pytest.fixture
def config_file(tmp_path, ray_config, tiny_model):
    path = tmp_path / "cluster.yaml"
    path.write_text(f"embedded_models: [tiny]\ncluster:\n  ray: {{address: '{ray_config.address}', "
                    f"namespace: {ray_config.namespace}, placement_timeout_s: 5}}\n")
    return path


def test_config_builds_a_runtime_whose_engines_are_ray_actors(config_file):
    """`cluster.ray` in the same file `murakkab serve --config` reads: engine factory and inventory from Ray."""
    runtime = build_runtime(load_config(config_file))
    try:
        assert isinstance(runtime._pool._factory, RayBackend)
        assert {d.host for d in runtime.inventory.devices} and runtime.inventory.devices[0].kind == "cpu"
        body = {"model": "murakkab/classify", "messages": [{"role": "user", "content": "Say yes."}], "max_tokens": 4}
        resp = runtime.complete(body, Route(intent=Intent(intent="classify")))
        assert resp["choices"][0]["message"]["content"] is not None
        engine = runtime._pool._factory.engines[("smollm2-135m", 0)]
        assert engine.node_id and engine.healthy()
        status = collect_ray(str(config_file))  # doctor sees the replica's placement group on its node
        assert "murakkab:smollm2-135m#0" in status.groups[engine.node_id]
    finally:
        runtime.close()


def test_doctor_shows_the_clusters_nodes_and_resources(config_file):
    status = collect_ray(str(config_file))
    assert status is not None and status.error is None
    head = next(n for n in status.nodes if n.head)
    assert head.total["GPU"] == 2 and head.total["gpu_type:H100"] == 2
    console = Console(record=True, width=200)
    render_ray(status, console)
    text = console.export_text()
    assert "Ray cluster" in text and head.node_id[:8] in text and "gpu_type:H100" in text and "head" in text
