"""Every Prometheus metric of the service, defined once, on a registry passed in (tests isolate).

With ``workers`` > 1 every process writes its values to files in ``PROMETHEUS_MULTIPROC_DIR``
(prometheus_client's multiprocess mode, chosen by that variable when prometheus_client is first
imported: the supervisor sets it before starting any process), and /metrics of any worker
serves ``exposed``: every process's values, summed (a gauge by its ``multiprocess_mode``).
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from contract.version import __version__

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    def __init__(
        self, registry: CollectorRegistry | None = None, multiprocess_dir: str | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.request_duration = Histogram(
            "tongyeok_request_duration_seconds",
            "HTTP request latency by route and outcome",
            ["route", "status_class"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests_rejected = Counter(
            "tongyeok_requests_rejected_total",
            "Requests refused or failed, by reason",
            ["reason"],
            registry=r,
        )
        self.limit_hits = Counter(
            "tongyeok_limit_hits_total",
            "Connections closed or refused, and requests shed, by the setting whose limit it was",
            ["limit"],
            registry=r,
        )
        self.connections_open = Gauge(
            "tongyeok_connections_open",
            "Open HTTP connections (tongyeok serve)",
            registry=r,
            multiprocess_mode="livesum",  # each worker's, while it lives
        )
        self.queue_depth = Gauge(
            "tongyeok_queue_depth",
            "Sentences waiting to join the batch",
            ["model"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.active_rows = Gauge(
            "tongyeok_active_rows",
            "Decoder rows in the running batch",
            ["model"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.batch_rows = Histogram(
            "tongyeok_batch_rows",
            "Decoder rows per step",
            ["model"],
            buckets=ROW_BUCKETS,
            registry=r,
        )
        self.decoder_step = Histogram(
            "tongyeok_decoder_step_duration_seconds",
            "One decoder step over the batch",
            ["model"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.encoder = Histogram(
            "tongyeok_encoder_duration_seconds",
            "Encoder pass for sentences joining",
            ["model"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.generated_tokens = Counter(
            "tongyeok_generated_tokens_total", "Target tokens generated", ["model"], registry=r
        )
        self.sentences = Counter(
            "tongyeok_sentences_total",
            "Sentences translated, by finish reason",
            ["model", "finish_reason"],
            registry=r,
        )
        self.cache_lookups = Counter(
            "tongyeok_cache_lookups_total", "Translation cache lookups", ["result"], registry=r
        )
        self.model_load = Gauge(
            "tongyeok_model_load_seconds",
            "Seconds to load and warm a model",
            ["model"],
            registry=r,
            multiprocess_mode="livemax",  # the engine process's, while it lives
        )
        self.build = Info("tongyeok_build", "Version of the running service", registry=r)
        self.build.info({"version": __version__})
        # The standard process_* (resident memory, CPU seconds, open files) and python_info
        # series, on this registry as on the default one, for memory and leak alerts.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        # What /metrics serves: this registry, or every process's values from their files
        # (the process_* series are per process, so they are left out there).
        self.exposed = r if multiprocess_dir is None else self.aggregated(multiprocess_dir)

    def aggregated(self, directory: str) -> CollectorRegistry:
        from prometheus_client import multiprocess  # only where several processes serve

        exposed = CollectorRegistry()
        multiprocess.MultiProcessCollector(exposed, path=directory)
        exposed.register(self.build)  # an Info is per process: the same in every one
        PlatformCollector(registry=exposed)
        return exposed
