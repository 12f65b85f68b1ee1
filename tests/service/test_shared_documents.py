"""DeepL's document jobs in the state store: uploaded to one `tongyeok serve` process, polled and
downloaded from another sharing one real redis-server; downloaded once, by one of many racing
requests; bounded per key across replicas. With SQLite: a finished result survives a restart, a
job whose process was killed reads as an error after the restart. A Redis that is down, and a
data directory on a read-only mount, are the documented 503s, never a 500, a hang or a crash."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import deepl
import pytest

from service.state.documents import (
    DOCUMENTS_FILE,
    LEASE,
    Bounds,
    DocumentRecord,
    DocumentStore,
    SQLiteDocumentStore,
    State,
)
from service.state.keys import KEYS_FILE, KeyRecord, SQLiteKeyStore, digest_of
from service.state.redis_documents import RedisDocumentStore
from tests.service.conftest import free_port, running_server
from tests.service.test_quotas import REPO, Redis, redis_server, wait_ready  # noqa: F401

TONGYEOK = str(Path(sys.executable).parent / "tongyeok")
LINES = ["two dogs play", "a dog runs in the park."]


@pytest.fixture(autouse=True)
def no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """DeepL's client retries a 429 or a 5xx with a backoff (about 15 s in all): here each
    answer is asserted as it comes."""
    monkeypatch.setattr(deepl.http_client, "max_network_retries", 0)


@contextmanager
def serving(
    repository: Path, data: Path, wrap: tuple[str, ...] = (), **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A real ``tongyeok serve`` on loopback (``wrap``: a command it runs under), stopped and
    reaped at the end; its log in ``data``'s parent directory."""
    port = free_port()
    environment = {**os.environ, "TONGYEOK_THREADS": "1", "TONGYEOK_DATA_DIR": str(data), **env}
    command = [*wrap, TONGYEOK, "serve", "--model-repository", str(repository), "--port", str(port)]
    with open(data.parent / f"serve-{port}.log", "wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=environment, stderr=log)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(30)


def answering(url: str, process: subprocess.Popen[bytes]) -> None:
    """Waits until the server answers /healthz (ready or not)."""
    deadline = time.monotonic() + 90
    while call(url, "/healthz")[0] != 200:
        assert process.poll() is None, "the server process exited"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.2)


def call(
    url: str, path: str, fields: dict[str, str] | None = None, key: str | None = None
) -> tuple[int, bytes]:
    """(status, body) of a GET, or of a form POST of ``fields``; 0 if nothing answers."""
    data = None if fields is None else urllib.parse.urlencode(fields).encode()
    headers = {} if key is None else {"Authorization": f"DeepL-Auth-Key {key}"}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url + path, data=data, headers=headers), timeout=30
        ) as answer:
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def status_of(url: str, handle: deepl.DocumentHandle, key: str = "k1") -> tuple[int, dict]:
    code, body = call(
        url, f"/v2/document/{handle.document_id}", {"document_key": handle.document_key}, key
    )
    return code, json.loads(body) if body else {}


def translated(url: str, lines: list[str]) -> str:
    """What /v1/translate makes of each line, joined as the .txt handler writes them."""
    request = urllib.request.Request(
        url + "/v1/translate",
        data=json.dumps({"texts": lines, "source": "en", "target": "de"}).encode(),
        headers={"content-type": "application/json", "Authorization": "Bearer k1"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return "\n".join(t["text"] for t in json.load(answer)["translations"])


def upload(url: str, text: str, key: str = "k1") -> deepl.DocumentHandle:
    return deepl.Translator(key, server_url=url).translate_document_upload(
        text.encode(), target_lang="DE", source_lang="EN", filename="a.txt"
    )


def record(job_id: str, owner: str, size: int, now: float, seconds: float = 60) -> DocumentRecord:
    return DocumentRecord(
        job_id, owner, "digest", "text/plain", "a.txt", size, now, now + seconds, "me", beat=now
    )


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_both_stores_bound_expire_and_hand_a_result_over_once(
    backend: str,
    tmp_path: Path,
    redis_server: Redis,  # noqa: F811
) -> None:
    store: DocumentStore = (
        SQLiteDocumentStore(tmp_path / DOCUMENTS_FILE)
        if backend == "sqlite"
        else RedisDocumentStore(redis_server.url)
    )
    now, bounds = time.time(), Bounds(per_owner=2, owner_bytes=100, all_bytes=150)
    assert store.add(record("a1", "a", 60, now), bounds, now) is None
    assert store.add(record("a2", "a", 41, now), bounds, now) == "owner_bytes"  # 101 > 100
    assert store.add(record("a2", "a", 40, now), bounds, now) is None
    assert store.add(record("a3", "a", 0, now), bounds, now) == "count"
    assert store.add(record("b1", "b", 51, now), bounds, now) == "all_bytes"  # 151 > 150
    assert store.add(record("b1", "b", 10, now, seconds=0.3), bounds, now) is None
    assert store.find("a3", now) is None and store.find("a1", now) == record("a1", "a", 60, now)

    # a runner's writes, then its result: the job's bytes are the result's from then on
    assert store.update("a1", state=State.TRANSLATING, started=now, beat=now + 1, done=3, total=9)
    assert store.take("a1", "a", "digest") is None  # not done: nothing taken, nothing deleted
    assert store.finish("a1", b"translated", 7)
    found = store.find("a1", now)
    assert found is not None and (found.state, found.billed, found.size) == (State.DONE, 7, 10)
    assert (found.done, found.total, found.started) == (3, 9, now)
    if isinstance(store, RedisDocumentStore):  # record and result expire with the job in Redis
        for key in ("tongyeok:document:a1", "tongyeok:document-result:a1"):
            assert 55_000 < store.client.pttl(key) <= 60_000
    assert not store.update("a1", beat=now + 2)  # finished: a runner writes nothing more
    assert store.take("a1", "b", "digest") is None and store.take("a1", "a", "other") is None
    assert store.take("a1", "a", "digest") == b"translated"
    assert store.take("a1", "a", "digest") is None and store.find("a1", now) is None

    # a job whose beat is old is marked lost once; one that beats on is not
    assert not store.abandon("a2", now, "lost")  # its beat is not older than now
    assert store.abandon("a2", now + 1, "lost") and not store.abandon("a2", now + 1, "again")
    lost = store.find("a2", now)
    assert lost is not None and (lost.state, lost.error, lost.size) == (State.ERROR, "lost", 0)
    assert not store.finish("a2", b"late", 1)  # a runner taken for dead keeps nothing

    # past its expiry a job is gone, and its bytes count no more
    assert store.add(record("b2", "b", 95, now), bounds, now) == "owner_bytes"  # b1's 10 + 95
    time.sleep(0.4)
    assert store.find("b1", time.time()) is None
    assert store.add(record("b2", "b", 95, time.time()), bounds, time.time()) is None
    store.close()


def test_a_document_uploaded_to_one_replica_is_polled_and_downloaded_from_the_other(
    toy_repository: Path,
    redis_server: Redis,  # noqa: F811
    tmp_path: Path,
) -> None:
    with (
        serving(toy_repository, tmp_path / "a", TONGYEOK_STATE_URL=redis_server.url,
                TONGYEOK_API_KEYS="k1,k2") as (one, a),
        serving(toy_repository, tmp_path / "b", TONGYEOK_STATE_URL=redis_server.url,
                TONGYEOK_API_KEYS="k1,k2") as (other, b),
    ):  # fmt: skip
        wait_ready(a, one)
        wait_ready(b, other)
        handle = upload(a, "\n".join(LINES) + "\n")
        on_b = deepl.Translator("k1", server_url=b)
        status = on_b.translate_document_wait_until_done(handle)
        assert status.done and status.billed_characters == sum(len(line) for line in LINES)
        with pytest.raises(deepl.DeepLException, match="no document"):  # not k2's, anywhere
            deepl.Translator("k2", server_url=b).translate_document_get_status(handle)
        out = io.BytesIO()
        on_b.translate_document_download(handle, out)
        assert out.getvalue().decode() == translated(b, LINES) + "\n"
        for url in (a, b):  # downloaded once: gone on every replica, as DeepL (404)
            with pytest.raises(deepl.DeepLException, match="Not found"):  # the client's words
                deepl.Translator("k1", server_url=url).translate_document_download(
                    handle, io.BytesIO()
                )
            assert status_of(url, handle)[0] == 404

        # eight downloads of one result at once, on both replicas: one gets it, seven a 404
        handle = upload(b, LINES[0])
        assert on_b.translate_document_wait_until_done(handle).done
        codes: list[tuple[int, bytes]] = []
        path, fields = (
            f"/v2/document/{handle.document_id}/result",
            {"document_key": handle.document_key},
        )
        racers = [
            threading.Thread(target=lambda u=url: codes.append(call(u, path, fields, "k1")))
            for url in (a, b) * 4
        ]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(60)
        assert sorted(code for code, _ in codes) == [200] + [404] * 7
        assert next(body for code, body in codes if code == 200).decode() == translated(
            a, LINES[:1]
        )

        # one key's bound of 16 documents holds across replicas; a download makes room
        handles = [upload(url, LINES[0], "k2") for url in (a, b) * 8]
        for url in (a, b):
            with pytest.raises(deepl.DeepLException, match="16 documents"):
                upload(url, LINES[0], "k2")
        upload(a, LINES[0], "k1")  # another key is not held back
        k2 = deepl.Translator("k2", server_url=a)
        assert k2.translate_document_wait_until_done(handles[1]).done  # made on b
        k2.translate_document_download(handles[1], io.BytesIO())
        upload(b, LINES[0], "k2")


def test_a_redis_that_is_down_is_a_503_for_documents_never_a_500_or_a_hang(
    toy_repository: Path,
    redis_server: Redis,  # noqa: F811
) -> None:
    with running_server(toy_repository, state_url=redis_server.url, api_keys="k1") as server:
        handle = upload(server.url, LINES[0])
        assert status_of(server.url, handle)[1]["status"] == "done"
        redis_server.stop()
        started = time.monotonic()
        for path in (
            f"/v2/document/{handle.document_id}",
            f"/v2/document/{handle.document_id}/result",
        ):
            code, body = call(server.url, path, {"document_key": handle.document_key}, "k1")
            assert code == 503 and json.loads(body)["error_type"] == "state_unavailable"
            assert "document database" in json.loads(body)["message"]
        with pytest.raises(deepl.DeepLException, match="document database"):
            upload(server.url, LINES[0])
        ready = server.request("GET", "/readyz")
        assert ready.status == 503 and "127.0.0.1" in ready.body["state"]
        assert time.monotonic() - started < 15  # a one-second timeout per call, not a hang
        redis_server.start()  # back, empty (it keeps nothing): the old job is gone, new ones work
        assert status_of(server.url, handle)[0] == 404
        again = upload(server.url, LINES[0])
        assert status_of(server.url, again)[1]["status"] == "done"


def test_a_finished_result_survives_a_restart_until_it_is_downloaded(
    toy_repository: Path, tmp_path: Path
) -> None:
    with running_server(toy_repository, data_dir=str(tmp_path)) as server:
        handle = upload(server.url, LINES[1])
        assert status_of(server.url, handle)[1]["status"] == "done"
    assert (tmp_path / DOCUMENTS_FILE).exists()
    with running_server(toy_repository, data_dir=str(tmp_path)) as server:
        code, body = status_of(server.url, handle)
        assert (
            code == 200 and body["status"] == "done" and body["billed_characters"] == len(LINES[1])
        )
        out = io.BytesIO()
        deepl.Translator("k1", server_url=server.url).translate_document_download(handle, out)
        assert out.getvalue().decode() == translated(server.url, LINES[1:])
        assert status_of(server.url, handle)[0] == 404


def test_a_job_whose_process_was_killed_reads_as_an_error_after_the_restart(
    toy_repository: Path, tmp_path: Path
) -> None:
    # distinct lines (the cache would answer repeated ones at once), in batches of 128 strings
    text = "\n".join(f"a dog number {i} runs in the park number {i * 7}." for i in range(6000))
    data = tmp_path / "data"
    with serving(toy_repository, data) as (first, url):
        wait_ready(url, first)
        handle = upload(url, text)
        deadline = time.monotonic() + 120
        while True:  # translating, with an estimate once its first batch is done
            code, body = status_of(url, handle)
            assert code == 200 and body["status"] in ("queued", "translating"), body
            if "seconds_remaining" in body:
                break
            assert time.monotonic() < deadline, "no estimate while translating"
        assert body["status"] == "translating" and body["seconds_remaining"] >= 1
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    with serving(toy_repository, data) as (second, url):
        wait_ready(url, second)
        deadline = time.monotonic() + LEASE + 30
        while (body := status_of(url, handle)[1])["status"] != "error":
            assert body["status"] == "translating", body  # never done, never a 500
            assert time.monotonic() < deadline, "still translating long after its process died"
            time.sleep(0.5)
        assert "stopped before it finished" in body["error_message"]
        code, _ = call(
            url, f"/v2/document/{handle.document_id}/result", {"document_key": handle.document_key}
        )
        assert code == 503  # DeepL's "not ready" for a download of a job that is not done


def read_only(data: Path) -> tuple[str, ...]:
    """A command prefix that runs its command with ``data`` on a read-only bind mount, in a
    mount namespace of its own (so root is refused too: EROFS); skipped where that is not
    allowed (no CAP_SYS_ADMIN)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) not installed")
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind -o ro {data} {data} && ! touch {data}/x"],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"no read-only bind mount here: {probe.stderr.decode().strip()}")
    mount = f'mount --bind -o ro "{data}" "{data}" && exec "$@"'
    return ("unshare", "-m", "sh", "-c", mount, "sh")


def test_a_read_only_data_directory_is_the_documented_503_not_a_crash(
    toy_repository: Path, tmp_path: Path
) -> None:
    empty, keyed = tmp_path / "empty", tmp_path / "keyed"
    empty.mkdir()
    store = SQLiteKeyStore(keyed / KEYS_FILE)
    asyncio.run(store.add(KeyRecord("hal", digest_of("stored-key"), characters=1000)))
    asyncio.run(store.close())

    # nothing stored yet: served without state; what would need a write is a 503 naming it
    with serving(toy_repository, empty, read_only(empty)) as (process, url):
        wait_ready(url, process)
        assert translated(url, LINES) and call(url, "/readyz")[0] == 200
        glossary = {"name": "g", "source_lang": "en", "target_lang": "de"}
        code, body = call(url, "/v2/glossaries", {**glossary, "entries": "dog\tHund"})
        assert code == 503 and json.loads(body)["error_type"] == "state_unavailable"
        assert "glossaries.sqlite3" in json.loads(body)["message"]
        with pytest.raises(deepl.DeepLException, match=DOCUMENTS_FILE):
            upload(url, LINES[0])
        assert call(url, "/v2/glossaries")[0] == 200  # none stored: an empty list, no 503

    # stored keys that cannot be read: not ready, and no request let through unchecked (without
    # a key too: whether one is required is in the file); the environment's keys are served
    for env in ({}, {"TONGYEOK_API_KEYS": "env-key"}):
        with serving(toy_repository, keyed, read_only(keyed), **env) as (process, url):
            answering(url, process)
            code, body = call(url, "/readyz")
            assert code == 503 and KEYS_FILE in json.loads(body)["state"]
            code, body = call(url, "/v2/usage", key="stored-key")
            assert code == 503 and json.loads(body)["error_type"] == "state_unavailable"
            code, body = call(url, "/v2/usage")
            assert code == (401 if env else 503), body  # keys required: env keys say so
            if env:  # no quota to hold: served (unbilled)
                assert call(url, "/v2/translate", {"text": "a dog", "target_lang": "DE"},
                            "env-key")[0] == 200  # fmt: skip
            assert process.poll() is None
