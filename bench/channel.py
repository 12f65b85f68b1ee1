"""What one job costs between an HTTP worker and the engine process, per channel.

``python -m bench.channel``: a worker process sends a one-sentence job (20 token ids, the
options) and waits for its answer (beam-4 n-best of 20 ids each) from an echoing engine process,
over (a) ZeroMQ DEALER/ROUTER on an ipc socket with msgpack bodies, the channel the service
uses (service/scheduling/channel.py), and (b) a multiprocessing Pipe with pickle. Round trips one
at a time give the latency a request pays; ``--window`` jobs in flight give the rate one worker
can push. No model runs: this is the channel's own cost.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from contract.options import Hypothesis, SearchOptions
from service.scheduling import channel
from service.scheduling.channel import Submit

SOURCE = list(range(5, 25))
ANSWER = [[Hypothesis(list(range(30, 50)), -0.5, "eos") for _ in range(4)]]


def zmq_engine(address: str) -> None:
    import zmq

    context = zmq.Context()
    socket = context.socket(zmq.ROUTER)
    socket.bind(address)
    while True:
        worker, kind, body = socket.recv_multipart()
        if kind == b"stop":
            break
        job = Submit.decode(body)
        socket.send_multipart([worker, channel.DONE, channel.encode_results(job.id, ANSWER)])
    socket.close(linger=0)
    context.term()


def pipe_engine(connection: multiprocessing.connection.Connection) -> None:
    while True:
        message = connection.recv()
        if message is None:
            break
        connection.send((message[0], ANSWER))


def run(send: Callable[[int], None], receive: Callable[[], None], jobs: int, window: int) -> float:
    """Seconds for ``jobs`` round trips with at most ``window`` in flight."""
    started, sent, done = time.perf_counter(), 0, 0
    while done < jobs:
        while sent < jobs and sent - done < window:
            send(sent)
            sent += 1
        receive()
        done += 1
    return time.perf_counter() - started


def over_zmq(jobs: int, window: int) -> float:
    import zmq

    address = f"ipc://{Path(tempfile.mkdtemp()) / 'engine.ipc'}"
    engine = multiprocessing.get_context("spawn").Process(target=zmq_engine, args=(address,))
    engine.start()
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.connect(address)
    options = SearchOptions()

    def send(i: int) -> None:
        job = Submit(i, "en-de", [SOURCE], options, time.monotonic() + 10, "anonymous")
        socket.send_multipart([channel.SUBMIT, job.encode()])

    def receive() -> None:
        _, body = socket.recv_multipart()
        channel.decode_results(body)

    run(send, receive, 1000, window)  # warm-up: connection, imports
    seconds = run(send, receive, jobs, window)
    socket.send_multipart([b"stop", b""])
    engine.join(10)
    socket.close(linger=0)
    context.term()
    return seconds


def over_pipe(jobs: int, window: int) -> float:
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    engine = spawn.Process(target=pipe_engine, args=(theirs,))
    engine.start()
    options = SearchOptions()

    def send(i: int) -> None:
        ours.send((i, "en-de", [SOURCE], options, time.monotonic() + 10, "anonymous"))

    def receive() -> None:
        ours.recv()

    run(send, receive, 1000, window)
    seconds = run(send, receive, jobs, window)
    ours.send(None)
    engine.join(10)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=64, help="jobs in flight (default 64)")
    args = parser.parse_args()
    print(f"| channel | one at a time: µs per round trip | {args.window} in flight: jobs/s |")
    print("| --- | ---: | ---: |")
    for name, measure in (("ZeroMQ ipc + msgpack", over_zmq), ("Pipe + pickle", over_pipe)):
        alone = measure(args.jobs, 1) / args.jobs * 1e6
        flowing = args.jobs / measure(args.jobs, args.window)
        print(f"| {name} | {alone:.0f} | {flowing:,.0f} |")


if __name__ == "__main__":
    main()
