"""The graphs that reshape device-resident caches do exactly what numpy indexing does."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from service.runtime.sessions import RuntimeOptions
from service.runtime.tensor_ops import NUMPY, GraphOps, as_array


@pytest.fixture(scope="module", params=[np.float32, np.float16])
def dtype(request: pytest.FixtureRequest) -> np.dtype:
    return np.dtype(request.param)


@pytest.fixture(scope="module")
def ops(dtype: np.dtype) -> GraphOps:
    options = RuntimeOptions()
    return GraphOps(dtype, "cpu", options.provider_list(), options.session_options())


def tensor(rng: np.random.Generator, rows: int, columns: int, dtype: np.dtype) -> np.ndarray:
    return rng.standard_normal((rows, 2, columns, 3)).astype(dtype)


def test_graph_ops_equal_numpy_on_host_arrays_and_their_own_outputs(
    ops: GraphOps, dtype: np.dtype
) -> None:
    rng = np.random.default_rng(0)
    x, y = tensor(rng, 5, 4, dtype), tensor(rng, 2, 7, dtype)
    index = np.array([4, 0, 0, 2])  # out of order, repeated
    for a in (x, ops.take(x, np.arange(5))):  # a host array, or an OrtValue the graphs made
        assert isinstance(ops.take(a, index), ort.OrtValue)
        np.testing.assert_array_equal(as_array(ops.take(a, index)), NUMPY.take(x, index))
        np.testing.assert_array_equal(as_array(ops.columns(a, 1, 3)), NUMPY.columns(x, 1, 3))
        np.testing.assert_array_equal(as_array(ops.columns(a, 4, 4)), NUMPY.columns(x, 4, 4))
        for width in (7, 9):  # the wider of the two, or wider than both
            got = as_array(ops.concat(a, y, width))
            assert got.shape == (7, 2, width, 3) and got.dtype == dtype
            np.testing.assert_array_equal(got, NUMPY.concat(x, y, width))
            assert not got[:5, :, 4:].any()  # padding is zeros
    empty = np.zeros((0, 2, 0, 3), dtype=dtype)
    np.testing.assert_array_equal(as_array(ops.concat(empty, y, 7)), y)
    assert as_array(ops.take(x, np.zeros(0, dtype=np.int64))).shape == (0, 2, 4, 3)
