"""Export: the ONNX package computes what the PyTorch model computes, and refuses to be misused."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from contract.package import PackageError, load_package_config, sha256_file
from contract.spec import decoder_spec, encoder_spec
from export.onnx_export import export_package
from export.verify import onnx_greedy, padded_sources, step_parity
from model.checkpoint import CheckpointError, load_checkpoint
from model.search import SearchOptions, max_lengths, search
from service.runtime import sessions as runtime_module
from service.runtime.sessions import PackageRuntime
from service.runtime.tensor_ops import shape_of
from tests.conftest import copy_pairs


@pytest.fixture(scope="module", params=["in-place", "gathered"])
def package(
    request: pytest.FixtureRequest, toy_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The fp32 package in either cache layout: every test of it holds for both."""
    out = tmp_path_factory.mktemp("pkg") / request.param
    return export_package(toy_checkpoint, out, cache=None if out.name == "in-place" else out.name)


@pytest.fixture(scope="module")
def runtime(package: Path) -> PackageRuntime:
    return PackageRuntime(package)


@pytest.fixture(scope="module")
def toy(toy_checkpoint: Path):  # -> (model, tokenizer)
    ckpt = load_checkpoint(toy_checkpoint)
    return ckpt.build_model(), ckpt.tokenizer


def test_package_contents_names_and_checker(package: Path) -> None:
    assert sorted(p.name for p in package.iterdir()) == [
        "aligner.onnx",
        "config.json",
        "decoder.onnx",
        "encoder.onnx",
        "manifest.json",
        "tokenizer.model",
        "weights.bin",
    ]
    config = load_package_config(package)  # verifies every hash
    layers = config.decoder_layers
    # An fp32 package's decoder lets a sentence's beams share one row of its source; by default
    # it writes its cache in place.
    in_place = package.name == "in-place"
    decoder = decoder_spec(layers, shared_sources=True, in_place=in_place)
    for graph, spec in (("encoder", encoder_spec(layers)), ("decoder", decoder)):
        onnx.checker.check_model(str(package / f"{graph}.onnx"), full_check=True)
        proto = onnx.load(str(package / f"{graph}.onnx"))
        assert [i.name for i in proto.graph.input] == spec.input_names
        declared = [
            tuple(d.dim_param or str(d.dim_value) for d in i.type.tensor_type.shape.dim)
            for i in proto.graph.input
        ]
        assert declared == [t.axes for t in spec.inputs]
        assert [o.name for o in proto.graph.output] == spec.output_names
        assert config.raw["graphs"][graph]["inputs"] == spec.to_dict()["inputs"]
    assert config.raw["made_with"]["torch"] == torch.__version__
    assert not (package.parent / f".{package.name}.partial").exists()


def test_every_step_matches_pytorch_on_a_padded_batch(toy, runtime: PackageRuntime) -> None:
    model, tokenizer = toy
    texts = [s for s, _ in copy_pairs(12, seed=5)]  # 2 to 6 words: rows of different lengths
    sources = tokenizer.encode_batch(texts)
    assert len({len(s) for s in sources}) > 1
    report = step_parity(model, runtime, sources, sources, tolerance=1e-4)
    assert report.steps == max(len(s) for s in sources)
    assert report.argmax_agreement == 1.0


def test_greedy_translations_are_identical(toy, runtime: PackageRuntime) -> None:
    model, tokenizer = toy
    sources = tokenizer.encode_batch([s for s, _ in copy_pairs(60, seed=6)])
    src = padded_sources(model, sources)
    options = SearchOptions(beam_size=1)
    reference = [h[0].tokens for h in search(model, torch.from_numpy(src), options)]
    limits = max_lengths(torch.from_numpy(src != 0), options, model.cfg.max_positions).tolist()
    assert onnx_greedy(runtime, src, limits) == reference


def test_the_cache_is_used_and_changes_nothing(toy, runtime: PackageRuntime) -> None:
    model, tokenizer = toy
    src = padded_sources(model, tokenizer.encode_batch(["red dog runs in the park", "a cat"]))
    src_mask = src != 0
    enc = runtime.encode(src, src_mask)
    past, tokens = runtime.empty_cache(2), np.zeros((2, 1), dtype=np.int64)
    for step in range(5):
        out = runtime.step(
            tokens,
            np.full((2, 1), step),
            np.arange(2),
            np.ones((2, step + 1), bool),
            src_mask,
            1,
            past,
            enc.cross,
        )
        # The past grows by one position (in place: written into a buffer with room for it).
        lengths = [shape_of(c)[2] for c in out.cache]
        assert all(n >= step + 1 if runtime.in_place else n == step + 1 for n in lengths)
        past, tokens = out.cache, out.ids[:, :1]
    with_cache = onnx_greedy(runtime, src, [20, 20], use_cache=True)
    without = onnx_greedy(runtime, src, [20, 20], use_cache=False)
    assert with_cache == without


@torch.no_grad()
def test_cache_index_reorders_and_lets_rows_join(toy, runtime: PackageRuntime) -> None:
    """Beam reordering and a row joining mid-flight are one index vector plus a mask."""
    model, tokenizer = toy
    src = padded_sources(model, tokenizer.encode_batch(["red dog", "big cat sits on a park"]))
    src_mask = src != 0
    enc = runtime.encode(src, src_mask)
    # Two steps for row 0 alone.
    past = runtime.empty_cache(1)
    for step, tok in enumerate([0, 5]):
        out = runtime.step(
            np.array([[tok]]),
            np.array([[step]]),
            np.array([0]),
            np.ones((1, step + 1), bool),
            src_mask[:1],
            4,
            past,
            [c[:1] for c in enc.cross],
        )
        past = out.cache
    # Row 1 joins: batch (row1, row0). Row 1's gathered past (taken from row 0) is masked out.
    self_mask = np.array([[False, False, True], [True, True, True]])
    out = runtime.step(
        np.array([[0], [7]]),
        np.array([[0], [2]]),
        np.array([0, 0]),
        self_mask,
        src_mask[[1, 0]],
        4,
        past,
        [c[[1, 0]] for c in enc.cross],
    )
    # Reference: each row decoded alone in PyTorch.
    src_t = torch.from_numpy(src)
    real = src_t.ne(0)
    cross = model.cross_kv(model.encode(src_t, real))
    alone1, _ = model.decode_step(
        torch.tensor([[0]]), torch.tensor([[0]]), [(k[1:], v[1:]) for k, v in cross], real[1:]
    )
    alone0, _ = model.decode_step(
        torch.tensor([[0, 5, 7]]),
        torch.tensor([[0, 1, 2]]),
        [(k[:1], v[:1]) for k, v in cross],
        real[:1],
    )
    for row, logits in ((0, alone1[0, -1]), (1, alone0[0, -1])):
        expected = torch.log_softmax(logits, -1).topk(4)
        assert out.ids[row].tolist() == expected.indices.tolist()
        assert np.abs(out.logprobs[row] - expected.values.numpy()).max() <= 1e-4


# max_diff is over the whole vocabulary, improbable tokens included
@pytest.mark.parametrize(("precision", "max_diff"), [("fp16", 0.05), ("int8", 1.5)])
def test_reduced_precision_packages_run_and_agree(
    toy, toy_checkpoint: Path, tmp_path: Path, precision: str, max_diff: float
) -> None:
    model, tokenizer = toy
    package = export_package(toy_checkpoint, tmp_path / precision, precision=precision)
    runtime = PackageRuntime(package)
    assert runtime.config.precision == precision
    assert runtime.shared_sources == (precision == "int8")  # fp16 keeps traced graphs
    assert runtime.in_place == (precision == "int8")  # ... whose cache is gathered
    sources = tokenizer.encode_batch([s for s, _ in copy_pairs(12, seed=5)])
    report = step_parity(model, runtime, sources, sources, tolerance=None)
    assert report.max_diff < max_diff
    assert report.argmax_agreement >= 0.95
    src = padded_sources(model, sources)
    assert onnx_greedy(runtime, src, [30] * len(sources)) == [[*s, 2] for s in sources]  # copies


def test_export_is_reproducible(toy_checkpoint: Path, tmp_path: Path) -> None:
    a = export_package(toy_checkpoint, tmp_path / "a")
    b = export_package(toy_checkpoint, tmp_path / "b")
    for name in ("encoder.onnx", "decoder.onnx", "weights.bin", "tokenizer.model", "config.json"):
        assert sha256_file(a / name) == sha256_file(b / name), name


def test_bad_inputs_give_clear_errors(toy_checkpoint: Path, package: Path, tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"unsupported precision 'fp8'"):
        export_package(toy_checkpoint, tmp_path / "x", precision="fp8")
    with pytest.raises(PackageError, match=r"unknown cache layout 'paged'"):
        export_package(toy_checkpoint, tmp_path / "x", cache="paged")
    with pytest.raises(PackageError, match="in-place cache needs the fused graphs, which fp16"):
        export_package(toy_checkpoint, tmp_path / "x", precision="fp16", cache="in-place")
    with pytest.raises(CheckpointError, match="does not exist"):
        export_package(tmp_path / "missing.pt", tmp_path / "x")
    broken = tmp_path / "broken"
    shutil.copytree(package, broken)
    with open(broken / "decoder.onnx", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(PackageError, match=r"decoder\.onnx: SHA-256 .* does not match"):
        load_package_config(broken)
    (broken / "decoder.onnx").unlink()
    with pytest.raises(PackageError, match=r"decoder\.onnx: listed in the manifest but missing"):
        load_package_config(broken)
    (broken / "manifest.json").unlink()
    with pytest.raises(PackageError, match=r"manifest\.json: missing"):
        PackageRuntime(broken)
    config = json.loads((package / "config.json").read_text())
    assert config["precision"] == "fp32"


def test_an_in_place_cache_is_written_in_place_and_moves_only_rows_that_changed(
    toy, toy_checkpoint: Path, tmp_path: Path
) -> None:
    """Greedy steps reuse the same buffers (nothing copied); a row continuing another row's past
    gets exactly that past while the others are left alone; the buffers grow with their content
    when the longest row outgrows them."""
    model, tokenizer = toy
    runtime = PackageRuntime(export_package(toy_checkpoint, tmp_path / "p"))
    assert runtime.in_place
    src = padded_sources(model, tokenizer.encode_batch(["red dog runs", "a cat", "big park"]))
    src_mask = src != 0
    cross = runtime.encode(src, src_mask).cross
    past, tokens = runtime.empty_cache(3), np.zeros((3, 1), dtype=np.int64)

    def step(position: int, index: list[int], rows: list[int]):
        return runtime.step(
            tokens,
            np.full((3, 1), position),
            np.array(index),
            np.ones((3, position + 1), bool),
            src_mask[rows],
            1,
            past,
            [c[rows] for c in cross],
        )

    before: list[np.ndarray] = []
    for position in range(runtime_module.CACHE_CHUNK + 4):
        out = step(position, [0, 1, 2], [0, 1, 2])
        grew = position == runtime_module.CACHE_CHUNK
        if position and not grew:
            assert all(a is b for a, b in zip(out.cache, past, strict=True))  # nothing copied
        if grew:  # a larger buffer, every row's past carried over
            assert all(b.shape[2] > runtime_module.CACHE_CHUNK for b in out.cache)
            for new, old in zip(out.cache, before, strict=True):
                assert np.array_equal(new[:, :, :position], old[:, :, :position])
        before = [np.array(b, copy=True) for b in out.cache]
        past, tokens = out.cache, out.ids[:, :1]
    position = runtime_module.CACHE_CHUNK + 4
    tokens[2] = tokens[0]  # row 2 becomes a copy of row 0: its past, token and source
    out = step(position, [0, 1, 0], [0, 1, 0])
    assert all(a is b for a, b in zip(out.cache, past, strict=True))  # moved in place
    for new, old in zip(out.cache, before, strict=True):
        assert np.array_equal(new[:2, :, :position], old[:2, :, :position])  # rows 0, 1 alone
        assert np.array_equal(new[2, :, :position], old[0, :, :position])  # row 0's past
        assert np.allclose(new[2, :, position], new[0, :, position], atol=1e-5)  # same new one
    assert out.ids[2].tolist() == out.ids[0].tolist()
    assert np.allclose(out.logprobs[2], out.logprobs[0], atol=1e-5)
    # A past shorter than the positions claim (a stale cache) is refused, not read past its end.
    with pytest.raises(ValueError, match="holds 32 positions per row"):
        runtime.step(
            tokens,
            np.full((3, 1), 40),
            np.arange(3),
            np.ones((3, 41), bool),
            src_mask,
            1,
            [b[:, :, :32] for b in out.cache],
            cross,
        )
    # A past the decoder could not write into as given (read-only, or OrtValues whose numpy view
    # is a copy) is placed in new buffers: the same step, the same result, nothing lost.
    frozen = [np.array(b, copy=True) for b in out.cache]
    for b in frozen:
        b.flags.writeable = False
    as_values = [ort.OrtValue.ortvalue_from_numpy(np.array(b, copy=True)) for b in out.cache]
    tokens = out.ids[:, :1]
    want = [np.array(b, copy=True) for b in out.cache]
    expected = step(position + 1, [0, 1, 2], [0, 1, 2])
    for given in (frozen, as_values):
        past = given
        got = step(position + 1, [0, 1, 2], [0, 1, 2])
        assert got.ids.tolist() == expected.ids.tolist()
        assert np.array_equal(got.logprobs, expected.logprobs)
        assert all(g is not b for g, b in zip(got.cache, given, strict=True))
        for new, old in zip(got.cache, want, strict=True):
            assert np.array_equal(new[:, :, : position + 1], old[:, :, : position + 1])


@pytest.mark.parametrize(
    ("source", "per_source", "order"),
    [
        ([0, 1, 2, 3], 2, [0, 1, 2, 3]),  # nothing moves
        ([1, 1, 3, 2], 2, [1, 0, 3, 2]),  # row 1 copies into the row no one continues
        ([0, 0, 0, 0], 4, [0, 1, 2, 3]),  # one past, four beams: three copies
        ([3, 3, 2, 2], 4, [3, 0, 2, 1]),
        ([2, 2, 0, 0], 2, [0, 1, 2, 3]),  # a past of another source's rows: row order
        ([1, 1, 0], 1, [0, 1, 2]),  # a source per row: row order
    ],
)
def test_buffer_rows_keep_first_continuations_in_place(
    source: list[int], per_source: int, order: list[int]
) -> None:
    assert runtime_module.buffer_rows(np.array(source), per_source).tolist() == order


def test_buffer_rows_are_a_permutation_within_each_source() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        beams, sentences = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        rows = beams * sentences
        source = (np.arange(rows) // beams) * beams + rng.integers(0, beams, rows)
        order = runtime_module.buffer_rows(source, beams)
        assert sorted(order.tolist()) == list(range(rows))
        assert np.array_equal(order // beams, np.arange(rows) // beams)
        # every past continued stays where it is for one of its continuations
        assert set(np.unique(source).tolist()) <= set(order[order == source].tolist())


def test_beams_continue_a_past_where_it_lies(toy, toy_checkpoint: Path, tmp_path: Path) -> None:
    """With a sentence's beams sharing its source, a beam takes over the buffer row of the past
    it continues when it is the first to; only the others copy. The rows then live out of order
    in the buffers, and every step still computes what it computes on a cache in row order."""
    model, tokenizer = toy
    runtime = PackageRuntime(export_package(toy_checkpoint, tmp_path / "p"))
    assert runtime.in_place and runtime.shared_sources
    src = padded_sources(model, tokenizer.encode_batch(["red dog runs", "a cat"]))
    src_mask = src != 0
    cross = runtime.encode(src, src_mask).cross  # 2 sources, 2 beams each
    rng = np.random.default_rng(1)

    def step(rt: PackageRuntime, position: int, index: list[int], past, tokens):
        return rt.step(
            tokens,
            np.full((4, 1), position),
            np.array(index),
            np.ones((4, position + 1), bool),
            src_mask,
            4,
            past,
            cross,
        )

    tokens = rng.integers(3, model.cfg.vocab_size, (4, 1))
    past = runtime.empty_cache(4)
    for position in range(3):  # rows differ: each its own tokens
        out = step(runtime, position, [0, 1, 2, 3], past, tokens)
        past, tokens = out.cache, rng.integers(3, model.cfg.vocab_size, (4, 1))
    before = [np.array(b, copy=True) for b in past]
    index = [1, 1, 3, 2]
    out = step(runtime, 3, index, past, tokens)
    assert all(a is b for a, b in zip(out.cache, past, strict=True))
    for new, old in zip(out.cache, before, strict=True):
        assert np.array_equal(new[1:, :, :3], old[1:, :, :3])  # taken over, not copied
        assert np.array_equal(new[0, :, :3], old[1, :, :3])  # the one copy
    # The same step and the next on a cache in row order (a fresh runtime, copies given).
    fresh = PackageRuntime(runtime.config)
    ordered = [np.ascontiguousarray(b[index]) for b in before]
    expected = step(fresh, 3, [0, 1, 2, 3], ordered, tokens)
    assert out.ids.tolist() == expected.ids.tolist()
    assert np.allclose(out.logprobs, expected.logprobs, atol=1e-5)
    tokens = rng.integers(3, model.cfg.vocab_size, (4, 1))
    for index in ([0, 1, 2, 3], [1, 0, 2, 2]):
        position = 4 + (index[0] == 1)
        # the order belongs to the buffers: another thread stepping them next reads it too
        with ThreadPoolExecutor(1) as other:
            out = other.submit(step, runtime, position, index, out.cache, tokens).result()
        expected = step(fresh, position, index, expected.cache, tokens)
        assert out.ids.tolist() == expected.ids.tolist()
        assert np.allclose(out.logprobs, expected.logprobs, atol=1e-5)
