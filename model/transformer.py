"""The Transformer encoder-decoder of "Attention Is All You Need" (Vaswani et al., 2017).

Written in the paper's order: attention (§3.2), feed-forward (§3.3), embeddings and positions
(§3.4-3.5), encoder and decoder layers (§3.1), the full model. It is kept expressible as a Hugging
Face ``MarianMTModel`` (post-LN, sinusoidal positions laid out as all sines then all cosines,
embeddings scaled by sqrt(d_model) and shared between encoder, decoder and the output projection,
an output bias, decoding started from the pad token) so the same weights can later run in
Transformers and CTranslate2.

``encode`` and ``decode_step`` are separate methods and every cache is an argument and a return
value, never an attribute: these are the seams the ONNX export traces and the reference it is
checked against. Shapes: B batch, S source length, T target (new) length, P cached past length,
D d_model, H heads, Dh head dim, V vocabulary.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contract.variants import ACTIVATIONS
from model.config import ModelConfig  # declared torch-free; imported from here too

# One (key, value) pair per layer, each (B, H, L, Dh).
KV = tuple[Tensor, Tensor]


# --- §3.2 Attention ------------------------------------------------------------------------------


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention; q/k/v/out projections named as in Marian."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def split_heads(self, x: Tensor) -> Tensor:
        b, length, _ = x.shape
        return x.view(b, length, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, L, Dh)

    def project_kv(self, x: Tensor) -> KV:
        """Keys and values for ``x`` (B, L, D): used once per request for cross-attention."""
        return self.split_heads(self.k_proj(x)), self.split_heads(self.v_proj(x))

    def weights(self, query: Tensor, key: Tensor, allowed: Tensor | None) -> Tensor:
        """Attention probabilities (B, H, T, L) of ``query`` (B, T, D) over ``key``
        (B, H, L, Dh)."""
        q = self.split_heads(self.q_proj(query)) * self.head_dim**-0.5  # (B, H, T, Dh)
        scores = torch.matmul(q, key.transpose(-1, -2))  # (B, H, T, L)
        if allowed is not None:
            scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        return scores.softmax(dim=-1)

    def forward(self, query: Tensor, kv: KV, allowed: Tensor | None) -> Tensor:
        """``query`` (B, T, D); ``kv`` each (B, H, L, Dh); ``allowed`` bool, broadcastable to
        (B, H, T, L), True where a query may attend a key.

        Written out rather than through F.scaled_dot_product_attention: traced, SDPA scales K^T
        (a transpose of the whole cache materialized every step) and guards fully masked rows
        with IsNaN/Where; this form exports as MatMul(q, K^T), which ONNX Runtime fuses into one
        transposing matmul (see docs/decisions.md #10).
        """
        weights = F.dropout(self.weights(query, kv[0], allowed), self.dropout, self.training)
        out = torch.matmul(weights, kv[1])  # (B, H, T, Dh)
        b, _, t, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))


# --- §3.3 Position-wise feed-forward networks ----------------------------------------------------


class FeedForward(nn.Module):
    """FFN(x) = act(x W1 + b1) W2 + b2; act is ReLU in the paper and ours, SiLU or GELU in some
    Marian models (by Transformers' names, from the table in contract/variants.py)."""

    def __init__(
        self, d_model: int, d_ff: int, activation_dropout: float, activation: str = "relu"
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.activation_dropout = nn.Dropout(activation_dropout)
        self.act = getattr(F, ACTIVATIONS[activation].torch)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.activation_dropout(self.act(self.fc1(x))))


# --- §3.4-3.5 Embeddings and positional encoding -------------------------------------------------


def sinusoidal_table(max_positions: int, d_model: int) -> Tensor:
    """(max_positions, D) sinusoids, Marian layout: all sines in the first half, then all cosines.

    The frequencies are the paper's, 1 / 10000^(2i / D) for i < D/2; only the column order differs
    from the paper's interleaving, which does not change what the model can learn.
    """
    half = d_model // 2
    position = torch.arange(max_positions, dtype=torch.float64).unsqueeze(1)
    inv_freq = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64) * 2.0 / d_model)
    angles = position * inv_freq  # (max_positions, D/2)
    table = torch.zeros(max_positions, d_model, dtype=torch.float64)
    table[:, :half] = torch.sin(angles)
    table[:, half : 2 * half] = torch.cos(angles)
    return table.float()


# --- §3.1 Encoder and decoder stacks (post-LN: LayerNorm(x + Sublayer(x))) -----------------------


class EncoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(cfg.d_model)
        self.ffn = FeedForward(cfg.d_model, cfg.d_ff, cfg.activation_dropout, cfg.activation)
        self.final_layer_norm = nn.LayerNorm(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, allowed: Tensor) -> Tensor:
        x = self.self_attn_layer_norm(
            x + self.dropout(self.self_attn(x, self.self_attn.project_kv(x), allowed))
        )
        return self.final_layer_norm(x + self.dropout(self.ffn(x)))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(cfg.d_model)
        self.encoder_attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.attention_dropout)
        self.encoder_attn_layer_norm = nn.LayerNorm(cfg.d_model)
        self.ffn = FeedForward(cfg.d_model, cfg.d_ff, cfg.activation_dropout, cfg.activation)
        self.final_layer_norm = nn.LayerNorm(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self, x: Tensor, past: KV | None, cross: KV, self_allowed: Tensor, cross_allowed: Tensor
    ) -> tuple[Tensor, KV]:
        """``x`` (B, T, D) new positions; ``past`` each (B, H, P, Dh) or None. Returns the output
        and the self-attention cache grown to P + T."""
        k, v = self.self_attn.project_kv(x)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        x = self.self_attn_layer_norm(x + self.dropout(self.self_attn(x, (k, v), self_allowed)))
        x = self.encoder_attn_layer_norm(
            x + self.dropout(self.encoder_attn(x, cross, cross_allowed))
        )
        x = self.final_layer_norm(x + self.dropout(self.ffn(x)))
        return x, (k, v)


# --- The model ------------------------------------------------------------------------------------


class Transformer(nn.Module):
    """Encoder-decoder; ours has one joint vocabulary and embeddings tied to the output projection.

    Imported Marian models may have a separate target vocabulary (``decoder_embed``) and an untied
    output projection (``lm_head``); ``shared`` is always the encoder's embedding matrix.
    """

    positions: Tensor  # (max_positions, D) sinusoids: a buffer, registered in __init__

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_scale = math.sqrt(cfg.d_model) if cfg.scale_embedding else 1.0
        self.shared = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=cfg.pad_id)
        self.decoder_embed = (
            None
            if cfg.share_embeddings
            else nn.Embedding(cfg.output_vocab_size, cfg.d_model, padding_idx=cfg.pad_id)
        )
        self.lm_head = (
            None
            if cfg.tie_output
            else nn.Parameter(torch.empty(cfg.output_vocab_size, cfg.d_model))
        )
        self.register_buffer(
            "positions", sinusoidal_table(cfg.max_positions, cfg.d_model), persistent=False
        )
        self.encoder_layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.encoder_layers))
        self.decoder_layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.decoder_layers))
        # Marian calls this final_logits_bias; the weight is self.shared.weight (tied).
        self.final_logits_bias = nn.Parameter(torch.zeros(cfg.output_vocab_size))
        self.dropout = nn.Dropout(cfg.dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for embedding in self.embeddings():
            nn.init.normal_(embedding.weight, mean=0.0, std=self.cfg.d_model**-0.5)
        self.zero_pad_embedding()

    def embeddings(self) -> list[nn.Embedding]:
        return [self.shared] if self.decoder_embed is None else [self.shared, self.decoder_embed]

    @property
    def target_embed(self) -> nn.Embedding:
        """The decoder's token embeddings: ``shared`` unless the vocabularies are separate."""
        return self.shared if self.decoder_embed is None else self.decoder_embed

    def zero_pad_embedding(self) -> None:
        """Keep the pad row of the shared embedding at zero, as Marian does: the decoder starts
        from the pad token, i.e. from a zero embedding (CTranslate2's Marian converter relies on
        it). ``padding_idx`` alone does not ensure it, because the tied output projection trains
        that row too; training calls this after every optimizer step."""
        with torch.no_grad():
            for embedding in self.embeddings():
                embedding.weight[self.cfg.pad_id].zero_()

    def embed(self, table: nn.Embedding, ids: Tensor, positions: Tensor) -> Tensor:
        """(B, L) ids and positions -> (B, L, D): scaled token embeddings plus sinusoids (§3.4)."""
        return self.dropout(table(ids) * self.embed_scale + self.positions[positions])

    # -- encoder ---------------------------------------------------------------------------------

    def encode(self, src: Tensor, src_mask: Tensor) -> Tensor:
        """``src`` (B, S) ids, ``src_mask`` (B, S) True at real tokens -> encoder states (B, S, D).

        Masks are True where a position is real, here, in the graphs and in the runtime alike."""
        self.check_length(src.shape[1])
        positions = torch.arange(src.shape[1], device=src.device).unsqueeze(0)
        x = self.embed(self.shared, src, positions)
        allowed = src_mask[:, None, None, :]  # (B, 1, 1, S): keys that are not padding
        for layer in self.encoder_layers:
            x = layer(x, allowed)
        return x

    def cross_kv(self, memory: Tensor) -> list[KV]:
        """Cross-attention keys/values of every decoder layer, projected once per request."""
        layers = cast(list[DecoderLayer], list(self.decoder_layers))  # ModuleList: Module items
        return [layer.encoder_attn.project_kv(memory) for layer in layers]

    # -- decoder ---------------------------------------------------------------------------------

    def decode_step(
        self,
        tokens: Tensor,
        positions: Tensor,
        cross: list[KV],
        src_mask: Tensor,
        cache: list[KV] | None = None,
        self_mask: Tensor | None = None,
    ) -> tuple[Tensor, list[KV]]:
        """Logits (B, T, V) for ``tokens`` and the grown cache; see :meth:`decoder_states`."""
        states, new_cache = self.decoder_states(
            tokens, positions, cross, src_mask, cache, self_mask
        )
        return self.project(states), new_cache

    def decoder_states(
        self,
        tokens: Tensor,
        positions: Tensor,
        cross: list[KV],
        src_mask: Tensor,
        cache: list[KV] | None = None,
        self_mask: Tensor | None = None,
    ) -> tuple[Tensor, list[KV]]:
        """Run the decoder over ``tokens`` (B, T) at ``positions`` (B, T), attending to ``cache``
        (the P earlier positions of every layer) and to itself causally.

        ``self_mask`` (B, P + T), True where a cached or new position is real (False for the
        slots of rows that joined later than others, or right-padded targets), is optional.
        Returns decoder states (B, T, D) and the cache grown to P + T. With T = 1 this is one
        incremental step; with P = 0 and T the
        full target it is teacher forcing.
        """
        self.check_length(int(positions.max()) + 1)
        past_len = 0 if cache is None else cache[0][0].shape[2]
        t = tokens.shape[1]
        # Causal mask over [past ; new]: query i (absolute past_len + i) sees keys <= past_len + i.
        key_index = torch.arange(past_len + t, device=tokens.device)
        query_index = torch.arange(t, device=tokens.device).unsqueeze(1) + past_len
        self_allowed = (key_index.unsqueeze(0) <= query_index)[None, None]  # (1, 1, T, P+T)
        if self_mask is not None:
            self_allowed = self_allowed & self_mask[:, None, None, :]
        cross_allowed = src_mask[:, None, None, :]

        x = self.embed(self.target_embed, tokens, positions)
        new_cache: list[KV] = []
        for i, layer in enumerate(self.decoder_layers):
            past = None if cache is None else cache[i]
            x, kv = layer(x, past, cross[i], self_allowed, cross_allowed)
            new_cache.append(kv)
        return x, new_cache

    def cross_attention(
        self, tokens: Tensor, cross: list[KV], src_mask: Tensor, layer: int
    ) -> Tensor:
        """Teacher-forced attention (B, T, S) of decoder layer ``layer`` over the source, averaged
        over its heads, for the target ``tokens`` (B, T) at positions 0..T-1 (the start token
        first): where each target position looked. What tags are placed by (the aligner graph,
        docs/decisions.md #47); layers after ``layer`` are not run."""
        t = tokens.shape[1]
        self.check_length(t)
        positions = torch.arange(t, device=tokens.device).unsqueeze(0).expand(tokens.shape[0], -1)
        index = torch.arange(t, device=tokens.device)
        self_allowed = (index.unsqueeze(0) <= index.unsqueeze(1))[None, None]  # (1, 1, T, T)
        cross_allowed = src_mask[:, None, None, :]
        x = self.embed(self.target_embed, tokens, positions)
        layers = cast(list[DecoderLayer], list(self.decoder_layers))
        for i, block in enumerate(layers[:layer]):
            x, _ = block(x, None, cross[i], self_allowed, cross_allowed)
        block = layers[layer]
        k, v = block.self_attn.project_kv(x)
        x = block.self_attn_layer_norm(x + block.self_attn(x, (k, v), self_allowed))
        weights = block.encoder_attn.weights(x, cross[layer][0], cross_allowed)
        return weights.mean(dim=1)

    def project(self, x: Tensor) -> Tensor:
        """Decoder states (..., D) -> logits (..., V) through the tied embedding matrix (or the
        untied ``lm_head`` of an imported model)."""
        weight = self.target_embed.weight if self.lm_head is None else self.lm_head
        return F.linear(x, weight, self.final_logits_bias)

    def log_probs(self, logits: Tensor) -> Tensor:
        """Next-token log-probabilities (..., V) from logits, as every search reads them. A pad the
        model must never generate is set to -inf after the softmax, as Transformers' ``generate``
        does with ``bad_words_ids=[[pad]]`` (the other scores keep pad's share of the mass)."""
        log_probs = F.log_softmax(logits.float(), dim=-1)
        if self.cfg.suppress_pad:
            log_probs = log_probs.index_fill(-1, self.pad_index, float("-inf"))
        return log_probs

    @property
    def pad_index(self) -> Tensor:
        return torch.tensor([self.cfg.pad_id], device=self.final_logits_bias.device)

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher-forced decoder states (B, T, D) for training: ``tgt_in`` starts with the start
        token. States rather than logits, so training projects only the non-padding positions."""
        src_mask = src.ne(self.cfg.pad_id)
        memory = self.encode(src, src_mask)
        positions = torch.arange(tgt_in.shape[1], device=src.device).unsqueeze(0)
        positions = positions.expand(tgt_in.shape[0], -1)
        states, _ = self.decoder_states(tgt_in, positions, self.cross_kv(memory), src_mask)
        return states

    def check_length(self, length: int) -> None:
        if length > self.cfg.max_positions:
            raise ValueError(
                f"sequence of {length} positions exceeds max_positions={self.cfg.max_positions}"
            )
