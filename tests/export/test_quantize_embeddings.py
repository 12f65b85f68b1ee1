"""int8 packages store their token embedding tables as int8 rows with a scale per row: what a
Gather returns stays within half a quantization step of the float32 table, and nothing else
moves."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

from contract.spec import decoder_spec, encoder_spec
from export.fused import build_decoder, build_encoder
from export.onnx_export import convert_int8, quantize_embeddings
from model.transformer import ModelConfig, Transformer

CFG = ModelConfig(vocab_size=60, d_model=32, n_heads=4, d_ff=64, max_positions=40)


def toy_model() -> Transformer:
    torch.manual_seed(0)
    model = Transformer(CFG).eval()
    with torch.no_grad():
        model.shared.weight[CFG.pad_id] = 0  # an all-zero row must stay exactly zero
    return model


def quantized_copy(proto: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    quantize_embeddings(copy.graph)
    onnx.checker.check_model(copy, full_check=True)
    return copy


def initializers(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}


def test_token_table_becomes_int8_rows_and_the_encoder_still_agrees() -> None:
    proto = build_encoder(toy_model(), encoder_spec(CFG.decoder_layers))
    quantized = quantized_copy(proto)
    before, after = initializers(proto), initializers(quantized)
    table = next(name for name, a in before.items() if a.shape == (CFG.vocab_size, CFG.d_model))
    assert table not in after  # the float32 table is gone, not kept beside its int8 copy
    rows, scale = after[f"{table}.int8_rows"], after[f"{table}.row_scale"]
    assert rows.dtype == np.int8 and rows.shape == before[table].shape
    assert scale.dtype == np.float32 and scale.shape == (CFG.vocab_size, 1)
    error = np.abs(rows * scale - before[table])
    assert (error <= scale / 2 + 1e-7).all()  # half a step of each row's own scale
    assert (rows[CFG.pad_id] == 0).all()
    src = np.array([[5, 9, 13, 2], [7, 2, 0, 0]], dtype=np.int64)
    feed = {"src_ids": src, "src_mask": src != CFG.pad_id}
    exact, approx = (
        ort.InferenceSession(p.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, feed
        )
        for p in (proto, quantized)
    )
    assert [a.shape for a in exact] == [a.shape for a in approx]
    gap = max(float(np.abs(a - b).max()) for a, b in zip(exact, approx, strict=True))
    assert 0 < gap < 0.1  # moved (the table really changed), but by rounding only


def test_only_tables_gathered_by_token_ids_change() -> None:
    """In the decoder the sinusoid table is gathered too, by ``positions``: it stays float32,
    and every node not about the token table is kept as it was."""
    proto = build_decoder(toy_model(), decoder_spec(CFG.decoder_layers))
    quantized = quantized_copy(proto)
    before, after = initializers(proto), initializers(quantized)
    changed = sorted(set(before) ^ set(after))
    assert len(changed) == 3 and changed[0].startswith("target_embed")  # table -> rows + scales
    positions = [a for a in after.values() if a.shape == (CFG.max_positions, CFG.d_model)]
    assert len(positions) == 1 and positions[0].dtype == np.float32
    kept = [n for n in proto.graph.node if n.input[1:2] != ["input_ids"]]
    assert all(n in quantized.graph.node for n in kept)
    assert len(quantized.graph.node) == len(proto.graph.node) + 3  # Gather -> 4 nodes


def test_int8_conversion_leaves_the_callers_logging_as_it_was(tmp_path: Path) -> None:
    """The quantizer logs through the root logger (installing a handler on a bare one); a
    first-run server then logged nothing at all (issue 34). Level and handlers come back."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    path = tmp_path / "encoder.onnx"
    onnx.save(build_encoder(toy_model(), encoder_spec(CFG.decoder_layers)), str(path))
    try:
        root.setLevel(logging.INFO)
        convert_int8(path)
        assert root.level == logging.INFO and root.handlers == handlers
        assert any(n.op_type == "MatMulInteger" for n in onnx.load(str(path)).graph.node)
    finally:
        root.setLevel(level)
