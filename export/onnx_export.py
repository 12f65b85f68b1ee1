"""Model -> model package: trace both graphs, check them, convert precision, hash, write.

One pipeline (load -> trace -> validate -> convert -> package) for every source of weights: a new
source only has to be a loader producing a ``ModelSource`` (export/loaders/, export/source.py).
The package is assembled in a sibling ``.partial`` directory and renamed into place, so a failed
export never leaves a package that looks complete.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import onnx
import torch

from contract.package import (
    ALIGNER,
    CONFIG,
    DECODER,
    ENCODER,
    FORMAT_VERSION,
    PRECISIONS,
    WEIGHTS,
    PackageError,
    write_manifest,
)
from contract.spec import (
    OPSET,
    GraphSpec,
    aligner_spec,
    alignment_layer,
    decoder_spec,
    encoder_spec,
)
from contract.version import __version__
from export.fused import OUTPUT_BLOCK_BYTES, build_aligner, build_decoder, build_encoder
from export.graphs import TRACE_K, DecoderGraph, EncoderGraph
from export.package_cache import (
    cached_package,
    check_cache,
    fused,
    package_key,
)
from export.source import ModelSource, from_checkpoint
from export.weights import store_weights
from model.checkpoint import load_checkpoint, quantize_rows
from model.transformer import Transformer


def example_encoder_inputs(model: Transformer) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch of 2 rows x 5 positions (sizes distinct from every other traced axis)."""
    cfg = model.cfg
    src = torch.tensor([[5, 6, 7, 8, cfg.eos_id], [9, 10, cfg.eos_id, cfg.pad_id, cfg.pad_id]])
    return src % cfg.vocab_size, src.ne(cfg.pad_id)


def example_decoder_inputs(model: Transformer) -> tuple[torch.Tensor, ...]:
    """Batch 2 continuing rows (1, 0) of a 3-row past of 4 positions with 2 new tokens each,
    source length 5 (sizes chosen distinct so that no two dynamic axes are confused)."""
    cfg = model.cfg
    prev_batch, batch, past, src_len, new = 3, 2, 4, 5, 2
    shape_past = (prev_batch, cfg.n_heads, past, cfg.head_dim)
    shape_cross = (batch, cfg.n_heads, src_len, cfg.head_dim)
    g = torch.Generator().manual_seed(0)
    caches: list[torch.Tensor] = []
    for _ in range(cfg.decoder_layers):
        caches += [torch.randn(shape_past, generator=g), torch.randn(shape_past, generator=g)]
    for _ in range(cfg.decoder_layers):
        caches += [torch.randn(shape_cross, generator=g), torch.randn(shape_cross, generator=g)]
    return (
        torch.tensor([[11, 13], [12, 14]]) % cfg.output_vocab_size,
        torch.tensor([[4, 5], [4, 5]]),
        torch.tensor([1, 0]),
        torch.ones(batch, past + new, dtype=torch.bool),
        torch.tensor([[True] * 5, [True] * 3 + [False] * 2]),
        torch.tensor([TRACE_K]),
        *caches,
    )


def trace(
    module: torch.nn.Module, args: tuple[torch.Tensor, ...], spec: GraphSpec, path: Path
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints in shapes are expected
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            input_names=spec.input_names,
            output_names=spec.output_names,
            dynamic_axes=spec.dynamic_axes(),
            opset_version=OPSET,
            do_constant_folding=True,
        )


def wire_top_k(path: Path, spec: GraphSpec) -> None:
    """Make the traced TopK read k from the ``top_k`` graph input instead of a constant."""
    graph_model = onnx.load(str(path))
    graph = graph_model.graph
    topk = [n for n in graph.node if n.op_type == "TopK"]
    if len(topk) != 1:
        raise PackageError(f"expected one TopK node in the decoder, found {len(topk)}")
    topk[0].input[1] = "top_k"
    if "top_k" not in {i.name for i in graph.input}:  # the tracer drops inputs it never read
        graph.input.append(onnx.helper.make_tensor_value_info("top_k", onnx.TensorProto.INT64, [1]))
    # Order the inputs as the spec declares them (the tracer may have dropped and re-added some).
    order = spec.input_names

    def rank(i: onnx.ValueInfoProto) -> tuple[int, str]:
        return (order.index(i.name) if i.name in order else len(order), i.name)

    inputs = sorted(graph.input, key=rank)
    del graph.input[:]
    graph.input.extend(inputs)
    for out in graph.output:  # k is dynamic: make the output shapes say so
        if out.name in ("topk_logprobs", "topk_ids"):
            out.type.tensor_type.shape.dim[1].dim_param = "k"
    onnx.save(graph_model, str(path))


def convert_fp16(path: Path) -> None:
    """Weights and caches in fp16; log-softmax and top-k stay fp32 for stable beam scores."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    fp32 = onnx.load(str(path))
    fp16 = convert_float_to_float16(
        fp32, keep_io_types=["topk_logprobs"], op_block_list=["LogSoftmax", "TopK"]
    )
    graph = OnnxModel(fp16)
    graph.topological_sort()  # the converter appends its Cast nodes out of order
    onnx.save(graph.model, str(path))


@contextmanager
def root_logging_quieted() -> Iterator[None]:
    """The root logger at ERROR while the block runs, then exactly as it was: its level and its
    handlers (the quantizer's ``logging.info`` calls install a handler on a bare root logger,
    which once left a first-run server logging nothing; issue 34)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)


def convert_int8(path: Path) -> None:
    """Dynamic int8 quantization of the MatMul weights (activations quantized per call)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = path.with_suffix(".int8.onnx")
    with root_logging_quieted():  # its pre-processing advice is for CNNs
        quantize_dynamic(
            path,
            tmp,
            op_types_to_quantize=["MatMul"],
            weight_type=QuantType.QInt8,
            # Shape inference cannot see through the com.microsoft attention kernels.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    model = onnx.load(str(tmp))
    quantize_embeddings(model.graph)
    onnx.save(model, str(path))
    tmp.unlink()


# The graph inputs that hold token ids (contract/spec.py): what an embedding table is gathered by.
TOKEN_ID_INPUTS = ("src_ids", "input_ids")


def quantize_embeddings(graph: onnx.GraphProto) -> None:
    """Store every token embedding table (a float32 matrix a Gather reads by ``TOKEN_ID_INPUTS``)
    as int8 rows with one float32 scale per row, dequantized after the Gather: only the
    looked-up rows are ever widened. quantize_dynamic leaves Gathers alone, and with its MatMuls
    in int8 the token tables were a large part of an int8 package and of what a loaded one holds
    (docs/decisions.md #28, with the scores); a scale per row keeps each entry within half a
    step (1/254 of its row's largest). The sinusoid table stays float32."""
    from onnx import TensorProto, helper, numpy_helper

    tables = {t.name: t for t in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    quantized: dict[str, tuple[str, str]] = {}  # table -> (int8 rows, scales)
    for node in graph.node:
        by_token = (
            node.op_type == "Gather" and node.domain == "" and node.input[1] in TOKEN_ID_INPUTS
        )
        table = tables.get(node.input[0]) if by_token else None
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if (
            table is None
            or axis != 0
            or table.data_type != TensorProto.FLOAT
            or len(table.dims) != 2
        ):
            nodes.append(node)
            continue
        if table.name not in quantized:  # the release checkpoint's per-row int8 (decision #27)
            rows, scale = quantize_rows(torch.from_numpy(numpy_helper.to_array(table).copy()))
            names = (f"{table.name}.int8_rows", f"{table.name}.row_scale")
            graph.initializer.extend(
                [
                    numpy_helper.from_array(rows.numpy(), names[0]),
                    numpy_helper.from_array(scale[:, None].numpy(), names[1]),
                ]
            )
            quantized[table.name] = names
        rows_name, scale_name = quantized[table.name]
        ids, out = node.input[1], node.output[0]
        hint = node.name or out
        picked, widened, scales = f"{hint}.int8", f"{hint}.float", f"{hint}.scale"
        nodes += [
            helper.make_node("Gather", [rows_name, ids], [picked], name=picked, axis=0),
            helper.make_node("Cast", [picked], [widened], name=widened, to=TensorProto.FLOAT),
            helper.make_node("Gather", [scale_name, ids], [scales], name=scales, axis=0),
            helper.make_node("Mul", [widened, scales], [out], name=f"{hint}.dequantized"),
        ]
    if not quantized:
        return
    still_read = {name for node in nodes for name in node.input}
    kept = [t for t in graph.initializer if t.name not in quantized or t.name in still_read]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept)


def tool_versions() -> dict[str, str]:
    import onnxruntime

    return {
        "tongyeok": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def package_config(
    source: ModelSource, name: str, precision: str, cache: str | None = None
) -> dict[str, Any]:
    cfg = source.model.cfg
    in_place = check_cache(precision, cache) == "in-place"
    float_dtype = "float16" if precision == "fp16" else "float32"
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "description": source.description,
        "source_lang": source.source_langs[0],
        "target_lang": source.target_langs[0],
        "languages": {
            "sources": source.source_langs,
            "targets": source.target_langs,
            "target_tokens": source.target_tokens,
        },
        "precision": precision,
        "model": cfg.to_dict(),
        "decoder_start_id": cfg.decoder_start_id,
        # EOS takes one position; the decoder's first input (start token) takes position 0.
        "max_source_tokens": cfg.max_positions - 1,
        "max_target_tokens": cfg.max_positions - 1,
        "graphs": {
            "encoder": {"file": ENCODER, **encoder_spec(cfg.decoder_layers, float_dtype).to_dict()},
            "decoder": {
                "file": DECODER,
                **decoder_spec(
                    cfg.decoder_layers, float_dtype, fused(precision), in_place
                ).to_dict(),
            },
            **aligner_entry(cfg.decoder_layers, precision),
        },
        "tokenizer": source.tokenizer,
        "opset": OPSET,
        "made_with": tool_versions(),
        "origin": source.origin,
    }


def aligner_entry(decoder_layers: int, precision: str) -> dict[str, Any]:
    """The config's ``graphs.aligner`` where the package has one: packages of the fused graphs
    (fp32, int8), whose aligner shares the decoder's weights; fp16 packages have none (their
    tags are placed by matching separately translated pieces, as before)."""
    if not fused(precision):
        return {}
    layer = alignment_layer(decoder_layers)
    return {"aligner": {"file": ALIGNER, "layer": layer, **aligner_spec(layer).to_dict()}}


def build_graphs(
    model: Transformer, directory: Path, precision: str, cache: str | None = None
) -> None:
    """The encoder and decoder graphs of ``model`` in ``directory``: built from ONNX Runtime's
    fused kernels (export/fused.py) where they run (fp32, and int8 on top of them), traced from
    PyTorch for fp16; then checked and converted to ``precision``. ``cache``: the decoder's
    cache layout (``CACHE_LAYOUTS``; None: the precision's default)."""
    cfg = model.cfg
    in_place = check_cache(precision, cache) == "in-place"
    if not fused(precision):
        trace_graphs(model, directory)
    else:
        onnx.save(build_encoder(model, encoder_spec(cfg.decoder_layers)), directory / ENCODER)
        spec = decoder_spec(cfg.decoder_layers, shared_sources=True, in_place=in_place)
        stored = 1 if precision == "int8" else 4  # bytes per weight in the package
        block = OUTPUT_BLOCK_BYTES * 4 // stored
        onnx.save(build_decoder(model, spec, in_place, block), directory / DECODER)
        layer = alignment_layer(cfg.decoder_layers)
        onnx.save(build_aligner(model, aligner_spec(layer), layer), directory / ALIGNER)
    for graph in graph_files(precision):
        onnx.checker.check_model(str(directory / graph), full_check=True)
        if precision == "fp16":
            convert_fp16(directory / graph)
        elif precision == "int8":
            convert_int8(directory / graph)
        onnx.checker.check_model(str(directory / graph))


def graph_files(precision: str) -> tuple[str, ...]:
    """The graph files a package of ``precision`` holds."""
    return (ENCODER, DECODER, ALIGNER) if fused(precision) else (ENCODER, DECODER)


def trace_graphs(model: Transformer, directory: Path) -> None:
    """Trace the encoder and decoder graphs of ``model`` from PyTorch into ``directory``."""
    cfg = model.cfg
    torch.manual_seed(0)
    with torch.no_grad():
        trace(
            EncoderGraph(model),
            example_encoder_inputs(model),
            encoder_spec(cfg.decoder_layers),
            directory / ENCODER,
        )
        trace(
            DecoderGraph(model),
            example_decoder_inputs(model),
            decoder_spec(cfg.decoder_layers),
            directory / DECODER,
        )
    wire_top_k(directory / DECODER, decoder_spec(cfg.decoder_layers))


def write_package(
    source: ModelSource,
    out_dir: str | Path,
    precision: str = "fp32",
    name: str | None = None,
    cache: str | None = None,
) -> Path:
    """The one writer every loader feeds: graphs, tokenizer files, config, manifest."""
    if precision not in PRECISIONS:
        raise PackageError(f"unsupported precision {precision!r}: choose one of {PRECISIONS}")
    cache = check_cache(precision, cache)
    out = Path(out_dir)
    # Hidden until complete: a server polling the repository never sees half a package.
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    build_graphs(source.model, partial, precision, cache)
    shared = store_weights(partial, graph_files(precision))
    for file_name, data in source.files.items():
        (partial / file_name).write_bytes(data)
    config = package_config(source, name or source.pair_name, precision, cache)
    config["weights"] = {"file": WEIGHTS, "shared": shared}
    (partial / CONFIG).write_text(
        json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    write_manifest(partial)
    if out.exists():  # swapped by two renames: the package is missing only between them
        replaced = out.with_name(f".{out.name}.replaced")
        shutil.rmtree(replaced, ignore_errors=True)
        out.rename(replaced)
        partial.rename(out)
        shutil.rmtree(replaced)
    else:
        partial.rename(out)
    return out


def export_package(
    checkpoint: str | Path | None,
    out_dir: str | Path,
    precision: str = "fp32",
    name: str | None = None,
    cache: str | None = None,
) -> Path:
    """Write the package for ``checkpoint`` (the shipped model if None) to ``out_dir``."""
    if precision not in PRECISIONS:  # before loading anything
        raise PackageError(f"unsupported precision {precision!r}: choose one of {PRECISIONS}")
    check_cache(precision, cache)
    return write_package(from_checkpoint(checkpoint), out_dir, precision, name, cache)


def ensure_package(
    checkpoint: str | Path | None, precision: str = "fp32", cache: str | None = None
) -> Path:
    """The package of ``checkpoint``, exported once into the cache and reused while it verifies;
    ``cache``: its cache layout (None: the precision's default; the one a device needs is its
    profile's ``cache_layout``, service/runtime/providers.py)."""
    found = cached_package(checkpoint, precision, cache)
    if found is not None:
        return found
    source, target, layout = package_key(checkpoint, precision, cache)
    if not source.is_file():
        load_checkpoint(source)  # raises the usual clear error
    return export_package(source, target, precision, cache=layout)
