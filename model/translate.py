"""Text in, text out with the PyTorch reference: tokenize, batch by length, search, detokenize."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from contract.tokenizer import Tokenizer
from model.data import pad
from model.search import Hypothesis, SearchOptions, search
from model.transformer import Transformer


def translate_ids(
    model: Transformer,
    sources: Sequence[Sequence[int]],
    options: SearchOptions,
    batch_size: int = 64,
    sort: bool = True,
) -> list[list[Hypothesis]]:
    """Hypotheses for token-id sources (EOS appended here), in input order.

    Sentences are decoded in batches of similar length so that padding stays small (unless
    ``sort`` is False: batches in the given order, as benchmarks give every engine).
    """
    eos, pad_id = model.cfg.eos_id, model.cfg.pad_id
    rows = [list(s) + [eos] for s in sources]  # too long for the model: it raises, never truncates
    order = list(range(len(rows)))
    if sort:
        order.sort(key=lambda i: len(rows[i]))
    results: list[list[Hypothesis]] = [[] for _ in rows]
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        src = pad([rows[i] for i in chunk], pad_id).to(device)
        for i, hyps in zip(chunk, search(model, src, options), strict=True):
            results[i] = hyps
    return results


def translate_texts(
    model: Transformer,
    tokenizer: Tokenizer,
    texts: Sequence[str],
    options: SearchOptions | None = None,
    batch_size: int = 64,
) -> list[str]:
    """Best translation of every text, in input order. Empty lines translate to empty lines."""
    options = options or SearchOptions()
    nonempty = [i for i, t in enumerate(texts) if t.strip()]
    hyps = translate_ids(
        model, tokenizer.encode_batch([texts[i] for i in nonempty]), options, batch_size
    )
    out = [""] * len(texts)
    for i, h in zip(nonempty, hyps, strict=True):
        out[i] = tokenizer.decode(h[0].tokens)
    return out


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
