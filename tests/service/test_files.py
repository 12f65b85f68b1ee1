"""Translated files belong to the key that made them, expire, and are bounded per key; a file or
request that could never be served is refused up front with 413 naming the limit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.api.routes.files import KEPT_FILES, KeptFiles
from tests.service.conftest import Reply, Server, running_server

K1, K2 = {"x-api-key": "k1"}, {"x-api-key": "k2"}


@pytest.fixture(scope="module")
def guarded(toy_repository: Path) -> Iterator[Server]:
    settings = dict(
        api_keys=["k1", "k2"], max_queue_sentences=40, max_request_work=100, max_texts=30
    )
    with running_server(toy_repository, **settings) as server:
        yield server


def upload(server: Server, name: str, content: bytes, headers: dict[str, str]) -> Reply:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="target"\r\n\r\nde\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    kind = {"content-type": f"multipart/form-data; boundary={boundary}"}
    return server.request("POST", "/translate_file", raw=body, headers={**kind, **headers})


def download(server: Server, url: str, headers: dict[str, str]) -> Reply:
    return server.request("GET", url.removeprefix(server.url), headers=headers)


def test_a_file_is_its_keys_alone(guarded: Server) -> None:
    """Before: a download needed no key, and 32 uploads by anyone pushed out anyone's file."""
    mine = upload(guarded, "a.txt", b"red dog runs\n", K1)
    assert mine.status == 200, mine.body
    url = mine.body["translatedFileUrl"]
    assert download(guarded, url, {}).status == 401
    assert download(guarded, url, {"x-api-key": "nope"}).status == 403
    other = download(guarded, url, K2)
    assert other.status == 404 and other.body["error_type"] == "not_found"
    assert download(guarded, url, K1).status == 200
    theirs = [upload(guarded, "b.txt", b"two dogs\n", K2) for _ in range(KEPT_FILES + 1)]
    assert all(r.status == 200 for r in theirs)
    assert download(guarded, url, K1).status == 200  # another key's uploads left it alone
    first, last = (r.body["translatedFileUrl"] for r in (theirs[0], theirs[-1]))
    assert download(guarded, first, K2).status == 404  # each key keeps its last 32
    assert download(guarded, last, K2).status == 200


def test_a_file_that_could_never_be_served_is_413_naming_the_limit(guarded: Server) -> None:
    """Before: a .txt of more lines than the queue holds, in batches of max_texts that each fit,
    got 429 Retry-After: 1, forever."""
    lines = b"".join(f"dog number {i}\n".encode() for i in range(200))
    never = upload(guarded, "long.txt", lines, K1)
    assert never.status == 413 and "max_queue_sentences=40" in never.body["error"], never.body
    lines = b"".join(f"dog number {i}\n".encode() for i in range(30))  # 30 x beam 4 > 100
    slow = upload(guarded, "slow.txt", lines, K1)
    assert slow.status == 413 and "max_request_work=100" in slow.body["error"], slow.body


def test_a_request_beyond_the_work_the_timeout_covers_is_413(guarded: Server) -> None:
    """sentences x beams is bounded by max_request_work: 26 sentences at beam 4 (104) are
    refused before any work, at beam 1 served."""
    texts = [f"dog number {i}" for i in range(26)]
    refused = guarded.request(
        "POST", "/v1/translate", {"texts": texts, "source": "en", "target": "de"}, K1
    )
    assert refused.status == 413 and "max_request_work=100" in refused.body["error"]
    assert "beam_size=4" in refused.body["error"]
    served = guarded.request(
        "POST",
        "/v1/translate",
        {"texts": texts, "source": "en", "target": "de", "beam_size": 1},
        K1,
    )
    assert served.status == 200, served.body


def test_files_expire_by_time_and_are_bounded_per_owner() -> None:
    now = [0.0]
    files = KeptFiles(seconds=10.0, per_owner=2, clock=lambda: now[0])
    a = files.put("key:a", "text/plain", b"a", ".txt")
    b = [files.put("key:b", "text/plain", b"b", ".txt") for _ in range(3)]
    assert files.get("key:a", a) is not None and files.get("key:b", a) is None
    assert files.get("key:b", b[0]) is None and files.get("key:b", b[2]) is not None
    now[0] = 9.9
    assert files.get("key:a", a) is not None
    now[0] = 10.0
    assert files.get("key:a", a) is None and len(files.files) == 0
