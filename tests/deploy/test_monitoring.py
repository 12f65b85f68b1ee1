"""Monitoring as shipped: alert rules pass promtool's unit tests, the dashboard asks only for
metrics the service exports, and a real Prometheus scrapes a real server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from service.metrics import Metrics
from tests.service.conftest import free_port, running_server

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool not found: install Debian's prometheus package (see .ci/run)"
    return path


def exported_series() -> set[str]:
    """Every series name the service can expose (histograms and counters with their suffixes)."""
    names = set()
    for metric in Metrics().registry.collect():
        for sample in metric.samples:
            names.add(sample.name)
        if metric.type == "gauge":  # a labelled gauge has no sample before its first use
            names.add(metric.name)
        if metric.type == "histogram":
            names |= {f"{metric.name}_bucket", f"{metric.name}_sum", f"{metric.name}_count"}
        if metric.type == "counter":
            names.add(f"{metric.name}_total")
    return names


def test_alert_rules_pass_promtool() -> None:
    prometheus_dir = DEPLOY / "prometheus"
    subprocess.run(
        [promtool(), "check", "rules", "alerts.yml"],
        cwd=prometheus_dir,
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yml"],
        cwd=prometheus_dir,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_and_alerts_only_use_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/tongyeok.json").read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    alerts = (DEPLOY / "prometheus/alerts.yml").read_text()
    used = set(re.findall(r"\btongyeok_[a-z_]+", " ".join(expressions) + alerts))
    assert used, "no tongyeok metric referenced at all"
    assert used <= exported_series(), f"not exported: {sorted(used - exported_series())}"
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("requests", "latency", "queue", "rows per step", "tokens", "errors", "cache"):
        assert topic in titles


def query(port: int, promql: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())["data"]["result"]


def test_a_real_prometheus_scrapes_the_service(toy_repository: Path, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    assert binary, "prometheus not found: install Debian's prometheus package (see .ci/run)"
    with running_server(toy_repository) as server:
        assert server.translate(["red dog runs"]).status == 200
        target = server.url.removeprefix("http://")
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: tongyeok\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        port = free_port()
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    result = query(port, 'tongyeok_generated_tokens_total{model="en-de"}')
                    if result:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("Prometheus never returned a Tongyeok metric")
                time.sleep(0.5)
            assert float(result[0]["value"][1]) > 0
            assert query(port, 'up{job="tongyeok"}')[0]["value"][1] == "1"
        finally:
            proc.terminate()
            proc.wait(30)
