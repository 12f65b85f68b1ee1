"""The runtime's provider choices: CUDA options reach only the CUDA provider, CUDA's libraries are
loaded before the first CUDA session (once), and a machine without a GPU falls back to the CPU."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

from contract.package import PackageError
from service.runtime import providers
from service.runtime.sessions import PackageRuntime, RuntimeOptions

CUDA, CPU = providers.CUDA.provider, providers.CPU.provider


def test_cuda_options_go_to_the_cuda_provider_only() -> None:
    options = RuntimeOptions(providers=(CUDA, CPU), provider_options={CUDA: {"use_tf32": "0"}})
    assert options.provider_list() == [(CUDA, {"use_tf32": "0"}), CPU]
    bare = RuntimeOptions(providers=(CUDA, CPU), provider_options={CUDA: {}})
    assert bare.provider_list() == [CUDA, CPU]
    default = RuntimeOptions(providers=(CUDA, CPU)).provider_list()
    assert default == [(CUDA, {"use_tf32": "0"}), CPU]  # an fp32 package computes in fp32
    assert RuntimeOptions(provider_options={CUDA: {"use_tf32": "0"}}).provider_list() == [CPU]


@pytest.mark.parametrize(
    ("spinning", "allowed", "stopped"),
    [("in-run", "1", "1"), ("always", "1", None), ("off", "0", None)],
)
def test_spinning_reaches_the_thread_pool_as_named(
    spinning: str, allowed: str, stopped: str | None
) -> None:
    """in-run is spinning allowed and stopped at the end of every run; always lets it go on."""
    options = RuntimeOptions(spinning=spinning).session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == allowed
    key = "session.force_spinning_stop"
    assert (options.get_session_config_entry(key) if stopped else None) == stopped
    if stopped is None:
        with pytest.raises(Exception, match="force_spinning_stop"):
            options.get_session_config_entry(key)
    assert RuntimeOptions().spinning == "in-run"
    with pytest.raises(ValueError, match="spinning must be one of"):
        RuntimeOptions(spinning="sometimes").session_options()


def test_cuda_libraries_are_preloaded_once_and_only_for_cuda(
    toy_repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(ort, "preload_dlls", lambda: calls.append(1), raising=False)
    providers.preload_cuda_libraries.cache_clear()
    package = toy_repository / "en-de"
    PackageRuntime(package, RuntimeOptions(providers=(CPU,)))
    assert calls == []  # a CPU runtime never looks for CUDA
    for _ in range(2):
        gpu = PackageRuntime(package, RuntimeOptions(providers=(CUDA, CPU)))
    assert calls == [1]  # once per process
    providers.preload_cuda_libraries.cache_clear()
    if CUDA not in gpu.decoder.get_providers():  # no GPU here: the CPU serves, honestly named
        assert (gpu.device, gpu.io_binding) == ("cpu", False)


def test_an_in_place_package_is_refused_where_its_decoder_would_run_on_cuda(
    toy_repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GroupQueryAttention has no fp32 CUDA kernel (docs/decisions.md #31): rather than run its
    attention on the CPU between copies, the runtime names the export flag that fixes it. No GPU
    here, so the sessions report CUDA as their provider the way they would on one."""
    package = toy_repository / "en-de"
    assert PackageRuntime(package).in_place  # the default fp32 package writes its cache in place
    monkeypatch.setattr(ort.InferenceSession, "get_providers", lambda self: [CUDA, CPU])
    with pytest.raises(PackageError, match=r"writes its cache in place .* --cache gathered"):
        PackageRuntime(package)
