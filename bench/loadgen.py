"""A light HTTP load generator, run as its own process so clients do not steal the server's GIL.

Two shapes of load, one sentence per ``/v1/translate`` request drawn from real text:

- closed loop: N clients, each sends its next request when the previous one is answered;
- open loop: requests arrive as a Poisson process at a fixed rate whatever the server does (the
  MLPerf server scenario); latency counts from the scheduled arrival, so a server that falls behind
  is charged for the queueing it causes (no coordinated omission).

asyncio streams with keep-alive connections and a minimal HTTP/1.1 exchange: a thread per client
with http.client costs several times the CPU, which on a 2-core machine is CPU the server loses.

    python -m bench.loadgen --port 8000 --sentences s.json --mode open --rate 80 --seconds 30

prints one JSON object: ``{"samples": [[seconds, words, status], ...], "duration": s}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Sequence


class Connection:
    """One keep-alive HTTP/1.1 connection on loopback."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: str | None
    ) -> None:
        self.reader, self.writer = reader, writer
        self.auth = f"Authorization: Bearer {key}\r\n" if key else ""

    @classmethod
    async def open(cls, host: str, port: int, key: str | None = None) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, key)

    async def post(self, path: str, body: bytes) -> int:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: loadgen\r\nContent-Type: application/json\r\n"
            f"{self.auth}Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status = int((await self.reader.readline()).split()[1])
        length, chunked = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if not chunked:
            await self.reader.readexactly(length)
            return status
        while size := int((await self.reader.readline()).strip(), 16):
            await self.reader.readexactly(size + 2)
        await self.reader.readline()
        return status

    def close(self) -> None:
        self.writer.close()


def request_body(text: str, pair: tuple[str, str], beam: int) -> bytes:
    payload = {"texts": [text], "source": pair[0], "target": pair[1], "beam_size": beam}
    return json.dumps(payload).encode()


Sample = tuple[float, int, int]  # seconds, words, HTTP status (0: connection failed)


async def closed_loop(
    port: int,
    sentences: Sequence[str],
    clients: int,
    seconds: float,
    pair: tuple[str, str],
    beam: int,
    seed: int = 0,
    host: str = "127.0.0.1",
    key: str | None = None,
) -> list[Sample]:
    samples: list[Sample] = []
    stop_at = time.perf_counter() + seconds

    async def client(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        conn = await Connection.open(host, port, key)
        try:
            while time.perf_counter() < stop_at:
                text = rng.choice(sentences)
                started = time.perf_counter()
                status = await conn.post("/v1/translate", request_body(text, pair, beam))
                samples.append((time.perf_counter() - started, len(text.split()), status))
        finally:
            conn.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    return samples


async def open_loop(
    port: int,
    sentences: Sequence[str],
    rate: float,
    seconds: float,
    pair: tuple[str, str],
    beam: int,
    seed: int = 0,
    host: str = "127.0.0.1",
    key: str | None = None,
) -> list[Sample]:
    rng = random.Random(seed)
    idle: list[Connection] = []
    samples: list[Sample] = []

    async def one(scheduled: float, text: str) -> None:
        body = request_body(text, pair, beam)
        conn = idle.pop() if idle else None
        status = 0
        for _attempt in range(2):
            try:
                conn = conn or await Connection.open(host, port, key)
                status = await conn.post("/v1/translate", body)
                break
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                # A kept-alive connection the server closed while idle (uvicorn: after 5 s) is
                # found dead only when used: retry once on a new one, as HTTP clients do.
                if conn:
                    conn.close()
                conn = None
        samples.append((time.perf_counter() - scheduled, len(text.split()), status))
        if conn and status:
            idle.append(conn)

    tasks = []
    start = time.perf_counter()
    arrival = start
    while (arrival := arrival + rng.expovariate(rate)) < start + seconds:
        delay = arrival - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(arrival, rng.choice(sentences))))
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.close()
    return samples


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sentences", required=True, help="a JSON list of source sentences")
    p.add_argument("--mode", choices=["closed", "open"], default="closed")
    p.add_argument("--clients", type=int, default=32, help="closed loop: concurrent clients")
    p.add_argument("--rate", type=float, default=50.0, help="open loop: requests per second")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--beam-size", type=int, default=1)
    p.add_argument("--pair", nargs=2, default=["en", "de"], metavar=("SOURCE", "TARGET"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--key", help="API key sent with every request (a server with keys)")
    args = p.parse_args(argv)
    with open(args.sentences) as f:
        sentences = json.load(f)
    pair = (args.pair[0], args.pair[1])
    started = time.perf_counter()
    if args.mode == "closed":
        shape = (args.clients, args.seconds, pair, args.beam_size, args.seed, args.host, args.key)
        run = closed_loop(args.port, sentences, *shape)
    else:
        shape = (args.rate, args.seconds, pair, args.beam_size, args.seed, args.host, args.key)
        run = open_loop(args.port, sentences, *shape)
    samples = asyncio.run(run)
    json.dump({"samples": samples, "duration": time.perf_counter() - started}, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
