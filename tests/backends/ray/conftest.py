"""A local Ray cluster for the `ray` tests, started once per test run and stopped with nothing left.

The head node is `ray start --head --block` in a fresh temp dir, with logical resources: 4 CPUs,
2 GPUs that do not exist (`num_gpus` is only a count to Ray) typed `gpu_type:H100`. A second node
(`ray start --address`, same machine) joins only for the tests that ask for it, with its own
resources (`gpu_type:A100`) and the label `murakkab.host=node-b`; the last test crashes it (SIGKILL
to its process group), and the fixture starts it again should a later test need it. Token auth is off
(RAY_AUTH_MODE=disabled) because the cluster lives only for the run, on loopback-reachable
addresses of this machine. Each `ray start --block` is stopped by SIGTERM to its own process,
never `ray stop` (which would stop every Ray on the machine), and the temp dir is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from murakkab_lg.backends.engines.llamacpp import free_port

RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "RAY_enable_worker_prestart": "0"}
HEAD = {"num_cpus": 4, "num_gpus": 2, "resources": {"gpu_type:H100": 2}}
NODE_B = {"num_cpus": 2, "num_gpus": 2, "resources": {"gpu_type:A100": 1}, "label": "node-b"}


def _ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


class RayNode:
    """One `ray start --block` process and its log."""

    def __init__(self, args: list[str], temp_dir: Path, log_name: str) -> None:
        self.log = temp_dir / log_name
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [_ray_bin(), "start", "--block", "--disable-usage-stats", f"--temp-dir={temp_dir}",
                 "--object-store-memory=100000000", f"--ray-client-server-port={free_port()}",
                 f"--dashboard-agent-listen-port={free_port()}", *args],
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **RAY_ENV}, start_new_session=True,
            )

    def crash(self) -> None:
        """The node dies at once, as when its machine fails: SIGKILL to its whole process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # `ray start --block` stops its own processes on SIGTERM
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _resource_args(spec: dict) -> list[str]:
    return [f"--num-cpus={spec['num_cpus']}", f"--num-gpus={spec['num_gpus']}",
            f"--resources={json.dumps(spec['resources'])}"]


class LocalCluster:
    def __init__(self) -> None:
        self.temp_dir = Path(tempfile.mkdtemp(prefix="mkray-", dir="/tmp"))  # short: Ray's socket paths
        self.nodes: list[RayNode] = []
        self.by_label: dict[str, RayNode] = {}
        self.address = ""

    def start_head(self) -> None:
        head = RayNode(["--head", "--port=0", "--include-dashboard=false", *_resource_args(HEAD)],
                       self.temp_dir, "head.log")
        self.nodes.append(head)
        marker = self.temp_dir / "ray_current_cluster"
        deadline = time.monotonic() + 90
        while not marker.is_file() or not marker.read_text().strip():
            if head.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start --head failed:\n{head.log.read_text()[-3000:]}")
            time.sleep(0.2)
        self.address = marker.read_text().strip()

    def add_node(self, spec: dict) -> RayNode:
        node = RayNode([f"--address={self.address}", f"--labels=murakkab.host={spec['label']}",
                        *_resource_args(spec)], self.temp_dir, f"{spec['label']}.log")
        self.nodes.append(node)
        self.by_label[spec["label"]] = node
        return node

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[LocalCluster]:
    ray = pytest.importorskip("ray", reason="the ray tests need the extra: pip install -e '.[ray]'")
    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)
    cluster = LocalCluster()
    try:
        cluster.start_head()
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def ray_config(ray_cluster):
    from murakkab_lg.backends.ray import RayConfig

    return RayConfig(address=ray_cluster.address, namespace="murakkab-tests", placement_timeout_s=3.0)


def _alive_id(cluster, label: str) -> str | None:
    return next((n.node_id for n in cluster.nodes() if n.alive and n.labels.get("murakkab.host") == label), None)


@pytest.fixture
def node_b(ray_cluster, ray_config) -> str:
    """A second Ray node on this machine (label murakkab.host=node-b), started on first use and again
    if a test crashed it; returns its node id."""
    from murakkab_lg.backends.ray.cluster import RayCluster

    cluster = RayCluster(ray_config)
    node_id = _alive_id(cluster, NODE_B["label"])
    if node_id is not None:
        return node_id
    ray_cluster.add_node(NODE_B)
    deadline = time.monotonic() + 90
    while (node_id := _alive_id(cluster, NODE_B["label"])) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"node-b did not join:\n{(ray_cluster.temp_dir / 'node-b.log').read_text()[-3000:]}")
        time.sleep(0.5)
    return node_id
