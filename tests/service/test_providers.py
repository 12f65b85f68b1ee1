"""The execution-provider profiles: one entry per device, ``auto`` resolved by what this machine
has, each provider with its own options, and what a provider loads first loaded once."""

from __future__ import annotations

from dataclasses import replace

import onnxruntime as ort
import pytest

from contract.package import CACHE_LAYOUTS
from service.runtime import providers
from service.runtime.providers import CPU, CUDA, DEVICES, PROFILES, resolve


def test_every_device_name_has_one_profile() -> None:
    assert set(DEVICES) == {"auto", *PROFILES}
    assert providers.NAMED_DEVICES == ("cpu", "cuda")
    for name, profile in PROFILES.items():
        assert profile.name == name
        assert profile.cache_layout in (None, *CACHE_LAYOUTS)
        assert profile.providers[-1] == CPU.provider  # the CPU runs what it has no kernel for
    assert providers.device_help() == "auto (CUDA if available), cuda or cpu"


def test_auto_is_the_cpu_where_no_gpu_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime-gpu lists its CUDA provider on any machine: without a driver, auto stays on
    the CPU; with both, it takes CUDA. An explicit name is taken as given."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA.provider, CPU.provider])
    monkeypatch.setitem(PROFILES, "cuda", replace(CUDA, present=lambda: False))
    assert resolve("auto") is CPU
    monkeypatch.setitem(PROFILES, "cuda", replace(CUDA, present=lambda: True))
    assert resolve("auto") is PROFILES["cuda"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CPU.provider])
    assert resolve("auto") is CPU
    assert resolve("cuda") is PROFILES["cuda"] and resolve("cpu") is CPU


def test_auto_on_this_machine_matches_what_it_has() -> None:
    has_gpu = CUDA.provider in ort.get_available_providers() and providers.cuda_driver_present()
    assert resolve("auto") is (CUDA if has_gpu else CPU)


def test_an_unknown_device_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown device 'gpu': choose one of auto, cpu, cuda"):
        resolve("gpu")


def test_the_cuda_provider_computes_fp32_in_fp32_and_keeps_tensors_on_the_gpu() -> None:
    assert providers.provider_list(CUDA.providers) == [
        (CUDA.provider, {"use_tf32": "0"}),
        CPU.provider,
    ]
    assert providers.provider_list(CPU.providers) == [CPU.provider]
    override = {CUDA.provider: {"use_tf32": "1"}}
    assert providers.provider_list(CUDA.providers, override)[0] == (
        CUDA.provider,
        {"use_tf32": "1"},
    )
    assert providers.provider_list(["SomeOtherExecutionProvider"]) == ["SomeOtherExecutionProvider"]
    assert (CUDA.memory, CUDA.io_binding, CUDA.cache_layout) == ("cuda", True, "gathered")
    assert (CPU.memory, CPU.io_binding, CPU.cache_layout) == ("cpu", False, None)
    assert (CPU.precision, CUDA.precision) == ("int8", "fp32")


def test_a_session_names_the_profile_it_runs_on() -> None:
    assert providers.running([CUDA.provider, CPU.provider]) is CUDA
    assert providers.running([CPU.provider]) is CPU
    assert providers.running([]) is CPU


def test_the_cuda_libraries_are_preloaded_at_most_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(ort, "preload_dlls", lambda: calls.append(1), raising=False)
    providers.preload_cuda_libraries.cache_clear()
    try:
        providers.prepare(CPU.providers)
        assert calls == []  # a CPU session never looks for CUDA
        for _ in range(3):
            providers.prepare(CUDA.providers)
        assert calls == [1]  # once per process
        providers.preload_cuda_libraries.cache_clear()
        monkeypatch.delattr(ort, "preload_dlls")  # an onnxruntime without it: nothing to do
        providers.prepare(CUDA.providers)
    finally:
        providers.preload_cuda_libraries.cache_clear()
