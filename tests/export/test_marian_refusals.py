"""What the importer refuses, each with a message naming the setting; big sizes map as they are."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from export.marian import DEFAULTS, MarianImportError, load_marian, model_config


def edited(source: Path, tmp_path: Path, **config: object) -> Path:
    """A copy of the Marian directory ``source`` with config.json keys replaced."""
    out = shutil.copytree(source, tmp_path / "marian")
    data = json.loads((out / "config.json").read_text(encoding="utf-8"))
    data.update(config)
    (out / "config.json").write_text(json.dumps(data), encoding="utf-8")
    return out


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"normalize_before": True}, "normalize_before=true: a pre-norm"),
        ({"normalize_embedding": True}, "normalize_embedding=true"),
        ({"activation_function": "tanh"}, "activation_function='tanh' is not supported"),
        ({"decoder_ffn_dim": 64}, "encoder_ffn_dim=32 differs from decoder_ffn_dim=64"),
        ({"decoder_attention_heads": 4}, "encoder_attention_heads=2 differs"),
        ({"decoder_start_token_id": 0}, "decoder_start_token_id=0 differs from pad_token_id"),
        ({"model_type": "bart"}, "model_type 'bart', expected 'marian'"),
        ({"eos_token_id": [0, 1]}, r"eos_token_id=\[0, 1\]: expected one id"),
        ({"pad_token_id": 3, "decoder_start_token_id": 3}, "<pad> is id 176 but pad_token_id=3"),
    ],
)
def test_refused_settings_are_named(
    marian_dirs: dict[str, Path], tmp_path: Path, config: dict, message: str
) -> None:
    with pytest.raises(MarianImportError, match=message):
        load_marian(edited(marian_dirs["ko-en"], tmp_path, **config))


def test_weights_without_a_place_are_refused(marian_dirs: dict[str, Path], tmp_path: Path) -> None:
    """An embedding layer norm (a variant MarianMTModel cannot hold) is named, not dropped."""
    from safetensors.torch import load_file, save_file

    out = shutil.copytree(marian_dirs["ko-en"], tmp_path / "marian")
    weights = load_file(str(out / "model.safetensors"))
    weights["model.encoder.layernorm_embedding.weight"] = torch.ones(16)
    save_file(weights, str(out / "model.safetensors"))
    with pytest.raises(MarianImportError, match=r"model\.encoder\.layernorm_embedding\.weight"):
        load_marian(out)


def test_learned_positions_are_refused(marian_dirs: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    out = shutil.copytree(marian_dirs["ko-en"], tmp_path / "marian")
    weights = load_file(str(out / "model.safetensors"))
    weights["model.encoder.embed_positions.weight"] = torch.randn(128, 16)
    save_file(weights, str(out / "model.safetensors"))
    with pytest.raises(MarianImportError, match="not Marian's sinusoid table"):
        load_marian(out)


def test_missing_files_are_named(marian_dirs: dict[str, Path], tmp_path: Path) -> None:
    out = shutil.copytree(marian_dirs["en-mul"], tmp_path / "marian")
    (out / "target_vocab.json").unlink()
    with pytest.raises(MarianImportError, match=r"separate_vocabs=true but .*target_vocab\.json"):
        load_marian(out)
    (out / "source.spm").unlink()
    with pytest.raises(MarianImportError, match=r"source\.spm: missing"):
        load_marian(out)


def test_unknown_target_is_refused(marian_dirs: dict[str, Path]) -> None:
    with pytest.raises(MarianImportError, match=r"for target\(s\) \['fr'\]"):
        load_marian(marian_dirs["en-mul"], targets=["fr"])


def test_cli_reports_the_refusal(
    marian_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tongyeok.cli import main

    directory = edited(marian_dirs["ko-en"], tmp_path, activation_function="tanh")
    assert main(["import", str(directory), "--out", str(tmp_path / "pkg")]) == 1
    assert "activation_function='tanh'" in capsys.readouterr().err
    assert not (tmp_path / "pkg").exists()


def test_transformer_big_sizes_map() -> None:
    """opus-mt-tc-big shapes: d=1024, 16 heads, FFN 4096, 6+6 layers, separate embeddings."""
    big = {
        **DEFAULTS,
        "vocab_size": 32001,
        "decoder_vocab_size": 32001,
        "d_model": 1024,
        "encoder_attention_heads": 16,
        "decoder_attention_heads": 16,
        "encoder_ffn_dim": 4096,
        "decoder_ffn_dim": 4096,
        "encoder_layers": 6,
        "decoder_layers": 6,
        "activation_function": "relu",
        "share_encoder_decoder_embeddings": False,
        "pad_token_id": 32000,
        "decoder_start_token_id": 32000,
        "max_position_embeddings": 1024,
    }
    cfg = model_config(big, unk_id=1, share=False)
    assert (cfg.d_model, cfg.n_heads, cfg.head_dim, cfg.d_ff) == (1024, 16, 64, 4096)
    assert (cfg.output_vocab_size, cfg.max_positions, cfg.share_embeddings) == (32001, 1024, False)
