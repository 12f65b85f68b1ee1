"""The encoder and the decoder step written directly as ONNX graphs of ONNX Runtime's fused kernels.

Why: traced from PyTorch, one decoder step is ~170 ONNX nodes for three layers (projections, bias
adds, reshapes, transposes, the cache gather and concat, masking, softmax, residual adds, layer
norms), and on a CPU a small batch spends most of its step in per-node overhead rather than in
arithmetic (docs/decisions.md #23). Built here from the same weights, a layer is a handful of
nodes: one packed Q/K/V MatMul, ``com.microsoft.MultiHeadAttention`` (bias, mask, past and present
in one kernel), ``com.microsoft.SkipLayerNormalization`` (residual + bias + LayerNorm), and the
feed-forward MatMuls. With ``in_place`` the decoder's self-attention is
``com.microsoft.GroupQueryAttention`` instead, which writes the new position into the cache
buffer it is given rather than copying the whole cache into a grown one (decision #31).

The encoder computes its dense layers (projections, feed-forward, layer norms) over the real
tokens only: a batch of sentences of mixed lengths is padded to its longest, and in file order a
third to a half of the positions are padding. The positions are packed into one row of real tokens
for everything position-wise and spread back to (batch, length) only for the attention kernel;
padded positions of the outputs hold copies of a real position's values (finite, and masked
wherever they are read).

The graphs keep the package contract exactly (contract/spec.py: same names, dtypes and axes), so
nothing above the package changes, and the exporter checks them against the PyTorch reference like
the traced ones (export/verify.py). Only the float32 kernels exist on the CPU for these ops, so
fp16 packages (for GPUs) keep the traced graphs; int8 packages quantize these graphs' MatMuls.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from contract.spec import OPSET, GraphSpec, TensorSpec, kv_pair
from contract.variants import ACTIVATIONS
from model.transformer import DecoderLayer, EncoderLayer, MultiHeadAttention, Transformer

MS_DOMAIN = "com.microsoft"
IR_VERSION = 9  # what ONNX Runtime 1.2x+ reads; onnx's default may be newer than it accepts
DTYPES = {"float32": TensorProto.FLOAT, "int64": TensorProto.INT64, "bool": TensorProto.BOOL}


class GraphBuilder:
    """Nodes and initializers with unique names; every ``op`` call returns its output names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, value: np.ndarray | torch.Tensor) -> str:
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: int | Sequence[str] = 1,
        domain: str = "",
        **attrs: object,
    ) -> list[str]:
        names = (
            [self.name(op_type) for _ in range(outputs)]
            if isinstance(outputs, int)
            else list(outputs)
        )
        node = helper.make_node(
            op_type, list(inputs), names, name=self.name(op_type), domain=domain, **attrs
        )
        self.nodes.append(node)
        return names

    def one(self, op_type: str, inputs: Sequence[str], domain: str = "", **attrs: object) -> str:
        return self.op(op_type, inputs, 1, domain, **attrs)[0]

    def model(self, spec: GraphSpec, graph_name: str) -> onnx.ModelProto:
        def info(t: TensorSpec) -> onnx.ValueInfoProto:
            shape = [int(a) if a.isdigit() else a for a in t.axes]
            return helper.make_tensor_value_info(t.name, DTYPES[t.dtype], shape)

        graph = helper.make_graph(
            self.nodes,
            graph_name,
            [info(t) for t in spec.inputs],
            [info(t) for t in spec.outputs],
            self.initializers,
        )
        return helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
            ir_version=IR_VERSION,
            producer_name="tongyeok",
        )


def linear_weight(layer: torch.nn.Linear) -> np.ndarray:
    """(in, out): what MatMul multiplies activations by."""
    return layer.weight.detach().t().contiguous().numpy()


def linear_bias(layer: torch.nn.Linear) -> np.ndarray:
    return layer.bias.detach().numpy()


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
    for i, layer in enumerate(model.encoder_layers):
        hint = f"encoder.{i}"
        attn = w.attention(
            layer.self_attn, x, f"{hint}.self", key_padding_mask=padding, packing=packing
        )
        x = w.add_norm(x, attn, layer.self_attn.out_proj.bias, layer.self_attn_layer_norm)
        x = w.feed_forward(layer, x, hint)
    g.op("Identity", [packing.unpack(x, cfg.d_model)], ["encoder_states"])
    for i, layer in enumerate(model.decoder_layers):
        cross = layer.encoder_attn
        for proj, name in zip((cross.k_proj, cross.v_proj), kv_pair("cross", i), strict=True):
            projected = g.one("MatMul", [x, g.const(f"{name}.weight", linear_weight(proj))])
            projected = g.one("Add", [projected, g.const(f"{name}.bias", linear_bias(proj))])
            projected = packing.unpack(projected, cfg.d_model)
            kv_heads(g, projected, cfg.n_heads, cfg.head_dim, name)
    return g.model(spec, "encoder")


def axis_length(g: GraphBuilder, tensor: str, axis: int) -> str:
    """The length of one axis of ``tensor``, as a scalar."""
    return g.one("Squeeze", [g.one("Shape", [tensor], start=axis, end=axis + 1)])


def arange(g: GraphBuilder, length: str) -> str:
    """0, 1, ..., length - 1 (int64)."""
    zero, one = np.array(0, dtype=np.int64), np.array(1, dtype=np.int64)
    return g.one("Range", [g.const("zero", zero), length, g.const("one", one)])


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


def i64(g: GraphBuilder, hint: str, *values: int) -> str:
    """A constant int64 vector (shapes, sizes, offsets)."""
    return g.const(hint, np.array(values, dtype=np.int64))


def top_k_without_pad(g: GraphBuilder, log_probs: str, ids: str | None, pad_id: int) -> None:
    """``topk_logprobs`` and ``topk_ids`` with pad never among them (Marian: pad is the decoder's
    start), as Transformer.log_probs puts it at -inf after the softmax; done on the top k + 1
    instead of the whole vocabulary (an Add over (B, 58,101) was 6% of an OPUS-MT step): pad is
    dropped where it is among them, the last of them where not. TopK puts ties lower index
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


# The most bytes of weight one block of the output projection holds as a package stores it
# (decision #40): an int8 package stores a quarter of the fp32 graph's bytes it quantizes.
OUTPUT_BLOCK_BYTES = 32 * 2**20
# A block's width in token ids is a multiple of this (MLAS packs B in panels of 16 columns).
OUTPUT_BLOCK_ALIGN = 64


def output_top_k(
    g: GraphBuilder, last: str, model: Transformer, block_bytes: int
) -> tuple[str, str | None]:
    """Each row's best ``top_k`` (k + 1 for a Marian decoder, which drops pad after) log-probs of
    the next token, or the whole distribution where the output projection is one block; with the
    token id of each column (None: the column is the id).

    Why blocks: ONNX Runtime repacks each MatMul weight at load while the file's pages of it
    are still mapped, so the largest weight is held twice for a moment; at OPUS-MT's vocabulary
    that is the 119 MB token table, most of the peak resident memory fp32 had above
    CTranslate2's. A table of more than ``block_bytes`` is split into column blocks; each block
    takes its own log-softmax and top k, and its log-sum-exp (its best logit minus its best
    log-prob) corrects its candidates to the whole vocabulary's: the (B, V) distribution is never
    joined (a Concat of it took 3% of a step at 128 rows)."""
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
    # took 5.3 ms where LogSoftmax takes 0.6 ms at batch 128, vocabulary 8,000.)
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
    output_top_k)."""
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
    for i, layer in enumerate(model.decoder_layers):
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
    log_probs, ids = output_top_k(g, last, model, output_block_bytes)
    if cfg.suppress_pad:
        top_k_without_pad(g, log_probs, ids, cfg.pad_id)
    elif ids is None:
        g.op("TopK", [log_probs, "top_k"], ["topk_logprobs", "topk_ids"], axis=-1)
    else:
        best = g.op("TopK", [log_probs, "top_k"], ["topk_logprobs", g.name("best")], axis=-1)[1]
        g.op("GatherElements", [ids, best], ["topk_ids"], axis=-1)
    return g.model(spec, "decoder")
