"""The shipped model's package agrees with PyTorch on real test sentences."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from contract.package import WEIGHTS
from export.onnx_export import export_package
from export.verify import onnx_greedy, padded_sources, step_parity
from model.checkpoint import load_checkpoint
from model.data import read_lines
from model.search import SearchOptions, max_lengths
from model.translate import translate_ids
from service.runtime.sessions import PackageRuntime


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory):  # -> (model, tokenizer, runtime)
    ckpt = load_checkpoint()
    package = export_package(None, tmp_path_factory.mktemp("shipped") / "en-de")
    return ckpt.build_model(), ckpt.tokenizer, PackageRuntime(package)


def test_greedy_on_200_test_sentences_is_identical(shipped, multi30k: Path) -> None:
    model, tokenizer, runtime = shipped
    sources = tokenizer.encode_batch(read_lines(multi30k / "test_2016_flickr.en.gz")[:200])
    options = SearchOptions(beam_size=1)
    reference = [h[0].tokens for h in translate_ids(model, sources, options, batch_size=50)]
    onnx_out: list[list[int]] = []
    for start in range(0, 200, 50):
        src = padded_sources(model, sources[start : start + 50])
        limits = max_lengths(torch.from_numpy(src != 0), options, model.cfg.max_positions)
        onnx_out += onnx_greedy(runtime, src, limits.tolist())
    same = sum(a == b for a, b in zip(onnx_out, reference, strict=True))
    assert same == 200


def test_step_logprobs_within_1e4_on_real_sentences(shipped, multi30k: Path) -> None:
    model, tokenizer, runtime = shipped
    sources = tokenizer.encode_batch(read_lines(multi30k / "test_2016_flickr.en.gz")[:16])
    targets = tokenizer.encode_batch(read_lines(multi30k / "test_2016_flickr.de.gz")[:16])
    report = step_parity(model, runtime, sources, targets, tolerance=1e-4)
    assert report.argmax_agreement == 1.0


@pytest.mark.parametrize("beam", [1, 4])
def test_engine_equals_reference_on_200_test_sentences(shipped, multi30k: Path, beam: int) -> None:
    """The ONNX engine (continuous batching, rows joining as others finish) against the PyTorch
    reference search, greedy and beam 4, on real sentences with the shipped model."""
    from service.decoding.engine import Engine

    model, tokenizer, runtime = shipped
    sources = tokenizer.encode_batch(read_lines(multi30k / "test_2016_flickr.en.gz")[:200])
    options = SearchOptions(beam_size=beam)
    reference = translate_ids(model, sources, options, batch_size=50)
    engine_out = Engine(runtime).run(sources, options, max_batch=50)
    same = sum(a[0].tokens == b[0].tokens for a, b in zip(engine_out, reference, strict=True))
    assert same == 200


def test_int8_package_stores_the_embeddings_in_int8_and_still_agrees(
    shipped, multi30k: Path, tmp_path: Path
) -> None:
    """The CPU default (int8): its matrices and token tables are int8 (the float32 tables were
    most of the package), and its greedy output stays that of the fp32 package on real text."""
    import onnx
    from onnx import TensorProto

    model, tokenizer, runtime = shipped
    package = export_package(None, tmp_path / "int8", precision="int8")
    for graph in ("encoder.onnx", "decoder.onnx"):
        tables = onnx.load(str(package / graph)).graph.initializer
        table = [model.cfg.vocab_size, model.cfg.d_model]
        assert not [t.name for t in tables if t.data_type == TensorProto.FLOAT and t.dims == table]
        assert any(t.name.endswith(".int8_rows") for t in tables), graph
    size = (package / WEIGHTS).stat().st_size
    assert size < 0.3 * (runtime.config.directory / WEIGHTS).stat().st_size
    sources = tokenizer.encode_batch(read_lines(multi30k / "test_2016_flickr.en.gz")[:100])
    src = padded_sources(model, sources)
    options = SearchOptions(beam_size=1)
    limits = max_lengths(torch.from_numpy(src != 0), options, model.cfg.max_positions).tolist()
    exact = onnx_greedy(runtime, src, limits)
    quantized = onnx_greedy(PackageRuntime(package), src, limits)
    same = sum(a == b for a, b in zip(exact, quantized, strict=True))
    assert same >= 85  # int8 rounding changes a few sentences, never most


def test_the_shipped_package_says_what_it_is_for(shipped) -> None:
    """Issue 33: the only model translated image captions and nothing said so. Its package
    carries the description every listing of it shows (/v1/models, the page)."""
    from model.config import SHIPPED_DESCRIPTION

    _, _, runtime = shipped
    assert runtime.config.description == SHIPPED_DESCRIPTION
    assert "image captions" in SHIPPED_DESCRIPTION
    assert "tongyeok pull Helsinki-NLP/opus-mt-en-de" in SHIPPED_DESCRIPTION
