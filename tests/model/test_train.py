"""Training really learns, resumes exactly, and averages checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model.checkpoint import load_checkpoint
from model.search import SearchOptions
from model.train import TrainConfig, inverse_sqrt, train
from model.translate import translate_texts
from tests.conftest import copy_pairs, toy_config


def test_tiny_model_learns_the_copy_task_exactly(toy_checkpoint: Path) -> None:
    ckpt = load_checkpoint(toy_checkpoint)
    model = ckpt.build_model()
    held_out = [s for s, _ in copy_pairs(40, seed=99)]
    outputs = translate_texts(model, ckpt.tokenizer, held_out, SearchOptions(beam_size=1))
    assert outputs == held_out
    beam = translate_texts(model, ckpt.tokenizer, held_out[:10], SearchOptions(beam_size=4))
    assert beam == held_out[:10]


def test_pad_embedding_stays_zero_for_a_zero_decoder_start(toy_checkpoint: Path) -> None:
    """Marian's contract (CTranslate2 relies on it): the start token, pad, embeds to zero, even
    though the tied output projection sends gradient to that row."""
    ckpt = load_checkpoint(toy_checkpoint)
    assert ckpt.state_dict["shared.weight"][ckpt.config.pad_id].abs().max() == 0
    assert ckpt.state_dict["shared.weight"][ckpt.config.eos_id].abs().max() > 0


def test_resume_continues_with_identical_losses(tmp_path: Path) -> None:
    """Dropout on, so the RNG state must be restored too, not only weights and optimizer."""
    common = dict(max_steps=8, save_every=4, dropout=0.1, d_model=32, d_ff=64, max_tokens=256)
    straight = train(toy_config(tmp_path / "a", **common), log=lambda _: None)
    assert len(straight.losses) == 8

    first = toy_config(tmp_path / "b", **{**common, "max_steps": 4})
    train(first, log=lambda _: None)
    resumed = train(first.updated({"max_steps": 8}), log=lambda _: None)
    assert resumed.losses == straight.losses  # bit-identical, not merely close
    assert resumed.steps == 8


def test_epoch_checkpoints_are_averaged(tmp_path: Path) -> None:
    config = toy_config(
        tmp_path, max_steps=0, epochs=3, d_model=32, d_ff=64, max_tokens=4096, average_last=2
    )
    train(config, log=lambda _: None)
    out = Path(config.out_dir)
    assert not (out / "epoch1.pt").exists()  # only the last `average_last` epochs are kept
    e2, e3 = (load_checkpoint(out / f"epoch{e}.pt").state_dict for e in (2, 3))
    averaged = load_checkpoint(out / "averaged.pt")
    for name, tensor in averaged.state_dict.items():
        assert torch.allclose(tensor, (e2[name] + e3[name]) / 2)
    assert averaged.metadata["averaged_epochs"] == [2, 3]
    log = (out / "log.jsonl").read_text().splitlines()
    assert len(log) == 4  # three epochs and the averaged model, each with validation loss
    assert all('"valid_nll"' in line for line in log)


def test_inverse_sqrt_schedule() -> None:
    assert inverse_sqrt(50, 100) == pytest.approx(0.5)
    assert inverse_sqrt(100, 100) == pytest.approx(1.0)
    assert inverse_sqrt(400, 100) == pytest.approx(0.5)


def test_config_file_and_unknown_options(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('d_model = 128\nadam_betas = [0.9, 0.997]\nsource_lang = "fr"\n')
    config = TrainConfig.from_toml(path)
    assert (config.d_model, config.adam_betas, config.source_lang) == (128, (0.9, 0.997), "fr")
    path.write_text("d_modle = 128\n")
    with pytest.raises(ValueError, match=r"unknown training options: \['d_modle'\]"):
        TrainConfig.from_toml(path)


def test_max_minutes_stops_after_the_epoch_that_passes_it_and_averages(tmp_path: Path) -> None:
    """A tiny budget: the first epoch ends past it, so training stops there (of 5 configured),
    with that epoch's checkpoint and validation written as usual."""
    config = toy_config(
        tmp_path,
        max_steps=0,
        epochs=5,
        d_model=32,
        d_ff=64,
        max_tokens=4096,
        average_last=2,
        max_minutes=1e-6,
    )
    messages: list[str] = []
    train(config, log=messages.append)
    out = Path(config.out_dir)
    epochs = [json.loads(line)["epoch"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert epochs == [1]
    assert any("max-minutes" in m for m in messages)
    assert (out / "epoch1.pt").exists() and not (out / "epoch2.pt").exists()


@pytest.mark.parametrize("minutes", [-1.0, float("nan"), float("inf"), "10"])
def test_max_minutes_must_be_a_finite_number_of_minutes(minutes: object) -> None:
    """A negative, NaN or infinite budget (or a string from a TOML typo) is refused, naming the
    option, instead of silently meaning "no limit"."""
    with pytest.raises(ValueError, match="max_minutes must be a finite number >= 0"):
        TrainConfig().updated({"max_minutes": minutes})
