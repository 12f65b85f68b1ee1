"""Text files of one sentence per line, read torch-free (``tongyeok evaluate`` on the ONNX engine
imports no torch); malformed ones fail with the file and line at fault."""

from __future__ import annotations

import gzip
from pathlib import Path


class DataError(ValueError):
    """Malformed training or evaluation data; the message names the file and line."""


def read_lines(path: str | Path) -> list[str]:
    """Lines of a UTF-8 text file, plain or ``.gz``, without their line endings."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    if not text:
        raise DataError(f"{path}: file is empty")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]
