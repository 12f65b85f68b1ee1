"""Row operations on the decoder's caches and cross keys/values, done where those tensors live.

Joins and compactions take rows of the cross keys/values, append the joining sentences' rows, and
drop cache columns no row attends to any more. On the CPU that is numpy indexing. When the decoder
runs on a GPU through an IO binding, its caches and cross keys/values stay on the GPU between
steps, and doing the same through numpy brings every layer's tensors to the host and back at each
join: at capacity on a GPU those copies took much of the scheduler thread (docs/decisions.md #30).
``GraphOps`` does them with three small ONNX Runtime graphs on the decoder's device instead, so
the tensors never leave it.

Every tensor here is 4-D: (rows, heads, columns, head dim); rows are axis 0, columns axis 2.
"""

from __future__ import annotations

from typing import Protocol, TypeAlias

import numpy as np
import onnxruntime as ort

from service.runtime.providers import ProviderList

# A tensor the runtime accepts: a numpy array, or an OrtValue already owned by ONNX Runtime (the
# caches stay OrtValues between steps: handing them back costs no copy, unlike numpy outputs).
Tensor: TypeAlias = np.ndarray | ort.OrtValue


def as_value(x: Tensor) -> ort.OrtValue:
    if isinstance(x, ort.OrtValue):
        return x
    return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(x))


def as_array(x: Tensor) -> np.ndarray:
    return x.numpy() if isinstance(x, ort.OrtValue) else x


def shape_of(x: Tensor) -> tuple[int, ...]:
    return tuple(x.shape()) if isinstance(x, ort.OrtValue) else x.shape


def rows_of(x: Tensor) -> int:
    return shape_of(x)[0]


class TensorOps(Protocol):
    def take(self, x: Tensor, index: np.ndarray) -> Tensor:
        """The rows of ``x`` at ``index``, in that order."""
        ...

    def columns(self, x: Tensor, start: int, stop: int) -> Tensor:
        """Columns ``start:stop`` of ``x``."""
        ...

    def concat(self, a: Tensor, b: Tensor, width: int) -> Tensor:
        """The rows of ``a`` then those of ``b``, both zero-padded after their columns to
        ``width``."""
        ...


class NumpyOps:
    """On the host: fancy indexing (a copy) for rows, a view for columns."""

    def take(self, x: Tensor, index: np.ndarray) -> Tensor:
        return as_array(x)[index]

    def columns(self, x: Tensor, start: int, stop: int) -> Tensor:
        return as_array(x)[:, :, start:stop]

    def concat(self, a: Tensor, b: Tensor, width: int) -> Tensor:
        return np.concatenate([pad_axis(as_array(t), 2, width) for t in (a, b)])


NUMPY = NumpyOps()


class GraphOps:
    """On the decoder's device, with ONNX Runtime: a Gather, a Slice and a Pad+Concat graph whose
    outputs are bound to that device. Inputs on the host (the encoder's fresh cross keys/values)
    are copied there by ONNX Runtime on the way in."""

    def __init__(
        self,
        dtype: np.dtype,
        device: str,  # where the outputs are bound: the decoder's profile's memory
        providers: ProviderList,
        options: ort.SessionOptions,
    ) -> None:
        self.device = device
        build = _Graphs(dtype)
        self._take = ort.InferenceSession(build.take(), options, providers=providers)
        self._columns = ort.InferenceSession(build.columns(), options, providers=providers)
        self._concat = ort.InferenceSession(build.concat(), options, providers=providers)

    def take(self, x: Tensor, index: np.ndarray) -> Tensor:
        return self._run(self._take, x=x, index=np.asarray(index, dtype=np.int64))

    def columns(self, x: Tensor, start: int, stop: int) -> Tensor:
        return self._run(self._columns, x=x, start=_int64(start), stop=_int64(stop))

    def concat(self, a: Tensor, b: Tensor, width: int) -> Tensor:
        pads = [_int64(0, 0, 0, 0, 0, 0, width - shape_of(t)[2], 0) for t in (a, b)]
        return self._run(self._concat, a=a, b=b, pad_a=pads[0], pad_b=pads[1])

    def _run(self, session: ort.InferenceSession, **inputs: Tensor) -> ort.OrtValue:
        binding = session.io_binding()
        values = {name: as_value(x) for name, x in inputs.items()}  # alive until the run ends
        for name, value in values.items():
            binding.bind_ortvalue_input(name, value)
        binding.bind_output("y", self.device)
        session.run_with_iobinding(binding)
        return binding.get_outputs()[0]


def _int64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


class _Graphs:
    """The serialized one-job graphs of ``GraphOps`` for tensors of ``dtype``. onnx is imported
    here only: a CPU-only server never builds them."""

    def __init__(self, dtype: np.dtype) -> None:
        import onnx
        from onnx import TensorProto, helper

        self.onnx, self.helper = onnx, helper
        self.int64 = TensorProto.INT64
        self.elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    def _model(self, nodes: list, inputs: list[tuple[str, int, list]]) -> bytes:
        helper = self.helper
        graph = helper.make_graph(
            nodes,
            "tensor_op",
            [helper.make_tensor_value_info(name, elem, shape) for name, elem, shape in inputs],
            [helper.make_tensor_value_info("y", self.elem, ["r", "h", "c", "d"])],
        )
        # Opset 18 (Pad takes its pads as an input); IR version 8, which every ONNX Runtime this
        # project runs reads (onnx's own default may be newer than the installed runtime).
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        model.ir_version = 8
        self.onnx.checker.check_model(model)
        return model.SerializeToString()

    def _tensor(self, name: str) -> tuple[str, int, list]:
        return (name, self.elem, [f"{name}_r", "h", f"{name}_c", "d"])

    def take(self) -> bytes:
        node = self.helper.make_node("Gather", ["x", "index"], ["y"], axis=0)
        return self._model([node], [self._tensor("x"), ("index", self.int64, ["n"])])

    def columns(self) -> bytes:
        axes = self.helper.make_node("Constant", [], ["axes"], value_ints=[2])
        node = self.helper.make_node("Slice", ["x", "start", "stop", "axes"], ["y"])
        scalar = [1]
        return self._model(
            [axes, node],
            [self._tensor("x"), ("start", self.int64, scalar), ("stop", self.int64, scalar)],
        )

    def concat(self) -> bytes:
        helper = self.helper
        nodes = [
            helper.make_node("Pad", ["a", "pad_a"], ["a_padded"]),
            helper.make_node("Pad", ["b", "pad_b"], ["b_padded"]),
            helper.make_node("Concat", ["a_padded", "b_padded"], ["y"], axis=0),
        ]
        pads = [("pad_a", self.int64, [8]), ("pad_b", self.int64, [8])]
        return self._model(nodes, [self._tensor("a"), self._tensor("b"), *pads])


def pad_axis(array: np.ndarray, axis: int, size: int, before: bool = False) -> np.ndarray:
    """Zero-pad (False for bool) ``array`` along ``axis`` up to ``size``, after its entries or
    ``before`` them."""
    missing = size - array.shape[axis]
    if missing <= 0:
        return array
    shape = list(array.shape)
    shape[axis] = size
    out = np.zeros(shape, dtype=array.dtype)  # np.pad costs ~10x this on the small arrays here
    at = [slice(None)] * array.ndim
    at[axis] = slice(missing, size) if before else slice(0, array.shape[axis])
    out[tuple(at)] = array
    return out
