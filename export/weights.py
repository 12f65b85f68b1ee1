"""A package's graph weights in one file beside the graphs, each tensor page-aligned, stored once.

Why (docs/decisions.md #33): a graph that carries its weights inside is read whole into the
process before ONNX Runtime copies each tensor out of it, and the C allocator keeps most of that
transient copy (the shipped fp32 model: 244 MB resident after loading instead of 154). ONNX
Runtime maps an external tensor whose offset is a multiple of the page size straight from the
file instead, so aligning every offset is what makes the weights cost their size once. A tensor
both graphs hold with the same bytes (the encoder's and the decoder's token table of a model
with shared embeddings, 119 MB at OPUS-MT's vocabulary) is written once, listed in the config,
and the runtime hands both sessions the same mapping (service/runtime/sessions.py).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, external_data_helper, helper, numpy_helper

from contract.package import WEIGHTS

# ONNX Runtime maps a tensor from the file only at an offset that is a multiple of the
# allocation granularity: the page size on Linux (64 KiB on Windows, where it reads instead).
ALIGNMENT = 4096
# Smaller tensors (biases, norms, shapes) stay in the graph: aligning them would be mostly padding.
MIN_BYTES = 4096


def tensor_bytes(tensor: TensorProto) -> bytes:
    if tensor.HasField("raw_data"):
        return tensor.raw_data
    return numpy_helper.to_array(tensor).tobytes()


def store_weights(directory: Path, graphs: tuple[str, ...]) -> list[dict[str, Any]]:
    """Move the large initializers of ``graphs`` (files in ``directory``) into ``WEIGHTS``, each
    tensor at an aligned offset and identical tensors once; return the tensors that more than one
    graph reads (config ``weights.shared``: where, what, and each graph's name for it, the graph
    named as in the config's ``graphs``: encoder, decoder)."""
    models = {graph: onnx.load(str(directory / graph)) for graph in graphs}
    placed: dict[tuple[int, tuple[int, ...], bytes], tuple[int, int]] = {}
    readers: dict[tuple[int, tuple[int, ...], bytes], dict[str, str]] = defaultdict(dict)
    with open(directory / WEIGHTS, "wb") as out:
        for graph, model in models.items():
            for tensor in model.graph.initializer:
                data = tensor_bytes(tensor)
                if len(data) < MIN_BYTES:
                    continue
                key = (tensor.data_type, tuple(tensor.dims), hashlib.sha256(data).digest())
                if key not in placed:
                    out.write(b"\0" * (-out.tell() % ALIGNMENT))
                    placed[key] = (out.tell(), len(data))
                    out.write(data)
                offset, length = placed[key]
                tensor.raw_data = data  # the helper insists on it; the typed fields go
                del tensor.float_data[:], tensor.int32_data[:], tensor.int64_data[:]
                external_data_helper.set_external_data(tensor, WEIGHTS, offset, length)
                tensor.data_location = TensorProto.EXTERNAL
                tensor.ClearField("raw_data")
                readers[key].setdefault(Path(graph).stem, tensor.name)
    for graph, model in models.items():
        onnx.save(model, str(directory / graph))
    return [
        {
            "offset": placed[key][0],
            "bytes": placed[key][1],
            "dtype": helper.tensor_dtype_to_np_dtype(key[0]).name,
            "shape": list(key[1]),
            "names": names,
        }
        for key, names in readers.items()
        if len(names) > 1
    ]
