"""The matrix-product work of decoding, and the rate this machine does it at: the ceiling.

Why: at batch 32-64 a decoder step is mostly products of activations with the weights, and an
engine that already does those at the rate a lone matrix product reaches on the machine cannot be
made much faster at the same precision, by us or by anyone. ``bench engine`` reports each
engine's rate of that work beside the ceiling, so that a ratio between two engines near it is read
as what it is (both at the hardware's limit), not as a gap to close.

The work counted is what every engine must do, whatever its kernels: the weight products of the
encoder over the real source tokens (EOS included), of every decoder layer and the output
projection once per row and generated token (beam rows included, from the first step, as the
PyTorch reference computes them), and each decoder layer's cross-attention keys and values once
per source token. Not counted: attention scores (they depend on how an engine pads) and padded
positions, so an engine that computes on padding does more than it is credited with.

The ceiling is measured, not taken from a data sheet: ONNX Runtime's MatMul alone (MLAS), on the
model's feed-forward shapes (d x d_ff and d_ff x d) at 64, 256 and 1,024 rows, in a fresh process
at each thread count, its best kept; for int8 the same graphs quantized as an int8 package's
(``export.onnx_export.convert_int8``: activations quantized per call, which is part of the work).
Another library's kernels may beat MLAS's: the table would then show an engine above 100%.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the timing child loads ONNX Runtime only, not torch
    from model.transformer import ModelConfig

CEILING_ROWS = (64, 256, 1024)  # activation rows (batch x beams, or source tokens) measured
MIN_SECONDS = 0.3  # timed per shape: enough repetitions for a stable best


@dataclass(frozen=True)
class Shapes:
    """The sizes that set a Transformer's matrix-product work."""

    d_model: int
    d_ff: int
    encoder_layers: int
    decoder_layers: int
    output_vocab: int

    @classmethod
    def of(cls, cfg: ModelConfig) -> Shapes:
        return cls(
            cfg.d_model, cfg.d_ff, cfg.encoder_layers, cfg.decoder_layers, cfg.output_vocab_size
        )

    @property
    def encoder_flops_per_token(self) -> int:
        """One source token through the encoder (Q/K/V, output projection, feed-forward), and its
        cross-attention keys and values for every decoder layer."""
        d, ff = self.d_model, self.d_ff
        return 2 * (
            self.encoder_layers * (4 * d * d + 2 * d * ff) + self.decoder_layers * 2 * d * d
        )

    @property
    def decoder_flops_per_row(self) -> int:
        """One decoder step of one row: self-attention Q/K/V and output, cross-attention query and
        output, feed-forward, then the output projection."""
        d, ff = self.d_model, self.d_ff
        return 2 * (self.decoder_layers * (6 * d * d + 2 * d * ff) + d * self.output_vocab)


def decoding_flops(shapes: Shapes, source_lengths: list[int], tokens: int, beam: int) -> int:
    """The weight products of decoding sentences of these lengths (EOS included) to ``tokens``
    generated tokens each, ``beam`` rows per sentence."""
    sentences = len(source_lengths)
    return (
        shapes.encoder_flops_per_token * sum(source_lengths)
        + shapes.decoder_flops_per_row * tokens * beam * sentences
    )


@dataclass(frozen=True)
class Ceiling:
    """The best rate of a lone matrix product of one model's shapes, at one precision and thread
    count."""

    model: str
    precision: str  # "fp32" or "int8"
    threads: int
    gflops: float
    shape: str  # the (rows x inner x outer) product that reached it


def write_ceiling_graphs(shapes: Shapes, precision: str, out: Path) -> list[Path]:
    """One MatMul graph per feed-forward shape, with random weights, stored as ``precision``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from contract.spec import OPSET
    from export.graph_builder import IR_VERSION

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    d, ff = shapes.d_model, shapes.d_ff
    for inner, outer in ((d, ff), (ff, d)):
        weight = (rng.standard_normal((inner, outer)) / np.sqrt(inner)).astype(np.float32)
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y"])],
            "matmul",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", inner])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", outer])],
            [numpy_helper.from_array(weight, "w")],
        )
        path = out / f"matmul-{precision}-{inner}x{outer}.onnx"
        opsets = [helper.make_opsetid("", OPSET)]
        onnx.save(helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION), path)
        if precision == "int8":
            from export.onnx_export import convert_int8

            convert_int8(path)
        paths.append(path)
    return paths


def measure_ceiling(spec: dict) -> dict:
    """Child side: time every graph at every row count; the best rate and where it was reached."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = spec["threads"]
    best = (0.0, "")
    rng = np.random.default_rng(1)
    for path in spec["graphs"]:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        inner = session.get_inputs()[0].shape[1]
        outer = session.get_outputs()[0].shape[1]
        for rows in CEILING_ROWS:
            x = rng.standard_normal((rows, inner)).astype(np.float32)
            session.run(None, {"x": x})  # warm-up: allocations, thread pool
            runs, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < MIN_SECONDS:
                session.run(None, {"x": x})
                runs += 1
            gflops = 2 * rows * inner * outer * runs / elapsed / 1e9
            best = max(best, (gflops, f"{rows}x{inner}x{outer}"))
    return {"gflops": best[0], "shape": best[1], "pid": os.getpid()}  # pid: a process of its own


if __name__ == "__main__":
    print(json.dumps(measure_ceiling(json.loads(Path(sys.argv[1]).read_text()))))
