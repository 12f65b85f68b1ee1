"""The encoder and the decoder step written directly as ONNX graphs of ONNX Runtime's fused kernels.

Why: traced from PyTorch, one decoder step is a node for every projection, bias add, reshape,
transpose, cache gather and concat, mask, softmax, residual add and layer norm, and on a CPU a
small batch spends much of its step in per-node overhead rather than in arithmetic
(docs/decisions.md #23). Built here from the same weights, a layer is a handful of nodes: one
packed Q/K/V MatMul, ``com.microsoft.MultiHeadAttention`` (bias, mask, past and present
in one kernel), ``com.microsoft.SkipLayerNormalization`` (residual + bias + LayerNorm), and the
feed-forward MatMuls. With ``in_place`` the decoder's self-attention is
``com.microsoft.GroupQueryAttention`` instead, which writes the new position into the cache
buffer it is given rather than copying the whole cache into a grown one (decision #31).

The encoder computes its dense layers (projections, feed-forward, layer norms) over the real
tokens only: a batch of sentences of mixed lengths is padded to its longest, and much of it is
padding (decision #29). The positions are packed into one row of real tokens for everything
position-wise and spread back to (batch, length) only for the attention kernel; padded positions
of the outputs hold copies of a real position's values (finite, and masked wherever read).

The graphs keep the package contract exactly (contract/spec.py: same names, dtypes and axes), so
nothing above the package changes, and the exporter checks them against the PyTorch reference like
the traced ones (export/verify.py). Only the float32 kernels exist on the CPU for these ops, so
fp16 packages (for GPUs) keep the traced graphs; int8 packages quantize these graphs' MatMuls.
The nodes are written through ``export/graph_builder.py``; the decoder's output projection and
its top k by ``export/output_head.py``.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import onnx
import torch
from onnx import TensorProto

from contract.spec import GraphSpec, kv_pair
from contract.variants import ACTIVATIONS, MS_DOMAIN
from export.graph_builder import GraphBuilder, arange, axis_length, linear_bias, linear_weight
from export.output_head import OUTPUT_BLOCK_BYTES, write_top_k
from model.transformer import DecoderLayer, EncoderLayer, MultiHeadAttention, Transformer


class Packing:
    """Moves position-wise tensors between the padded (B, S, W) layout and one packed row of the
    real tokens, (1, N, W), so that dense layers skip the padding. Built once per graph from the
    source mask; ``pack`` and ``unpack`` are one Gather each."""

    def __init__(self, g: GraphBuilder, mask: str, ids: str) -> None:
        self.g = g
        flat = g.one("Reshape", [mask, g.const("flat", np.array([-1], dtype=np.int64))])
        nonzero = g.one("NonZero", [flat])  # (1, N): the flat positions of the real tokens
        self.real = g.one("Squeeze", [nonzero, g.const("axis", np.array([0], dtype=np.int64))])
        # Where each padded position finds its value in the packed row: its rank among the real
        # tokens, or row 0 for padding (any real row would do: padding is masked where read).
        rank = g.one(
            "CumSum",
            [
                g.one("Cast", [flat], to=TensorProto.INT64),
                g.const("axis", np.array(0, dtype=np.int64)),
            ],
        )
        rank = g.one("Sub", [rank, g.const("one", np.array(1, dtype=np.int64))])
        self.restore = g.one("Where", [flat, rank, g.const("zero", np.array(0, dtype=np.int64))])
        self.padded_shape = g.one("Shape", [ids])  # (B, S)
        self._shapes: dict[int, str] = {}

    def pack(self, x: str, width: int) -> str:
        """(B, S, W) -> (1, N, W)."""
        g = self.g
        row = g.one("Reshape", [x, g.const("row", np.array([1, -1, width], dtype=np.int64))])
        return g.one("Gather", [row, self.real], axis=1)

    def unpack(self, x: str, width: int) -> str:
        """(1, N, W) -> (B, S, W)."""
        g = self.g
        if width not in self._shapes:
            w = g.const("width", np.array([width], dtype=np.int64))
            self._shapes[width] = g.one("Concat", [self.padded_shape, w], axis=0)
        spread = g.one("Gather", [x, self.restore], axis=1)  # (1, B * S, W)
        return g.one("Reshape", [spread, self._shapes[width]])


class LayerWriter:
    """Writes one model's layers into a ``GraphBuilder``; names follow the module paths."""

    def __init__(self, model: Transformer, g: GraphBuilder) -> None:
        self.model, self.g, self.cfg = model, g, model.cfg

    def embed(self, table: torch.nn.Embedding, ids: str, positions: str | None, hint: str) -> str:
        """Scaled token embeddings plus sinusoids, as ``Transformer.embed`` (no dropout);
        ``positions`` None: 0, 1, ... along the second axis of ``ids``."""
        g = self.g
        tokens = g.one("Gather", [g.const(f"{hint}.weight", table.weight), ids])
        if self.model.embed_scale != 1.0:
            scale = np.array(self.model.embed_scale, dtype=np.float32)
            tokens = g.one("Mul", [tokens, g.const("embed_scale", scale)])
        table_name = g.const("positions", self.model.positions)
        if positions is None:  # the table's first rows (a Slice: no index tensor to gather by)
            length = g.one("Shape", [ids], start=1, end=2)
            zero = g.const("zero", np.array([0], dtype=np.int64))
            return g.one("Add", [tokens, g.one("Slice", [table_name, zero, length, zero])])
        return g.one("Add", [tokens, g.one("Gather", [table_name, positions])])

    def attention(
        self,
        attn: MultiHeadAttention,
        x: str,
        hint: str,
        *,
        key: str | None = None,
        value: str | None = None,
        key_padding_mask: str = "",
        attention_bias: str = "",
        past: tuple[str, str] | None = None,
        present: tuple[str, str] | None = None,
        packing: Packing | None = None,
        by_source: tuple[str, str] | None = None,
    ) -> str:
        """Self-attention over ``x`` (with an optional past), or attention from ``x`` to
        precomputed ``key``/``value`` (B, H, S, Dh); returns the output projection without its
        bias (which the following SkipLayerNormalization adds). With ``packing``, ``x`` and the
        result are packed rows of real tokens; only the attention kernel sees the padding.
        With ``by_source`` (two shapes: (sources, -1, D) and the rows' own), the queries of the
        rows that share a source (a sentence's beams) attend to it together, as one longer
        query sequence: cross keys/values with fewer rows than ``x``, each read once."""
        g, heads = self.g, attn.n_heads
        if key is None:  # one packed Q/K/V product, split; the biases go into the kernel
            projections = (attn.q_proj, attn.k_proj, attn.v_proj)
            packed = np.concatenate([linear_weight(p) for p in projections], axis=1)
            qkv = g.one("MatMul", [x, g.const(f"{hint}.qkv.weight", packed)])
            if packing is not None:
                qkv = packing.unpack(qkv, packed.shape[1])
            q, k, v = g.op("Split", [qkv], 3, axis=2)
            bias = np.concatenate([linear_bias(p) for p in projections])
            inputs = [q, k, v, g.const(f"{hint}.qkv.bias", bias)]
        else:  # cross-attention: keys and values were projected once, by the encoder graph
            q = g.one("MatMul", [x, g.const(f"{hint}.q.weight", linear_weight(attn.q_proj))])
            q = g.one("Add", [q, g.const(f"{hint}.q.bias", linear_bias(attn.q_proj))])
            assert value is not None
            if by_source is not None:
                q = g.one("Reshape", [q, by_source[0]])
            inputs = [q, key, value, ""]
        inputs += [key_padding_mask, attention_bias]
        if past is not None:
            inputs += list(past)
        outputs: list[str] = [g.name("attention")]
        if present is not None:
            outputs += list(present)
        while inputs and inputs[-1] == "":  # trailing optional inputs are left out
            inputs.pop()
        out = g.op("MultiHeadAttention", inputs, outputs, MS_DOMAIN, num_heads=heads)[0]
        if packing is not None:
            out = packing.pack(out, self.cfg.d_model)
        if by_source is not None:
            out = g.one("Reshape", [out, by_source[1]])
        return g.one("MatMul", [out, g.const(f"{hint}.out.weight", linear_weight(attn.out_proj))])

    def attention_in_place(
        self, attn: MultiHeadAttention, x: str, hint: str, layer: int, lengths: tuple[str, str]
    ) -> str:
        """Causal self-attention over ``x`` (B, 1, D) whose past lives in the layer's cache buffers
        (B, H, capacity, Dh): ``com.microsoft.GroupQueryAttention`` writes each row's new key and
        value at column ``seqlens_k`` (its position) and reads columns 0..position, in place when
        the runtime binds ``present`` to the same buffer as ``past`` (decision #31)."""
        g = self.g
        projections = (attn.q_proj, attn.k_proj, attn.v_proj)
        packed = np.concatenate([linear_weight(p) for p in projections], axis=1)
        qkv = g.one("MatMul", [x, g.const(f"{hint}.qkv.weight", packed)])
        bias = np.concatenate([linear_bias(p) for p in projections])
        qkv = g.one("Add", [qkv, g.const(f"{hint}.qkv.bias", bias)])
        heads = attn.n_heads
        out = g.op(
            "GroupQueryAttention",
            [qkv, "", "", *kv_pair("past", layer), *lengths],
            [g.name("attention"), *kv_pair("present", layer)],
            MS_DOMAIN,
            num_heads=heads,
            kv_num_heads=heads,
        )[0]
        return g.one("MatMul", [out, g.const(f"{hint}.out.weight", linear_weight(attn.out_proj))])

    def add_norm(self, x: str, sublayer: str, bias: torch.Tensor, norm: torch.nn.LayerNorm) -> str:
        """Post-LN residual: LayerNorm(x + sublayer + bias), one kernel."""
        g = self.g
        return g.one(
            "SkipLayerNormalization",
            [
                sublayer,
                x,
                g.const("ln.weight", norm.weight),
                g.const("ln.bias", norm.bias),
                g.const("bias", bias),
            ],
            MS_DOMAIN,
            epsilon=float(norm.eps),
        )

    def feed_forward(self, layer: EncoderLayer | DecoderLayer, x: str, hint: str) -> str:
        g, ffn = self.g, layer.ffn
        h = g.one("MatMul", [x, g.const(f"{hint}.fc1.weight", linear_weight(ffn.fc1))])
        h = g.one("Add", [h, g.const(f"{hint}.fc1.bias", linear_bias(ffn.fc1))])
        act = ACTIVATIONS[self.cfg.activation]  # contract/variants.py, as the PyTorch model
        out = g.one(act.onnx, [h], act.onnx_domain)
        h = g.one("Mul", [h, out]) if act.times_input else out
        h = g.one("MatMul", [h, g.const(f"{hint}.fc2.weight", linear_weight(ffn.fc2))])
        return self.add_norm(x, h, ffn.fc2.bias, layer.final_layer_norm)


def encoder_layers(model: Transformer) -> list[EncoderLayer]:
    """``model.encoder_layers`` typed (``nn.ModuleList`` types its items as ``Module``)."""
    return [cast(EncoderLayer, layer) for layer in model.encoder_layers]


def decoder_layers(model: Transformer) -> list[DecoderLayer]:
    """``model.decoder_layers`` typed (``nn.ModuleList`` types its items as ``Module``)."""
    return [cast(DecoderLayer, layer) for layer in model.decoder_layers]


def kv_heads(g: GraphBuilder, x: str, heads: int, head_dim: int, out: str) -> str:
    """(B, S, D) -> (B, H, S, Dh), named ``out``."""
    shape = g.const("heads_shape", np.array([0, 0, heads, head_dim], dtype=np.int64))
    split = g.one("Reshape", [x, shape])
    return g.op("Transpose", [split], [out], perm=[0, 2, 1, 3])[0]


@torch.no_grad()
def build_encoder(model: Transformer, spec: GraphSpec) -> onnx.ModelProto:
    """(src_ids, src_mask) -> encoder states and every decoder layer's cross keys/values; the
    dense layers run over the real tokens only (``Packing``)."""
    cfg, g = model.cfg, GraphBuilder()
    w = LayerWriter(model, g)
    packing = Packing(g, "src_mask", "src_ids")
    x = packing.pack(w.embed(model.shared, "src_ids", None, "shared"), cfg.d_model)
    padding = g.one("Cast", ["src_mask"], to=TensorProto.INT32)  # 1 at real tokens
    for i, layer in enumerate(encoder_layers(model)):
        hint = f"encoder.{i}"
        attn = w.attention(
            layer.self_attn, x, f"{hint}.self", key_padding_mask=padding, packing=packing
        )
        x = w.add_norm(x, attn, layer.self_attn.out_proj.bias, layer.self_attn_layer_norm)
        x = w.feed_forward(layer, x, hint)
    g.op("Identity", [packing.unpack(x, cfg.d_model)], ["encoder_states"])
    for i, decoder_layer in enumerate(decoder_layers(model)):
        cross = decoder_layer.encoder_attn
        for proj, name in zip((cross.k_proj, cross.v_proj), kv_pair("cross", i), strict=True):
            projected = g.one("MatMul", [x, g.const(f"{name}.weight", linear_weight(proj))])
            projected = g.one("Add", [projected, g.const(f"{name}.bias", linear_bias(proj))])
            projected = packing.unpack(projected, cfg.d_model)
            kv_heads(g, projected, cfg.n_heads, cfg.head_dim, name)
    return g.model(spec, "encoder")


def self_attention_bias(g: GraphBuilder) -> str:
    """(B, 1, T, P + T) additive bias: 0 where a new position may attend (a real position, and not
    one after itself), the float32 minimum elsewhere; built once per step, read by every layer."""
    new_len, total = axis_length(g, "input_ids", 1), axis_length(g, "self_mask", 1)
    keys = arange(g, total)  # (P + T,)
    queries = g.one("Add", [arange(g, new_len), g.one("Sub", [total, new_len])])  # P + (0..T-1)
    queries = g.one("Unsqueeze", [queries, g.const("axes", np.array([1], dtype=np.int64))])
    causal = g.one("LessOrEqual", [keys, queries])  # (T, P + T)
    real = g.one("Unsqueeze", ["self_mask", g.const("axes", np.array([1, 2], dtype=np.int64))])
    allowed = g.one("And", [real, causal])  # (B, 1, T, P + T)
    lowest = np.array(np.finfo(np.float32).min, dtype=np.float32)
    open_ = g.const("open", np.array(0, np.float32))
    return g.one("Where", [allowed, open_, g.const("low", lowest)])


def cache_lengths(g: GraphBuilder) -> tuple[str, str]:
    """GroupQueryAttention's ``seqlens_k`` (B,) and ``total_sequence_length`` (scalar), int32:
    each row's last position (its cached positions, the new one included, minus one) and the
    longest row's length. A row's cache columns are its positions, so nothing else is needed."""
    last = g.one("Gather", ["positions", g.const("last", np.array(-1, dtype=np.int64))], axis=1)
    seqlens = g.one("Cast", [last], to=TensorProto.INT32)
    longest = g.one("ReduceMax", [seqlens], keepdims=0)
    total = g.one("Add", [longest, g.const("one", np.array(1, dtype=np.int32))])
    return seqlens, total


@torch.no_grad()
def build_decoder(
    model: Transformer,
    spec: GraphSpec,
    in_place: bool = False,
    output_block_bytes: int = OUTPUT_BLOCK_BYTES,
) -> onnx.ModelProto:
    """One decoder step with the package's decoder IO (contract/spec.py): the top-k
    log-probabilities after the last new position and the reordered, grown cache. The cross
    keys/values may have fewer rows than the batch (``sources``): each is read by the
    batch / sources consecutive rows it is shared by (a sentence's beams). ``in_place``: the
    self-attention cache is one buffer per layer written in place (``cache_index`` and
    ``self_mask`` are not inputs: rows are in the buffer's order, lengths are positions).
    ``output_block_bytes``: the most fp32 bytes of one block of the output projection (see
    export/output_head.py)."""
    cfg, g = model.cfg, GraphBuilder()
    w = LayerWriter(model, g)
    x = w.embed(model.target_embed, "input_ids", "positions", "target_embed")
    if in_place:
        lengths = cache_lengths(g)
    else:
        bias = self_attention_bias(g)
    padding = g.one("Cast", ["src_mask"], to=TensorProto.INT32)
    # (sources, -1, D) from the cross keys' (sources, H, S, ...) shape, without a Concat.
    sources = g.one("Shape", [kv_pair("cross", 0)[0]], start=0, end=3)
    first = g.const("first_axis", np.array([1, 0, 0], dtype=np.int64))
    rest = g.const("rest_axes", np.array([0, -1, cfg.d_model], dtype=np.int64))
    by_source = (g.one("Add", [g.one("Mul", [sources, first]), rest]), g.one("Shape", [x]))
    for i, layer in enumerate(decoder_layers(model)):
        hint = f"decoder.{i}"
        if in_place:
            attn = w.attention_in_place(layer.self_attn, x, f"{hint}.self", i, lengths)
        else:
            past = tuple(
                g.one("Gather", [name, "cache_index"], axis=0) for name in kv_pair("past", i)
            )
            attn = w.attention(
                layer.self_attn,
                x,
                f"{hint}.self",
                attention_bias=bias,
                past=(past[0], past[1]),
                present=kv_pair("present", i),
            )
        x = w.add_norm(x, attn, layer.self_attn.out_proj.bias, layer.self_attn_layer_norm)
        key, value = kv_pair("cross", i)
        attn = w.attention(
            layer.encoder_attn,
            x,
            f"{hint}.cross",
            key=key,
            value=value,
            key_padding_mask=padding,
            by_source=by_source,
        )
        x = w.add_norm(x, attn, layer.encoder_attn.out_proj.bias, layer.encoder_attn_layer_norm)
        x = w.feed_forward(layer, x, hint)
    last = g.one(
        "Slice",
        [
            x,
            *(
                g.const(n, np.array([v], dtype=np.int64))
                for n, v in (("start", -1), ("end", np.iinfo(np.int64).max), ("axis", 1))
            ),
        ],
    )
    last = g.one("Squeeze", [last, g.const("axis", np.array([1], dtype=np.int64))])  # (B, D)
    write_top_k(g, last, model, output_block_bytes)
    return g.model(spec, "decoder")


@torch.no_grad()
def build_aligner(model: Transformer, spec: GraphSpec, layer: int) -> onnx.ModelProto:
    """The teacher-forced cross-attention of decoder layer ``layer`` averaged over its heads
    (contract/spec.py ``aligner_spec``): the decoder's layers 0..``layer`` written with the same
    weights, in the same layout, as ``build_decoder`` writes them, so that the package stores each
    tensor once (export/weights.py) and the graph costs no memory for its weights."""
    cfg, g = model.cfg, GraphBuilder()
    w = LayerWriter(model, g)
    x = w.embed(model.target_embed, "input_ids", None, "target_embed")
    length = axis_length(g, "input_ids", 1)
    keys = arange(g, length)
    queries = g.one("Unsqueeze", [keys, g.const("axes", np.array([1], dtype=np.int64))])
    causal = g.one("LessOrEqual", [keys, queries])  # (T, T): a position sees itself and before
    causal = g.one("Unsqueeze", [causal, g.const("axes", np.array([0, 1], dtype=np.int64))])
    lowest = g.const("low", np.array(np.finfo(np.float32).min, dtype=np.float32))
    bias = g.one("Where", [causal, g.const("open", np.array(0, np.float32)), lowest])
    padding = g.one("Cast", ["src_mask"], to=TensorProto.INT32)
    layers = decoder_layers(model)
    for i, block in enumerate(layers[: layer + 1]):
        hint = f"decoder.{i}"
        attn = w.attention(block.self_attn, x, f"{hint}.self", attention_bias=bias)
        x = w.add_norm(x, attn, block.self_attn.out_proj.bias, block.self_attn_layer_norm)
        key, value = kv_pair("cross", i)
        if i == layer:
            break
        attn = w.attention(
            block.encoder_attn, x, f"{hint}.cross", key=key, value=value, key_padding_mask=padding
        )
        x = w.add_norm(x, attn, block.encoder_attn.out_proj.bias, block.encoder_attn_layer_norm)
        x = w.feed_forward(block, x, hint)
    cross = layers[layer].encoder_attn
    q = g.one(
        "MatMul", [x, g.const(f"decoder.{layer}.cross.q.weight", linear_weight(cross.q_proj))]
    )
    q = g.one("Add", [q, g.const(f"decoder.{layer}.cross.q.bias", linear_bias(cross.q_proj))])
    shape = g.const("heads_shape", np.array([0, 0, cfg.n_heads, cfg.head_dim], dtype=np.int64))
    q = g.one("Reshape", [q, shape])  # (B, T, H, Dh)
    # An Einsum, not a MatMul: int8 packages quantize MatMuls, and both operands are activations.
    scores = g.one("Einsum", [q, key], equation="bthd,bhsd->bhts")
    scale = np.array(cfg.head_dim**-0.5, dtype=np.float32)
    scores = g.one("Mul", [scores, g.const("scale", scale)])
    unmasked = g.one("Unsqueeze", ["src_mask", g.const("axes", np.array([1, 2], dtype=np.int64))])
    source_bias = g.one("Where", [unmasked, g.const("open", np.array(0, np.float32)), lowest])
    weights = g.one("Softmax", [g.one("Add", [scores, source_bias])], axis=-1)
    g.op("ReduceMean", [weights], ["alignment"], axes=[1], keepdims=0)
    return g.model(spec, "aligner")
