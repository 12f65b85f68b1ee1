"""The messages between HTTP workers and the engine process, and how they are framed.

A worker's DEALER socket sends ``[kind, body]``; the engine's ROUTER receives ``[worker, kind,
body]`` and answers ``[worker, kind, body]``. Bodies are msgpack: token ids, options, hypotheses
and errors are plain lists, numbers and strings, so nothing is unpickled from another process
(a pickle would run whatever code it names) and a request costs one small buffer each way
(docs/decisions.md #58 has the measured cost).

Kinds, worker -> engine: ``ping`` (its answer ``pong`` carries the engine's incarnation and its
routing table's fingerprint: how a worker sees the engine die, restart or reload), ``submit`` and
``cancel`` of a job (answered ``done`` or ``failed``, once), and ``call`` of a method by name
(``table``, ``align``, ``reload``; answered ``reply``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np

from contract.options import Hypothesis, SearchOptions
from service import errors
from service.errors import EngineFailure, ServiceError

# A worker pings the engine this often; a side silent for SILENCE_SECONDS counts as dead (the
# worker answers its waiting requests 503; the engine drops the dead worker's jobs). Each loop
# answers a ping between two messages; decoders run in other threads (ONNX Runtime releases
# the GIL), so a live engine is never silent that long.
PING_SECONDS = 0.25
SILENCE_SECONDS = 2.0

PING, PONG, SUBMIT, CANCEL = b"ping", b"pong", b"submit", b"cancel"
DONE, FAILED, CALL, REPLY = b"done", b"failed", b"call", b"reply"


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def unpack(body: bytes) -> Any:
    # Lists, not tuples: they are what the receivers index; strict maps keep keys as str.
    return msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=True)


@dataclasses.dataclass(frozen=True)
class Submit:
    """One job for the engine: the worker's id for it, the model by name, the token ids of its
    sentences, the options, its deadline (``time.monotonic()``: CLOCK_MONOTONIC is one clock for
    every process of a Linux machine) and whose share of the batch it takes."""

    id: int
    model: str
    sources: list[list[int]]
    options: SearchOptions
    deadline: float
    client: str

    def encode(self) -> bytes:
        options = dataclasses.asdict(self.options)
        return pack([self.id, self.model, self.sources, options, self.deadline, self.client])

    @classmethod
    def decode(cls, body: bytes) -> Submit:
        id_, model, sources, options, deadline, client = unpack(body)
        return cls(id_, model, sources, SearchOptions(**options), deadline, client)


def encode_results(job_id: int, results: Sequence[Sequence[Hypothesis]]) -> bytes:
    """A job's n-best lists, one per sentence, as ``[tokens, score, finish_reason]`` triples."""
    rows = [[[h.tokens, h.score, h.finish_reason] for h in hyps] for hyps in results]
    return pack([job_id, rows])


def decode_results(body: bytes) -> tuple[int, list[list[Hypothesis]]]:
    job_id, results = unpack(body)
    return job_id, [[Hypothesis(t, s, r) for t, s, r in hyps] for hyps in results]


# Errors travel by class name (Retired and ShuttingDown share an error_type, and the use case
# routes a Retired job again): every ServiceError of service/errors.py, nothing else.
ERRORS: dict[str, type[ServiceError]] = {
    name: value
    for name, value in vars(errors).items()
    if isinstance(value, type) and issubclass(value, ServiceError)
}


def encode_error(job_id: int, error: BaseException) -> bytes:
    if not isinstance(error, ServiceError):  # a bug in the engine process: its requests fail
        error = EngineFailure(f"translation failed: {type(error).__name__}")
    return pack([job_id, type(error).__name__, error.message])


def decode_error(body: bytes) -> tuple[int, ServiceError]:
    job_id, name, message = unpack(body)
    return job_id, ERRORS.get(name, EngineFailure)(message)


def encode_reply(call_id: int, value: Any = None, error: BaseException | None = None) -> bytes:
    """A call's answer: ``[id, None, value]``, or ``[id, error class, message]``."""
    if error is None:
        return pack([call_id, None, value])
    _, name, message = unpack(encode_error(call_id, error))
    return pack([call_id, name, message])


def decode_reply(body: bytes) -> tuple[int, Any, ServiceError | None]:
    call_id, name, value = unpack(body)
    return call_id, value, None if name is None else ERRORS.get(name, EngineFailure)(value)


def encode_matrices(matrices: Sequence[np.ndarray | None]) -> list[Any]:
    """Word alignments as ``[rows, columns, float32 bytes]`` (None where there is none)."""
    return [
        None if m is None else [m.shape[0], m.shape[1], m.astype(np.float32).tobytes()]
        for m in matrices
    ]


def decode_matrices(values: list[Any]) -> list[np.ndarray | None]:
    return [
        None if v is None else np.frombuffer(v[2], dtype=np.float32).reshape(v[0], v[1])
        for v in values
    ]
