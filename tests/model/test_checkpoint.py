"""Checkpoints load with clear errors, carry their tokenizer, and shrink to fp16 for release."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from contract.tokenizer import Tokenizer
from model.checkpoint import INT8_SCALE, CheckpointError, load_checkpoint


def test_missing_corrupt_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nope\.pt does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match=r"corrupt\.pt is corrupt or not a torch file"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a Tongyeok checkpoint"):
        load_checkpoint(foreign)


def test_truncated_checkpoint(toy_checkpoint: Path, tmp_path: Path) -> None:
    data = toy_checkpoint.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(cut)


def test_tokenizer_that_does_not_match_the_vocabulary(toy_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = load_checkpoint(toy_checkpoint)
    other = Tokenizer.train(["ein ganz anderes Vokabular mit anderen Wörtern"] * 50, vocab_size=280)
    assert other.vocab_size != ckpt.config.vocab_size
    ckpt.tokenizer = other
    ckpt.save(tmp_path / "mismatch.pt")
    with pytest.raises(
        CheckpointError, match=r"tokenizer has \d+ pieces but the model's vocabulary"
    ):
        load_checkpoint(tmp_path / "mismatch.pt")


def test_release_checkpoint_in_fp16(toy_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = load_checkpoint(toy_checkpoint)
    ckpt.train_state = None
    ckpt.save(tmp_path / "release.pt", half=True)
    release = load_checkpoint(tmp_path / "release.pt")
    assert release.train_state is None
    assert all(
        t.dtype == torch.float16 for t in release.state_dict.values() if t.is_floating_point()
    )
    assert (tmp_path / "release.pt").stat().st_size < toy_checkpoint.stat().st_size / 2
    model = release.build_model()
    assert next(model.parameters()).dtype == torch.float32  # computed in fp32 all the same
    assert (release.source_lang, release.target_lang) == (ckpt.source_lang, ckpt.target_lang)


def test_release_checkpoint_in_int8(toy_checkpoint: Path, tmp_path: Path) -> None:
    """Matrices stored as int8 rows with fp32 scales, the rest fp16; loaded back as floats
    within half a quantization step of each row's largest weight."""
    ckpt = load_checkpoint(toy_checkpoint)
    ckpt.train_state = None
    ckpt.save(tmp_path / "half.pt", half=True)
    ckpt.save(tmp_path / "int8.pt", int8=True)
    stored = torch.load(tmp_path / "int8.pt", weights_only=True)["model"]
    assert stored["shared.weight"].dtype == torch.int8
    assert stored["shared.weight" + INT8_SCALE].dtype == torch.float32
    release = load_checkpoint(tmp_path / "int8.pt")
    assert set(release.state_dict) == set(ckpt.state_dict)
    for name, original in ckpt.state_dict.items():
        loaded = release.state_dict[name]
        assert loaded.is_floating_point() and loaded.shape == original.shape
        if original.dim() == 2 and original.shape[1] >= 64:
            step = original.float().abs().amax(dim=1, keepdim=True) / 127
            assert ((loaded - original.float()).abs() <= step / 2 + 1e-7).all(), name
    assert (tmp_path / "int8.pt").stat().st_size < (tmp_path / "half.pt").stat().st_size
    model = release.build_model()
    assert next(model.parameters()).dtype == torch.float32


def test_int8_weights_without_their_scales_are_refused(
    toy_checkpoint: Path, tmp_path: Path
) -> None:
    ckpt = load_checkpoint(toy_checkpoint)
    ckpt.save(tmp_path / "int8.pt", int8=True)
    payload = torch.load(tmp_path / "int8.pt", weights_only=True)
    del payload["model"]["shared.weight" + INT8_SCALE]
    torch.save(payload, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="int8 weights without matching scales"):
        load_checkpoint(tmp_path / "broken.pt")
    payload["model"]["shared.weight" + INT8_SCALE] = torch.ones(3)  # wrong number of rows
    torch.save(payload, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="int8 weights without matching scales"):
        load_checkpoint(tmp_path / "broken.pt")
