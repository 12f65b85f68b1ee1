"""The model repository: every package in a directory, loaded, warmed and scheduled; routing by
(source, target). A broken package is refused with its reason; the others still load.

A package may serve several pairs (a multilingual Marian model: one per ``>>xxx<<`` target): each
pair gets its own entry, sharing the package's engine and scheduler, with the tokenizer bound to
that target (contract/tokenizers.py), so callers only ever pass ``target``."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from contract.options import SearchOptions
from contract.package import MANIFEST, PackageError, load_package_config
from contract.tokenizers import TextTokenizer, for_target, load_tokenizer
from service.decoding.alignment import WordAlignment, align_words
from service.decoding.engine import Engine, check_source
from service.errors import UnsupportedPair
from service.logs import note
from service.metrics import Metrics
from service.runtime.providers import resolve
from service.runtime.sessions import PackageRuntime, RuntimeOptions
from service.scheduling.batching import EngineLike
from service.scheduling.scheduler import JobQueue, Scheduler
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
    engine: Engine | None  # None in an HTTP worker: the engine process holds it (remote.py)
    scheduler: JobQueue
    max_source_tokens: int
    load_seconds: float
    description: str = ""  # what the model is for: its training data and domain
    revision: str = ""  # the package's fingerprint: a replaced package is another model

    @property
    def identity(self) -> tuple[str, str]:
        """What caches key on: the name alone would serve a replaced package's old answers."""
        return (self.name, self.revision)

    def check_source(self, src_ids: list[int]) -> None:
        """Raises ``SourceTooLong`` (a ValueError) for a sentence longer than the model takes."""
        check_source(src_ids, self.max_source_tokens)

    @property
    def can_align(self) -> bool:
        """Whether the package has an aligner graph (fp16 packages do not)."""
        return self.engine is not None and self.engine.runtime.aligner is not None

    def align(self, pairs: Sequence[tuple[str, str]]) -> list[WordAlignment | None]:
        """Where each word of each (source, translation) pair came from (alignment.py), None
        where it cannot be told; blocks for the aligner's run: call it off the event loop."""
        if self.engine is None or not self.can_align:
            return [None] * len(pairs)
        return align_words(self.engine.runtime, self.tokenizer, pairs, self.max_source_tokens)


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


@dataclass(frozen=True)
class Reload:
    """What one look at the repository changed, by package directory name."""

    added: list[str]
    replaced: list[str]
    removed: list[str]
    refused: dict[str, str]  # name -> why (a package seen for the first time in this form)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced or self.removed or self.refused)

    def to_dict(self) -> dict[str, object]:
        return {
            "added": self.added,
            "replaced": self.replaced,
            "removed": self.removed,
            "refused": self.refused,
        }


@dataclass
class LoadedPackage:
    """A package directory as served: its manifest's fingerprint and its pairs' entries."""

    fingerprint: str
    entries: list[LoadedModel]


def fingerprint(directory: Path) -> str:
    """The SHA-256 of the package's manifest, which holds every file's: a package rewritten in
    place (``tongyeok pull`` again) has a new one. Reading it costs a small file per package."""
    return hashlib.sha256((directory / MANIFEST).read_bytes()).hexdigest()


# How export/onnx_export.py's ``write_package`` swaps a package: ``X`` becomes ``.X.replaced``,
# then ``.X.partial`` to ``X``. A look between the two still counts ``X`` as there.
SWAPPING = re.compile(r"\.(.+)\.replaced")


class ModelRepository:
    """Every package of the repository, loaded; ``reload`` brings it in line with the directory
    (Triton's model control: new packages served, removed ones retired once their admitted work
    is done, a replaced one swapped, a broken one refused by name while the rest keep serving)."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings, self.metrics = settings, metrics
        # Both replaced whole, never mutated: a request reads one consistent routing table.
        self.models: dict[tuple[str, str], LoadedModel] = {}
        self.packages: dict[str, LoadedPackage] = {}
        self.failures: dict[str, str] = {}
        self.refused_fingerprints: dict[str, str] = {}  # not loaded again until changed
        self.reloading = threading.Lock()
        self.closed = False  # stopped: no reload loads anything any more

    def load(self) -> None:
        """The first load: PackageError when nothing at all can be served."""
        root = self.settings.model_repository
        check_repository(root)
        self.reload()
        if not self.models:
            raise PackageError(f"no loadable model package in {root}: {self.failures or 'none'}")

    def reload(self) -> Reload:
        """Look at the repository once and apply what changed; one reload at a time (a signal,
        the poll and the admin route may ask together)."""
        with self.reloading:
            if self.closed:
                return Reload([], [], [], {})
            return self._reload()

    def _reload(self) -> Reload:
        root = self.settings.model_repository
        present = self._scan(root)
        packages = dict(self.packages)
        report = Reload([], [], [], {})
        retiring: list[LoadedPackage] = []
        for name in sorted(set(packages) - set(present)):
            retiring.append(packages.pop(name))
            report.removed.append(name)
            log.info("model package %s removed from the repository: retired", name)
        for name in sorted(set(self.failures) - set(present)):
            self.failures.pop(name, None)
            self.refused_fingerprints.pop(name, None)
        for name, mark in sorted(present.items()):
            old = packages.get(name)
            if (old and old.fingerprint == mark) or self.refused_fingerprints.get(name) == mark:
                continue
            try:
                entries = self._load_one(root / name, mark)
            except (PackageError, ValueError, OSError) as exc:
                self._refuse(name, mark, str(exc), report)
                continue
            others = {
                (m.source, m.target): other
                for other, package in packages.items()
                if other != name
                for m in package.entries
            }
            taken = [(m.source, m.target) for m in entries if (m.source, m.target) in others]
            if taken:
                entries[0].scheduler.stop()
                pairs = ", ".join(f"{s}→{t} ({others[s, t]})" for s, t in taken)
                self._refuse(name, mark, f"language pair(s) already served: {pairs}", report)
                continue
            self.failures.pop(name, None)
            self.refused_fingerprints.pop(name, None)
            packages[name] = LoadedPackage(mark, entries)
            (report.replaced if old else report.added).append(name)
            if old:
                retiring.append(old)
            for model in entries:
                log.info(
                    "loaded %s (%s→%s) in %.2f s",
                    model.name,
                    model.source,
                    model.target,
                    model.load_seconds,
                )
        self.packages = packages
        self.models = {(m.source, m.target): m for p in packages.values() for m in p.entries}
        for package in retiring:  # off this thread: admitted work may take request_timeout
            threading.Thread(
                target=package.entries[0].scheduler.retire,
                args=(self.settings.request_timeout,),
                name=f"retire-{package.entries[0].name}",
                daemon=True,
            ).start()
        return report

    def _scan(self, root: Path) -> dict[str, str]:
        """Package directory name -> fingerprint, for every complete package in ``root``
        (hidden directories are packages being written)."""
        present: dict[str, str] = {}
        try:
            directories = sorted(p for p in root.iterdir() if p.is_dir())
        except OSError as exc:  # the repository itself went away: keep serving what is loaded
            log.error("model repository %s unreadable: %s", root, exc)
            return {name: p.fingerprint for name, p in self.packages.items()}
        for directory in directories:
            swapped = SWAPPING.fullmatch(directory.name)
            if swapped and swapped[1] in self.packages and not (root / swapped[1]).exists():
                # Between the two renames of a package's replacement: it still exists.
                present[swapped[1]] = self.packages[swapped[1]].fingerprint
            if directory.name.startswith(".") or not (directory / MANIFEST).exists():
                continue
            try:
                present[directory.name] = fingerprint(directory)
            except OSError as exc:
                log.error("model package %s unreadable: %s", directory, exc)
        return present

    def _refuse(self, name: str, mark: str, reason: str, report: Reload) -> None:
        self.failures[name] = reason
        self.refused_fingerprints[name] = mark
        report.refused[name] = reason
        kept = " (its previous version keeps serving)" if name in self.packages else ""
        log.error("model package %s refused: %s%s", name, reason, kept)

    def _load_one(self, directory: Path, revision: str) -> list[LoadedModel]:
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
            client_rows=self.settings.max_client_rows or runtime.profile.client_rows,
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
                config.description,
                revision,
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
        note(model=model.name)  # the request's log lines name the model it was routed to
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
        (ONNX Runtime still running in a thread at exit aborts the process). A reload under way
        ends first; none starts after."""
        with self.reloading:
            self.closed = True
        for scheduler in self.schedulers():
            scheduler.stop(timeout)

    def schedulers(self) -> list[JobQueue]:
        """Each scheduler once, though several pairs of one package share it."""
        return list({id(m.scheduler): m.scheduler for m in self.models.values()}.values())
