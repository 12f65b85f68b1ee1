"""The fused decoder's head: the output projection from the last position, and its top k.

From the decoder's last states (B, D) to the package's ``topk_logprobs`` and ``topk_ids``
(contract/spec.py): the log-probabilities of the next token, projected in column blocks where the
token table is large (decision #40), and for a Marian decoder with pad never among the best
(decision #37). Written into the decoder graph by ``export/fused.py``'s ``build_decoder``.
"""

from __future__ import annotations

import numpy as np

from export.graph_builder import GraphBuilder, i64
from model.transformer import Transformer

# The most bytes of weight one block of the output projection holds as a package stores it
# (decision #40): an int8 package stores a quarter of the fp32 graph's bytes it quantizes.
OUTPUT_BLOCK_BYTES = 32 * 2**20
# A block's width in token ids is a multiple of this (MLAS packs B in panels of 16 columns).
OUTPUT_BLOCK_ALIGN = 64


def write_top_k(g: GraphBuilder, last: str, model: Transformer, block_bytes: int) -> None:
    """``topk_logprobs`` and ``topk_ids`` (best first) of the next token after ``last`` (B, D),
    for the ``top_k`` graph input; ``block_bytes``: see ``output_top_k``."""
    log_probs, ids = output_top_k(g, last, model, block_bytes)
    if model.cfg.suppress_pad:
        top_k_without_pad(g, log_probs, ids, model.cfg.pad_id)
    elif ids is None:
        g.op("TopK", [log_probs, "top_k"], ["topk_logprobs", "topk_ids"], axis=-1)
    else:
        best = g.op("TopK", [log_probs, "top_k"], ["topk_logprobs", g.name("best")], axis=-1)[1]
        g.op("GatherElements", [ids, best], ["topk_ids"], axis=-1)


def top_k_without_pad(g: GraphBuilder, log_probs: str, ids: str | None, pad_id: int) -> None:
    """``topk_logprobs`` and ``topk_ids`` with pad never among them (Marian: pad is the decoder's
    start), as Transformer.log_probs puts it at -inf after the softmax; done on the top k + 1
    instead of the whole vocabulary (an Add over (B, V) is most of that work: decision #37): pad
    is dropped where it is among them, the last of them where not. TopK puts ties lower index
    first, so the order is the reference's; with k = the vocabulary, pad comes last at -inf.
    ``ids``: the token id of each column of ``log_probs`` (None: the column is the id)."""
    columns = g.one("Shape", [log_probs], start=-1)
    wider = g.one("Min", [g.one("Add", ["top_k", i64(g, "one", 1)]), columns])
    values, best = g.op("TopK", [log_probs, wider], 2, axis=-1)
    if ids is not None:
        best = g.one("GatherElements", [ids, best], axis=-1)
    is_pad = g.one("Equal", [best, g.const("pad_id", np.array(pad_id, dtype=np.int64))])
    never = g.const("never", np.array(-np.inf, dtype=np.float32))
    masked = g.one("Where", [is_pad, never, values])
    kept = g.op("TopK", [masked, "top_k"], ["topk_logprobs", g.name("kept")], axis=-1)[1]
    g.op("GatherElements", [best, kept], ["topk_ids"], axis=-1)


def output_top_k(
    g: GraphBuilder, last: str, model: Transformer, block_bytes: int
) -> tuple[str, str | None]:
    """Each row's best ``top_k`` (k + 1 for a Marian decoder, which drops pad after) log-probs of
    the next token, or the whole distribution where the output projection is one block; with the
    token id of each column (None: the column is the id).

    Why blocks: ONNX Runtime repacks each MatMul weight at load while the file's pages of it
    are still mapped, so the largest weight, a large vocabulary's token table, is held twice for
    a moment: the peak of a load (decision #40). A table of more than ``block_bytes`` is split
    into column blocks; each block takes its own log-softmax and top k, and its log-sum-exp (its
    best logit minus its best log-prob) corrects its candidates to the whole vocabulary's: the
    (B, V) distribution is never joined (a Concat of it is a copy of (B, V) every step)."""
    cfg = model.cfg
    weight = model.target_embed.weight if model.lm_head is None else model.lm_head
    table, bias = weight.t().contiguous(), model.final_logits_bias  # (D, V), (V,)
    width = block_bytes // (table.shape[0] * table.element_size())
    width = max(OUTPUT_BLOCK_ALIGN, width - width % OUTPUT_BLOCK_ALIGN)
    starts = range(0, table.shape[1], width)
    blocks = []
    for start in starts:
        columns = slice(start, start + width)
        logits = g.one("MatMul", [last, g.const("output.weight", table[:, columns].contiguous())])
        blocks.append(g.one("Add", [logits, g.const("final_logits_bias", bias[columns])]))
    # (TopK of the logits minus their ReduceLogSumExp was tried: ONNX Runtime's ReduceLogSumExp
    # was slower than LogSoftmax over the same (B, V); decision #23.)
    if len(blocks) == 1:
        return g.one("LogSoftmax", [blocks[0]], axis=-1), None
    wanted = g.one("Add", ["top_k", i64(g, "one", 1)]) if cfg.suppress_pad else "top_k"
    first = (i64(g, "zero", 0), i64(g, "one", 1), i64(g, "axis", 1))
    sums, values, ids = [], [], []
    for start, logits in zip(starts, blocks, strict=True):
        size = min(width, table.shape[1] - start)
        log_probs = g.one("LogSoftmax", [logits], axis=-1)
        k = g.one("Min", [wanted, i64(g, "block_size", size)])
        best, best_ids = g.op("TopK", [log_probs, k], 2, axis=-1)
        top_id, top = (g.one("Slice", [t, *first]) for t in (best_ids, best))
        sums.append(g.one("Sub", [g.one("GatherElements", [logits, top_id], axis=-1), top]))
        values.append(best)
        ids.append(g.one("Add", [best_ids, i64(g, "block_start", start)]))
    block_sums = g.one("Concat", sums, axis=-1)  # (B, blocks)
    total = g.one("ReduceLogSumExp", [block_sums], axes=[-1], keepdims=1)
    shifts = g.one("Sub", [block_sums, total])  # each block's log-probs to the whole vocabulary's
    for i in range(len(blocks)):
        shift = g.one("Slice", [shifts, i64(g, "start", i), i64(g, "end", i + 1), first[2]])
        values[i] = g.one("Add", [values[i], shift])
    return g.one("Concat", values, axis=-1), g.one("Concat", ids, axis=-1)
