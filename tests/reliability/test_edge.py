"""Hostile and unlucky requests at the HTTP edge: each gets a JSON 4xx and hurts nobody else.

Each test is a regression test for a finding of issue 11 that failed on the code before it.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path

from tests.service.conftest import Server, liveness_while, running_server

FORM = {"content-type": "application/x-www-form-urlencoded"}


def post(conn: http.client.HTTPConnection, path: str, body: bytes, **headers: str) -> tuple:
    conn.request("POST", path, body, {"content-type": "application/json", **headers})
    reply = conn.getresponse()
    return reply.status, json.loads(reply.read())


def test_options_have_finite_ranges_and_the_service_keeps_serving(server: Server) -> None:
    base = '"texts": ["A cat."], "source": "en", "target": "de"'
    cases = [
        ('"max_length_a": 1e999', "max_length_a", "[0, 10]"),
        ('"max_length_b": 1' + "0" * 400, "max_length_b", "[1, 1024]"),
        ('"length_penalty": 1000', "length_penalty", "[0, 10]"),
        ('"length_penalty": NaN', "length_penalty", "[0, 10]"),
        ('"max_length_a": -Infinity', "max_length_a", "[0, 10]"),
        ('"beam_size": 100000', "beam_size", "max_beam_size=8"),  # the one bound on beams
        ('"nbest": 0', "nbest", ">= 1"),
    ]
    for option, name, limit in cases:
        reply = server.request("POST", "/v1/translate", raw=f"{{{base}, {option}}}".encode())
        assert reply.status == 422, option
        assert name in reply.body["error"] and limit in reply.body["error"], reply.body
    assert server.translate(["red dog"], length_penalty=10.0, max_length_a=10.0).status == 200
    assert server.translate(["a cat sits"]).status == 200  # the scheduler is still alive


def test_bad_input_is_a_4xx_and_the_connection_survives(server: Server) -> None:
    """Never a 500 (DeepL's client retries those five times), and the kept-alive connection
    serves the next request."""
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    nested = b"[" * 5000 + b"]" * 5000
    cases = [
        ("/v1/translate", b'{"texts": ["\\ud800"], "source": "en", "target": "de"}', {}),
        ("/translate", b'{"q": "\\udfff x", "source": "en", "target": "de"}', {}),
        ("/v2/translate", b'{"text": ["red dog"], "target_lang": "DE", "source_lang": 5}', {}),
        ("/v2/translate", b"text=red+dog&target_lang=DE&source_lang=EN&source_lang=DE", FORM),
        ("/v2/translate", b"text=red+dog&target_lang=DE&target_lang=FR", FORM),
        ("/v2/translate", b'{"text": ["x"], "target_lang": ["DE"]}', {}),
        ("/translate", nested, {}),
        ("/v2/translate", nested, {}),
        ("/translate", b'{"q": "x", "target": "de", "source": {"a": 1}}', {}),
    ]
    conn.connect()
    first_socket = conn.sock
    for path, body, headers in cases:
        status, answer = post(conn, path, body, **headers)
        assert status == 422, (path, body[:60], answer)
        assert answer["error_type"] == "invalid_request"
    status, answer = post(conn, "/v1/translate", nested)  # parsed by the framework: 400
    assert status == 400 and answer["error_type"] == "bad_request"
    ok, answer = post(
        conn, "/v1/translate", b'{"texts": ["red dog"], "source": "en", "target": "de"}'
    )
    assert ok == 200 and answer["translations"][0]["text"] == "red dog"
    assert conn.sock is first_socket  # one connection from the first request to the last
    conn.close()


def raw_exchange(url: str, head: bytes, chunks: list[bytes], pause: float = 0.0) -> bytes:
    """Send ``head`` then ``chunks`` (stopping if the server hangs up), return its answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered early and closed: what a limit should do
        time.sleep(pause)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return answer


def test_body_limit_counts_chunked_bodies_before_the_key_and_slow_bodies_time_out(
    toy_repository: Path,
) -> None:
    settings = dict(max_body_bytes=2000, body_timeout=0.5, api_keys=["k"])
    with running_server(toy_repository, **settings) as server:
        before = server.app.state.metrics.requests_rejected.labels("payload_too_large")._value.get()
        head = (
            b"POST /v1/translate HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        chunk = b"400\r\n" + b" " * 0x400 + b"\r\n"  # 1 KiB per chunk, 64 of them, no key
        answer = raw_exchange(server.url, head, [chunk] * 64 + [b"0\r\n\r\n"])
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"max_body_bytes=2000" in answer and b'"payload_too_large"' in answer
        counted = server.app.state.metrics.requests_rejected.labels("payload_too_large")
        assert counted._value.get() == before + 1
        slow = b"POST /v1/translate HTTP/1.1\r\nHost: x\r\ncontent-length: 100\r\n\r\n"
        answer = raw_exchange(server.url, slow, [b'{"texts": '], pause=1.0)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"body_timeout=0.5" in answer


def test_liveness_stays_fast_during_a_large_request(server: Server) -> None:
    """128 texts of 5,000 characters (whitespace without a newline stalled /healthz for seconds
    in the splitter before) are split and tokenized off the event loop."""
    texts = ["a" + " " * 4990 + "b c."] * 128
    reply, slowest = liveness_while(server, lambda: server.translate(texts, beam_size=1))
    # The toy tokenizer keeps every space as a token: the sentence is too long for the model,
    # which is found only after splitting and tokenizing all of it.
    assert reply.status == 422 and "per sentence" in reply.body["error"]
    assert slowest < 1.0, f"/healthz took {slowest:.2f} s during the large request"


def test_liveness_fails_when_a_scheduler_thread_is_dead(toy_repository: Path) -> None:
    """/healthz stayed 200 with the scheduler thread gone, so Kubernetes never restarted the pod."""
    with running_server(toy_repository) as server:
        assert server.request("GET", "/healthz").status == 200
        for model in server.app.state.repository.models.values():
            model.scheduler.stop(30)  # the loop thread ends: nobody would be answered
        reply = server.request("GET", "/healthz")
        assert reply.status == 503 and "scheduler" in reply.body["status"]
