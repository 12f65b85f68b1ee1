"""Writing an ONNX graph by hand: unique names, constants, nodes, and the model around them.

Knows nothing of the Transformer: ``export/fused.py`` writes its layers with it and
``export/output_head.py`` the decoder's output projection and top k.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from contract.spec import OPSET, GraphSpec, TensorSpec
from contract.variants import MS_DOMAIN

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
        # Every named parameter of make_node given, so that ``attrs`` can only be attributes.
        node = helper.make_node(
            op_type,
            list(inputs),
            names,
            name=self.name(op_type),
            doc_string=None,
            domain=domain,
            overload=None,
            **attrs,
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


def axis_length(g: GraphBuilder, tensor: str, axis: int) -> str:
    """The length of one axis of ``tensor``, as a scalar."""
    return g.one("Squeeze", [g.one("Shape", [tensor], start=axis, end=axis + 1)])


def arange(g: GraphBuilder, length: str) -> str:
    """0, 1, ..., length - 1 (int64)."""
    zero, one = np.array(0, dtype=np.int64), np.array(1, dtype=np.int64)
    return g.one("Range", [g.const("zero", zero), length, g.const("one", one)])


def i64(g: GraphBuilder, hint: str, *values: int) -> str:
    """A constant int64 vector (shapes, sizes, offsets)."""
    return g.const(hint, np.array(values, dtype=np.int64))
