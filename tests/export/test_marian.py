"""Imported Marian models compute what MarianMTModel computes, in PyTorch and in the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.marian_dirs import EN, KO, MIXED
from contract.options import SearchOptions
from contract.package import load_package_config
from contract.tokenizers import for_target, load_tokenizer
from export.marian import load_marian
from service.decoding.engine import Engine
from service.decoding.translator import Translator
from service.runtime.sessions import PackageRuntime

MAX_NEW = 24  # short enough that some outputs hit the limit, long enough that others end first
TEXTS = {"ko-en": [*KO, *MIXED[2:9]], "en-mul": [*EN, *MIXED[:2], *MIXED[5:9]]}


@pytest.mark.parametrize("variant", ["ko-en", "en-mul", "en-de-gelu"])
def test_pytorch_logits_match_marian(marian_dirs: dict[str, Path], variant: str) -> None:
    from transformers import MarianMTModel

    source = load_marian(marian_dirs[variant])
    theirs = MarianMTModel.from_pretrained(str(marian_dirs[variant])).eval()
    cfg = source.model.cfg
    g = torch.Generator().manual_seed(1)
    src = torch.randint(0, cfg.vocab_size - 1, (3, 11), generator=g)
    src[1, 7:] = cfg.pad_id
    src[2, 3:] = cfg.pad_id
    tgt = torch.randint(0, cfg.output_vocab_size - 1, (3, 9), generator=g)
    tgt[:, 0] = cfg.decoder_start_id
    mask = src.ne(cfg.pad_id).long()

    def both() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            ours = source.model.project(source.model(src, tgt))
            return ours, theirs(input_ids=src, attention_mask=mask, decoder_input_ids=tgt).logits

    ours, expected = both()
    scale = float(expected.abs().max())
    assert scale > 1.0  # not a vacuous comparison of near-zero logits
    # float32: within 1e-5 of the logits' scale (summation order differs: q is scaled before
    # q K^T in ours, after it in Transformers).
    assert (ours - expected).abs().max() <= 1e-5 * scale
    source.model.double(), theirs.double()  # in float64 the mapping itself is exact
    ours, expected = both()
    assert (ours - expected).abs().max() <= 1e-10


def test_variants_are_mapped(marian_dirs: dict[str, Path]) -> None:
    ko_en = load_marian(marian_dirs["ko-en"]).model.cfg
    assert (ko_en.activation, ko_en.scale_embedding, ko_en.eos_id) == ("swish", True, 0)
    assert ko_en.pad_id == ko_en.vocab_size - 1 and ko_en.suppress_pad
    multi = load_marian(marian_dirs["en-mul"])
    assert (multi.model.cfg.share_embeddings, multi.model.cfg.eos_id) == (False, 1)
    assert multi.target_tokens == {"de": ">>deu<<", "ja": ">>jpn<<", "ko": ">>kor<<"}
    assert sorted(multi.files) == ["source.spm", "target.spm", "target_vocab.json", "vocab.json"]
    gelu = load_marian(marian_dirs["en-de-gelu"]).model
    assert (gelu.cfg.activation, gelu.cfg.scale_embedding, gelu.cfg.tie_output) == (
        "gelu",
        False,
        False,
    )
    assert gelu.lm_head is not None


def generate(directory: Path, texts: list[str], beam: int, prefix: str = "") -> list[list[int]]:
    """MarianMTModel.generate with the settings the engine is given (pad banned, as OPUS-MT's
    generation config does; no forced EOS at the limit, as the engine cuts there)."""
    from transformers import MarianMTModel
    from transformers import MarianTokenizer as HFMarianTokenizer

    model = MarianMTModel.from_pretrained(str(directory)).eval()
    tokenizer = HFMarianTokenizer.from_pretrained(str(directory))
    out = []
    for text in texts:
        inputs = tokenizer([f"{prefix} {text}" if prefix else text], return_tensors="pt")
        ids = model.generate(
            **inputs,
            num_beams=beam,
            max_new_tokens=MAX_NEW,
            early_stopping=True,
            length_penalty=1.0,
            do_sample=False,
            forced_eos_token_id=None,
            bad_words_ids=[[model.config.pad_token_id]],
        )
        out.append(ids[0, 1:].tolist())  # without the decoder start token
    return out


@pytest.mark.parametrize(
    ("variant", "target"), [("ko-en", "en"), ("en-mul", "ko"), ("en-mul", "ja")]
)
def test_onnx_engine_matches_generate(
    marian_dirs: dict[str, Path], marian_packages: dict[str, Path], variant: str, target: str
) -> None:
    config = load_package_config(marian_packages[variant])
    tokenizer = for_target(load_tokenizer(config), config, target)
    texts = TEXTS[variant]
    engine = Engine(PackageRuntime(config))
    prefix = config.target_tokens.get(target, "")
    for beam in (1, 4):
        options = SearchOptions(beam_size=beam, max_length_a=0, max_length_b=MAX_NEW)
        ours = [h[0].tokens for h in engine.run(tokenizer.encode_batch(texts), options)]
        expected = generate(marian_dirs[variant], texts, beam, prefix)
        assert ours == expected, f"beam {beam}"
        lengths = {len(t) for t in expected}  # both endings compared: EOS and the length limit
        assert MAX_NEW in lengths and min(lengths) < MAX_NEW, lengths


def test_ctranslate2_translates_identically(
    marian_dirs: dict[str, Path], marian_packages: dict[str, Path], tmp_path: Path
) -> None:
    """``ct2-transformers-converter`` of the same directory: the same greedy outputs."""
    import ctranslate2

    converter = Path(sys.executable).parent / "ct2-transformers-converter"
    subprocess.run(
        [
            str(converter),
            "--model",
            str(marian_dirs["ko-en"]),
            "--output_dir",
            str(tmp_path / "ct2"),
        ],
        check=True,
        capture_output=True,
    )
    config = load_package_config(marian_packages["ko-en"])
    tokenizer = load_tokenizer(config)
    texts = TEXTS["ko-en"]
    options = SearchOptions(beam_size=1, max_length_a=0, max_length_b=MAX_NEW)
    ours = Engine(PackageRuntime(config)).run(tokenizer.encode_batch(texts), options)
    translator = ctranslate2.Translator(str(tmp_path / "ct2"), device="cpu", intra_threads=1)
    pieces = [tokenizer.pieces(t) + ["</s>"] for t in texts]
    theirs = translator.translate_batch(pieces, beam_size=1, max_decoding_length=MAX_NEW)
    expected = [[tokenizer.piece(i) for i in h[0].tokens if i != config.eos_id] for h in ours]
    assert [r.hypotheses[0] for r in theirs] == expected


def test_round_trip_ours_export_hf_import(
    toy_checkpoint: Path, toy_repository: Path, tmp_path: Path
) -> None:
    """ours -> export-hf -> import: the imported package translates as our own package does."""
    from export.hf import export_hf
    from tests.conftest import copy_pairs
    from tongyeok.cli import main

    hf_dir = export_hf(toy_checkpoint, tmp_path / "hf")
    assert main(["import", str(hf_dir), "--out", str(tmp_path / "imported")]) == 0
    texts = [s for s, _ in copy_pairs(12, seed=5)]
    imported, ours = Translator(tmp_path / "imported"), Translator(toy_repository / "en-de")
    assert load_package_config(tmp_path / "imported").pairs == [("en", "de")]
    for beam in (1, 4):
        options = SearchOptions(beam_size=beam)
        assert imported.translate(texts, options) == ours.translate(texts, options)


@pytest.mark.parametrize(("variant", "target"), [("ko-en", "en"), ("en-mul", "ko")])
def test_an_imported_model_aligns_words_through_its_own_tokenizer(
    marian_packages: dict[str, Path], variant: str, target: str
) -> None:
    """Tags in text for a Marian model are placed by its aligner, as for ours: the word alignment
    has a row per target word and a column per source word (the ``>>kor<<`` token, the source's
    EOS and subword pieces folded away), each row a share of the attention."""
    from service.decoding.alignment import align_words, words
    from service.decoding.translator import Translator

    translator = Translator(marian_packages[variant], target=target)
    assert translator.runtime.aligner is not None
    source = "a dog runs on the beach" if variant == "en-mul" else "개가 해변을 달린다"
    translation = "some words the model wrote"  # random weights: any target text aligns
    (alignment,) = align_words(
        translator.runtime, translator.tokenizer, [(source, translation)], 500
    )
    assert alignment is not None
    assert alignment.weights.shape == (len(words(translation)), len(words(source)))
    assert (alignment.weights >= 0).all() and (alignment.weights.sum(axis=1) <= 1 + 1e-5).all()
    assert alignment.weights.sum() > 0


def test_an_imported_model_takes_a_glossary_term_where_its_source_term_went(
    marian_packages: dict[str, Path],
) -> None:
    """Issue 36: glossaries work for imported Marian models too: the term's target ids are in
    the output (random weights: what the model wrote around it is noise)."""
    from service.decoding.alignment import align_words
    from service.decoding.translator import Translator
    from service.usecase.glossary import Terms, apply_terms

    translator = Translator(marian_packages["en-mul"], target="ko")
    source = "a dog runs on the beach"
    translation = translator.translate([source])[0]
    terms = Terms({"dog": "강아지"})
    matches = terms.find(source)
    assert [(m.first, m.last) for m in matches] == [(1, 1)]
    (alignment,) = align_words(
        translator.runtime, translator.tokenizer, [(source, translation)], 500
    )
    assert translation.split() and alignment is not None  # the fixture's model writes words
    out = apply_terms(translation, matches, alignment)
    term_ids = translator.tokenizer.encode_target("강아지")
    out_ids = translator.tokenizer.encode_target(out)
    assert any(out_ids[i : i + len(term_ids)] == term_ids for i in range(len(out_ids)))
