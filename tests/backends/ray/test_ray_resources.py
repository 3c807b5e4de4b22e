"""The plan -> Ray resources mapping, without a cluster (pure; runs in the default suite, no Ray needed)."""

from __future__ import annotations

import pytest

from murakkab_lg.backends.ray.config import ClusterConfig, RayConfig
from murakkab_lg.backends.ray.resources import cluster_inventory, fits_somewhere, node_view, replica_bundle, shortfall
from murakkab_lg.errors import ConfigError
from murakkab_lg.runtime.placement import place
from murakkab_lg.spec import ApiSettings, Deployment, LlamaCppSettings, Placement, VllmSettings


def _vllm(name: str, *, device: str = "H100", tp: int = 1, util: float = 0.9, host: str = "localhost") -> Deployment:
    engine = VllmSettings(tensor_parallel_size=tp, gpu_memory_utilization=util)
    return Deployment(name=name, model="org/model", engine=engine, placement=Placement(device=device, host=host))


def _raw(node_id: str, resources: dict, labels: dict | None = None, alive: bool = True) -> dict:
    return {"NodeID": node_id, "NodeManagerAddress": "10.0.0.1", "NodeName": "10.0.0.1", "Alive": alive,
            "Resources": resources, "Labels": {"ray.io/node-id": node_id, **(labels or {})}}


HEAD = node_view(_raw("aa" * 28, {"CPU": 4.0, "GPU": 2.0, "gpu_type:H100": 2.0, "node:__internal_head__": 1.0,
                                  "memory": 8 * 2**30}),
                 {"CPU": 4.0, "GPU": 1.0, "gpu_type:H100": 1.0})
NODE_B = node_view(_raw("bb" * 28, {"CPU": 2.0, "GPU": 1.0, "gpu_type:A100": 1.0}, {"murakkab.host": "node-b"}), None)


def test_llamacpp_reserves_its_threads_as_cpus():
    dep = Deployment(name="tiny", model="smollm2-135m", engine=LlamaCppSettings(threads=3))
    b = replica_bundle(dep, 1)
    assert b is not None and b.resources == {"CPU": 3.0} and b.host is None and b.replica == 1


def test_vllm_tensor_parallel_reserves_whole_typed_gpus():
    b = replica_bundle(_vllm("big", tp=2))
    assert b is not None and b.resources == {"CPU": 1.0, "GPU": 2.0, "gpu_type:H100": 2.0}


def test_vllm_memory_share_becomes_a_gpu_fraction_and_any_gpu_is_untyped():
    b = replica_bundle(_vllm("half", util=0.45))
    assert b is not None and b.resources == {"CPU": 1.0, "GPU": 0.5, "gpu_type:H100": 0.5}
    assert replica_bundle(_vllm("any", device="gpu")).resources == {"CPU": 1.0, "GPU": 1.0}
    assert replica_bundle(_vllm("cpu", device="cpu")).resources == {"CPU": 1.0}


def test_host_pins_and_api_engines_are_not_hosted():
    assert replica_bundle(_vllm("x", host="node-b")).host == "node-b"
    api = Deployment(name="gpt", model="gpt-4o-mini", engine=ApiSettings(litellm_model="gpt-4o-mini"))
    assert replica_bundle(api) is None


def test_shortfall_names_the_resource_and_node():
    big = replica_bundle(_vllm("big", tp=2))
    assert not fits_somewhere(big, [HEAD, NODE_B], now=True) and fits_somewhere(big, [HEAD, NODE_B], now=False)
    why = shortfall(big, [HEAD, NODE_B], now=True)
    assert f"node '10.0.0.1' ({'aa' * 4}, 10.0.0.1, head): GPU 1 free (needs 2)" in why
    assert "node 'node-b' (bbbbbbbb, 10.0.0.1, worker): GPU 1 free (needs 2)" in why
    pinned = replica_bundle(_vllm("x", host="node-c"))
    assert shortfall(pinned, [HEAD, NODE_B]) == "no live node is named 'node-c' (nodes: 10.0.0.1, node-b)"


def test_cluster_inventory_feeds_the_packer_per_node():
    inv = cluster_inventory([HEAD, NODE_B])
    gpus = [(d.host, d.id, d.kind, d.memory_gb) for d in inv.devices if d.gpu_index is not None]
    assert gpus == [("10.0.0.1", "gpu0", "H100", 80.0), ("10.0.0.1", "gpu1", "H100", 80.0),
                    ("node-b", "gpu0", "A100", 80.0)]
    # two 30 GB replicas share one H100 (memory shares 0.45 each) and the A100 deployment lands on node-b
    plan = place([_vllm("a"), _vllm("b"), _vllm("c", device="A100")], inv, {"a": 30.0, "b": 30.0, "c": 30.0})
    bundles = {d.name: replica_bundle(d) for d in plan.deployments}
    assert bundles["a"].resources["GPU"] == bundles["b"].resources["GPU"] == 0.5
    assert bundles["a"].host == bundles["b"].host == "10.0.0.1" and bundles["c"].host == "node-b"


def test_unknown_gpu_memory_asks_for_the_label():
    odd = node_view(_raw("cc" * 28, {"CPU": 1.0, "GPU": 1.0, "gpu_type:MI300X": 1.0}), None)
    with pytest.raises(ConfigError, match=r"murakkab\.gpu_memory_gb"):
        cluster_inventory([odd])
    labelled = node_view(_raw("cc" * 28, {"GPU": 1.0, "gpu_type:MI300X": 1.0}, {"murakkab.gpu_memory_gb": "192"}), None)
    assert cluster_inventory([labelled]).devices[0].memory_gb == 192.0


def test_config_validates_addresses():
    assert ClusterConfig.model_validate({"ray": {"address": "ray://head:10001"}}).ray.address == "ray://head:10001"
    with pytest.raises(ValueError, match="must be 'auto', 'local'"):
        RayConfig(address="head")


def test_without_ray_installed_the_error_names_the_extra(monkeypatch):
    import sys

    from murakkab_lg.backends.ray.cluster import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r"pip install 'murakkab-lg\[ray\]'"):
        import_ray()


def test_gpu_energy_of_colocated_replicas_is_read_on_their_node_and_shared():
    """Two replicas on one remote GPU: counter deltas read through their actors (here: stand-ins for
    `RayEngine._ask`), split between the calls in flight; a dead reader is skipped."""
    from murakkab_lg.backends.ray.engine import _NodeAttributor

    counter = {"j": 100.0}

    class Reader:  # the two methods of RayEngine that the node attributor uses
        actor = object()

        def __init__(self, dead: bool = False) -> None:
            self.dead = dead

        def _ask(self, method: str, timeout_s: float | None = None):
            if self.dead:
                raise RuntimeError("actor died")
            return {0: counter["j"]}

    node = _NodeAttributor()
    a, b = Reader(), Reader()
    meter_a, meter_b = node.meter_via(a, (0,)), node.meter_via(b, (0,))
    ta = meter_a.begin()
    counter["j"] += 10.0  # a alone
    tb = meter_b.begin()
    counter["j"] += 20.0  # both in flight
    a.dead = True  # a's actor dies: b's reads the node's counter from now on
    assert meter_a.end(ta) == pytest.approx(10.0 + 10.0)
    counter["j"] += 6.0
    assert meter_b.end(tb) == pytest.approx(10.0 + 6.0)
    b.dead = True  # no reader at all: the last reading stands, so nothing is charged twice later
    tb = meter_b.begin()
    assert meter_b.end(tb) == 0.0
    b.dead = False
    tb = meter_b.begin()
    counter["j"] += 4.0
    assert meter_b.end(tb) == pytest.approx(4.0)
    assert meter_a.label == "measured"
