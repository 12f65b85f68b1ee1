"""Execution-provider profiles: what each device means to ONNX Runtime, declared once.

A device name (``Device``: what ``TONGYEOK_DEVICE`` and every ``--device`` take) stands for a
``Profile``: its provider with that provider's options, where the decoder's tensors live and
whether it runs through an IO binding, the cache layout and precision its packages need, and what
must be loaded before its first session. Every other file asks here instead of testing provider
names (the model: Optimum's ``parse_device`` / ``get_provider_for_device``). A new provider is one
name in ``Device`` and one ``Profile`` in ``PROFILES``.

Cheap to import (the CLI builds its flags from it): onnxruntime is imported only by the functions
that call it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias, get_args

Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = get_args(Device)
# What ONNX Runtime's ``providers=`` takes: a name, or a name with its options.
ProviderList: TypeAlias = list[str | tuple[str, dict[str, str]]]
HOST = "cpu"  # ONNX Runtime's name for host memory (an OrtValue's device)
CPU_PROVIDER = "CPUExecutionProvider"


@functools.cache
def preload_cuda_libraries() -> None:
    """Load CUDA and cuDNN before the first CUDA session: onnxruntime-gpu does not look for them
    in the nvidia-* wheels (the GPU image's, or PyTorch's) by itself; its ``preload_dlls`` does,
    then falls back to the system's libraries (docs/decisions.md #26). Once per process; nothing
    where onnxruntime has no ``preload_dlls`` (the CPU wheel)."""
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        preload()


def cuda_driver_present() -> bool:
    """Whether an NVIDIA driver is loadable: onnxruntime-gpu lists its CUDA provider everywhere,
    and trying it on a machine without a GPU only logs errors before falling back to the CPU."""
    import ctypes

    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def always() -> bool:
    return True


@dataclass(frozen=True)
class Profile:
    name: str  # as ``Device`` spells it
    label: str  # as prose and messages spell it
    provider: str  # ONNX Runtime's name
    options: tuple[tuple[str, str], ...] = ()  # the provider's options
    memory: str = HOST  # where the decoder's caches and cross keys/values live (an OrtValue's)
    # Whether the decoder runs through an IO binding that leaves its caches where the provider
    # computed them and brings only the top-k back to the host (docs/decisions.md #15, #30).
    io_binding: bool = False
    # The cache layout (contract/package.py CACHE_LAYOUTS) its packages need; None: either.
    cache_layout: str | None = None
    cache_reason: str = ""  # why, for the message refusing another
    # The precision ``tongyeok translate`` exports a checkpoint in for it.
    precision: str = "fp32"
    # While another client is busy, one client's rows at most (the scheduler's client_rows):
    # where a step's time grows with its rows, as on a CPU, a flood's batch sets every other
    # client's latency (docs/decisions.md #56); None: an equal share of the batch.
    client_rows: int | None = None
    preload: Callable[[], None] | None = None  # what must be loaded before its first session
    present: Callable[[], bool] = always  # whether ``auto`` may pick it on this machine

    @property
    def providers(self) -> tuple[str, ...]:
        """Its provider, then the CPU's, which runs any node it has no kernel for."""
        return tuple(dict.fromkeys((self.provider, CPU_PROVIDER)))


CPU = Profile(
    name="cpu",
    label="CPU",
    provider=CPU_PROVIDER,
    precision="int8",  # faster than fp32 on a CPU, for little BLEU (README, "Quality")
    client_rows=16,
)
CUDA = Profile(
    name="cuda",
    label="CUDA",
    provider="CUDAExecutionProvider",
    # ONNX Runtime lets fp32 matrix products round to TF32 by default: an fp32 package means fp32
    # (docs/decisions.md #26); fp16 is the fast choice.
    options=(("use_tf32", "0"),),
    memory="cuda",
    io_binding=True,
    cache_layout="gathered",
    cache_reason="GroupQueryAttention, which has no fp32 kernel on CUDA",
    precision="fp32",  # with the layout a GPU runs (docs/decisions.md #31)
    preload=preload_cuda_libraries,
    present=cuda_driver_present,
)
# Every device but ``auto``, in the order ``auto`` tries them (the CPU, always there, last).
PROFILES: dict[str, Profile] = {p.name: p for p in (CUDA, CPU)}
BY_PROVIDER: dict[str, Profile] = {p.provider: p for p in PROFILES.values()}
NAMED_DEVICES: tuple[str, ...] = tuple(d for d in DEVICES if d in PROFILES)  # all but auto


def device_help() -> str:
    """``auto (CUDA if available), cuda or cpu``, from the profiles."""
    others = [p for p in PROFILES.values() if p is not CPU]
    return (
        f"auto ({' or '.join(p.label for p in others)} if available), "
        f"{', '.join(p.name for p in others)} or {CPU.name}"
    )


def resolve(device: str) -> Profile:
    """The profile of ``device``; ``auto``: the first whose provider this onnxruntime has and
    whose hardware is present, else the CPU's. An unknown name is refused with the choices."""
    if device == "auto":
        import onnxruntime as ort

        listed = ort.get_available_providers()
        return next(
            (p for p in PROFILES.values() if p.provider in listed and p.present()),
            CPU,
        )
    if device not in PROFILES:
        raise ValueError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    return PROFILES[device]


def provider_list(
    providers: Sequence[str], options: Mapping[str, Mapping[str, str]] | None = None
) -> ProviderList:
    """``providers`` as ONNX Runtime takes them, each with its profile's options, or those
    ``options`` gives for its name instead."""
    listed: ProviderList = []
    for name in providers:
        profile = BY_PROVIDER.get(name)
        chosen = (options or {}).get(name, dict(profile.options) if profile else {})
        listed.append((name, dict(chosen)) if chosen else name)
    return listed


def running(providers: Sequence[str]) -> Profile:
    """The profile a session runs on, from its ``get_providers()`` (preferred first)."""
    return next((BY_PROVIDER[n] for n in providers if n in BY_PROVIDER), CPU)


def prepare(providers: Sequence[str]) -> None:
    """Load what the profiles of ``providers`` need before their first session (each once per
    process)."""
    for name in providers:
        profile = BY_PROVIDER.get(name)
        if profile is not None and profile.preload is not None:
            profile.preload()
