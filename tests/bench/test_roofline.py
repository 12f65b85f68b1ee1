"""The work ``bench engine`` credits each engine with, and the ceiling it is measured against: the
count equals what the PyTorch reference multiplies, and the ceiling is a real, lone ONNX Runtime
matrix product in a process of its own, int8 quantized as a package's."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.engine_race import measure
from bench.roofline import CEILING_ROWS, Shapes, decoding_flops, write_ceiling_graphs
from contract.options import SearchOptions
from model.search import search
from model.transformer import ModelConfig, Transformer


@pytest.mark.parametrize("beam", [1, 3])
@pytest.mark.parametrize("target_vocab", [None, 37])  # ours (one vocabulary), Marian-like (two)
def test_decoding_work_is_every_weight_product_the_reference_computes(
    beam: int, target_vocab: int | None
) -> None:
    separate = target_vocab is not None
    cfg = ModelConfig(
        vocab_size=50,
        d_model=16,
        n_heads=2,
        d_ff=24,
        encoder_layers=2,
        decoder_layers=3,
        target_vocab_size=target_vocab,
        share_embeddings=not separate,
        tie_output=not separate,
    )
    torch.manual_seed(0)
    model = Transformer(cfg).eval()
    sources, length, tokens = 3, 5, 4  # no padding: the reference computes on padding
    src = torch.randint(3, 50, (sources, length))
    with FlopCounterMode(display=False) as counter:
        search(
            model,
            src,
            SearchOptions(beam_size=beam, min_length=tokens, max_length_a=0, max_length_b=tokens),
        )
    counts = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    weight_products = counts.get("aten.addmm", 0) + counts.get("aten.mm", 0)  # not aten.bmm
    shapes = Shapes.of(cfg)
    assert shapes.output_vocab == (target_vocab or 50)
    credited = decoding_flops(shapes, [length] * sources, tokens, beam)
    # The reference projects the cross keys/values of every beam's copy of the source; engines
    # that share a sentence's (and the credit) do it once.
    cross_copies = (beam - 1) * sources * length * 2 * cfg.decoder_layers * 2 * cfg.d_model**2
    assert credited + cross_copies == weight_products
    assert counts["aten.bmm"] > 0  # attention scores were computed, and are not credited


def test_the_ceiling_is_a_lone_matmul_timed_in_a_process_of_its_own(tmp_path: Path) -> None:
    shapes = Shapes(d_model=32, d_ff=64, encoder_layers=1, decoder_layers=1, output_vocab=10)
    fp32 = write_ceiling_graphs(shapes, "fp32", tmp_path)
    int8 = write_ceiling_graphs(shapes, "int8", tmp_path)
    assert [p.name for p in int8] == ["matmul-int8-32x64.onnx", "matmul-int8-64x32.onnx"]
    ops = {n.op_type for n in onnx.load(str(int8[0])).graph.node}
    assert "MatMul" not in ops and ops & {"MatMulInteger", "DynamicQuantizeMatMul"}  # quantized
    assert [n.op_type for n in onnx.load(str(fp32[0])).graph.node] == ["MatMul"]
    report = measure(
        {"graphs": [str(p) for p in int8], "threads": 1}, tmp_path / "s.json", "bench.roofline"
    )
    assert report["gflops"] > 0 and report["pid"] != os.getpid()
    rows, inner, outer = map(int, report["shape"].split("x"))
    assert rows in CEILING_ROWS and {inner, outer} == {32, 64}
