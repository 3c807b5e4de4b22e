"""Placement groups on a local Ray cluster with logical resources (2 fake H100s on the head).

What is checked is Ray's own bookkeeping: where each bundle landed, what is left free, which GPU
ids Ray hands the replicas, and that a plan the cluster cannot hold fails fast with the resource
and node named, instead of a placement group that stays PENDING.
"""

from __future__ import annotations

import time

import pytest

from murakkab_lg.backends.ray.cluster import RayCluster
from murakkab_lg.backends.ray.resources import cluster_inventory, replica_bundle
from murakkab_lg.errors import PlanInfeasibleError
from murakkab_lg.runtime.placement import place
from murakkab_lg.spec import Deployment, Placement, VllmSettings

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]


def _vllm(name: str, *, device: str = "H100", tp: int = 1, host: str = "localhost") -> Deployment:
    return Deployment(name=name, model="org/model", engine=VllmSettings(tensor_parallel_size=tp),
                      placement=Placement(device=device, host=host))


@pytest.fixture
def cluster(ray_config):
    c = RayCluster(ray_config)
    held: list = []
    yield c, held
    for pg in held:
        c.release(pg)


def _gpu_ids(ray, pg, gpus: float) -> list[int]:
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    probe = ray.remote(num_cpus=0, num_gpus=gpus)(lambda: [int(g) for g in ray.get_gpu_ids()])
    return ray.get(probe.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote(), timeout=60)


def test_packer_colocation_carries_over_to_ray(cluster):
    c, held = cluster
    ray = c.connect()
    head = next(n for n in c.nodes() if n.head)
    # the packer, on the cluster's own inventory: two 30 GB replicas share one H100, a TP-2 group would not fit
    plan = place([_vllm("a"), _vllm("b")], cluster_inventory(c.nodes()), {"a": 30.0, "b": 30.0})
    bundles = [replica_bundle(d) for d in plan.deployments]
    assert [b.resources for b in bundles] == [{"CPU": 1.0, "GPU": 0.5, "gpu_type:H100": 0.5}] * 2
    held += [c.reserve(b) for b in bundles]
    assert {c.node_of(pg) for pg in held} == {head.node_id}
    free = next(n for n in c.nodes() if n.head).available
    assert free["GPU"] == pytest.approx(1.0) and free["gpu_type:H100"] == pytest.approx(1.0)
    assert _gpu_ids(ray, held[0], 0.5) == _gpu_ids(ray, held[1], 0.5)  # one physical GPU, shared


def test_tensor_parallel_group_takes_whole_gpus_then_the_next_waits_and_says_why(cluster):
    c, held = cluster
    ray = c.connect()
    held.append(c.reserve(replica_bundle(_vllm("tp2", tp=2))))
    assert sorted(_gpu_ids(ray, held[0], 2)) == [0, 1]
    t0 = time.monotonic()
    with pytest.raises(PlanInfeasibleError) as e:
        c.reserve(replica_bundle(_vllm("late")))
    waited = time.monotonic() - t0
    assert 2.5 < waited < 30  # placement_timeout_s=3, then an answer, not a hang
    msg = str(e.value)
    assert "deployment 'late' replica 0 needs {CPU: 1, GPU: 1, gpu_type:H100: 1}" in msg
    assert "could not place it within 3 s" in msg and "head): GPU 0 free (needs 1)" in msg
    assert "PENDING" not in str([pg.bundle_specs for pg in held])  # the failed group was removed


def test_a_bundle_no_node_can_hold_fails_at_once_naming_resource_and_node(cluster):
    c, _ = cluster
    t0 = time.monotonic()
    with pytest.raises(PlanInfeasibleError) as e:
        c.reserve(replica_bundle(_vllm("huge", tp=4)))
    assert time.monotonic() - t0 < 2.0
    assert "which no node of the Ray cluster has" in str(e.value)
    assert "head): GPU 2 in total (needs 4)" in str(e.value) and "To fix" in str(e.value)
    with pytest.raises(PlanInfeasibleError, match="no live node is named 'nowhere'"):
        c.reserve(replica_bundle(_vllm("lost", host="nowhere")))


def test_second_node_gets_what_the_plan_asked_for(cluster, node_b):
    c, held = cluster
    held.append(c.reserve(replica_bundle(_vllm("on-a100", device="A100"))))  # by GPU type
    held.append(c.reserve(replica_bundle(_vllm("on-b", device="gpu", host="node-b"))))  # by host name
    assert [c.node_of(pg) for pg in held] == [node_b, node_b]
    with pytest.raises(PlanInfeasibleError, match=r"node 'node-b' .*GPU 0 free \(needs 1\)"):
        c.reserve(replica_bundle(_vllm("b-again", device="gpu", host="node-b")))


def test_a_crashed_node_is_noticed_and_its_pinned_replica_fails_clearly(ray_cluster, ray_config, node_b, tiny_model):
    """node-b hosts a real engine and crashes (its processes SIGKILLed, as when a machine fails): the
    replica is reported unhealthy, and replacing it (what the pool's restart does) fails with the
    node named instead of waiting, because the plan pinned it there. Last: it takes node-b down."""
    from murakkab_lg.backends.ray import RayBackend
    from murakkab_lg.spec import LlamaCppSettings

    dep = Deployment(name="on-b", model=tiny_model, placement=Placement(host="node-b"),
                     engine=LlamaCppSettings(threads=1, parallel=1, ctx_size=512))
    engine = RayBackend(ray_config)(dep, 0)
    try:
        engine.start(60)
        assert engine.healthy() and engine.node_id == node_b
        ray_cluster.by_label["node-b"].crash()
        deadline = time.monotonic() + 30
        while engine.healthy():  # each probe answers within health_timeout_s; the actor dies with its raylet
            assert time.monotonic() < deadline, "a replica on a crashed node still looks healthy after 30 s"
            time.sleep(0.5)
        engine.stop()
        t0 = time.monotonic()
        with pytest.raises(PlanInfeasibleError, match="node-b"):
            engine.start(60)
        assert time.monotonic() - t0 < ray_config.placement_timeout_s + 5
    finally:
        engine.stop()
