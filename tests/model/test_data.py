"""Parallel-text reading: good files load, bad ones fail with the file and line at fault."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from model.data import (
    DataError,
    Example,
    build_examples,
    collate,
    read_lines,
    read_parallel,
    token_batches,
)


def write(path: Path, text: str | bytes) -> Path:
    data = text.encode("utf-8") if isinstance(text, str) else text
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def test_plain_and_gzip_files_read_alike(tmp_path: Path) -> None:
    text = "A dog runs.\r\nZwei Hunde.\n"
    assert read_lines(write(tmp_path / "a.txt", text)) == ["A dog runs.", "Zwei Hunde."]
    assert read_lines(write(tmp_path / "a.txt.gz", text)) == ["A dog runs.", "Zwei Hunde."]


def test_parallel_files_and_tsv(tmp_path: Path) -> None:
    src = write(tmp_path / "s.en", "one\ntwo\n")
    tgt = write(tmp_path / "s.de.gz", "eins\nzwei\n")
    assert read_parallel(src, tgt) == [("one", "eins"), ("two", "zwei")]
    tsv = write(tmp_path / "s.tsv", "one\teins\ntwo\tzwei\n")
    assert read_parallel(tsv) == [("one", "eins"), ("two", "zwei")]


def test_mismatched_line_counts(tmp_path: Path) -> None:
    src = write(tmp_path / "s.en", "one\ntwo\nthree\n")
    tgt = write(tmp_path / "s.de", "eins\nzwei\n")
    with pytest.raises(DataError, match=r"s\.en has 3 lines, .*s\.de has 2"):
        read_parallel(src, tgt)


def test_undecodable_bytes_name_file_and_line(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.de.gz", b"gut\nauch gut\nkaputt \xff hier\n")
    with pytest.raises(DataError, match=r"bad\.de\.gz:3: not valid UTF-8 \(byte 0xff"):
        read_lines(bad)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"empty\.txt: file is empty"):
        read_lines(write(tmp_path / "empty.txt", ""))
    with pytest.raises(DataError, match="no such file"):
        read_lines(tmp_path / "nope.txt")


def test_tsv_with_wrong_columns(tmp_path: Path) -> None:
    tsv = write(tmp_path / "x.tsv", "a\tb\nonly one column\n")
    with pytest.raises(DataError, match=r"x\.tsv:2: expected 2 tab-separated columns, found 1"):
        read_parallel(tsv)


def test_filtering_counts_empty_and_overlong() -> None:
    pairs = [("a b", "c d"), ("", "x"), ("y", "   "), ("a " * 10, "b")]
    examples, report = build_examples(pairs, lambda s: [5] * len(s.split()), eos_id=2, max_tokens=5)
    assert (report.kept, report.empty, report.too_long) == (1, 2, 1)
    assert examples == [Example([5, 5, 2], [5, 5, 2])]
    assert str(report) == "kept 1 pairs, dropped 2 empty and 1 overlong"


def test_token_batches_respect_budget_and_are_reproducible() -> None:
    examples = [Example([5] * (i % 17 + 1), [6] * (i % 13 + 1)) for i in range(500)]
    batches = token_batches(examples, max_tokens=64, seed=3, epoch=1)
    assert sorted(i for b in batches for i in b) == list(range(500))  # every example, once
    for b in batches:
        longest = max(max(len(examples[i].src), len(examples[i].tgt) + 1) for i in b)
        assert longest * len(b) <= 64 or len(b) == 1
    assert batches == token_batches(examples, max_tokens=64, seed=3, epoch=1)
    assert batches != token_batches(examples, max_tokens=64, seed=3, epoch=2)


def test_collate_shifts_target_after_the_start_token() -> None:
    batch = collate([Example([7, 8, 2], [9, 2]), Example([7, 2], [9, 10, 2])], pad_id=0, start_id=0)
    assert batch.src.tolist() == [[7, 8, 2], [7, 2, 0]]
    assert batch.tgt_in.tolist() == [[0, 9, 0], [0, 9, 10]]
    assert batch.tgt_out.tolist() == [[9, 2, 0], [9, 10, 2]]
    assert batch.n_tokens == 5
