"""``tongyeok serve --workers 2``: HTTP workers in front of one engine process, for real.

A real supervisor on loopback with the toy model: translations identical to one process's from
each worker, every concurrent request answered once, /metrics summed over processes, the
engine's and a worker's SIGKILL survived (waiting requests 503, readiness false then true), and
SIGTERM drained. The channel's framing and its exactly-once bookkeeping are tested without a
server first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import pytest

from contract.options import Hypothesis, SearchOptions
from service.api.supervisor import HOME_PREFIX, remove_stale_homes
from service.errors import EngineUnavailable, QueueFull, Retired
from service.scheduling import channel
from service.scheduling.channel import Submit
from service.scheduling.remote import EngineClient
from service.scheduling.scheduler import Job
from tests.conftest import copy_pairs
from tests.service.conftest import Server, serving
from tests.service.test_drain import in_background, slow_texts

# -- the channel, without processes ----------------------------------------------------------------


def test_a_job_and_its_answers_cross_the_channel_unchanged() -> None:
    options = SearchOptions(beam_size=2, nbest=2, length_penalty=0.6, max_length_a=1.2)
    sent = Submit(7, "en-de", [[5, 6, 2], [9, 2]], options, 1234.5, "client-a")
    assert Submit.decode(sent.encode()) == sent
    hyps = [[Hypothesis([4, 2], -0.25, "eos"), Hypothesis([4, 4], -1.5, "length")], []]
    assert channel.decode_results(channel.encode_results(7, hyps)) == (7, hyps)
    job_id, error = channel.decode_error(channel.encode_error(7, Retired("gone")))
    assert (job_id, type(error), error.message) == (7, Retired, "gone")  # rerouted, not a 503
    _, bug = channel.decode_error(channel.encode_error(8, KeyError("x")))
    assert (bug.status, bug.message) == (500, "translation failed: KeyError")
    weights = np.arange(6, dtype=np.float32).reshape(2, 3)
    back = channel.decode_matrices(channel.encode_matrices([weights, None]))
    assert back[1] is None and np.array_equal(back[0], weights)


def job(loop: asyncio.AbstractEventLoop) -> Job:
    return Job([[5, 2]], SearchOptions(), time.monotonic() + 5, loop, loop.create_future())


class FakeSocket:
    """A DEALER that records what the client sends; ``connected`` False: sends fail."""

    def __init__(self) -> None:
        self.sent: list[list[bytes]] = []
        self.connected = True

    def send_multipart(self, parts: list[bytes], flags: int = 0) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        if self.connected:
            self.sent.append(parts)
            future.set_result(None)
        else:
            import zmq

            future.set_exception(zmq.Again())
        return future


def test_each_job_is_answered_once_and_the_engines_loss_answers_every_waiting_job_503() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        client = EngineClient("ipc://unused", lambda table: None)
        client.loop, client.socket, client.up = loop, FakeSocket(), True  # type: ignore[assignment]
        states: list[bool] = []
        client.on_state = states.append
        first, second, third = job(loop), job(loop), job(loop)
        for j in (first, second, third):
            client.submit("en-de", j)
        answer = [[Hypothesis([4, 2], -0.5, "eos")]]
        client.done(channel.encode_results(first.id, answer))
        client.done(channel.encode_results(first.id, [[Hypothesis([9, 2], -9.0, "eos")]]))
        assert first.future.result() == answer  # the second answer for it is dropped
        client.failed(channel.encode_error(second.id, QueueFull("full")))
        assert isinstance(second.future.exception(), QueueFull)
        client.lost("the engine process stopped")  # SIGKILL: nobody else will answer it
        assert isinstance(third.future.exception(), EngineUnavailable)
        client.done(channel.encode_results(third.id, answer))  # a late answer changes nothing
        assert isinstance(third.future.exception(), EngineUnavailable)
        assert states == [False] and not client.pending
        with pytest.raises(EngineUnavailable):  # down: refused at once, never queued
            client.submit("en-de", job(loop))
        client.up, client.socket.connected = True, False
        with pytest.raises(EngineUnavailable, match="not connected"):
            client.submit("en-de", job(loop))
        assert not client.pending

    asyncio.run(scenario())


def test_a_cancelled_job_is_forgotten_and_told_to_the_engine() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        client = EngineClient("ipc://unused", lambda table: None)
        client.loop, client.socket, client.up = loop, FakeSocket(), True  # type: ignore[assignment]
        gone = job(loop)
        client.submit("en-de", gone)
        client.cancel(gone)
        assert client.socket.sent[-1] == [channel.CANCEL, channel.pack(gone.id)]
        client.done(channel.encode_results(gone.id, [[Hypothesis([4, 2], -0.5, "eos")]]))
        assert not gone.future.done() and not client.pending

    asyncio.run(scenario())


def test_the_engine_cancels_the_jobs_of_a_worker_gone_silent() -> None:
    """A SIGKILLed worker's jobs would otherwise be decoded to their deadlines for nobody."""
    from service.scheduling.engine_server import EngineServer

    cancelled: list[Job] = []

    class Queue:
        def cancel(self, job: Job) -> None:
            cancelled.append(job)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        server = EngineServer(None, "ipc://unused")  # type: ignore[arg-type]
        try:
            dead, alive = job(loop), job(loop)
            server.jobs = {(b"dead", 1): (dead, Queue()), (b"alive", 1): (alive, Queue())}
            server.heard = {b"dead": 10.0, b"alive": 11.0}
            server.forget_silent(10.0 + channel.SILENCE_SECONDS - 0.1)  # both heard lately
            assert not cancelled
            server.forget_silent(10.0 + channel.SILENCE_SECONDS + 0.1)
            assert cancelled == [dead] and list(server.jobs) == [(b"alive", 1)]
            assert list(server.heard) == [b"alive"]
        finally:
            server.close()

    asyncio.run(scenario())


def test_the_shared_listening_socket_says_it_is_tcp(caplog: pytest.LogCaptureFixture) -> None:
    """Else asyncio leaves Nagle's algorithm on for its connections: 40 ms on every request
    (measured: p50 45 ms for a cache hit through two workers, 5 ms through one process). Binding
    it says nothing: "Uvicorn running on" came before any worker could answer."""
    import socket

    from service.api.supervisor import listening_socket
    from service.settings import Settings

    with caplog.at_level(logging.INFO), listening_socket(Settings(port=0)) as listener:
        assert listener.proto == socket.IPPROTO_TCP
    assert not [r for r in caplog.records if "running on" in r.getMessage()], caplog.text


# -- a real supervisor -----------------------------------------------------------------------------


def processes(supervisor: int, port: int) -> tuple[int | None, list[int]]:
    """The engine's pid and the workers' (those listening on ``port``) under ``supervisor``."""
    engine, workers = None, []
    for child in psutil.Process(supervisor).children():
        try:
            if "spawn_main" not in " ".join(child.cmdline()):
                continue  # multiprocessing's resource tracker
            listening = any(
                c.status == psutil.CONN_LISTEN and c.laddr.port == port
                for c in child.net_connections("tcp")
            )
        except psutil.NoSuchProcess:
            continue
        if listening:
            workers.append(child.pid)
        else:
            engine = child.pid
    return engine, sorted(workers)


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def wait_for(condition, seconds: float, what: str) -> float:  # type: ignore[no-untyped-def]
    """Seconds until ``condition()`` held (AssertionError naming ``what`` past ``seconds``)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"{what} within {seconds} s"
        time.sleep(0.1)
    return time.monotonic() - started


@contextmanager
def alone(worker: int, others: list[int]) -> Iterator[None]:
    """Only ``worker`` accepts connections meanwhile (the others are stopped)."""
    for pid in others:
        if pid != worker:
            psutil.Process(pid).suspend()
    try:
        yield
    finally:
        for pid in others:
            if pid != worker:
                psutil.Process(pid).resume()


@pytest.fixture(scope="module")
def two_workers(toy_repository: Path) -> Iterator[tuple[subprocess.Popen, Server]]:
    with serving(toy_repository, workers="2", cache_entries="0") as (proc, server, _):
        wait_for(lambda: len(processes(proc.pid, port_of(server))[1]) == 2, 60, "two workers")
        yield proc, server
        proc.send_signal(signal.SIGTERM)  # not serving()'s SIGKILL: the supervisor cleans up
        proc.wait(60)


def test_each_worker_translates_exactly_as_one_process_does(
    toy_repository: Path, two_workers: tuple[subprocess.Popen, Server]
) -> None:
    texts = [s for s, _ in copy_pairs(6, seed=58)]
    with serving(toy_repository, cache_entries="0") as (_, one, _):
        expected = one.translate(texts, beam_size=4, nbest=2)
    assert expected.status == 200
    proc, server = two_workers
    _, workers = processes(proc.pid, port_of(server))
    for worker in workers:
        with alone(worker, workers):
            reply = server.translate(texts, beam_size=4, nbest=2)
        assert reply.status == 200, reply
        assert reply.body["translations"] == expected.body["translations"]


def metric(server: Server, name: str, labels: str = "") -> float:
    text = server.request("GET", "/metrics").body["text"]
    pattern = rf"^{re.escape(name)}(\{{[^}}]*{re.escape(labels)}[^}}]*\}})? ([0-9.e+]+)$"
    return sum(float(m[2]) for m in re.finditer(pattern, text, re.MULTILINE))


def test_every_concurrent_request_is_answered_once_and_metrics_sum_over_processes(
    two_workers: tuple[subprocess.Popen, Server],
) -> None:
    proc, server = two_workers
    translations = 'route="/v1/translate",status_class="2xx"'
    before_requests = metric(server, "tongyeok_request_duration_seconds_count", translations)
    before_sentences = metric(server, "tongyeok_sentences_total")
    texts = [s for s, _ in copy_pairs(32, seed=59)]
    alone_ = [server.translate([t], beam_size=2).body["translations"] for t in texts]
    with ThreadPoolExecutor(32) as pool:
        replies = list(pool.map(lambda t: server.translate([t], beam_size=2), texts))
    assert [r.status for r in replies] == [200] * len(texts)
    # Each reply is its own request's (no answer lost, doubled or crossed between workers).
    assert [r.body["translations"] for r in replies] == alone_
    _, workers = processes(proc.pid, port_of(server))
    for worker in workers:  # either worker's /metrics: requests counted by both workers,
        with alone(worker, workers):  # sentences by the engine process
            served = metric(server, "tongyeok_request_duration_seconds_count", translations)
            assert served - before_requests == 2 * len(texts)
            sentences = metric(server, "tongyeok_sentences_total") - before_sentences
            assert sentences == 2 * len(texts)


def test_killed_engine_and_worker_are_restarted_and_sigterm_drains_all(
    toy_repository: Path,
) -> None:
    faults = '{"step_sleep_seconds": 0.02}'  # requests long enough to be waiting at the kill
    with serving(toy_repository, workers="2", drain_seconds="30", faults=faults) as (
        proc,
        server,
        output,
    ):
        port = port_of(server)
        wait_for(lambda: len(processes(proc.pid, port)[1]) == 2, 60, "two workers")
        engine, workers = processes(proc.pid, port)
        assert engine is not None

        # The engine dies with requests waiting: each is answered 503, not left hanging.
        waiting = [in_background(lambda: server.translate(slow_texts(seed=60))) for _ in "ab"]
        time.sleep(1.0)
        psutil.Process(engine).kill()
        killed = time.monotonic()
        wait_for(lambda: server.request("GET", "/readyz").status == 503, 5, "/readyz false")
        for thread, _ in waiting:
            thread.join(30)
        answered = time.monotonic() - killed
        replies = [r for _, rs in waiting for r in rs]
        assert [r.status for r in replies] == [503, 503], replies
        assert {r.body["error_type"] for r in replies} == {"engine_unavailable"}
        assert answered < 5, f"waiting requests answered {answered:.1f} s after the kill"
        wait_for(lambda: server.request("GET", "/readyz").status == 200, 60, "/readyz true")
        assert processes(proc.pid, port)[0] not in (None, engine)
        # Each worker takes the new engine's table at its next ping: soon, both answer.
        wait_for(lambda: server.translate(["A dog."]).status == 200, 5, "a translation")
        assert [server.translate(["A dog."]).status for _ in range(4)] == [200] * 4

        # A worker dies: the other keeps answering, and it is replaced.
        psutil.Process(workers[0]).kill()
        assert [server.translate(["A cat."]).status for _ in range(4)] == [200] * 4
        wait_for(
            lambda: (w := processes(proc.pid, port)[1]) and len(w) == 2 and workers[0] not in w,
            60,
            "a new worker",
        )

        # SIGTERM: a request in flight is finished, every process exits, the supervisor with 0.
        children = psutil.Process(proc.pid).children()
        thread, late = in_background(lambda: server.translate(slow_texts(seed=61)[:16]))
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        thread.join(60)
        assert proc.wait(60) == 0
        assert late and late[0].status == 200, late
        _, left = psutil.wait_procs(children, timeout=5)  # the resource tracker: its moment
        assert not left, left
    assert '"event": "died", "process": "engine"' in output[0]
    assert '"event": "died", "process": "worker"' in output[0]


def test_a_reload_happens_in_the_engine_and_every_worker_follows_it(
    toy_repository: Path, tmp_path: Path
) -> None:
    from tests.service.test_reload import package_as, pairs

    repository = tmp_path / "repository"
    repository.mkdir()
    shutil.copytree(toy_repository / "en-de", repository / "en-de")
    settings = {"workers": "2", "repository_poll_seconds": "0"}
    with serving(repository, **settings) as (proc, server, _):
        port = port_of(server)
        wait_for(lambda: len(processes(proc.pid, port)[1]) == 2, 60, "two workers")
        _, workers = processes(proc.pid, port)
        package_as(repository / "en-de", repository / "fr-de", "fr")
        proc.send_signal(signal.SIGHUP)  # passed to the engine process, which reloads
        for worker in workers:
            with alone(worker, workers):
                wait_for(lambda: ("fr", "de") in pairs(server), 10, "fr→de in each worker")
                reply = server.request(
                    "POST", "/v1/translate", {"texts": ["A dog."], "source": "fr", "target": "de"}
                )
                assert reply.status == 200 and reply.body["model"] == "fr-de", reply

        shutil.rmtree(repository / "fr-de")
        with alone(workers[0], workers):  # asked through one worker ...
            reply = server.request("POST", "/v1/admin/reload")
        assert reply.status == 200, reply.body
        assert reply.body["removed"] == ["fr-de"] and reply.body["models"] == ["en-de"]
        with alone(workers[1], workers):  # ... followed by the other at its next ping
            wait_for(lambda: pairs(server) == {("en", "de")}, 5, "fr→de gone in the other")
        home = next(Path(tempfile.gettempdir()).glob(f"{HOME_PREFIX}{proc.pid}-*"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    assert not home.exists()  # its directory, metrics' files and socket removed


def test_a_killed_supervisors_directory_is_removed_by_the_next(tmp_path: Path) -> None:
    """SIGKILL leaves the supervisor no time to remove its directory; the next one does."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = Path(tempfile.gettempdir()) / f"{HOME_PREFIX}{dead.pid}-test"
    live = Path(tempfile.gettempdir()) / f"{HOME_PREFIX}{os.getpid()}-test"
    for home in (stale, live):
        (home / "metrics").mkdir(parents=True, exist_ok=True)
    try:
        remove_stale_homes()
        assert not stale.exists() and live.exists()
    finally:
        shutil.rmtree(live, ignore_errors=True)
