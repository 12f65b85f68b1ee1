"""Package format 2 and the packages written before it (format 1) both load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from contract.options import SearchOptions
from contract.package import PackageError, load_package_config, write_manifest
from contract.tokenizer import Tokenizer
from contract.tokenizers import for_target, load_tokenizer
from service.decoding.translator import Translator

TEXTS = ["red dog runs in the park", "two blue cats"]


def as_format_1(package: Path, out: Path) -> Path:
    """Rewrite a format-2 package the way format 1 wrote it (no languages, tokenizer a file)."""
    shutil.copytree(package, out)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    config["format_version"] = 1
    config["tokenizer"] = "tokenizer.model"
    del config["languages"]
    for key in ("target_vocab_size", "share_embeddings", "tie_output", "activation"):
        del config["model"][key]
    del config["model"]["scale_embedding"], config["model"]["suppress_pad"]
    (out / "config.json").write_text(json.dumps(config), encoding="utf-8")
    write_manifest(out)
    return out


def test_format_1_package_still_loads_and_translates_the_same(
    toy_repository: Path, tmp_path: Path
) -> None:
    current = toy_repository / "en-de"
    old = as_format_1(current, tmp_path / "old")
    config = load_package_config(old)
    assert config.raw["format_version"] == 1
    assert (config.source_langs, config.target_langs, config.target_tokens) == (
        ("en",),
        ("de",),
        {},
    )
    assert config.tokenizer == {"kind": "sentencepiece", "model": "tokenizer.model"}
    assert isinstance(load_tokenizer(config), Tokenizer)
    options = SearchOptions(beam_size=2)
    assert Translator(old).translate(TEXTS, options) == Translator(current).translate(
        TEXTS, options
    )


def test_format_2_lists_languages_and_tokenizer(toy_repository: Path) -> None:
    config = load_package_config(toy_repository / "en-de")
    assert config.raw["format_version"] == 2
    assert config.pairs == [("en", "de")]
    assert config.tokenizer["kind"] == "sentencepiece"
    with pytest.raises(PackageError, match="does not translate into 'fr'"):
        for_target(load_tokenizer(config), config, "fr")


def test_a_tokenizer_file_missing_from_the_manifest_is_refused(
    toy_repository: Path, tmp_path: Path
) -> None:
    package = shutil.copytree(toy_repository / "en-de", tmp_path / "pkg")
    config = json.loads((package / "config.json").read_text(encoding="utf-8"))
    config["tokenizer"] = {"kind": "sentencepiece", "model": "other.model"}
    (package / "config.json").write_text(json.dumps(config), encoding="utf-8")
    write_manifest(package)
    with pytest.raises(PackageError, match=r"does not list other\.model"):
        load_package_config(package)


def test_unknown_format_is_refused(toy_repository: Path, tmp_path: Path) -> None:
    package = shutil.copytree(toy_repository / "en-de", tmp_path / "pkg")
    config = json.loads((package / "config.json").read_text(encoding="utf-8"))
    config["format_version"] = 3
    (package / "config.json").write_text(json.dumps(config), encoding="utf-8")
    write_manifest(package)
    with pytest.raises(PackageError, match="package format 3"):
        load_package_config(package)
