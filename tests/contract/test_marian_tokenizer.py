"""Our Marian tokenizer gives exactly MarianTokenizer's ids and texts (Korean included)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bench.marian_dirs import EN, KO, MIXED
from contract.marian import MarianTokenizer
from contract.tokenizers import TargetTokenizer

SPECIAL_IN_TEXT = ["x </s> y", "<unk>", "a<pad>b", "끝</s>", ">>kor<<</s>"]


def ours(directory: Path) -> MarianTokenizer:
    target_vocab = directory / "target_vocab.json"
    return MarianTokenizer(
        directory / "source.spm",
        directory / "target.spm",
        directory / "vocab.json",
        target_vocab if target_vocab.exists() else None,
    )


def theirs(directory: Path):  # -> transformers.MarianTokenizer
    from transformers import MarianTokenizer as HFMarianTokenizer

    return HFMarianTokenizer.from_pretrained(str(directory))


@pytest.mark.parametrize("variant", ["ko-en", "en-mul", "en-de-gelu"])
def test_ids_identical_to_marian_tokenizer(marian_dirs: dict[str, Path], variant: str) -> None:
    mine, hf = ours(marian_dirs[variant]), theirs(marian_dirs[variant])
    texts = [*MIXED, *KO, *EN, *SPECIAL_IN_TEXT]
    expected = [hf(t)["input_ids"] for t in texts]
    assert [ids + [mine.eos_id] for ids in mine.encode_batch(texts)] == expected
    # The texts do exercise what they are here for: unknown pieces, codes, Korean pieces.
    flat = [i for ids in expected for i in ids]
    assert mine.unk_id in flat
    assert any(p.startswith("\u2581") and "\uac00" <= p[-1] <= "\ud7a3" for p in mine.pieces(KO[0]))


def test_target_token_as_transformers_users_write_it(marian_dirs: dict[str, Path]) -> None:
    """A bound target writes ``>>kor<<`` in front, as ``tokenizer(">>kor<< " + text)`` does."""
    directory = marian_dirs["en-mul"]
    bound, hf = TargetTokenizer(ours(directory), ">>kor<<"), theirs(directory)
    texts = [*EN, *MIXED]
    expected = [hf(f">>kor<< {t}")["input_ids"] for t in texts]
    got = [ids + [bound.base.eos_id] for ids in bound.encode_batch(texts)]
    assert got == expected
    assert all(ids[0] == bound.base.encoder[">>kor<<"] for ids in got)


@pytest.mark.parametrize("variant", ["ko-en", "en-mul"])
def test_decode_identical_to_marian_tokenizer(marian_dirs: dict[str, Path], variant: str) -> None:
    mine, hf = ours(marian_dirs[variant]), theirs(marian_dirs[variant])
    rng = random.Random(0)
    size = max(mine.decoder) + 1
    sequences = [[rng.randrange(size) for _ in range(rng.randrange(12))] for _ in range(200)]
    sequences.append([mine.eos_id, mine.unk_id])
    assert [mine.decode(s) for s in sequences] == [
        hf.decode(s, skip_special_tokens=True) for s in sequences
    ]
    # Round trip through the target side of a shared vocabulary.
    if variant == "ko-en":
        assert [mine.decode(mine.encode(t)) for t in KO] == KO


def test_refuses_a_vocabulary_without_special_pieces(
    marian_dirs: dict[str, Path], tmp_path: Path
) -> None:
    directory = marian_dirs["ko-en"]
    (tmp_path / "vocab.json").write_text('{"a": 0, "<unk>": 1}', encoding="utf-8")
    with pytest.raises(ValueError, match="'<pad>'"):
        MarianTokenizer(directory / "source.spm", directory / "target.spm", tmp_path / "vocab.json")
