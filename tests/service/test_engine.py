"""The engine decodes exactly like the PyTorch reference, whoever shares its batch and whenever."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

import service.decoding.engine as engine_module
from contract.options import SearchOptions
from export.onnx_export import export_package
from model.checkpoint import load_checkpoint
from model.translate import translate_ids
from service.decoding.engine import Engine
from service.runtime.sessions import PackageRuntime, RuntimeOptions
from service.runtime.tensor_ops import NUMPY, GraphOps, NumpyOps, rows_of
from tests.conftest import copy_pairs


@pytest.fixture(scope="module", params=["in-place", "gathered"])
def toy(request: pytest.FixtureRequest, toy_checkpoint: Path, tmp_path_factory):
    """(reference model, tokenizer, runtime) of the toy model, its fp32 package in either cache
    layout (in place: the CPU's default; gathered: what a GPU runs): the engine decodes the same
    with both."""
    ckpt = load_checkpoint(toy_checkpoint)
    out = tmp_path_factory.mktemp("engine") / "toy"
    package = export_package(toy_checkpoint, out, cache=request.param)
    runtime = PackageRuntime(package)
    assert runtime.in_place == (request.param == "in-place")
    return ckpt.build_model(), ckpt.tokenizer, runtime


def sources(tokenizer, n: int, seed: int) -> list[list[int]]:
    return tokenizer.encode_batch([s for s, _ in copy_pairs(n, seed=seed)])


@pytest.mark.parametrize("beam", [1, 4])
def test_engine_equals_reference_search(toy, beam: int) -> None:
    model, tokenizer, runtime = toy
    src = sources(tokenizer, 30, seed=11)
    options = SearchOptions(beam_size=beam, nbest=beam, length_penalty=0.6)
    engine = Engine(runtime)
    got = engine.run(src, options, max_batch=7)  # 30 sentences through 7 slots: many joins
    want = translate_ids(model, src, options)
    eos = runtime.config.eos_id
    for g, w in zip(got, want, strict=True):
        assert [h.tokens for h in g] == [h.tokens for h in w]
        assert [h.score for h in g] == pytest.approx([h.score for h in w], abs=1e-4)
        assert [h.finish_reason for h in g] == [h.finish_reason for h in w]
        assert all((h.finish_reason == "eos") == (h.tokens[-1] == eos) for h in g)
    assert len(engine) == 0 and engine.rows == 0  # everything finished and was compacted away


@pytest.mark.parametrize("beam", [1, 4])
def test_io_binding_path_decodes_the_same(toy, beam: int) -> None:
    """The path CUDA takes (caches bound to the decoder's device, top-k to the host), run on the
    CPU: same hypotheses and scores as plain runs, through joins and beam reorders."""
    _, tokenizer, runtime = toy
    bound = PackageRuntime(runtime.config, RuntimeOptions(io_binding=True))
    assert bound.io_binding and not runtime.io_binding and bound.device == "cpu"
    src = sources(tokenizer, 30, seed=12)
    options = SearchOptions(beam_size=beam, nbest=beam)
    want = Engine(runtime).run(src, options, max_batch=7)
    got = Engine(bound).run(src, options, max_batch=7)
    for g, w in zip(got, want, strict=True):
        assert [h.tokens for h in g] == [h.tokens for h in w]
        assert [h.score for h in g] == pytest.approx([h.score for h in w], abs=1e-6)


@pytest.mark.parametrize("compact_ratio", [0.0, 1.0])
def test_io_bound_rows_are_reshaped_by_graphs_never_through_numpy(
    toy, compact_ratio: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the caches bound to the decoder's device, joins (sources of other widths, other beam
    sizes), a cancel and compactions reshape the cross keys/values and caches with ONNX Runtime
    graphs (service/runtime/tensor_ops.py), which on a GPU keeps them there: numpy's row
    operations are never called, the tensors stay OrtValues, and every sentence decodes as the
    reference."""
    model, tokenizer, runtime = toy
    bound = PackageRuntime(runtime.config, RuntimeOptions(io_binding=True))
    assert isinstance(bound.tensor_ops, GraphOps) and runtime.tensor_ops is NUMPY

    def refuse(*_):
        raise AssertionError("a bound runtime's rows went through numpy")

    for name in ("take", "columns", "concat"):
        monkeypatch.setattr(NumpyOps, name, refuse)
    src = sources(tokenizer, 2 * len(MIXED) + 1, seed=19)
    engine = Engine(bound, compact_ratio=compact_ratio)
    results = {}
    engine.add(["gone"], src[-1:], SearchOptions(beam_size=3, min_length=20))
    engine.step()
    assert all(isinstance(c, ort.OrtValue) for c in engine.running.cross)
    for i, options in enumerate(MIXED):  # a greedy, a beam, ... joining one step apart
        engine.add([2 * i, 2 * i + 1], src[2 * i : 2 * i + 2], options)
        results.update({r.seq_id: r for r in engine.step()})
        assert all(isinstance(c, ort.OrtValue) for c in engine.running.cross)
        if i == 2:
            engine.cancel(["gone"])
    while len(engine):
        results.update({r.seq_id: r for r in engine.step()})
    assert "gone" not in results and engine.active_rows == 0
    for i, options in enumerate(MIXED):
        want = translate_ids(model, src[2 * i : 2 * i + 2], options)
        for j, w in zip((2 * i, 2 * i + 1), want, strict=True):
            assert [h.tokens for h in results[j].hypotheses] == [h.tokens for h in w]
            got = [h.score for h in results[j].hypotheses]
            assert got == pytest.approx([h.score for h in w], abs=1e-4)


@pytest.mark.parametrize("beam", [1, 4])
def test_forced_lengths_match_the_reference(toy, beam: int) -> None:
    """min_length = max_length forces every hypothesis to that many tokens (as benchmarks do)."""
    model, tokenizer, runtime = toy
    src = sources(tokenizer, 6, seed=15)
    options = SearchOptions(beam_size=beam, min_length=12, max_length_a=0, max_length_b=12)
    got = Engine(runtime).run(src, options)
    want = translate_ids(model, src, options)
    assert [len(h[0].tokens) for h in got] == [12] * 6
    assert [h[0].finish_reason for h in got] == [h[0].finish_reason for h in want]
    assert [h[0].tokens for h in got] == [h[0].tokens for h in want]


def test_translation_does_not_depend_on_join_time_or_neighbours(toy) -> None:
    _, tokenizer, runtime = toy
    src = sources(tokenizer, 6, seed=12)
    options = SearchOptions(beam_size=3, nbest=3)
    alone = {i: Engine(runtime).run([s], options)[0] for i, s in enumerate(src)}
    engine = Engine(runtime)
    results = {}
    engine.add([0, 1], src[:2], options)
    for join_after, i in ((1, 2), (2, 3), (0, 4), (3, 5)):  # rows join at various steps
        for _ in range(join_after):
            results.update({r.seq_id: r.hypotheses for r in engine.step()})
        engine.add([i], [src[i]], options)
    while len(engine):
        results.update({r.seq_id: r.hypotheses for r in engine.step()})
    for i in range(6):
        assert [h.tokens for h in results[i]] == [h.tokens for h in alone[i]]
        assert [h.score for h in results[i]] == pytest.approx([h.score for h in alone[i]], abs=1e-5)


def test_sentences_encoded_early_and_joined_late_decode_the_same(toy) -> None:
    """The scheduler encodes in another thread while the batch steps, and joins later: an
    encoder pass must not depend on (or change) the batch it will join."""
    _, tokenizer, runtime = toy
    src = sources(tokenizer, 5, seed=13)
    options = SearchOptions(beam_size=2, nbest=2)
    alone = [Engine(runtime).run([s], options)[0] for s in src]
    engine = Engine(runtime)
    early = [engine.encode([s]) for s in src[2:]]  # before anything runs
    engine.join([0, 1], engine.encode(src[:2]), options)
    results = {}
    for i, encoded in enumerate(early, start=2):
        for _ in range(i):
            results.update({r.seq_id: r.hypotheses for r in engine.step()})
        engine.join([i], encoded, options)
    while len(engine):
        results.update({r.seq_id: r.hypotheses for r in engine.step()})
    for i in range(5):
        assert [h.tokens for h in results[i]] == [h.tokens for h in alone[i]]
        assert [h.score for h in results[i]] == pytest.approx([h.score for h in alone[i]], abs=1e-5)


def test_greedy_and_beam_sequences_share_a_batch(toy) -> None:
    _, tokenizer, runtime = toy
    src = sources(tokenizer, 8, seed=13)
    greedy, beam = SearchOptions(beam_size=1), SearchOptions(beam_size=4, nbest=2)
    engine = Engine(runtime)
    engine.add(list(range(4)), src[:4], greedy)
    engine.add(list(range(4, 8)), src[4:], beam)
    results = {}
    while len(engine):
        results.update({r.seq_id: r.hypotheses for r in engine.step()})
    assert [results[i] for i in range(4)] == Engine(runtime).run(src[:4], greedy)
    # Alone, the beam sentences share their sources (one query block of 4 per sentence); beside
    # greedy ones each beam reads its own copy: the same tokens, scores equal to float rounding.
    alone = Engine(runtime).run(src[4:], beam)
    for got, want in zip((results[i] for i in range(4, 8)), alone, strict=True):
        assert [h.tokens for h in got] == [h.tokens for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)


def test_beams_of_a_sentence_read_one_copy_of_its_source_when_the_batch_allows(toy) -> None:
    """With every sentence at the same beam size, the cross keys/values hold one row per
    sentence, not per beam; a greedy sentence joining makes them per row until it leaves; and a
    decoder that takes one source per row (an fp16 package's traced graph) decodes the same."""
    _, tokenizer, runtime = toy
    assert runtime.shared_sources
    src = sources(tokenizer, 4, seed=19)
    beam = SearchOptions(beam_size=4, nbest=2)
    engine = Engine(runtime, compact_ratio=0.0)
    engine.add(["a", "b", "c"], src[:3], beam)
    assert engine.running.rows_per_source == 4 and engine.running.cross[0].shape[0] == 3
    assert engine.step() == []
    engine.add(["g"], src[3:], SearchOptions(beam_size=1, max_length_a=0.0, max_length_b=2))
    assert (
        engine.running.rows_per_source == 1
        and engine.running.cross[0].shape[0] == engine.rows == 13
    )
    results = {r.seq_id: r.hypotheses for r in engine.step()}
    results.update({r.seq_id: r.hypotheses for r in engine.step()})
    assert "g" in results  # ended by its length budget; compacted away at once (ratio 0)
    assert engine.running.rows_per_source == 4 and engine.running.cross[0].shape[0] == 3
    while len(engine):
        results.update({r.seq_id: r.hypotheses for r in engine.step()})
    per_row = PackageRuntime(runtime.config)
    per_row.shared_sources = False  # as a traced decoder declares it
    alone = Engine(per_row).run(src[:3], beam)
    for key, want in zip("abc", alone, strict=True):
        assert [h.tokens for h in results[key]] == [h.tokens for h in want]
        assert [h.score for h in results[key]] == pytest.approx([h.score for h in want], abs=1e-5)


MIXED = [  # options that change the search's path: greedy, forced lengths, n-best, penalties
    SearchOptions(beam_size=1),
    SearchOptions(beam_size=1, min_length=9),
    SearchOptions(beam_size=2, nbest=2, length_penalty=0.0),
    SearchOptions(beam_size=3, nbest=3, min_length=7, max_length_a=0.0, max_length_b=11),
    SearchOptions(beam_size=4, nbest=4, length_penalty=0.6),
    SearchOptions(beam_size=3, nbest=2, max_length_a=0.5, max_length_b=2),  # ends by length
]


@pytest.mark.parametrize("compact_ratio", [0.0, 1.0])
def test_mixed_options_in_one_batch_match_the_reference(toy, compact_ratio: float) -> None:
    """Sentences of every kind of search share the steps, joining at different times: each gets
    what the PyTorch reference gives it alone, whether rows are compacted at every finish (0.0)
    or only when others join (1.0), so histories survive reorders, compactions and joins."""
    model, tokenizer, runtime = toy
    src = sources(tokenizer, 2 * len(MIXED), seed=17)
    engine = Engine(runtime, compact_ratio=compact_ratio)
    results = {}
    for i, options in enumerate(MIXED):  # a greedy, a beam, ... joining one step apart
        engine.add([2 * i, 2 * i + 1], src[2 * i : 2 * i + 2], options)
        results.update({r.seq_id: r for r in engine.step()})
    while len(engine):
        results.update({r.seq_id: r for r in engine.step()})
    assert engine.active_rows == 0 and engine.reserved_tokens == 0
    for i, options in enumerate(MIXED):
        want = translate_ids(model, src[2 * i : 2 * i + 2], options)
        for j, w in zip((2 * i, 2 * i + 1), want, strict=True):
            got = results[j].hypotheses
            assert results[j].error is None and len(got) == options.nbest
            assert [h.tokens for h in got] == [h.tokens for h in w]
            assert [h.finish_reason for h in got] == [h.finish_reason for h in w]
            assert [h.score for h in got] == pytest.approx([h.score for h in w], abs=1e-4)
    reasons = {h.finish_reason for r in results.values() for h in r.hypotheses}
    assert reasons == {"eos", "length"}


def test_cancel_mid_beam_then_compact_and_join(toy) -> None:
    """A beam sentence in the middle of the rows leaves after a few reorders; the rows are then
    compacted and others join: the rest decode as if alone."""
    _, tokenizer, runtime = toy
    src = sources(tokenizer, 5, seed=18)
    options = SearchOptions(beam_size=4, nbest=4)
    engine = Engine(runtime, compact_ratio=0.1)
    engine.add(["a", "b", "c"], src[:3], options)
    engine.add(["g"], src[3:4], SearchOptions(beam_size=1, min_length=8))
    for _ in range(2):
        assert engine.step() == []
    engine.cancel(["b"])
    results = {r.seq_id: r.hypotheses for r in engine.step()}
    assert engine.rows == engine.active_rows  # compacted: no dead rows left
    engine.add(["d"], src[4:5], options)
    while len(engine):
        results.update({r.seq_id: r.hypotheses for r in engine.step()})
    assert set(results) == {"a", "c", "d", "g"}
    greedy = SearchOptions(beam_size=1, min_length=8)
    for key, i, opts in (("a", 0, options), ("c", 2, options), ("d", 4, options), ("g", 3, greedy)):
        alone = Engine(runtime).run([src[i]], opts)[0]
        assert [h.tokens for h in results[key]] == [h.tokens for h in alone]
        assert [h.score for h in results[key]] == pytest.approx([h.score for h in alone], abs=1e-5)


def test_cancel_frees_rows_and_leaves_others_alone(toy) -> None:
    _, tokenizer, runtime = toy
    src = sources(tokenizer, 3, seed=14)
    options = SearchOptions(beam_size=2)
    engine = Engine(runtime)
    engine.add(["a", "b", "c"], src, options)
    engine.step()
    engine.cancel(["b"])
    assert engine.active_rows == 4 and len(engine) == 2
    results = {}
    while len(engine):
        results.update({r.seq_id: r.hypotheses for r in engine.step()})
    assert set(results) == {"a", "c"}  # b never answers; a and c are unaffected
    assert results["a"] == Engine(runtime).run([src[0]], options)[0]


def test_bad_sources_are_refused(toy) -> None:
    _, _, runtime = toy
    engine = Engine(runtime)
    too_long = [5] * runtime.config.max_source_tokens
    with pytest.raises(ValueError, match=r"source has \d+ tokens; the model takes at most"):
        engine.add(["x"], [too_long], SearchOptions())
    engine.add(["x"], [[5, 6]], SearchOptions())
    with pytest.raises(ValueError, match="already active"):
        engine.add(["x"], [[5]], SearchOptions())
    with pytest.raises(ValueError, match="repeat within one join"):
        engine.add(["y", "y"], [[5], [6]], SearchOptions())
    assert set(engine.sequences) == {"x"}  # a refused join leaves the batch as it was


def test_service_never_imports_torch() -> None:
    code = (
        "import sys, service.decoding.engine, service.runtime.sessions, contract.package; "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_memory_stays_flat_over_10000_sentences(toy) -> None:
    """Varying lengths make every step a new shape; resident memory after warm-up must not creep
    (ONNX Runtime's arena growing with shapes is a known complaint)."""
    import random

    from tests.conftest import WORDS

    _, tokenizer, runtime = toy
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 30))) for _ in range(10_000)]
    src = tokenizer.encode_batch(texts)
    options = SearchOptions(beam_size=1, max_length_a=1.0, max_length_b=5)
    engine = Engine(runtime)
    engine.run(src[:1000], options, max_batch=64)  # warm-up over representative shapes
    before = resident_bytes()
    engine.run(src[1000:], options, max_batch=64)
    after = resident_bytes()
    assert after < before * 1.05, f"resident memory grew {after / before - 1:.1%}"


@pytest.mark.parametrize("io_binding", [None, True])
def test_an_idle_engine_keeps_no_batch_memory(toy, io_binding: bool | None) -> None:
    """The runtime keeps its IO binding between steps; once the batch has drained, neither it nor
    the engine holds the last batch's caches or cross keys/values any more."""
    import gc
    import weakref

    _, tokenizer, runtime = toy
    runtime = PackageRuntime(runtime.config, RuntimeOptions(io_binding=io_binding))
    engine = Engine(runtime)
    engine.add(list(range(6)), sources(tokenizer, 6, seed=17), SearchOptions(beam_size=4))
    held = []  # every step's tensors, down to the last batch's (not the empty one after it)
    while len(engine):
        engine.step()
        tensors = [*engine.running.cache, *engine.running.cross, *(engine._cross_values or [])]
        held += [weakref.ref(t) for t in tensors if rows_of(t)]
    gc.collect()
    assert engine.rows == 0
    alive = [r() for r in held if r() is not None]
    assert [(type(a), getattr(a, "shape", None)) for a in alive] == []


def test_a_sentence_whose_search_fails_ends_alone(toy, monkeypatch: pytest.MonkeyPatch) -> None:
    """The search decides for all sequences of a beam size at once; when that fails because of
    one of them, it alone ends with an error and the others decode as if alone."""
    _, tokenizer, runtime = toy
    src = sources(tokenizer, 3, seed=16)
    options = SearchOptions(beam_size=2)
    engine = Engine(runtime)
    choose = engine_module.choose

    def failing(group, step):
        b = engine.sequences.get("b")
        rows = engine.running.owned_by(b.number) if b is not None else []
        if len(rows) and rows[0] in group.slots and step.length[rows[0]] == 2:
            raise FloatingPointError("injected")
        return choose(group, step)

    monkeypatch.setattr(engine_module, "choose", failing)
    engine.add(["a", "b", "c"], src, options)
    results = {}
    while len(engine):
        results.update({r.seq_id: r for r in engine.step()})
    assert results["b"].error == "FloatingPointError" and results["b"].hypotheses == []
    for key, i in (("a", 0), ("c", 2)):  # the others decode as if alone
        assert results[key].error is None
        assert results[key].hypotheses == Engine(runtime).run([src[i]], options)[0]
