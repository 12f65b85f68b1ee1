"""The model package: the one contract between export and service. Torch-free on purpose.

A package is a directory::

    config.json     architecture, special ids, languages, limits, graph IO names/axes, precision,
                    tokenizer kind and files, versions of the tools that made it
    encoder.onnx    source ids -> encoder states + cross keys/values of every decoder layer
    decoder.onnx    one step for a batch -> top-k log-probs + grown self-attention cache
    weights.bin     both graphs' large tensors, each at a page-aligned offset and each stored
                    once; the config lists those both graphs read (``weights.shared``), which
                    the runtime loads once for both (packages without it keep their weights
                    inside the graphs, and still load)
    tokenizer files ours: tokenizer.model (one joint SentencePiece vocabulary, ids = pieces);
                    an imported Marian model: source.spm, target.spm, vocab.json (pieces -> ids)
                    and, with separate vocabularies, target_vocab.json
    manifest.json   SHA-256 and size of every other file, checked on load

Format 2 added the tokenizer entry, the target vocabulary size and the languages (every source and
target, and the ``>>xxx<<`` token that selects each target of a multilingual model); format 1
packages (ours, one pair, tokenizer.model) still load, read as their format-2 equivalent.
Loading verifies every hash, so a partial copy or a swapped file is refused with the file's name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
CONFIG, MANIFEST = "config.json", "manifest.json"
ENCODER, DECODER, TOKENIZER = "encoder.onnx", "decoder.onnx", "tokenizer.model"
ALIGNER = "aligner.onnx"  # optional: where tags go (contract/spec.py aligner_spec)
WEIGHTS = "weights.bin"
PRECISIONS = ("fp32", "fp16", "int8")
# The decoder's self-attention cache (docs/decisions.md #31): one buffer per layer written in place
# by GroupQueryAttention (fused CPU packages, the default there), or gathered by ``cache_index``
# and grown by a concat at every step (traced fp16 packages; fp32 ones meant for CUDA, where
# GroupQueryAttention has no fp32 kernel).
CACHE_LAYOUTS = ("in-place", "gathered")


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
    for required in (CONFIG, ENCODER, DECODER):
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
    source_lang: str  # the first of source_langs
    target_lang: str  # the first of target_langs
    precision: str
    pad_id: int
    eos_id: int
    decoder_start_id: int
    vocab_size: int  # of the output (target) vocabulary: what the decoder's top-k ranges over
    decoder_layers: int
    n_heads: int
    head_dim: int
    max_source_tokens: int
    max_target_tokens: int
    encoder_io: dict[str, Any]
    decoder_io: dict[str, Any]
    raw: dict[str, Any]
    source_langs: tuple[str, ...] = ()
    target_langs: tuple[str, ...] = ()
    # target -> the ">>xxx<<" piece put in front of the source to select it (multilingual models)
    target_tokens: dict[str, str] = field(default_factory=dict)
    # {"kind": "sentencepiece", "model": FILE} or {"kind": "marian", "source_spm": ..., ...}
    tokenizer: dict[str, str] = field(default_factory=dict)
    # What the model is for (its training data and domain), shown to users beside its pair.
    description: str = ""

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """Every (source, target) this package translates."""
        return [(s, t) for s in self.source_langs for t in self.target_langs]

    @property
    def encoder_path(self) -> Path:
        return self.directory / ENCODER

    @property
    def decoder_path(self) -> Path:
        return self.directory / DECODER

    @property
    def aligner_io(self) -> dict[str, Any] | None:
        """The aligner graph's entry (file, layer, inputs, outputs); None in packages without one
        (fp16 ones, and those written before it existed)."""
        entry = self.raw["graphs"].get("aligner")
        return entry if isinstance(entry, dict) else None

    @property
    def tokenizer_path(self) -> Path:
        return self.directory / self.tokenizer.get("model", TOKENIZER)


def load_package_config(directory: str | Path, verify: bool = True) -> PackageConfig:
    """Read (and by default verify against the manifest) the package in ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PackageError(f"{directory}: not a directory")
    if verify:
        verify_manifest(directory)
    raw = read_json(directory / CONFIG)
    try:
        if raw["format_version"] not in READABLE_VERSIONS:
            raise PackageError(
                f"{directory / CONFIG}: package format {raw['format_version']}, "
                f"this version reads {READABLE_VERSIONS}"
            )
        model = raw["model"]
        tokenizer = tokenizer_entry(raw)
        languages = raw.get("languages", {})
        sources = tuple(languages.get("sources", [raw["source_lang"]]))
        targets = tuple(languages.get("targets", [raw["target_lang"]]))
        if verify:
            listed = read_json(directory / MANIFEST)["files"]
            for key, file in tokenizer.items():
                if key != "kind" and file not in listed:
                    raise PackageError(f"{directory / MANIFEST}: does not list {file}")
        return PackageConfig(
            directory=directory,
            name=raw["name"],
            source_lang=raw["source_lang"],
            target_lang=raw["target_lang"],
            precision=raw["precision"],
            pad_id=model["pad_id"],
            eos_id=model["eos_id"],
            decoder_start_id=raw["decoder_start_id"],
            vocab_size=model.get("target_vocab_size") or model["vocab_size"],
            decoder_layers=model["decoder_layers"],
            n_heads=model["n_heads"],
            head_dim=model["d_model"] // model["n_heads"],
            max_source_tokens=raw["max_source_tokens"],
            max_target_tokens=raw["max_target_tokens"],
            encoder_io=raw["graphs"]["encoder"],
            decoder_io=raw["graphs"]["decoder"],
            raw=raw,
            source_langs=sources,
            target_langs=targets,
            target_tokens=dict(languages.get("target_tokens", {})),
            tokenizer=tokenizer,
            description=str(raw.get("description", "")),
        )
    except KeyError as exc:
        raise PackageError(f"{directory / CONFIG}: missing key {exc}") from None


def tokenizer_entry(raw: dict[str, Any]) -> dict[str, str]:
    """The config's tokenizer entry; format 1 named only the SentencePiece file."""
    entry = raw.get("tokenizer", TOKENIZER)
    if isinstance(entry, str):
        return {"kind": "sentencepiece", "model": entry}
    if not isinstance(entry, dict) or entry.get("kind") not in ("sentencepiece", "marian"):
        raise PackageError(f"config.json: unknown tokenizer entry {entry!r}")
    return dict(entry)
