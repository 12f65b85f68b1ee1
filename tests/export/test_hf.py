"""The same weights in Transformers (MarianMTModel) and CTranslate2 compute the same thing."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from contract.options import SearchOptions
from contract.variants import ACTIVATIONS
from export.hf import export_hf, hf_to_ours, to_marian
from model.checkpoint import Checkpoint, load_checkpoint
from model.translate import translate_ids
from tests.conftest import copy_pairs


@pytest.fixture(scope="module")
def hf_dir(toy_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_hf(toy_checkpoint, tmp_path_factory.mktemp("hf") / "marian")


def test_transformers_logits_match_ours(toy_checkpoint: Path, hf_dir: Path) -> None:
    from transformers import MarianMTModel

    ckpt = load_checkpoint(toy_checkpoint)
    theirs = MarianMTModel.from_pretrained(str(hf_dir)).eval()
    got, expected = both_logits(ckpt, theirs)
    assert (got - expected).abs().max() <= 1e-5


def test_the_checkpoints_activation_and_embedding_scale_are_written(toy_checkpoint: Path) -> None:
    """export-hf writes the checkpoint's own variant (contract/variants.py), not ours: a SiLU
    model without scaled embeddings computes the same logits in Transformers."""
    ckpt = load_checkpoint(toy_checkpoint)
    config = dataclasses.replace(ckpt.config, activation="swish", scale_embedding=False)
    variant = dataclasses.replace(ckpt, config=config)
    theirs = to_marian(variant)
    assert (theirs.config.activation_function, theirs.config.scale_embedding) == ("swish", False)
    got, expected = both_logits(variant, theirs)
    assert (got - expected).abs().max() <= 1e-5


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_name_is_the_transformers_activation_of_that_name(name: str) -> None:
    from transformers.activations import ACT2FN

    x = torch.linspace(-6, 6, 101)
    ours = getattr(torch.nn.functional, ACTIVATIONS[name].torch)(x)
    assert torch.allclose(ACT2FN[name](x), ours, atol=1e-6, rtol=0)


def both_logits(ckpt: Checkpoint, theirs: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Transformers' logits and ours (permuted to Hugging Face ids) for a padded random batch."""
    ours = ckpt.build_model()
    perm = torch.from_numpy(hf_to_ours(ckpt.config.vocab_size, ckpt.config.pad_id))
    to_hf = torch.argsort(perm)  # our id -> Hugging Face id
    g = torch.Generator().manual_seed(0)
    src = torch.randint(3, ckpt.config.vocab_size, (3, 9), generator=g)
    src[1, 6:] = 0
    src[2, 2:] = 0
    tgt = torch.randint(3, ckpt.config.vocab_size, (3, 7), generator=g)
    tgt[:, 0] = ckpt.config.decoder_start_id
    with torch.no_grad():
        expected = ours.project(ours(src, tgt))[..., perm]
        got = theirs(
            input_ids=to_hf[src], attention_mask=src.ne(0).long(), decoder_input_ids=to_hf[tgt]
        ).logits
    return got, expected


def test_marian_tokenizer_gives_our_ids(toy_checkpoint: Path, hf_dir: Path) -> None:
    from transformers import MarianTokenizer

    ckpt = load_checkpoint(toy_checkpoint)
    perm = hf_to_ours(ckpt.config.vocab_size, ckpt.config.pad_id)
    tokenizer = MarianTokenizer.from_pretrained(str(hf_dir))
    text = "red dog runs in the park"
    hf_ids = tokenizer([text])["input_ids"][0]
    assert [int(perm[i]) for i in hf_ids] == ckpt.tokenizer.encode(text) + [ckpt.config.eos_id]


def test_ctranslate2_converts_and_translates_the_same(
    toy_checkpoint: Path, hf_dir: Path, tmp_path: Path
) -> None:
    import ctranslate2

    converter = Path(sys.executable).parent / "ct2-transformers-converter"
    subprocess.run(
        [str(converter), "--model", str(hf_dir), "--output_dir", str(tmp_path / "ct2")],
        check=True,
        capture_output=True,
    )
    ckpt = load_checkpoint(toy_checkpoint)
    texts = [s for s, _ in copy_pairs(10, seed=21)]
    translator = ctranslate2.Translator(str(tmp_path / "ct2"), device="cpu", intra_threads=1)
    pieces = [ckpt.tokenizer.pieces(t) + ["</s>"] for t in texts]
    for beam in (1, 4):
        theirs = translator.translate_batch(pieces, beam_size=beam, max_decoding_length=40)
        ours = translate_ids(
            ckpt.build_model(), ckpt.tokenizer.encode_batch(texts), SearchOptions(beam_size=beam)
        )
        processor = ckpt.tokenizer.processor
        expected = [[processor.IdToPiece(i) for i in h[0].tokens if i != 2] for h in ours]
        assert [r.hypotheses[0] for r in theirs] == expected
