"""deploy/compose.yaml started for real with podman-compose: Tongyeok (the CPU image) and Prometheus
(Debian's package, built locally since no image can be pulled here) translate, scrape and stop.

Grafana cannot run here (no image, no package): the stack is started without it, and
tests/deploy/test_compose.py keeps the structural checks of its dashboard and links. The test-only
override (compose.override.yaml) adapts the stack to this sandbox, leaving compose.yaml as users
run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.deploy.images import REPO, build, podman, remove_image, unique_tag
from tests.service.conftest import Server, free_port

FILES = (REPO / "deploy" / "compose.yaml", Path(__file__).with_name("compose.override.yaml"))
GLOSSARY = {"name": "g", "source_lang": "en", "target_lang": "de", "entries": "dog\tKöter"}
REDIS_FILES = (
    REPO / "deploy" / "compose.redis.yaml",
    Path(__file__).with_name("compose.redis.override.yaml"),
)


@contextmanager
def built(script: str, name: str) -> Iterator[str]:
    """An image built by one of deploy/container/'s scripts under a unique tag, removed after."""
    tag = unique_tag(name)
    build(script, tag)
    yield tag
    remove_image(tag)


@pytest.fixture(scope="module")
def prometheus_image() -> Iterator[str]:
    with built("build-prometheus.sh", "tongyeok-prometheus-test") as tag:
        yield tag


@pytest.fixture(scope="module")
def redis_image() -> Iterator[str]:
    with built("build-redis.sh", "tongyeok-redis-test") as tag:
        yield tag


class Stack:
    """One Compose project under a unique name, its services published on free host ports (the
    test reaches them on loopback)."""

    def __init__(self, image: str, prometheus_image: str, redis_image: str | None = None) -> None:
        self.files = FILES + (REDIS_FILES if redis_image else ())
        self.project = f"tongyeok-test-{uuid.uuid4().hex[:8]}"
        self.tongyeok = Server(url="", app=None)
        self.prometheus = Server(url="", app=None)
        ports = {"TONGYEOK_HOST_PORT": free_port(), "PROMETHEUS_HOST_PORT": free_port()}
        self.tongyeok.url = f"http://127.0.0.1:{ports['TONGYEOK_HOST_PORT']}"
        self.prometheus.url = f"http://127.0.0.1:{ports['PROMETHEUS_HOST_PORT']}"
        self.env = {
            "TONGYEOK_IMAGE": image,
            "PROMETHEUS_IMAGE": prometheus_image,
            **{name: str(port) for name, port in ports.items()},
            **({"REDIS_IMAGE": redis_image} if redis_image else {}),
        }

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """podman-compose (the dev extra's, beside this Python) on compose.yaml + the override
        (and the Redis option + its override)."""
        executable = Path(sys.executable).parent / "podman-compose"
        assert executable.is_file(), "podman-compose not found: install the dev extra"
        files = [arg for path in self.files for arg in ("--file", str(path))]
        result = subprocess.run(
            [str(executable), "--project-name", self.project, *files, *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if check:
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result

    def containers(self, *filters: str) -> list[str]:
        label = f"label=io.podman.compose.project={self.project}"
        where = [arg for f in (label, *filters) for arg in ("--filter", f)]
        return podman("ps", "--all", *where, "--format", "{{.Names}}").stdout.split()

    def check_running(self) -> None:
        exited = self.containers("status=exited")
        assert not exited, f"{exited} exited:\n{self.logs()}"

    def logs(self) -> str:
        return "\n".join(podman("logs", name, check=False).stderr[-2000:]
                         for name in self.containers())  # fmt: skip

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.tongyeok.request("GET", "/readyz").status == 200:
                    return
            except OSError:
                self.check_running()
            time.sleep(0.5)
        raise AssertionError(f"the stack's Tongyeok never became ready:\n{self.logs()}")

    def query(self, promql: str, timeout: float = 60) -> list[dict]:
        """Poll Prometheus's query API until the query returns a sample above 0."""
        path = "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        deadline = time.monotonic() + timeout
        body: dict = {}
        while time.monotonic() < deadline:
            try:
                body = self.prometheus.request("GET", path).body
            except OSError:
                self.check_running()
                body = {}
            result = body.get("data", {}).get("result", [])
            if result and float(result[0]["value"][1]) > 0:
                return result
            time.sleep(1)
        raise AssertionError(f"{promql}: {json.dumps(body)}\n{self.logs()}")


@contextmanager
def cleaned_up(running: Stack) -> Iterator[Stack]:
    try:
        yield running
    finally:  # whatever failed, leave nothing running and no volume behind
        running.compose("down", "--volumes", check=False)
        for name in running.containers():
            podman("rm", "--force", name, check=False)


@pytest.fixture()
def stack(image: str, prometheus_image: str) -> Iterator[Stack]:
    with cleaned_up(Stack(image, prometheus_image)) as running:
        yield running


@pytest.fixture()
def redis_stack(image: str, prometheus_image: str, redis_image: str) -> Iterator[Stack]:
    with cleaned_up(Stack(image, prometheus_image, redis_image)) as running:
        yield running


def test_stack_translates_and_prometheus_scrapes_the_metric_then_stops(stack: Stack) -> None:
    stack.compose("up", "--detach", "--no-build", "tongyeok", "prometheus")
    started = sorted(stack.containers())
    assert started == [f"{stack.project}_{name}_1" for name in ("prometheus", "tongyeok")]
    stack.wait_ready()

    reply = stack.tongyeok.translate(["A dog runs through the park."])
    assert reply.status == 200, reply.body
    assert reply.body["translations"][0]["text"].strip()

    # Prometheus reaches the service by its Compose name, as deploy/prometheus/prometheus.yml says.
    (sample,) = stack.query('tongyeok_generated_tokens_total{model="en-de"}')
    assert sample["metric"]["job"] == "tongyeok"
    assert sample["metric"]["instance"] == "tongyeok:8000"
    assert stack.query('up{job="tongyeok"}')[0]["value"][1] == "1"
    rules = stack.prometheus.request("GET", "/api/v1/rules").body["data"]["groups"]
    assert rules and all(group["file"] == "/etc/prometheus/alerts.yml" for group in rules)

    # The state's volume: a glossary (SQLite in /var/lib/tongyeok) on the read-only container.
    made = stack.tongyeok.request("POST", "/v2/glossaries", GLOSSARY)
    assert made.status == 201, made.body

    stack.compose("down", "--volumes")
    assert stack.containers() == []
    network = podman("network", "exists", f"{stack.project}_default", check=False)
    assert network.returncode == 1, "compose down left the project's network"


def test_with_the_redis_option_keys_usage_and_glossaries_outlive_the_containers(
    redis_stack: Stack,
) -> None:
    """compose.yaml + compose.redis.yaml: a key added with `tongyeok keys add` in the container,
    its usage and its glossary are in Redis (on its volume): after `down` and `up` (new
    containers) the key still works, its count is the same and the glossary is there."""
    stack = redis_stack
    stack.compose("up", "--detach", "--no-build", "tongyeok", "redis")
    assert sorted(stack.containers()) == [f"{stack.project}_{n}_1" for n in ("redis", "tongyeok")]
    stack.wait_ready()
    tongyeok = f"{stack.project}_tongyeok_1"
    added = podman("exec", tongyeok, "tongyeok", "keys", "add", "ci", "--characters", "1000")
    key = added.stdout.split()[1]
    auth = {"Authorization": f"DeepL-Auth-Key {key}"}

    assert stack.tongyeok.translate(["A dog runs."]).status == 401  # keys are required now
    reply = stack.tongyeok.request("POST", "/v2/translate", {"text": ["A dog runs."],
                                   "target_lang": "DE"}, auth)  # fmt: skip
    assert reply.status == 200, reply.body
    assert stack.tongyeok.request("POST", "/v2/glossaries", GLOSSARY, auth).status == 201
    usage = stack.tongyeok.request("GET", "/v2/usage", headers=auth).body
    assert usage == {"character_count": len("A dog runs."), "character_limit": 1000}

    stack.compose("down")  # containers gone, Redis's volume kept
    assert stack.containers() == []
    stack.compose("up", "--detach", "--no-build", "tongyeok", "redis")
    stack.wait_ready()
    assert stack.tongyeok.request("GET", "/v2/usage", headers=auth).body == usage
    listed = stack.tongyeok.request("GET", "/v2/glossaries", headers=auth).body["glossaries"]
    assert [g["name"] for g in listed] == ["g"]
