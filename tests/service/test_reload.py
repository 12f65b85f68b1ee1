"""The model repository reloaded while serving: a package copied in is served, a removed one
retired, a replaced one swapped, a broken one refused by name, and no request is lost meanwhile;
by the poll, SIGHUP and the admin route."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from contract.package import CONFIG, DECODER, write_manifest
from tests.service.conftest import Reply, Server, free_port, running_server

EN, FR = "A red dog runs in the park.", "red dog park"


def package_as(template: Path, out: Path, source: str, description: str = "") -> Path:
    """A copy of ``template`` (the toy en-de package) that says it translates ``source``→de:
    a real package, its manifest rewritten; written hidden and renamed, as ``tongyeok pull``
    writes into a served repository."""
    hidden = out.with_name(f".{out.name}.partial")
    shutil.copytree(template, hidden)
    config = json.loads((hidden / CONFIG).read_text())
    config["name"] = out.name
    config["source_lang"] = source
    config["languages"]["sources"] = [source]
    config["description"] = description
    (hidden / CONFIG).write_text(json.dumps(config))
    write_manifest(hidden)
    if out.exists():  # the swap write_package does
        replaced = out.with_name(f".{out.name}.replaced")
        out.rename(replaced)
        hidden.rename(out)
        shutil.rmtree(replaced)
    else:
        hidden.rename(out)
    return out


def wait_for(check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the repository change was not picked up"
        time.sleep(0.1)


def pairs(server: Server, headers: dict[str, str] | None = None) -> set[tuple[str, str]]:
    models = server.request("GET", "/v1/models", headers=headers).body["models"]
    return {(m["source"], m["target"]) for m in models}


@contextmanager
def steady_client(server: Server) -> Iterator[list[Reply]]:
    """en→de requests one after another until the block ends; every reply is kept."""
    replies: list[Reply] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            replies.append(server.translate([EN], beam_size=1))

    worker = threading.Thread(target=run)
    worker.start()
    try:
        yield replies
    finally:
        stop.set()
        worker.join(60)


@pytest.fixture
def repository(toy_repository: Path, tmp_path: Path) -> Path:
    root = tmp_path / "repository"
    root.mkdir()
    shutil.copytree(toy_repository / "en-de", root / "en-de")
    return root


def test_packages_added_replaced_broken_and_removed_while_requests_flow(
    repository: Path, tmp_path: Path
) -> None:
    template = repository / "en-de"
    with (
        running_server(repository, repository_poll_seconds=0.2) as server,
        steady_client(server) as replies,
    ):
        package_as(template, repository / "fr-de", "fr", "a test package")
        wait_for(lambda: ("fr", "de") in pairs(server))
        reply = server.request(
            "POST", "/v1/translate", {"texts": [FR], "source": "fr", "target": "de"}
        )
        assert reply.status == 200, reply.body
        described = {m["name"]: m for m in server.request("GET", "/v1/models").body["models"]}
        assert described["fr-de"]["description"] == "a test package"

        broken = package_as(template, tmp_path / "it-de-broken", "it")
        with open(broken / DECODER, "r+b") as f:  # a flipped byte: the manifest no longer holds
            f.seek(100)
            byte = f.read(1)
            f.seek(100)
            f.write(bytes([byte[0] ^ 0xFF]))
        shutil.move(broken, repository / "it-de-broken")
        wait_for(lambda: "it-de-broken" in server.request("GET", "/v1/models").body["refused"])
        refused = server.request("GET", "/v1/models").body["refused"]["it-de-broken"]
        assert DECODER in refused and "does not match" in refused

        package_as(template, repository / "en-de", "en", "replaced in place")
        wait_for(
            lambda: any(
                m["description"] == "replaced in place"
                for m in server.request("GET", "/v1/models").body["models"]
            )
        )
        shutil.rmtree(repository / "fr-de")
        wait_for(lambda: ("fr", "de") not in pairs(server))
        gone = server.request(
            "POST", "/v1/translate", {"texts": [FR], "source": "fr", "target": "de"}
        )
        assert gone.status == 400 and "no model translates fr→de" in gone.body["error"]
        time.sleep(0.5)  # a few more requests after the last change
    assert len(replies) > 5
    assert [r.status for r in replies if r.status != 200] == [], replies[-1].body
    assert {r.body["translations"][0]["text"] for r in replies} == {
        replies[0].body["translations"][0]["text"]
    }


def test_a_package_claiming_a_served_pair_is_refused_naming_both(
    repository: Path,
) -> None:
    with running_server(repository, repository_poll_seconds=0.2) as server:
        package_as(repository / "en-de", repository / "en-de-again", "en")
        wait_for(lambda: "en-de-again" in server.request("GET", "/v1/models").body["refused"])
        reason = server.request("GET", "/v1/models").body["refused"]["en-de-again"]
        assert "en→de (en-de)" in reason
        assert server.translate([EN]).status == 200


def test_a_replacement_that_is_broken_leaves_the_previous_version_serving(
    repository: Path,
) -> None:
    with running_server(repository, repository_poll_seconds=0.2) as server:
        before = server.translate([EN]).body["translations"][0]["text"]
        (repository / "en-de" / CONFIG).write_text("{ not json")
        write_manifest(repository / "en-de")  # a consistent manifest over a broken config
        wait_for(lambda: "en-de" in server.request("GET", "/v1/models").body["refused"])
        assert pairs(server) == {("en", "de")}
        assert server.translate([EN]).body["translations"][0]["text"] == before


def test_per_model_health_answers_by_name(repository: Path) -> None:
    with running_server(repository) as server:
        ready = server.request("GET", "/v1/models/en-de")
        assert ready.status == 200 and ready.body["ready"] is True
        assert ready.body["source"] == "en" and ready.body["target"] == "de"
        assert ready.body["description"].startswith("trained with tongyeok train on")
        missing = server.request("GET", "/v1/models/xx-yy")
        assert missing.status == 404 and "no model named 'xx-yy'" in missing.body["error"]


def test_sighup_and_the_admin_route_reload_a_real_server_without_ending_it(
    repository: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "TONGYEOK_PORT": str(port),
        "TONGYEOK_THREADS": "1",
        "TONGYEOK_REPOSITORY_POLL_SECONDS": "0",  # only on demand
        "TONGYEOK_API_KEYS": "secret",
    }
    log = open(tmp_path / "serve.log", "w+")  # noqa: SIM115 - a file: a full pipe would block it
    tongyeok = str(Path(sys.executable).parent / "tongyeok")
    proc = subprocess.Popen(
        [tongyeok, "serve", "--model-repository", str(repository)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server, key = Server(f"http://127.0.0.1:{port}", None), {"Authorization": "Bearer secret"}
    try:
        wait_for(lambda: _ready(server), 60)
        package_as(repository / "en-de", repository / "fr-de", "fr")
        time.sleep(0.5)
        assert pairs(server, key) == {("en", "de")}  # no poll: nothing happens by itself
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: ("fr", "de") in pairs(server, key))
        assert proc.poll() is None, "SIGHUP ended the server"

        shutil.rmtree(repository / "fr-de")
        assert server.request("POST", "/v1/admin/reload").status == 401
        assert (
            server.request("POST", "/v1/admin/reload", headers={"X-API-Key": "nope"}).status == 403
        )
        reply = server.request("POST", "/v1/admin/reload", headers=key)
        assert reply.status == 200, reply.body
        assert reply.body["removed"] == ["fr-de"] and reply.body["models"] == ["en-de"]
        again = server.request("POST", "/v1/admin/reload", headers=key).body
        assert again["added"] == again["removed"] == again["replaced"] == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    log.seek(0)
    reloads = [e for e in map(logged_event, log) if e.get("event") == "reload"]
    assert [(e["cause"], e["added"], e["removed"]) for e in reloads] == [
        ("SIGHUP", ["fr-de"], []),
        ("admin", [], ["fr-de"]),
    ]


def logged_event(line: str) -> dict:
    """A log line's event: the JSON object itself, or the JSON its ``message`` holds."""
    try:
        record = json.loads(line)
    except ValueError:
        return {}
    message = record.get("message") if isinstance(record, dict) else None
    if isinstance(message, str) and message.startswith("{"):
        return json.loads(message)
    return record if isinstance(record, dict) else {}


def _ready(server: Server) -> bool:
    try:
        return server.request("GET", "/readyz").status == 200
    except OSError:
        return False
