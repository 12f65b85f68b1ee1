"""The model package: the one contract between export and service. Torch-free on purpose.

A package is a directory::

    config.json     architecture, special ids, languages, limits, graph IO names/axes, precision,
                    versions of the tools that made it
    encoder.onnx    source ids -> encoder states + cross keys/values of every decoder layer
    decoder.onnx    one step for a batch -> top-k log-probs + grown self-attention cache
    tokenizer.model the SentencePiece vocabulary
    manifest.json   SHA-256 and size of every other file, checked on load

Loading verifies every hash, so a partial copy or a swapped file is refused with the file's name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
CONFIG, MANIFEST = "config.json", "manifest.json"
ENCODER, DECODER, TOKENIZER = "encoder.onnx", "decoder.onnx", "tokenizer.model"
PRECISIONS = ("fp32", "fp16", "int8")


class PackageError(ValueError):
    """A package that is missing a file, fails its manifest, or has an unreadable config."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: Path) -> dict[str, Any]:
    """Hash every file of ``directory`` (except the manifest) into ``manifest.json``."""
    files = {
        p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {"format_version": FORMAT_VERSION, "files": files}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackageError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"{path}: unreadable: {exc}") from exc
    if not isinstance(data, dict):
        raise PackageError(f"{path}: expected a JSON object")
    return data


def verify_manifest(directory: Path) -> None:
    """Raise PackageError naming the first file that is missing or whose hash differs."""
    manifest = read_json(directory / MANIFEST)
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise PackageError(f"{directory / MANIFEST}: no 'files' listed")
    for required in (CONFIG, ENCODER, DECODER, TOKENIZER):
        if required not in files:
            raise PackageError(f"{directory / MANIFEST}: does not list {required}")
    for name, entry in files.items():
        path = directory / name
        if not path.is_file():
            raise PackageError(f"{path}: listed in the manifest but missing")
        actual = sha256_file(path)
        if actual != entry.get("sha256"):
            raise PackageError(
                f"{path}: SHA-256 {actual[:12]}… does not match the manifest's "
                f"{str(entry.get('sha256'))[:12]}… (corrupt or replaced file)"
            )


@dataclass(frozen=True)
class PackageConfig:
    """What the service needs from ``config.json``; the raw dict is kept for the rest."""

    directory: Path
    name: str
    source_lang: str
    target_lang: str
    precision: str
    pad_id: int
    eos_id: int
    decoder_start_id: int
    vocab_size: int
    decoder_layers: int
    n_heads: int
    head_dim: int
    max_source_tokens: int
    max_target_tokens: int
    encoder_io: dict[str, Any]
    decoder_io: dict[str, Any]
    raw: dict[str, Any]

    @property
    def encoder_path(self) -> Path:
        return self.directory / ENCODER

    @property
    def decoder_path(self) -> Path:
        return self.directory / DECODER

    @property
    def tokenizer_path(self) -> Path:
        return self.directory / TOKENIZER


def load_package_config(directory: str | Path, verify: bool = True) -> PackageConfig:
    """Read (and by default verify against the manifest) the package in ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PackageError(f"{directory}: not a directory")
    if verify:
        verify_manifest(directory)
    raw = read_json(directory / CONFIG)
    try:
        if raw["format_version"] != FORMAT_VERSION:
            raise PackageError(
                f"{directory / CONFIG}: package format {raw['format_version']}, "
                f"this version reads {FORMAT_VERSION}"
            )
        model = raw["model"]
        return PackageConfig(
            directory=directory,
            name=raw["name"],
            source_lang=raw["source_lang"],
            target_lang=raw["target_lang"],
            precision=raw["precision"],
            pad_id=model["pad_id"],
            eos_id=model["eos_id"],
            decoder_start_id=raw["decoder_start_id"],
            vocab_size=model["vocab_size"],
            decoder_layers=model["decoder_layers"],
            n_heads=model["n_heads"],
            head_dim=model["d_model"] // model["n_heads"],
            max_source_tokens=raw["max_source_tokens"],
            max_target_tokens=raw["max_target_tokens"],
            encoder_io=raw["graphs"]["encoder"],
            decoder_io=raw["graphs"]["decoder"],
            raw=raw,
        )
    except KeyError as exc:
        raise PackageError(f"{directory / CONFIG}: missing key {exc}") from None
