"""A package's weights: one file beside the graphs, every tensor page-aligned and stored once, the
tensors both graphs read loaded once; a config that lies about them is refused by name."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import pytest
from onnx import TensorProto, numpy_helper

from contract.package import WEIGHTS, PackageError, load_package_config, write_manifest
from export.onnx_export import export_package
from export.weights import ALIGNMENT, MIN_BYTES
from service.runtime.sessions import PackageRuntime, shared_weights


@pytest.fixture(scope="module", params=["fp32", "int8"])
def package(
    request: pytest.FixtureRequest, toy_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("weights") / request.param
    return export_package(toy_checkpoint, out, request.param)


def external(tensor: TensorProto) -> dict[str, str]:
    return {entry.key: entry.value for entry in tensor.external_data}


def test_large_tensors_live_in_the_weights_file_aligned_and_once(package: Path) -> None:
    data = (package / WEIGHTS).read_bytes()
    spans: dict[tuple[int, int], bytes] = {}
    readers: dict[tuple[int, int], dict[str, str]] = {}
    for graph in ("encoder", "decoder", "aligner"):
        inline = onnx.load(str(package / f"{graph}.onnx"), load_external_data=False)
        loaded = {t.name: t for t in onnx.load(str(package / f"{graph}.onnx")).graph.initializer}
        for tensor in inline.graph.initializer:
            value = numpy_helper.to_array(loaded[tensor.name])
            if tensor.data_location != TensorProto.EXTERNAL:
                assert value.nbytes < MIN_BYTES, tensor.name
                continue
            where = external(tensor)
            assert where["location"] == WEIGHTS
            offset, length = int(where["offset"]), int(where["length"])
            assert offset % ALIGNMENT == 0 and length == value.nbytes >= MIN_BYTES, tensor.name
            assert data[offset : offset + length] == value.tobytes(), tensor.name
            assert spans.setdefault((offset, length), value.tobytes()) == value.tobytes()
            readers.setdefault((offset, length), {}).setdefault(graph, tensor.name)
    # No two different tensors overlap, and identical ones were written once.
    ordered = sorted(spans)
    assert all(a[0] + a[1] <= b[0] for a, b in itertools.pairwise(ordered))
    assert len(set(spans.values())) == len(spans)
    assert len(data) < sum(length for _, length in spans) + ALIGNMENT * len(spans)
    # The config lists exactly the tensors both graphs read, as the graphs name them.
    listed = load_package_config(package).raw["weights"]
    assert listed["file"] == WEIGHTS
    both = {span: names for span, names in readers.items() if len(names) >= 2}
    assert both  # the toy model shares its embeddings: at least the token table and positions
    assert {(s["offset"], s["bytes"]): s["names"] for s in listed["shared"]} == both
    # The aligner is the decoder's first layers: it has no large tensor of its own.
    assert all("decoder" in names for names in readers.values() if "aligner" in names)
    assert any("aligner" in names for names in readers.values())


def test_the_runtime_maps_each_shared_tensor_once_for_both_sessions(package: Path) -> None:
    runtime = PackageRuntime(package)
    config = load_package_config(package)
    values = runtime._shared_weights
    assert len(values) == len(config.raw["weights"]["shared"])
    maps = Path("/proc/self/maps").read_text().splitlines()
    weights = str((package / WEIGHTS).resolve())
    for names, value in values:
        assert set(names) <= {"encoder", "decoder", "aligner"} and len(names) >= 2
        address = value.data_ptr()
        # the value is the file's pages, not a copy of them
        assert any(
            line.endswith(weights)
            and int(line.split("-")[0], 16) <= address < int(line.split()[0].split("-")[1], 16)
            for line in maps
        )


def package_copy(package: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], Any]) -> Path:
    broken = tmp_path / package.name
    shutil.copytree(package, broken)
    config = json.loads((broken / "config.json").read_text())
    edit(config["weights"])
    (broken / "config.json").write_text(json.dumps(config))
    write_manifest(broken)  # consistent hashes: only the entry itself is wrong
    return broken


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda w: w.update(file="../weights.bin"), "is not a file name in the package"),
        (lambda w: w.update(file=7), "is not a file name in the package"),
        (lambda w: w["shared"][0].update(offset=1 << 40), "does not fit weights.bin"),
        (lambda w: w["shared"][0].update(offset=-4096), "does not fit weights.bin"),
        (lambda w: w["shared"][0].update(bytes=4), "does not fit weights.bin"),
        (lambda w: w["shared"][0].update(shape=[-1, 2]), "does not fit weights.bin"),
        # a product that would wrap around to 0 in int64
        (lambda w: w["shared"][0].update(shape=[2**32, 2**32], bytes=0), "does not fit weights"),
        (lambda w: w["shared"][0].update(dtype="no-such-type"), "unreadable weights.shared"),
        (lambda w: w["shared"][0].pop("names"), "unreadable weights.shared"),
        (lambda w: w["shared"][0].update(names=["encoder"]), "unreadable weights.shared"),
        (lambda w: w.update(shared=[None]), "unreadable weights.shared"),
        (lambda w: w.update(shared=5), "must be an object with a list 'shared'"),
        (lambda w: w.update(shared={"a": 1}), "must be an object with a list 'shared'"),
    ],
)
def test_a_config_that_lies_about_the_weights_is_refused(
    package: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], Any], message: str
) -> None:
    broken = package_copy(package, tmp_path, edit)
    with pytest.raises(PackageError, match=message):
        shared_weights(load_package_config(broken))
    with pytest.raises(PackageError, match=message):
        PackageRuntime(broken)


def test_weights_that_are_not_an_object_are_refused(package: Path, tmp_path: Path) -> None:
    broken = tmp_path / "not-an-object"
    shutil.copytree(package, broken)
    config = json.loads((broken / "config.json").read_text())
    config["weights"] = "weights.bin"
    (broken / "config.json").write_text(json.dumps(config))
    write_manifest(broken)
    with pytest.raises(PackageError, match="must be an object with a list 'shared'"):
        PackageRuntime(broken)


def test_a_missing_weights_file_is_refused_by_name(package: Path, tmp_path: Path) -> None:
    broken = tmp_path / "missing"
    shutil.copytree(package, broken)
    (broken / WEIGHTS).unlink()
    with pytest.raises(PackageError, match=r"weights\.bin: listed in the manifest but missing"):
        PackageRuntime(broken)
    write_manifest(broken)  # a manifest that no longer lists it: the config still needs it
    with pytest.raises(PackageError, match=r"weights\.bin: missing"):
        PackageRuntime(broken)


def test_loading_costs_the_weights_once(toy_checkpoint: Path, tmp_path: Path) -> None:
    """In a fresh process, loading the shipped fp32 package raises the peak resident memory by
    about the size of its weights. With the weights inside the graphs it took 1.43 times their
    size (the graph's transient copy, kept by the allocator) and the token table was held twice."""
    package = export_package(None, tmp_path / "shipped")
    probe = textwrap.dedent(
        """
        import sys
        import numpy, onnxruntime  # noqa: F401  imported before the baseline
        from service.runtime.sessions import PackageRuntime

        def peak():
            status = open("/proc/self/status").read()
            return int(status.split("VmHWM:")[1].split()[0]) * 1024

        before = peak()
        runtime = PackageRuntime(sys.argv[1])
        print(peak() - before)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", probe, str(package)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    weights = (package / WEIGHTS).stat().st_size
    assert weights > 100e6  # the shipped model: d=512, 8,000 ids
    assert int(done.stdout) < 1.2 * weights, (int(done.stdout), weights)
