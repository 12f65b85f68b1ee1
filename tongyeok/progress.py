"""Progress of the long commands, on stderr only: a bar with an ETA over the lines translated, and
one status line per step of an export.

Shown when stderr is a terminal, or when asked with ``--progress`` (``--no-progress`` hides it);
stdout carries only a command's own output (translations, scores), so a pipe stays clean. The bar
is tqdm's (the [train] extra installs it); where tqdm is absent, as in the serving image, there is
no bar and an explicit ``--progress`` says so in one line.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

Translate = Callable[[list[str]], list[str]]


def add_progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress on stderr, with an ETA (default: shown when stderr is a terminal)",
    )


def wanted(flag: bool | None, stream: TextIO | None = None) -> bool:
    """``flag`` if given (--progress / --no-progress), else whether ``stream`` is a terminal."""
    if flag is not None:
        return flag
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


class Steps:
    """One status line per step as it starts, and the time of each at the end:
    ``tongyeok export [2/3] writing the int8 package ...`` then ``... done in 37.1 s (...)``."""

    def __init__(self, command: str, total: int, enabled: bool, stream: TextIO | None = None):
        self.command, self.total, self.enabled = command, total, enabled
        self.stream = stream or sys.stderr
        self.times: list[tuple[str, float]] = []

    @contextmanager
    def step(self, text: str, short: str) -> Iterator[None]:
        """Run a step: ``text`` says what it does, ``short`` names it in the summary."""
        if self.enabled:
            number = f"[{len(self.times) + 1}/{self.total}]"
            print(f"tongyeok {self.command} {number} {text} ...", file=self.stream, flush=True)
        started = time.perf_counter()
        yield
        self.times.append((short, time.perf_counter() - started))

    def summary(self) -> None:
        if self.enabled and self.times:
            total = sum(seconds for _, seconds in self.times)
            parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.times)
            print(
                f"tongyeok {self.command}: done in {total:.1f} s ({parts})",
                file=self.stream,
                flush=True,
            )


def in_chunks(
    translate: Translate,
    chunk: int,
    command: str,
    show: bool,
    stream: TextIO | None = None,
) -> Translate:
    """``translate`` over the lines sorted by length (as the engines batch them), ``chunk`` at a
    time, results in input order; with ``show``, a bar of the lines done and the ETA moving after
    each chunk. Chunked whether shown or not: an int8 package's numbers depend on which sentences
    share a batch (activations are quantized per batch), so a score must not depend on whether
    stderr is a terminal."""
    stream = stream or sys.stderr
    make_bar: Any = None
    if show:
        try:
            import tqdm

            make_bar = tqdm.tqdm
        except ModuleNotFoundError:
            print(f"tongyeok {command}: no progress bar without tqdm", file=stream)

    def translated(texts: list[str]) -> list[str]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = [""] * len(texts)
        bar = None
        if make_bar is not None:  # each chunk's update shown: they are seconds apart
            bar = make_bar(total=len(texts), unit="line", file=stream, desc=command, mininterval=0)
        try:
            for start in range(0, len(order), chunk):
                rows: Sequence[int] = order[start : start + chunk]
                for i, line in zip(rows, translate([texts[i] for i in rows]), strict=True):
                    out[i] = line
                if bar is not None:
                    bar.update(len(rows))
        finally:
            if bar is not None:
                bar.close()
        return out

    return translated
