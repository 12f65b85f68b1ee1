"""The user cache of exported packages, torch-free: where the package of a checkpoint, precision
and cache layout lives, and whether a valid one is already there. ``tongyeok translate`` and
``tongyeok serve`` ask it first and import the exporter (and torch) only when it has none."""

from __future__ import annotations

import os
from pathlib import Path

from contract.package import CACHE_LAYOUTS, PackageError, load_package_config, sha256_file
from model.config import DEFAULT_CHECKPOINT

# Part of the cache key of exported packages: bumped when the graphs written for the same weights
# change (2: fused kernels, docs/decisions.md #23; 3: int8 packages store their embedding tables
# in int8; 4: the encoder's dense layers skip the padding, and a sentence's beams share its cross
# keys/values; 5: fp32 and int8 decoders write their cache in place, #31; 6: the weights in one
# page-aligned file beside the graphs, #33; 7: a Marian decoder drops pad from its top k + 1
# instead of adding -inf over the vocabulary; 8: an output projection of more than 32 MiB in
# blocks, #40; 9: an aligner graph, tags placed by alignment, #47; and the package's description),
# so a cache from an older version is not reused.
GRAPHS_REVISION = 9


def fused(precision: str) -> bool:
    """Whether packages of ``precision`` are built from fused kernels (the fused decoder also
    takes one source per sentence for all its beams: contract/spec.py, shared_sources)."""
    return precision != "fp16"


def default_cache(precision: str) -> str:
    return "in-place" if fused(precision) else "gathered"


def check_cache(precision: str, cache: str | None) -> str:
    """The cache layout of a ``precision`` package: ``cache``, or the default; refused where it
    cannot be built (in place needs the fused graphs: not fp16)."""
    cache = cache or default_cache(precision)
    if cache not in CACHE_LAYOUTS:
        raise PackageError(f"unknown cache layout {cache!r}: choose one of {CACHE_LAYOUTS}")
    if cache == "in-place" and not fused(precision):
        raise PackageError(f"an in-place cache needs the fused graphs, which {precision} lacks")
    return cache


def cache_dir() -> Path:
    return Path(os.environ.get("TONGYEOK_CACHE_DIR", Path.home() / ".cache" / "tongyeok"))


def package_key(
    checkpoint: str | Path | None, precision: str, cache: str | None
) -> tuple[Path, Path, str]:
    """(the checkpoint, the directory its package has in the cache, the cache layout)."""
    source = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    layout = check_cache(precision, cache)
    digest = sha256_file(source)[:12] if source.is_file() else "missing"
    name = f"{source.stem}-{digest}-g{GRAPHS_REVISION}-{precision}"
    if layout != default_cache(precision):
        name += f"-{layout}"
    return source, cache_dir() / "packages" / name, layout


def cached_package(
    checkpoint: str | Path | None, precision: str = "fp32", cache: str | None = None
) -> Path | None:
    """The cached package of ``checkpoint`` if one is there and its config reads; else None."""
    source, target, _ = package_key(checkpoint, precision, cache)
    if not source.is_file():
        return None
    try:
        load_package_config(target)
    except PackageError:
        return None
    return target
