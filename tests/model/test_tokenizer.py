"""SentencePiece round trips are lossless, and a foreign file is refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract.tokenizer import EOS_ID, PAD_ID, THREADED_ENCODE_MIN, UNK_ID, Tokenizer

CORPUS = [
    "Two young, White males are outside near many bushes.",
    "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche.",
    "Deux jeunes hommes blancs sont dehors près de nombreux buissons.",
    "A little girl climbing into a wooden playhouse.",
    "Ein kleines Mädchen klettert in ein Spielhaus aus Holz.",
    "Une petite fille grimpe dans une maisonnette en bois.",
    "Several men in hard hats are operating a giant pulley system.",
    "Mehrere Männer mit Schutzhelmen bedienen ein Antriebsradsystem.",
    "Plusieurs hommes en casque font fonctionner un système de poulies géant.",
]

UNSEEN = [
    "Ein Mann, der über die Straße läuft – schnell!",
    "Où est la bibliothèque ? « Là-bas », dit-elle. Ça coûte 12,50 €.",
    "Straße, Größe, Äpfel, Öl, Übermut, œuvre, naïve, façade",
    "  leading and trailing spaces, double  spaces\tand a tab  ",
    "통역 and emoji 🐕 and 中文 stay byte-exact",
    "",
]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.train(CORPUS * 20, vocab_size=400)


@pytest.mark.parametrize("text", CORPUS + UNSEEN)
def test_round_trip_is_lossless(tokenizer: Tokenizer, text: str) -> None:
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_special_ids_and_batch_encoding(tokenizer: Tokenizer) -> None:
    assert (PAD_ID, UNK_ID, EOS_ID) == (0, 1, 2)
    ids = tokenizer.encode_batch(CORPUS[:2])
    assert ids == [tokenizer.encode(CORPUS[0]), tokenizer.encode(CORPUS[1])]
    assert all(i > EOS_ID for row in ids for i in row)  # specials never come from text
    assert tokenizer.decode(ids[0] + [EOS_ID, PAD_ID]) == CORPUS[0]  # trailing specials dropped


def test_batch_encoding_is_the_same_singly_and_on_sentencepieces_thread_pool(
    tokenizer: Tokenizer,
) -> None:
    texts = [f"{i} dogs run, {'very ' * (i % 7)}fast. ☃" for i in range(THREADED_ENCODE_MIN + 5)]
    singly = [tokenizer.encode(t) for t in texts]
    assert tokenizer.encode_batch(texts) == singly  # the pooled path
    assert tokenizer.encode_batch(texts[:3]) == singly[:3]  # one by one


def test_save_and_load(tokenizer: Tokenizer, tmp_path: Path) -> None:
    tokenizer.save(tmp_path / "spm.model")
    loaded = Tokenizer.load(tmp_path / "spm.model")
    assert loaded.vocab_size == tokenizer.vocab_size
    assert loaded.encode(UNSEEN[1]) == tokenizer.encode(UNSEEN[1])


def test_foreign_or_missing_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"this is not a sentencepiece model")
    with pytest.raises(ValueError, match=r"bad\.model: not a SentencePiece model"):
        Tokenizer.load(bad)
    with pytest.raises(FileNotFoundError, match="cannot read tokenizer"):
        Tokenizer.load(tmp_path / "missing.model")
