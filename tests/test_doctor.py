"""`murakkab doctor` exits 0 on this GPU-less machine and reports what is there and what is missing;
with a fake NVML it lists GPUs and MIG slices."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from murakkab_lg.backends.telemetry.fake import FakeGpu, FakeMig, FakeNvml
from murakkab_lg.backends.telemetry.nvml import NvmlTelemetry
from murakkab_lg.cli import main
from murakkab_lg.commands.doctor import collect, render


def test_doctor_exits_zero_without_gpu(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for part in ("machine", "inventory", "engines", "llama-server", "vllm", "litellm", "embedded models"):
        assert part in out
    report = collect()
    if report.gpu_backend is None:  # this machine: no NVIDIA driver
        assert "GPUs     none usable" in out
        assert any(m.startswith("GPU telemetry:") and "To fix" in m for m in report.missing)
        assert [d.id for d in report.inventory.devices] == ["cpu"]


def test_doctor_json_is_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {e["name"] for e in data["engines"]} == {"llama-server", "vllm", "litellm"}
    assert data["inventory"]["devices"][-1]["id"] == "cpu"


def test_doctor_lists_gpus_and_mig_slices_from_telemetry() -> None:
    fake = FakeNvml([
        FakeGpu("NVIDIA H100 80GB HBM3", 79.6, 700.0),
        FakeGpu("NVIDIA A100-SXM4-80GB", 79.25, 400.0, mig=[FakeMig("3g.40gb", 39.5)]),
        FakeGpu("Tesla P100-PCIE-16GB", 16.0, 250.0, energy_counter=False),
    ])
    report = collect(open_telemetry=lambda: NvmlTelemetry(fake))
    assert report.gpu_backend == "fake-nvml" and report.driver == fake.driver
    assert [d.id for d in report.inventory.devices] == ["gpu0", "gpu1/mig3g.40gb/0", "gpu2", "cpu"]
    assert any("GPU 2 (Tesla P100-PCIE-16GB) has no total-energy counter" in m for m in report.missing)
    assert fake.init_count == 0  # NVML closed again
    console = Console(width=200, record=True)
    render(report, console)
    text = console.export_text()
    assert "H100" in text and "gpu1/mig3g.40gb/0" in text and "700" in text


def test_doctor_prints_fixes_verbatim_with_their_extras(capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixes name extras in brackets (`murakkab-lg[nvml]`); rich markup must not eat them."""
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    report = collect()
    bracketed = [m for m in report.missing if "[" in m]
    for m in bracketed:  # on this machine: no NVML, no litellm extras, ...
        for extra in (part.split("]")[0] for part in m.split("[")[1:]):
            assert f"[{extra}]" in out
    fake = report.model_copy(update={
        "missing": ["vllm: not installed. To fix: `pip install 'murakkab-lg[vllm]'`."],
        "gpu_backend": None, "gpu_note": "no NVML. To fix: `pip install 'murakkab-lg[nvml]'`.",
        "engines": [e.model_copy(update={"found": False, "detail": "To fix: `pip install 'murakkab-lg[embedded]'`."})
                    for e in report.engines],
    })
    console = Console(record=True, width=200)
    render(fake, console)
    text = console.export_text()
    for extra in ("[vllm]", "[nvml]", "[embedded]"):
        assert f"'murakkab-lg{extra}'" in text
