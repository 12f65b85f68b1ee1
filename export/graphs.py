"""Torch modules with exactly the signatures of the two exported graphs (see contract/spec.py).

They only rearrange arguments around ``Transformer.encode``, ``cross_kv`` and ``decode_step``: the
computation traced into ONNX is the very code the PyTorch reference runs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from model.transformer import Transformer

TRACE_K = 7  # a k that no traced axis shares


class EncoderGraph(nn.Module):
    """(src_ids, src_mask) -> (encoder_states, cross_key.0, cross_value.0, ...)."""

    def __init__(self, model: Transformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, src_ids: Tensor, src_mask: Tensor) -> tuple[Tensor, ...]:
        states = self.model.encode(src_ids, src_mask)
        flat: list[Tensor] = []
        for k, v in self.model.cross_kv(states):
            flat += [k, v]
        return (states, *flat)


class DecoderGraph(nn.Module):
    """One decoder step for a batch: top-k log-probabilities of the next token after the last new
    position, and the reordered cache grown by the new positions."""

    def __init__(self, model: Transformer) -> None:
        super().__init__()
        self.model = model
        self.layers = model.cfg.decoder_layers

    def forward(
        self,
        input_ids: Tensor,  # (B, T) new tokens; T = 1 in incremental decoding
        positions: Tensor,  # (B, T)
        cache_index: Tensor,  # (B,) rows of the past cache (of B0 rows) that each row continues
        self_mask: Tensor,  # (B, P + T) True at real positions
        src_mask: Tensor,  # (B, S)
        top_k: Tensor,  # (1,)
        *caches: Tensor,  # past k/v per layer (B0, H, P, Dh), then cross k/v (B, H, S, Dh)
    ) -> tuple[Tensor, ...]:
        n = 2 * self.layers
        past_flat, cross_flat = caches[:n], caches[n:]
        past = [
            (
                past_flat[2 * i].index_select(0, cache_index),
                past_flat[2 * i + 1].index_select(0, cache_index),
            )
            for i in range(self.layers)
        ]
        cross = [(cross_flat[2 * i], cross_flat[2 * i + 1]) for i in range(self.layers)]
        logits, present = self.model.decode_step(
            input_ids, positions, cross, src_mask, past, self_mask
        )
        log_probs = self.model.log_probs(logits[:, -1])  # (B, V)
        # Traced with a constant k; the exporter then wires the TopK node to the ``top_k`` input
        # (export/onnx_export.py), since the tracer cannot take k from a tensor.
        k = TRACE_K if torch.jit.is_tracing() else int(top_k)
        values, ids = torch.topk(log_probs, k)
        flat: list[Tensor] = []
        for key, value in present:
            flat += [key, value]
        return (values, ids, *flat)
