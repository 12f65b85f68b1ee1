"""The runtime's provider choices: CUDA options reach only the CUDA provider, CUDA's libraries are
loaded before the first CUDA session (once), and a machine without a GPU falls back to the CPU."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

from service import runtime as runtime_module
from service.runtime import CUDA, PackageRuntime, RuntimeOptions

CPU = "CPUExecutionProvider"


def test_cuda_options_go_to_the_cuda_provider_only() -> None:
    options = RuntimeOptions(providers=(CUDA, CPU), cuda_options=(("use_tf32", "0"),))
    assert options.provider_list() == [(CUDA, {"use_tf32": "0"}), CPU]
    assert RuntimeOptions(providers=(CUDA, CPU), cuda_options=()).provider_list() == [CUDA, CPU]
    default = RuntimeOptions(providers=(CUDA, CPU)).provider_list()
    assert default == [(CUDA, {"use_tf32": "0"}), CPU]  # an fp32 package computes in fp32
    assert RuntimeOptions(cuda_options=(("use_tf32", "0"),)).provider_list() == [CPU]


def test_cuda_libraries_are_preloaded_once_and_only_for_cuda(
    toy_repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(ort, "preload_dlls", lambda: calls.append(1), raising=False)
    runtime_module.preload_cuda_libraries.cache_clear()
    package = toy_repository / "en-de"
    PackageRuntime(package, RuntimeOptions(providers=(CPU,)))
    assert calls == []  # a CPU runtime never looks for CUDA
    for _ in range(2):
        gpu = PackageRuntime(package, RuntimeOptions(providers=(CUDA, CPU)))
    assert calls == [1]  # once per process
    runtime_module.preload_cuda_libraries.cache_clear()
    if CUDA not in gpu.decoder.get_providers():  # no GPU here: the CPU serves, honestly named
        assert (gpu.device, gpu.io_binding) == ("cpu", False)
