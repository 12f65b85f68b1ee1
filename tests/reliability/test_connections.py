"""Hostile clients at the connection level against a real ``tongyeok serve`` on loopback (issue 35,
items 1-4 and 10): during each attack a keyed client's requests are all answered 200, with a
median latency within 3x of its own just before (plus ``SLACK_SECONDS`` for a shared machine),
and /healthz answers; /readyz and /metrics name the limits that held.

Attackers connect from other loopback addresses (Linux routes all of 127.0.0.0/8 to ``lo``), so
the per-address cap applies to them and not to the keyed client on 127.0.0.1. The server runs
with small limits and a 256-descriptor open-file limit, so that each attack needs at most ~250
sockets and a few seconds; every attack stops by itself.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.service.conftest import free_port

KEY = "k-connections"
OPEN_FILES = 256  # the server's: 1,100 idle connections against 1,024, scaled down
LIMITS = {
    "api_keys": KEY,
    "max_inflight_requests": "8",
    "max_unauthenticated_requests": "4",
    "max_connections_per_client": "24",
    "header_timeout": "1",
    "send_timeout": "1",
    "body_timeout": "2",
    "max_body_bytes": "8000",
    "public_url": "http://mt.example.test:8000",
}
SLACK_SECONDS = 0.05  # scheduling noise on a shared 2-core machine, beyond 3x the baseline


@dataclass
class Door:
    port: int
    proc: subprocess.Popen
    sent: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, body, headers or {}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as reply:
                return reply.status, dict(reply.headers), reply.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def translate(self) -> int:
        """A keyed translation of a text never sent before (no cache hit), on a new connection."""
        self.sent += 1
        text = f"a cat sits {self.sent}"
        body = json.dumps({"texts": [text], "source": "en", "target": "de"}).encode()
        headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
        return self.call("POST", "/v1/translate", body, headers)[0]

    def held(self) -> list[str]:
        return json.loads(self.call("GET", "/readyz")[2]).get("held", [])

    def hits(self, limit: str) -> float:
        return self.gauge(f'tongyeok_limit_hits_total{{limit="{limit}"}}')

    def gauge(self, name: str) -> float:
        text = self.call("GET", "/metrics")[2].decode()
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def low_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


@pytest.fixture(scope="module")
def door(toy_repository: Path) -> Iterator[Door]:
    port = free_port()
    env = {**os.environ, "TONGYEOK_PORT": str(port), "TONGYEOK_THREADS": "1"}
    env.update({f"TONGYEOK_{k.upper()}": v for k, v in LIMITS.items()})
    tongyeok = str(Path(sys.executable).parent / "tongyeok")
    proc = subprocess.Popen(
        [tongyeok, "serve", "--model-repository", str(toy_repository)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=low_open_files,
    )
    server = Door(port, proc)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if server.call("GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
            time.sleep(0.1)
        yield server
    finally:
        proc.kill()
        proc.wait(30)


def attacker(port: int, address: int) -> socket.socket:
    """A connection from 127.0.0.``address``."""
    sock = socket.socket()
    sock.settimeout(5)
    sock.bind((f"127.0.0.{address}", 0))
    sock.connect(("127.0.0.1", port))
    return sock


def keyed_median(door: Door, count: int = 9) -> float:
    """The median of ``count`` keyed translations one after another, each on a new connection;
    every one must be 200."""
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        status = door.translate()
        seconds.append(time.perf_counter() - started)
        assert status == 200, f"a keyed request got {status}"
    return statistics.median(seconds)


def baseline(door: Door) -> float:
    keyed_median(door, 3)  # warm
    return keyed_median(door)


def assert_served(door: Door, before: float) -> None:
    """During an attack: the keyed client served within 3x its baseline, /healthz 200."""
    during = keyed_median(door)
    print(f"keyed median {before * 1000:.1f} ms before the attack, {during * 1000:.1f} during")
    assert during <= 3 * before + SLACK_SECONDS, (before, during)
    assert door.call("GET", "/healthz")[0] == 200


def answer(sock: socket.socket) -> bytes:
    """What the server sent before it closed ``sock`` or went quiet for its timeout."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


TRANSLATE_HEAD = b"POST /v1/translate HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"


def test_bodies_that_never_come_hold_no_slot(door: Door) -> None:
    """Item 1: 48 connections from 4 addresses send a translation's headers and no body. They
    held all 8 in-flight slots until the body timeout, and the keyed client got 429; a
    request now takes a slot only once its body has arrived."""
    before = baseline(door)
    slow = [attacker(door.port, 2 + i % 4) for i in range(48)]
    for sock in slow:
        sock.sendall(TRANSLATE_HEAD + b"content-length: 1000\r\n\r\n")
    time.sleep(0.3)  # every head read by the server
    assert_served(door, before)
    # A key in the body (LibreTranslate's clients) counts as keyed once the check finds it.
    body = {"q": "a red dog", "source": "en", "target": "de", "api_key": KEY}
    headers = {"content-type": "application/json"}
    assert door.call("POST", "/translate", json.dumps(body).encode(), headers)[0] == 200
    answers = [answer(sock) for sock in slow]  # 408 after body_timeout
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[0][:100]
    assert "body_timeout" in door.held()
    for sock in slow:
        sock.close()


def test_clients_that_never_read_are_dropped_and_never_take_the_keyed_share(door: Door) -> None:
    """Item 2: 12 connections from 4 addresses ask, three times 0.15 s apart, for the API docs'
    script (1.5 MB; a loopback connection's buffers take ~3-4 MB) and never read. The handler of
    an answer that no longer fits waited forever on a full transport, counted in flight (all 8
    slots): every other client got 429 for as long as the sockets stayed open. Now they count in
    the unauthenticated budget, and a transport full for ``send_timeout`` is dropped."""
    before = baseline(door)
    dropped_before = door.hits("send_timeout")
    stuck = []
    for i in range(12):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills at once
        sock.bind((f"127.0.0.{2 + i % 4}", 0))
        sock.connect(("127.0.0.1", door.port))
        stuck.append(sock)
    for _ in range(3):  # one at a time: a pipelined request is refused while the one before
        for sock in stuck:  # it is still counted, and a refusal holds no slot
            sock.sendall(b"GET /static/docs/swagger-ui-bundle.js HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.15)
    assert_served(door, before)
    deadline = time.monotonic() + 5
    while door.hits("send_timeout") == dropped_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert door.hits("send_timeout") > dropped_before
    assert "send_timeout" in door.held()
    for sock in stuck:
        sock.close()


class Loiterers:
    """``count`` connections from ``addresses`` addresses that send nothing (even ones) or a
    header byte every 0.3 s (odd ones), each reopened when the server closes it, until
    ``stop``; at most ``max_opened`` connections in all."""

    def __init__(self, port: int, count: int, addresses: int, max_opened: int = 3000) -> None:
        self.port, self.addresses, self.left = port, addresses, max_opened
        self.closed_by_server = 0
        self.socks = [self.open(i) for i in range(count)]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def open(self, i: int) -> socket.socket:
        self.left -= 1
        sock = attacker(self.port, 2 + i % self.addresses)
        sock.setblocking(False)
        if i % 2:
            sock.send(b"GET / HTTP/1.1\r\n")
        return sock

    def run(self) -> None:
        tick = 0
        while not self.stopping.wait(0.1):
            tick += 1
            for i, sock in enumerate(self.socks):
                try:
                    gone = sock.recv(4096) == b""
                except BlockingIOError:
                    gone = False
                except OSError:
                    gone = True
                if gone:
                    self.closed_by_server += 1
                    sock.close()
                    if self.left > 0:
                        self.socks[i] = self.open(i)
                elif i % 2 and tick % 3 == 0:
                    with suppress(OSError):
                        sock.send(b"X")  # a slowloris' header byte

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)
        for sock in self.socks:
            sock.close()


def test_idle_and_slowloris_connections_are_closed_and_capped(door: Door) -> None:
    """Item 3: 240 connections from 12 addresses send nothing, or a header byte every 0.3 s,
    against a server of 256 open files. They outlived every timeout and the server ran out of
    descriptors (it stopped accepting, /healthz included); now a header timeout closes them,
    the connections fit the open files (the oldest still sending its request, from the most
    crowded address, makes room for a new one), and one address gets no more than its share."""
    before = baseline(door)
    loiterers = Loiterers(door.port, 240, addresses=12)
    try:
        time.sleep(0.5)
        assert_served(door, before)
        time.sleep(1.5)  # past header_timeout: the server has closed them
        assert loiterers.closed_by_server >= 240, loiterers.closed_by_server
    finally:
        loiterers.stop()
    quiet = time.monotonic() + 5
    while door.gauge("tongyeok_connections_open") > 2 and time.monotonic() < quiet:
        time.sleep(0.1)  # the loiterers are gone
    # One address past max_connections_per_client (24): the rest are closed at once, with 503.
    crowd = [attacker(door.port, 99) for _ in range(30)]
    time.sleep(0.2)
    for sock in crowd:
        sock.settimeout(0.01)
    refused = [a for a in map(answer, crowd) if a.startswith(b"HTTP/1.1 503")]
    assert len(refused) == 6, len(refused)
    for sock in crowd:
        sock.close()
    assert {"header_timeout", "max_connections", "max_connections_per_client"} <= set(door.held())


def chunked_exchange(port: int, chunks: bytes, address: int = 2) -> bytes:
    """A translation's body sent as ``chunks`` (no key); the server's answer."""
    with attacker(port, address) as sock:
        sock.sendall(TRANSLATE_HEAD + b"transfer-encoding: chunked\r\n\r\n")
        with suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(chunks + b"0\r\n\r\n")
        return answer(sock)


TINY = b"1\r\nx\r\n"  # one byte of payload in six on the wire
EXTENDED = b"1;" + b"e" * 8000 + b"\r\nx\r\n"  # one byte with an 8 KB chunk extension


def test_chunk_framing_and_extensions_count_against_the_body_limit(door: Door) -> None:
    """Item 4: only the payload counted against max_body_bytes (8,000): 6 chunks of one byte
    with 8 KB extensions each, or 2,000 chunks of one byte, were parsed on the event loop and
    went on to the key check (401). Now the wire's bytes count, and each chunk at least 256."""
    for chunks in (EXTENDED * 6, TINY * 2000):
        reply = chunked_exchange(door.port, chunks)
        assert reply.startswith(b"HTTP/1.1 413") and b"as received" in reply, reply[:300]
    before = baseline(door)
    stopping = threading.Event()

    def attack(address: int) -> None:
        sent = 0
        while not stopping.is_set() and sent < 200:
            chunked_exchange(door.port, (TINY * 20_000, EXTENDED * 50)[sent % 2], address)
            sent += 1

    attackers = [threading.Thread(target=attack, args=(2 + i,)) for i in range(4)]
    for thread in attackers:
        thread.start()
    try:
        time.sleep(0.3)
        assert_served(door, before)
    finally:
        stopping.set()
        for thread in attackers:
            thread.join(30)
    assert "max_body_bytes" in door.held()


def exchange(door: Door, method: str, path: str, body: bytes = b"", **headers: str) -> tuple:
    """One request over http.client (which follows no redirect, and sends the Host given)."""
    conn = http.client.HTTPConnection("127.0.0.1", door.port, timeout=30)
    try:
        conn.request(
            method, path, body or None, {k.replace("_", "-"): v for k, v in headers.items()}
        )
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def test_urls_come_from_configuration_ids_are_bounded_head_works_and_refusals_bill_nothing(
    door: Door,
) -> None:
    """Item 10: the client's Host was reflected into redirects and download links; request ids
    of any length and alphabet were echoed and logged; HEAD was 405 everywhere; /v2/usage billed
    the characters of a document refused after one of its batches was served."""
    public, key = LIMITS["public_url"], f"Bearer {KEY}"
    status, headers, _ = exchange(door, "GET", "/healthz/", Host="evil.example")
    assert status == 307 and headers["location"] == f"{public}/healthz", headers
    boundary = "tongyeok-boundary"
    form = (
        f'--{boundary}\r\ncontent-disposition: form-data; name="target"\r\n\r\nde\r\n'
        f'--{boundary}\r\ncontent-disposition: form-data; name="source"\r\n\r\nen\r\n'
        f'--{boundary}\r\ncontent-disposition: form-data; name="file"; filename="a.txt"\r\n'
        f"content-type: text/plain\r\n\r\nred dog\r\n--{boundary}--\r\n"
    ).encode()
    status, _, body = exchange(
        door,
        "POST",
        "/translate_file",
        form,
        Host="evil.example",
        authorization=key,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert status == 200, body
    assert json.loads(body)["translatedFileUrl"].startswith(f"{public}/download_file/"), body

    for given in ("x" * 8000, "a b", "<script>", "é"):
        returned = exchange(door, "GET", "/healthz", x_request_id=given)[1]["x-request-id"]
        assert returned != given and len(returned) == 32, returned
    kept = "req-42.a_b:c/d+e="
    assert exchange(door, "GET", "/healthz", x_request_id=kept)[1]["x-request-id"] == kept

    for path in ("/healthz", "/readyz", "/", "/static/app.js"):
        status, headers, body = exchange(door, "HEAD", path)
        assert status == 200 and body == b"", (path, status)
        assert int(headers["content-length"]) == len(exchange(door, "GET", path)[2]), path

    deepl = {"authorization": f"DeepL-Auth-Key {KEY}", "content_type": "application/json"}

    def usage() -> int:
        return json.loads(exchange(door, "GET", "/v2/usage", **deepl)[2])["character_count"]

    def document(html: str) -> int:
        body = {"text": [html], "target_lang": "DE", "source_lang": "EN", "tag_handling": "html"}
        return exchange(door, "POST", "/v2/translate", json.dumps(body).encode(), **deepl)[0]

    served = "".join(f"<p>red dog {i}</p>" for i in range(128))  # one batch of max_texts
    before = usage()
    assert document(served) == 200
    billed = usage() - before
    assert billed > 0
    # The same batch (cached: served at once) and one more with a sentence the model cannot
    # take: 422, after the first batch was served. Nothing of it is billed.
    assert document(served + "<p>" + "a " * 1000 + "</p>") == 422
    assert usage() == before + billed
