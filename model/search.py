"""Reference decoding in PyTorch: batched greedy and beam search over the KV-cached decoder.

This is the reference the ONNX engine is checked against, so it favours plain, checkable code over
speed: every row of the batch keeps running until the whole batch is done.
"""

from __future__ import annotations

import torch
from torch import Tensor

from contract.options import Hypothesis, SearchOptions
from model.transformer import KV, Transformer

__all__ = ["Hypothesis", "SearchOptions", "max_lengths", "search"]


def max_lengths(src_mask: Tensor, options: SearchOptions, max_positions: int) -> Tensor:
    """Per-row output budget a * source_len + b, capped by the position table."""
    src_len = src_mask.sum(dim=1).float()
    budget = (options.max_length_a * src_len + options.max_length_b).long()
    return budget.clamp(min=1, max=max_positions)


def reorder(cache: list[KV], index: Tensor) -> list[KV]:
    return [(k.index_select(0, index), v.index_select(0, index)) for k, v in cache]


@torch.inference_mode()
def search(model: Transformer, src: Tensor, options: SearchOptions) -> list[list[Hypothesis]]:
    """Decode a padded batch of source ids (B, S): ``nbest`` hypotheses per row, best first."""
    cfg = model.cfg
    batch, k = src.shape[0], options.beam_size
    src_mask = src.ne(cfg.pad_id)
    limits = max_lengths(src_mask, options, cfg.max_positions).tolist()
    memory = model.encode(src, src_mask)
    # Every beam of a row reads the same source: repeat encoder outputs K times (B*K rows).
    src_mask = src_mask.repeat_interleave(k, dim=0)
    cross = model.cross_kv(memory.repeat_interleave(k, dim=0))

    scores = torch.zeros(batch, k, device=src.device)
    scores[:, 1:] = float("-inf")  # all beams start identical: expand only the first
    tokens = torch.full((batch * k, 1), cfg.decoder_start_id, dtype=torch.long, device=src.device)
    history = torch.zeros(batch * k, 0, dtype=torch.long, device=src.device)
    cache: list[KV] | None = None
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    done = [False] * batch

    for step in range(max(limits)):
        positions = torch.full_like(tokens, step)
        logits, cache = model.decode_step(tokens, positions, cross, src_mask, cache)
        log_probs = model.log_probs(logits[:, -1])
        if step + 1 < options.min_length:
            log_probs[:, cfg.eos_id] = float("-inf")
        vocab = log_probs.shape[-1]
        candidates = (scores.unsqueeze(-1) + log_probs.view(batch, k, vocab)).view(batch, -1)
        # 2K candidates guarantee K that do not end here, whatever ends with EOS.
        top_scores, top_index = candidates.topk(min(2 * k, k * vocab), dim=1)
        beam_index = top_index // vocab
        top_tokens = top_index % vocab
        is_eos = top_tokens.eq(cfg.eos_id)
        length = step + 1
        norm = options.length_norm(length)

        for row in range(batch):
            if done[row]:
                continue
            for j in range(k):  # EOS among the best K candidates finishes a hypothesis
                if is_eos[row, j] and top_scores[row, j] > float("-inf"):
                    prefix = history[row * k + beam_index[row, j]].tolist()
                    finished[row].append(
                        Hypothesis(prefix + [cfg.eos_id], float(top_scores[row, j]) / norm, "eos")
                    )
        open_scores = top_scores.masked_fill(is_eos, float("-inf"))
        scores, pick = open_scores.topk(k, dim=1)
        chosen_beam = beam_index.gather(1, pick)
        chosen_token = top_tokens.gather(1, pick)
        flat = (torch.arange(batch, device=src.device).unsqueeze(1) * k + chosen_beam).view(-1)
        history = torch.cat([history.index_select(0, flat), chosen_token.view(-1, 1)], dim=1)
        cache = reorder(cache, flat)
        tokens = chosen_token.view(-1, 1)

        for row in range(batch):
            if done[row]:
                continue
            if length >= limits[row]:  # out of budget: the open beams end here, unfinished
                for j in range(k):
                    if scores[row, j] > float("-inf"):
                        finished[row].append(
                            Hypothesis(
                                history[row * k + j].tolist(),
                                float(scores[row, j]) / norm,
                                "length",
                            )
                        )
                done[row] = True
            elif len(finished[row]) >= k:
                done[row] = True
        if all(done):
            break

    return [sorted(hyps, key=lambda h: h.score, reverse=True)[: options.nbest] for hyps in finished]
