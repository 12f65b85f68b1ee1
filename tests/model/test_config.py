"""Each architecture option is declared once, in ``model/config.py``'s ``Architecture``: the
checkpoint's ``ModelConfig`` and the training run's ``TrainConfig`` inherit it, default included."""

from __future__ import annotations

import inspect
from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import pytest

from model.config import Architecture, ModelConfig
from model.train_config import TrainConfig

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.toml"))


@pytest.mark.parametrize("cls", [ModelConfig, TrainConfig])
def test_no_architecture_option_is_declared_again(cls: type) -> None:
    """A field re-declared in a subclass would get its own default (and a new ``Field``)."""
    again = set(inspect.get_annotations(cls)) & {f.name for f in fields(Architecture)}
    assert not again, f"{cls.__name__} declares {sorted(again)} again: inherit Architecture's"
    inherited = {f.name: f for f in fields(cls)}
    assert all(inherited[f.name] is f for f in fields(Architecture))


def test_a_default_training_run_builds_the_default_model() -> None:
    assert TrainConfig().model_config(100) == ModelConfig(vocab_size=100)


def test_a_run_passes_every_architecture_option_to_the_model() -> None:
    """Each option set to a value that is no default arrives in the model's config unchanged."""
    chosen = {
        "d_model": 96,
        "n_heads": 6,
        "d_ff": 200,
        "encoder_layers": 5,
        "decoder_layers": 7,
        "dropout": 0.25,
        "attention_dropout": 0.125,
        "activation_dropout": 0.375,
        "max_positions": 77,
    }
    assert set(chosen) == {f.name for f in fields(Architecture)}
    model = TrainConfig().updated(chosen).model_config(100)
    assert model == ModelConfig(vocab_size=100, **chosen)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_each_shipped_config_file_still_reads(path: Path) -> None:
    config = TrainConfig.from_toml(path)
    model = config.model_config(config.vocab_size)
    assert (model.d_model, model.n_heads) == (config.d_model, config.n_heads)


def test_a_training_config_is_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        TrainConfig().d_model = 512  # type: ignore[misc]
