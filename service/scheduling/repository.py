"""The model repository: every package in a directory, loaded, warmed and scheduled; routing by
(source, target). A broken package is refused with its reason; the others still load.

A package may serve several pairs (a multilingual Marian model: one per ``>>xxx<<`` target): each
pair gets its own entry, sharing the package's engine and scheduler, with the tokenizer bound to
that target (contract/tokenizers.py), so callers only ever pass ``target``."""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from contract.options import SearchOptions
from contract.package import MANIFEST, PackageError, load_package_config
from contract.tokenizers import TextTokenizer, for_target, load_tokenizer
from service.decoding.engine import Engine, check_source
from service.errors import UnsupportedPair
from service.metrics import Metrics
from service.runtime.providers import resolve
from service.runtime.sessions import PackageRuntime, RuntimeOptions
from service.scheduling.batching import EngineLike
from service.scheduling.scheduler import Scheduler
from service.settings import Settings

log = logging.getLogger("tongyeok.models")

WARMUP_TEXTS = [
    "A dog.",
    "Two children are playing with a ball in the park.",
    "A man in a blue shirt and a woman in a red dress are walking down a busy street while a "
    "street musician plays the guitar next to a fountain.",
]


@dataclass
class LoadedModel:
    name: str
    source: str
    target: str
    tokenizer: TextTokenizer  # bound to ``target``
    engine: Engine
    scheduler: Scheduler
    max_source_tokens: int
    load_seconds: float

    def check_source(self, src_ids: list[int]) -> None:
        """Raises ``SourceTooLong`` (a ValueError) for a sentence longer than the model takes."""
        check_source(src_ids, self.max_source_tokens)


def runtime_options(settings: Settings) -> RuntimeOptions:
    """The sessions' options: the providers of ``settings.device`` (``auto`` resolved here), the
    threads and their spinning."""
    providers = resolve(settings.device).providers
    cores = usable_cores()  # read once: the cgroup files are not free
    threads = settings.threads or serving_threads(cores)
    spinning = serving_spinning(settings, threads, cores)
    return RuntimeOptions(providers=providers, intra_op_threads=threads, spinning=spinning)


def serving_spinning(settings: Settings, threads: int, cores: int) -> str:
    """``auto``: ONNX Runtime's workers spin within a decoder step only when they leave a core
    free. Where they take every core, spinning takes the event loop's time while the decoder
    runs: the service served fewer requests/s in-run than off, though the engine alone ran faster
    (docs/decisions.md #32)."""
    if settings.spinning != "auto":
        return settings.spinning
    return "in-run" if threads < cores else "off"


def serving_threads(cores: int) -> int:
    """Intra-op threads when none are set: every usable core but one, which the event loop
    (HTTP, JSON, tokenization) needs while the decoder runs. On 2 vCPUs, 1 thread served more
    requests/s within the latency bound than 2 (docs/benchmarks.md, "Capacity")."""
    return max(1, cores - 1)


def usable_cores() -> int:
    """The cores this process may keep busy: those it may run on, capped by its cgroup's CPU
    quota (a container's CPU limit, rounded up). Affinity alone counts a Kubernetes node's cores,
    not the pod's: a pod limited to 2 CPUs on a 64-core node would get 63 threads."""
    cores = len(os.sched_getaffinity(0))
    quota = cpu_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def cpu_quota(cgroup: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs' worth of time per period that this process's cgroup may use, or None when there is
    no limit or none can be read (cgroup v2's ``cpu.max``, else v1's CFS quota and period)."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()
        return None if quota == "max" else positive_ratio(int(quota), int(period))
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return positive_ratio(quota_us, period_us)  # v1 writes -1 for no limit


def positive_ratio(quota: int, period: int) -> float | None:
    return quota / period if quota > 0 and period > 0 else None


def check_repository(root: Path) -> None:
    """Refuse at once, with one line that says what to do, a repository that cannot serve:
    missing, unreadable, or holding no package."""
    if not root.is_dir():
        raise PackageError(f"model repository {root} is not a directory")
    try:
        if not os.access(root, os.R_OK | os.X_OK):
            raise PermissionError
        packages = [d for d in root.iterdir() if d.is_dir() and (d / MANIFEST).exists()]
    except PermissionError:
        raise PackageError(
            f"model repository {root} is not readable by uid {os.getuid()}: "
            "make it readable (a mounted volume keeps its owner and mode)"
        ) from None
    if not packages:
        raise PackageError(
            f"model repository {root} holds no model package (a directory with {MANIFEST}): "
            f"build one with `tongyeok export --out {root}/en-de`"
        )


class ModelRepository:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings, self.metrics = settings, metrics
        self.models: dict[tuple[str, str], LoadedModel] = {}
        self.failures: dict[str, str] = {}

    def load(self) -> None:
        root = self.settings.model_repository
        check_repository(root)
        for directory in sorted(p for p in root.iterdir() if p.is_dir()):
            if not (directory / MANIFEST).exists():
                continue
            try:
                entries = self._load_one(directory)
            except (PackageError, ValueError, OSError) as exc:
                self.failures[directory.name] = str(exc)
                log.error("model package %s refused: %s", directory, exc)
                continue
            taken = [(m.source, m.target) for m in entries if (m.source, m.target) in self.models]
            if taken:
                self.failures[directory.name] = f"duplicate language pair(s) {taken}"
                entries[0].scheduler.stop()
                continue
            for model in entries:
                self.models[(model.source, model.target)] = model
                log.info(
                    "loaded %s (%s→%s) in %.2f s",
                    model.name,
                    model.source,
                    model.target,
                    model.load_seconds,
                )
        if not self.models:
            raise PackageError(f"no loadable model package in {root}: {self.failures or 'none'}")

    def _load_one(self, directory: Path) -> list[LoadedModel]:
        """One entry per (source, target) of the package, sharing one engine and scheduler."""
        started = time.perf_counter()
        config = load_package_config(directory)
        runtime = PackageRuntime(config, runtime_options(self.settings))
        base = load_tokenizer(config)
        tokenizers = {t: for_target(base, config, t) for t in config.target_langs}
        tokenizer = tokenizers[config.target_lang]
        engine = Engine(runtime)
        warmup = [
            ids[: config.max_source_tokens - 1] for ids in tokenizer.encode_batch(WARMUP_TEXTS)
        ]
        for beam in (1, 4):  # warm-up over representative shapes: the first request is not slow
            engine.run(warmup, SearchOptions(beam_size=beam))
        scheduler = Scheduler(
            config.name,
            self._with_faults(engine),
            self.metrics,
            max_rows=self.settings.max_batch_rows,
            max_queue=self.settings.max_queue_sentences,
            max_tokens=self.settings.max_batch_tokens,
            policy=self.settings.batching,
            join_interval=self.settings.join_interval,
            overlap_encoder=self.settings.overlap_encoder,
        )
        scheduler.start()
        seconds = time.perf_counter() - started
        self.metrics.model_load.labels(config.name).set(seconds)
        several = len(config.pairs) > 1  # each pair its own name: caches are keyed by it
        return [
            LoadedModel(
                f"{config.name}:{source}-{target}" if several else config.name,
                source,
                target,
                tokenizers[target],
                engine,
                scheduler,
                config.max_source_tokens,
                seconds,
            )
            for source, target in config.pairs
        ]

    def _with_faults(self, engine: Engine) -> EngineLike:
        """The engine, wrapped with the test-only fault injection when ``faults`` asks for it."""
        if not self.settings.faults:
            return engine
        from service.scheduling.faults import Faults, FaultyEngine  # never loaded unless asked for

        return FaultyEngine(engine, Faults.parse(self.settings.faults))

    def route(self, source: str, target: str) -> LoadedModel:
        model = self.models.get((source, target))
        if model is None:
            pairs = ", ".join(f"{s}→{t}" for s, t in sorted(self.models))
            raise UnsupportedPair(f"no model translates {source}→{target}; available: {pairs}")
        return model

    @property
    def healthy(self) -> bool:
        """Every model's scheduler loop is running (liveness: a dead loop answers nobody)."""
        return all(m.scheduler.alive for m in self.models.values())

    @property
    def idle(self) -> bool:
        return all(m.scheduler.idle for m in self.models.values())

    def drain(self, deadline: float) -> None:
        """Refuse new work; what is unfinished at ``deadline`` (monotonic) gets 503."""
        for scheduler in self.schedulers():
            scheduler.drain(deadline)

    def stop(self, timeout: float | None = None) -> None:
        """Answer or refuse what is left within ``timeout``, then join every scheduler thread
        (ONNX Runtime still running in a thread at exit aborts the process)."""
        for scheduler in self.schedulers():
            scheduler.stop(timeout)

    def schedulers(self) -> list[Scheduler]:
        """Each scheduler once, though several pairs of one package share it."""
        return list({id(m.scheduler): m.scheduler for m in self.models.values()}.values())
