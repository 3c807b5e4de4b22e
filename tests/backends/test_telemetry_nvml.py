"""GPU telemetry on a CPU machine: NvmlTelemetry over a fake pynvml, measured energy per call from
counter deltas, and the clear messages when pynvml, the driver or a GPU is absent."""

from __future__ import annotations

import subprocess
import sys

import pytest

from murakkab_lg.backends.telemetry import (
    GpuEnergyAttributor,
    NvmlTelemetry,
    detect_inventory,
    inventory_from_telemetry,
    open_nvml,
    sample,
    short_gpu_kind,
)
from murakkab_lg.backends.telemetry.fake import FakeGpu, FakeMig, FakeNvml, NVMLError_LibraryNotFound
from murakkab_lg.errors import TelemetryUnavailableError


def _fleet() -> FakeNvml:
    return FakeNvml([
        FakeGpu("NVIDIA A100-SXM4-80GB", 79.25, 400.0, mig=[FakeMig("3g.40gb", 39.5), FakeMig("1g.10gb", 9.75)]),
        FakeGpu("NVIDIA A100-SXM4-80GB", 79.25, 400.0, mig_capable=True),
        FakeGpu("Tesla P100-PCIE-16GB", 16.0, 250.0, energy_counter=False),
    ])


def test_inventory_units_mig_and_missing_counters() -> None:
    fake = _fleet()
    with NvmlTelemetry(fake) as tel:
        gpus = tel.gpus()
        assert [g.kind for g in gpus] == ["A100", "A100", "P100"]
        assert gpus[0].memory_gb == pytest.approx(79.25) and gpus[0].power_limit_w == 400.0
        assert gpus[0].mig_enabled and not gpus[1].mig_enabled
        assert [(m.profile, m.slices, m.uuid) for m in gpus[0].mig] == [
            ("3g.40gb", 3, "MIG-fake-0000-0"), ("1g.10gb", 1, "MIG-fake-0000-1")]
        assert [g.energy_counter for g in gpus] == [True, True, False]
        with pytest.raises(TelemetryUnavailableError, match=r"no total-energy counter.*Volta"):
            tel.energy_j(2)
        with pytest.raises(TelemetryUnavailableError, match="NVML sees 3 GPU"):
            tel.power_w(7)
        inv = inventory_from_telemetry(tel, include_cpu=False)
    assert fake.init_count == 0  # closed
    assert [(d.id, d.gpu_index, d.uuid) for d in inv.devices] == [
        ("gpu0/mig3g.40gb/0", 0, "MIG-fake-0000-0"), ("gpu0/mig1g.10gb/1", 0, "MIG-fake-0000-1"),
        ("gpu1", 1, "GPU-fake-0001"), ("gpu2", 2, "GPU-fake-0002")]
    assert inv.devices[0].compute_units == pytest.approx(3 / 7)
    assert inv.devices[2].power_limit_w == 400.0


def test_power_and_energy_are_converted_from_milli_units() -> None:
    fake = FakeNvml.fleet(count=2)
    tel = NvmlTelemetry(fake)
    fake.set_power(1, 312.5)
    fake.advance(4.0)
    assert tel.power_w(1) == pytest.approx(312.5)
    assert tel.energy_j(1) == pytest.approx(1250.0)
    assert tel.energy_j(0) == 0.0
    s = sample(tel, [1])
    assert s[0].gpu == 1 and s[0].power_w == pytest.approx(312.5) and s[0].energy_j == pytest.approx(1250.0)


def test_per_call_energy_is_counter_delta_split_by_time_share() -> None:
    """A from t=0..2, B from t=1..3, at 400 W: A = 400 J alone + 200 J shared; B = 200 J + 400 J."""
    fake = FakeNvml.fleet(count=1)
    att = GpuEnergyAttributor(NvmlTelemetry(fake))
    fake.set_power(0, 400.0)
    fake.advance(5.0)  # before any call: not charged to anyone
    a = att.begin([0])
    fake.advance(1.0)
    b = att.begin([0])
    fake.advance(1.0)
    ea = att.end(a)
    fake.advance(1.0)
    eb = att.end(b)
    assert ea == pytest.approx(600.0)
    assert eb == pytest.approx(600.0)
    fake.advance(2.0)
    c = att.begin([0])
    att.end(c)
    assert att.idle_j(0) == pytest.approx(800.0)  # 2 s idle between b's end and c's begin
    assert att.label == "measured"


def test_tp_group_and_mig_slices_share_counters_by_physical_gpu() -> None:
    fake = FakeNvml.fleet(count=3)
    att = GpuEnergyAttributor(NvmlTelemetry(fake))
    for i, w in enumerate((300.0, 500.0, 100.0)):
        fake.set_power(i, w)
    tp = att.meter([0, 1])  # a TP=2 replica
    other = att.meter([1])  # a small model co-located on GPU 1
    t_tp = tp.begin()
    t_other = other.begin()
    fake.advance(2.0)
    e_other = other.end(t_other)
    e_tp = tp.end(t_tp)
    assert e_tp == pytest.approx(300 * 2 + 500 * 2 / 2)  # all of GPU 0, half of GPU 1
    assert e_other == pytest.approx(500 * 2 / 2)
    assert att.end(12345) is None


def test_absent_pynvml_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    with pytest.raises(TelemetryUnavailableError, match=r"nvidia-ml-py.*murakkab-lg\[nvml\].*estimated"):
        open_nvml()
    inv, note = detect_inventory()
    assert [d.id for d in inv.devices] == ["cpu"] and "murakkab-lg[nvml]" in (note or "")


def test_no_driver_is_a_clear_message_not_a_crash() -> None:
    with pytest.raises(TelemetryUnavailableError, match=r"libnvidia-ml\.so is not on this machine.*To fix"):
        NvmlTelemetry(FakeNvml(fail_init=NVMLError_LibraryNotFound))
    with pytest.raises(TelemetryUnavailableError, match="reports no GPU"):
        NvmlTelemetry(FakeNvml([]))


def test_this_machine_falls_back_to_cpu_inventory() -> None:
    """Real pynvml (when installed) on a machine without an NVIDIA driver: CPU inventory plus the reason."""
    inv, note = detect_inventory()
    if note is None:
        pytest.skip("this machine has a working NVIDIA GPU")
    assert inv.devices[-1].id == "cpu" and inv.devices[-1].compute_units >= 1
    assert "To fix" in note


def test_gpu_kind_names() -> None:
    assert short_gpu_kind("NVIDIA H100 80GB HBM3") == "H100"
    assert short_gpu_kind("NVIDIA L40S") == "L40S"
    assert short_gpu_kind("NVIDIA A10G") == "A10G"
    assert short_gpu_kind("NVIDIA RTX A1000") == "RTX A1000"  # not mistaken for an A100


def test_importing_the_library_imports_no_gpu_package() -> None:
    code = ("import sys, murakkab_lg, murakkab_lg.backends.telemetry, murakkab_lg.runtime.placement, "
            "murakkab_lg.backends.engines.vllm, murakkab_lg.commands.doctor; "
            "print(sorted(m for m in ('pynvml', 'vllm', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_runtime_labels_gpu_calls_measured_with_counter_energy() -> None:
    """A deployment placed on GPU 1: the runtime's call records carry the counter delta, `measured`."""
    from murakkab_lg.backends.engines import FunctionEngine
    from murakkab_lg.backends.telemetry import set_shared_attributor
    from murakkab_lg.catalog.profiles import ProfileStore
    from murakkab_lg.runtime import Route, Runtime
    from murakkab_lg.spec import Deployment, Placement, VllmSettings

    fake = FakeNvml.fleet(count=2)
    fake.set_power(1, 250.0)

    class GpuFunctionEngine(FunctionEngine):
        gpus = (1,)

    def answer(body: dict) -> dict:
        fake.advance(0.8)  # the engine works for 0.8 s at 250 W on GPU 1
        return {"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1}}

    dep = Deployment(name="gpu-dep", model="org/m", engine=VllmSettings(),
                     placement=Placement(device="H100", gpus=(1,)))
    set_shared_attributor(GpuEnergyAttributor(NvmlTelemetry(fake)))
    try:
        with Runtime([dep], ProfileStore(), engine_factory=lambda d, i: GpuFunctionEngine(d.name, answer)) as rt:
            rt.complete({"messages": [{"role": "user", "content": "hi"}]}, Route(deployment="gpu-dep"))
            rec = rt.telemetry.records()[-1]
    finally:
        set_shared_attributor(None)
    assert rec.energy_label == "measured"
    assert rec.energy_j == pytest.approx(200.0)
