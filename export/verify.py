"""Checks that a package computes what its checkpoint computes.

- ``step_parity``: every decoder step's log-probabilities, ONNX Runtime vs ``decode_step``, on a
  padded batch, reported as the largest absolute difference;
- ``onnx_greedy``: plain batched greedy decoding over the ONNX graphs (with or without the cache),
  to compare whole translations with the PyTorch reference search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from export.source import ModelSource
from model.data import pad
from model.transformer import Transformer
from service.runtime.sessions import PackageRuntime


class ParityError(ValueError):
    """ONNX and PyTorch disagree by more than the tolerance."""

    def __init__(self, what: str, max_diff: float, tolerance: float) -> None:
        super().__init__(f"{what}: max |diff| {max_diff:.3g} exceeds tolerance {tolerance:.3g}")
        self.max_diff, self.tolerance = max_diff, tolerance


@dataclass(frozen=True)
class ParityReport:
    steps: int
    max_diff: float  # over all steps, rows and vocabulary entries
    argmax_agreement: float  # fraction of (step, row) whose best token agrees


def padded_sources(model: Transformer, sources: Sequence[Sequence[int]]) -> np.ndarray:
    return pad([list(s) + [model.cfg.eos_id] for s in sources], model.cfg.pad_id).numpy()


@torch.no_grad()
def step_parity(
    model: Transformer,
    runtime: PackageRuntime,
    sources: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    tolerance: float | None = 1e-4,
) -> ParityReport:
    """Teacher-force ``targets`` through both implementations one step at a time and compare the
    full log-probability distributions (k = vocabulary size) at every step."""
    cfg = model.cfg
    src = padded_sources(model, sources)
    src_mask = src != cfg.pad_id
    steps = max(len(t) for t in targets)
    tgt = pad(
        [[cfg.decoder_start_id, *t] + [cfg.pad_id] * (steps - len(t)) for t in targets], cfg.pad_id
    ).numpy()
    enc = runtime.encode(src, src_mask)
    src_t = torch.from_numpy(src)
    cross = model.cross_kv(model.encode(src_t, torch.from_numpy(src_mask)))
    batch = src.shape[0]
    past, cache = runtime.empty_cache(batch), None
    worst, agree = 0.0, 0
    for step in range(steps):
        tokens = tgt[:, step : step + 1]
        positions = np.full((batch, 1), step, dtype=np.int64)
        out = runtime.step(
            tokens,
            positions,
            np.arange(batch),
            np.ones((batch, step + 1), bool),
            src_mask,
            cfg.output_vocab_size,
            past,
            enc.cross,
        )
        logits, cache = model.decode_step(
            torch.from_numpy(tokens),
            torch.from_numpy(positions),
            cross,
            torch.from_numpy(src_mask),
            cache,
        )
        reference = model.log_probs(logits[:, -1]).numpy()
        onnx_dense = np.empty_like(reference)
        np.put_along_axis(onnx_dense, out.ids, out.logprobs.astype(np.float32), axis=1)
        # A suppressed token is -inf on both sides: compare the finite entries, and where they are.
        finite = np.isfinite(reference)
        if not np.array_equal(finite, np.isfinite(onnx_dense)):
            raise ParityError("decoder log-probabilities (suppressed tokens)", float("inf"), 0.0)
        worst = max(worst, float(np.abs(onnx_dense[finite] - reference[finite]).max()))
        agree += int((out.ids[:, 0] == reference.argmax(axis=1)).sum())
        past = out.cache
    report = ParityReport(steps, worst, agree / (steps * batch))
    if tolerance is not None and worst > tolerance:
        raise ParityError("decoder log-probabilities", worst, tolerance)
    return report


def onnx_greedy(
    runtime: PackageRuntime,
    src: np.ndarray,
    max_lengths: Sequence[int],
    use_cache: bool = True,
) -> list[list[int]]:
    """Greedy decoding of a padded source batch; a row stops at EOS or at its max length.
    ``use_cache=False`` re-runs the decoder over the whole prefix at every step (the baseline the
    cache is measured against)."""
    cfg = runtime.config
    batch = src.shape[0]
    src_mask = src != cfg.pad_id
    enc = runtime.encode(src, src_mask)
    tokens = np.full((batch, 1), cfg.decoder_start_id, dtype=np.int64)
    prefix = tokens
    past = runtime.empty_cache(batch)
    out: list[list[int]] = [[] for _ in range(batch)]
    done = np.zeros(batch, dtype=bool)
    rows = np.arange(batch)
    limits = np.asarray(max_lengths)
    for step in range(int(limits.max())):
        # With the cache: the last token at its position. Without: the whole prefix, empty past.
        new_tokens = tokens if use_cache else prefix
        positions = np.arange(step + 1 - new_tokens.shape[1], step + 1, dtype=np.int64)
        result = runtime.step(
            new_tokens,
            np.tile(positions, (batch, 1)),
            rows,
            np.ones((batch, step + 1), bool),
            src_mask,
            1,
            past if use_cache else runtime.empty_cache(batch),
            enc.cross,
        )
        if use_cache:
            past = result.cache
        tokens = result.ids[:, :1]
        prefix = np.concatenate([prefix, tokens], axis=1)
        for row in np.flatnonzero(~done):
            out[row].append(int(tokens[row, 0]))
        done |= (tokens[:, 0] == cfg.eos_id) | (step + 1 >= limits)
        if done.all():
            break
    return out


def check_package(checkpoint: str | Path | None, package: str | Path) -> str:
    """A short parity report of ``package`` against ``checkpoint`` (see :func:`verify_package`)."""
    from export.source import from_checkpoint

    return verify_package(from_checkpoint(checkpoint), package)


def verify_package(source: ModelSource, package: str | Path) -> str:
    """The pipeline's last step, for every loader: the package's own tokenizer encodes the
    source's sample texts (for its first target), then greedy translations are compared with the
    PyTorch reference search and (fp32 only) every step's log-probabilities within 1e-4."""
    from contract.tokenizers import for_target, load_tokenizer
    from model.search import SearchOptions, max_lengths, search

    model = source.model
    runtime = PackageRuntime(package)
    config = runtime.config
    tokenizer = for_target(load_tokenizer(config), config, config.target_langs[0])
    limit = config.max_source_tokens - 1
    sources = [ids[:limit] for ids in tokenizer.encode_batch(source.sample_texts)]
    src = padded_sources(model, sources)
    options = SearchOptions(beam_size=1)
    reference = [h[0].tokens for h in search(model, torch.from_numpy(src), options)]
    limits = max_lengths(
        torch.from_numpy(src != model.cfg.pad_id), options, model.cfg.max_positions
    )
    onnx_out = onnx_greedy(runtime, src, limits.tolist())
    same = sum(a == b for a, b in zip(onnx_out, reference, strict=True))
    fp32 = config.precision == "fp32"
    parity = step_parity(model, runtime, sources, reference, tolerance=1e-4 if fp32 else None)
    return (
        f"{config.precision}: greedy translations identical to PyTorch for {same}/"
        f"{len(reference)} sentences; log-probabilities max |diff| {parity.max_diff:.2e} over "
        f"{parity.steps} steps, best token agrees {parity.argmax_agreement:.1%}"
    )
