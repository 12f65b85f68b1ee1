"""The hand-built graphs of fused kernels (export/fused.py) compute what the PyTorch model computes,
in the cases the engine's single-token steps never exercise: several new tokens at once over a
reordered past with masked columns, and every architecture variant an imported Marian model has."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from contract.spec import aligner_spec, alignment_layer, decoder_spec, encoder_spec, kv_pair
from contract.variants import ACTIVATIONS
from export.fused import build_aligner, build_decoder, build_encoder
from export.output_head import OUTPUT_BLOCK_ALIGN
from export.weights import store_weights
from model.transformer import ModelConfig, Transformer

VARIANTS = {
    "ours": ModelConfig(vocab_size=50, d_model=32, n_heads=4, d_ff=64, max_positions=40),
    "marian-like": ModelConfig(
        vocab_size=50,
        target_vocab_size=37,
        share_embeddings=False,
        tie_output=False,
        activation="gelu",
        scale_embedding=False,
        suppress_pad=True,
        d_model=32,
        n_heads=2,
        d_ff=48,
        encoder_layers=1,
        decoder_layers=2,
        max_positions=40,
        pad_id=36,
        eos_id=0,
        unk_id=1,
    ),
    "swish": ModelConfig(vocab_size=50, d_model=32, n_heads=4, d_ff=64, activation="swish"),
}


def session(proto: onnx.ModelProto) -> ort.InferenceSession:
    onnx.checker.check_model(proto, full_check=True)
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def random_model(cfg: ModelConfig) -> Transformer:
    torch.manual_seed(0)
    model = Transformer(cfg).eval()
    with torch.no_grad():  # non-zero biases everywhere, so a dropped bias cannot go unnoticed
        for name, p in model.named_parameters():
            if p.dim() == 1 and "norm" not in name:
                p.normal_(0, 0.5)
    return model


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@torch.no_grad()
def test_encoder_and_multi_token_step_over_a_reordered_past_match_pytorch(variant: str) -> None:
    cfg = VARIANTS[variant]
    model = random_model(cfg)
    layers = cfg.decoder_layers
    encoder = session(build_encoder(model, encoder_spec(layers)))
    decoder = session(build_decoder(model, decoder_spec(layers, shared_sources=True)))
    src = torch.tensor([[5, 6, 7, 8, cfg.eos_id], [9, 10, cfg.eos_id, cfg.pad_id, cfg.pad_id]])
    src_mask = src.ne(cfg.pad_id)
    enc = encoder.run(None, {"src_ids": src.numpy(), "src_mask": src_mask.numpy()})
    states = model.encode(src, src_mask)
    # Compare the real positions only: padded ones are never read (masked everywhere).
    real = src_mask.numpy()
    assert np.abs(enc[0][real] - states.numpy()[real]).max() < 1e-4
    cross = model.cross_kv(states)
    for i, (k, v) in enumerate(cross):  # (B, H, S, Dh): compared at the real source positions
        for got, want in ((enc[1 + 2 * i], k), (enc[2 + 2 * i], v)):
            got_real = got.transpose(0, 2, 1, 3)[real]
            assert np.abs(got_real - want.numpy().transpose(0, 2, 1, 3)[real]).max() < 1e-4
        assert np.isfinite(enc[1 + 2 * i]).all() and np.isfinite(enc[2 + 2 * i]).all()

    # A 3-row past of 4 positions; the batch continues rows (2, 0): the graph must gather them.
    g = torch.Generator().manual_seed(1)
    shape = (3, cfg.n_heads, 4, cfg.head_dim)
    past = [
        (torch.randn(shape, generator=g), torch.randn(shape, generator=g)) for _ in range(layers)
    ]
    cache_index = torch.tensor([2, 0])
    tokens = torch.tensor([[11, 13], [12, 3]]) % cfg.output_vocab_size
    positions = torch.tensor([[4, 5], [2, 3]])
    self_mask = torch.ones(2, 6, dtype=torch.bool)
    self_mask[1, :2] = False  # the second row joined two steps later: its first columns are empty
    feed = {
        "input_ids": tokens.numpy(),
        "positions": positions.numpy(),
        "cache_index": cache_index.numpy(),
        "self_mask": self_mask.numpy(),
        "src_mask": src_mask.numpy(),
        "top_k": np.array([cfg.output_vocab_size], dtype=np.int64),
    }
    for i in range(layers):
        for name, t in zip(kv_pair("past", i), past[i], strict=True):
            feed[name] = t.numpy()
        for name, t in zip(kv_pair("cross", i), cross[i], strict=True):
            feed[name] = t.numpy()
    out = decoder.run(None, feed)

    reordered = [(k.index_select(0, cache_index), v.index_select(0, cache_index)) for k, v in past]
    logits, present = model.decode_step(tokens, positions, cross, src_mask, reordered, self_mask)
    expected = model.log_probs(logits[:, -1])
    values, ids = out[0], out[1]
    got = np.full_like(expected.numpy(), np.nan)
    np.put_along_axis(got, ids, values, axis=1)  # the full distribution, put back in place
    finite = np.isfinite(expected.numpy())
    assert (np.isfinite(got) == finite).all()  # suppressed pad is -inf in both
    assert np.abs(got[finite] - expected.numpy()[finite]).max() < 1e-4
    assert (np.diff(values, axis=1) <= 0).all()  # best first
    for i, (k, v) in enumerate(present):
        assert np.abs(out[2 + 2 * i] - k.numpy()).max() < 1e-5
        assert np.abs(out[3 + 2 * i] - v.numpy()).max() < 1e-5


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@torch.no_grad()
def test_every_activation_of_the_table_computes_in_the_graph_what_it_computes_in_pytorch(
    activation: str,
) -> None:
    """contract/variants.py names how each backend builds an activation: the fused encoder's
    feed-forward layers and the PyTorch model's agree for every name, aliases included."""
    cfg = dataclasses.replace(VARIANTS["ours"], activation=activation)
    model = random_model(cfg)
    encoder = session(build_encoder(model, encoder_spec(cfg.decoder_layers)))
    src = torch.tensor([[5, 6, 7, 8, cfg.eos_id], [9, 10, cfg.eos_id, cfg.pad_id, cfg.pad_id]])
    src_mask = src.ne(cfg.pad_id)
    states = encoder.run(None, {"src_ids": src.numpy(), "src_mask": src_mask.numpy()})[0]
    real = src_mask.numpy()
    assert np.abs(states[real] - model.encode(src, src_mask).numpy()[real]).max() < 1e-4


@torch.no_grad()
def test_the_encoder_computes_its_dense_layers_over_real_tokens_only(tmp_path: Path) -> None:
    """A batch padded to its longest sentence: every projection and feed-forward product runs over
    the real tokens alone (ONNX Runtime's profiler records each MatMul's input shape), and each
    sentence's result is what it gets encoded alone."""
    cfg = VARIANTS["ours"]
    model = random_model(cfg)
    proto = build_encoder(model, encoder_spec(cfg.decoder_layers))
    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = str(tmp_path / "encoder")
    encoder = ort.InferenceSession(
        proto.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    lengths = [12, 2, 5]  # EOS included; padded to 12: 19 real positions of 36
    src = np.full((3, 12), cfg.pad_id, dtype=np.int64)
    for row, n in enumerate(lengths):
        src[row, : n - 1] = np.arange(5, 4 + n) % cfg.vocab_size
        src[row, n - 1] = cfg.eos_id
    mask = src != cfg.pad_id
    together = encoder.run(None, {"src_ids": src, "src_mask": mask})
    events = json.loads(Path(encoder.end_profiling()).read_text())
    matmul_rows = {
        tuple(event["args"]["input_type_shape"][0]["float"])
        for event in events
        if event.get("cat") == "Node" and "MatMul" in event["args"].get("op_name", "")
    }
    assert matmul_rows == {(1, sum(lengths), cfg.d_model), (1, sum(lengths), cfg.d_ff)}
    for row, n in enumerate(lengths):
        alone = encoder.run(
            None, {"src_ids": src[row : row + 1, :n], "src_mask": mask[row : row + 1, :n]}
        )
        assert np.abs(together[0][row, :n] - alone[0][0]).max() < 1e-5
        for got, want in zip(together[1:], alone[1:], strict=True):
            assert np.abs(got[row, :, :n] - want[0]).max() < 1e-5


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_beams_sharing_one_source_decode_as_with_a_copy_each(variant: str) -> None:
    """Cross keys/values and source mask with one row per sentence, read by its beams (the
    consecutive rows that share it), give what one copy per row gives, multi-token steps
    included."""
    cfg = VARIANTS[variant]
    layers = cfg.decoder_layers
    decoder = session(build_decoder(random_model(cfg), decoder_spec(layers, shared_sources=True)))
    rng = np.random.default_rng(2)
    sentences, beams, past_len, new = 2, 3, 4, 2
    rows = sentences * beams
    shape = (sentences, cfg.n_heads, 5, cfg.head_dim)
    cross = [rng.standard_normal(shape).astype(np.float32) for _ in range(2 * layers)]
    src_mask = np.array([[True] * 5, [True, True, True, False, False]])
    past_shape = (rows, cfg.n_heads, past_len, cfg.head_dim)
    feed = {
        "input_ids": rng.integers(3, cfg.output_vocab_size, (rows, new)),
        "positions": np.tile(np.arange(past_len, past_len + new), (rows, 1)),
        "cache_index": rng.permutation(rows),
        "self_mask": np.ones((rows, past_len + new), dtype=bool),
        "top_k": np.array([5], dtype=np.int64),
    }
    for i in range(layers):
        for name in kv_pair("past", i):
            feed[name] = rng.standard_normal(past_shape).astype(np.float32)
    names = [n for i in range(layers) for n in kv_pair("cross", i)]
    one_each = dict(zip(names, cross, strict=True))
    shared = decoder.run(None, {**feed, "src_mask": src_mask, **one_each})
    repeat = np.repeat(np.arange(sentences), beams)
    copies = {name: c[repeat] for name, c in one_each.items()}
    each = decoder.run(None, {**feed, "src_mask": src_mask[repeat], **copies})
    assert shared[1].tolist() == each[1].tolist()
    for a, b in zip(shared, each, strict=True):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-5


@torch.no_grad()
def first_step(model: Transformer) -> tuple[dict[str, np.ndarray], torch.Tensor, torch.Tensor]:
    """A first decoder step for four rows of one source (pad, 3, 9 and 20 as the last tokens):
    the graph's inputs but ``top_k``, the reference's log-probabilities and its raw logits."""
    cfg, rows = model.cfg, 4
    src = torch.tensor([[5, 6, 7, cfg.eos_id]] * rows)
    src_mask = src.ne(cfg.pad_id)
    cross = model.cross_kv(model.encode(src, src_mask))
    tokens = torch.tensor([[cfg.pad_id], [3], [9], [20]])
    positions = torch.zeros(rows, 1, dtype=torch.long)
    logits, _ = model.decode_step(tokens, positions, cross, src_mask, None, None)
    empty = np.zeros((rows, cfg.n_heads, 0, cfg.head_dim), dtype=np.float32)
    feed: dict[str, np.ndarray] = {
        "input_ids": tokens.numpy(),
        "positions": positions.numpy(),
        "cache_index": np.arange(rows),
        "self_mask": np.ones((rows, 1), dtype=bool),
        "src_mask": src_mask.numpy(),
    }
    for i in range(cfg.decoder_layers):
        for name in kv_pair("past", i):
            feed[name] = empty
        for name, t in zip(kv_pair("cross", i), cross[i], strict=True):
            feed[name] = t.numpy()
    return feed, model.log_probs(logits[:, -1]), logits[:, -1]


@pytest.mark.parametrize("pad_rank", ["first", "middle", "last"])
@torch.no_grad()
def test_a_step_that_never_generates_pad_returns_the_references_top_k(pad_rank: str) -> None:
    """A Marian model's pad is put at -inf after the softmax (Transformer.log_probs); the graph
    drops it from the top k + 1 instead of adding -inf over the whole vocabulary: for every k, the
    same ids in the same order and the same log-probabilities as the reference's top k, whether
    pad would have been the best continuation, a middling one or the worst."""
    cfg = VARIANTS["marian-like"]
    model = random_model(cfg)
    model.final_logits_bias[cfg.pad_id] = {"first": 50.0, "middle": 0.0, "last": -50.0}[pad_rank]
    layers, vocab = cfg.decoder_layers, cfg.output_vocab_size
    proto = build_decoder(model, decoder_spec(layers, shared_sources=True))
    # No vocabulary-sized -inf vector left for an Add over every row's whole distribution.
    tables = [onnx.numpy_helper.to_array(i) for i in proto.graph.initializer]
    assert not any(t.size >= vocab and np.isneginf(t).any() for t in tables)
    decoder = session(proto)
    feed, expected, raw = first_step(model)
    if pad_rank != "middle":  # where pad stands before it is suppressed
        extreme = raw.argmax(dim=1) if pad_rank == "first" else raw.argmin(dim=1)
        assert (extreme == cfg.pad_id).all()
    for k in (1, 2, 5, vocab - 1, vocab):
        values, ids = decoder.run(None, {**feed, "top_k": np.array([k], dtype=np.int64)})[:2]
        want_values, want_ids = expected.topk(k, dim=1)
        assert ids.tolist() == want_ids.tolist(), k
        assert np.allclose(values, want_values.numpy(), atol=1e-5, rtol=0), k
        if k < vocab:
            assert cfg.pad_id not in ids
        else:  # the whole vocabulary asked for: pad last, at -inf, as in the reference
            assert (ids[:, -1] == cfg.pad_id).all() and np.isneginf(values[:, -1]).all()


@pytest.mark.parametrize("variant", ["ours", "marian-like"])
@torch.no_grad()
def test_an_output_projection_in_blocks_returns_the_references_top_k(variant: str) -> None:
    """A large token table is split into column blocks (ONNX Runtime holds the largest weight
    twice while it repacks it at load: decision #40), each with its own log-softmax and top k,
    corrected to the whole vocabulary's: 300 ids in blocks of 64 columns, the last one partial,
    give the same ids, order and log-probabilities as the reference for every k, k larger than
    a block and the whole vocabulary included."""
    cfg = dataclasses.replace(VARIANTS[variant], vocab_size=300, target_vocab_size=None)
    if variant == "marian-like":
        cfg = dataclasses.replace(cfg, target_vocab_size=290, pad_id=250)
    model = random_model(cfg)
    vocab, width = cfg.output_vocab_size, 64
    spec = decoder_spec(cfg.decoder_layers, shared_sources=True)
    proto = build_decoder(model, spec, output_block_bytes=width * cfg.d_model * 4)
    ops = [n.op_type for n in proto.graph.node]
    blocks = -(-vocab // width)
    assert blocks == 5 and ops.count("LogSoftmax") == blocks
    assert ops.count("Concat") == 3  # the blocks' log-sum-exps, candidates and ids: no logits
    # Four for the attentions and two for the feed-forward in each layer, and one per block.
    assert ops.count("MatMul") == 6 * cfg.decoder_layers + blocks
    largest = max(onnx.numpy_helper.to_array(i).size for i in proto.graph.initializer)
    assert largest <= max(width * cfg.d_model, cfg.vocab_size * cfg.d_model)  # the input table
    decoder = session(proto)
    feed, expected, _ = first_step(model)
    for k in (1, 5, 64, 65, vocab):
        values, ids = decoder.run(None, {**feed, "top_k": np.array([k], dtype=np.int64)})[:2]
        want_values, want_ids = expected.topk(k, dim=1)
        assert ids.tolist() == want_ids.tolist(), k
        assert np.allclose(values, want_values.numpy(), atol=1e-5, rtol=0), k


@pytest.mark.parametrize("blocks", [1, 10])
def test_loading_holds_one_block_of_the_output_projection_twice_at_most(
    blocks: int, tmp_path: Path
) -> None:
    """What the blocks are for: in a fresh process, the peak resident memory while ONNX Runtime
    loads a decoder (weights mapped from the file, then repacked) passes what stays resident after
    by about the largest block of the output projection. One block: about the whole 10 MB table
    (a 40,000-id vocabulary at d=64); ten: about a tenth of it."""
    cfg = ModelConfig(
        vocab_size=40_000, d_model=64, n_heads=4, d_ff=128, encoder_layers=1, decoder_layers=1
    )
    table = cfg.vocab_size * cfg.d_model * 4
    width = -(-cfg.vocab_size // blocks)
    width += -width % OUTPUT_BLOCK_ALIGN
    proto = build_decoder(
        random_model(cfg),
        decoder_spec(1, shared_sources=True),
        output_block_bytes=width * cfg.d_model * 4,
    )
    assert [n.op_type for n in proto.graph.node].count("LogSoftmax") == blocks
    onnx.save(proto, tmp_path / "decoder.onnx")
    store_weights(tmp_path, ("decoder.onnx",))
    probe = textwrap.dedent(
        """
        import sys
        import onnxruntime

        def memory(field):
            status = open("/proc/self/status").read()
            return int(status.split(field + ":")[1].split()[0]) * 1024

        session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
        print(memory("VmHWM") - memory("VmRSS"))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "decoder.onnx")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    transient = int(done.stdout)
    if blocks == 1:  # the measurement sees the table held twice
        assert transient > 0.8 * table, (transient, table)
    else:
        assert transient < 0.3 * table, (transient, table)


def test_the_decoder_step_is_built_from_fused_kernels() -> None:
    """What makes it fast: one attention kernel per attention, one kernel per residual + norm,
    and no per-head reshapes, transposes or concatenations left for ONNX Runtime to run."""
    cfg = VARIANTS["ours"]
    proto = build_decoder(random_model(cfg), decoder_spec(cfg.decoder_layers, shared_sources=True))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("MultiHeadAttention") == 2 * cfg.decoder_layers
    assert ops.count("SkipLayerNormalization") == 3 * cfg.decoder_layers
    assert not {"Transpose", "Concat", "Softmax", "LayerNormalization"} & set(ops)
    # 19 per layer (the traced graph has ~55; two of them are the Reshapes, views, that let a
    # sentence's beams share its source), plus embedding, masks, shapes and the output head.
    assert len(ops) <= 19 * cfg.decoder_layers + 30


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@torch.no_grad()
def test_the_aligner_is_the_teacher_forced_attention_of_its_layer(variant: str) -> None:
    """Where tags go (service/decoding/alignment.py): the aligner graph gives, for a padded batch
    of targets over a padded batch of sources, the attention PyTorch computes for that layer."""
    cfg = VARIANTS[variant]
    model = random_model(cfg)
    layer = alignment_layer(cfg.decoder_layers)
    assert layer == cfg.decoder_layers - 1  # a shallow decoder: its last layer
    aligner = session(build_aligner(model, aligner_spec(layer), layer))
    src = torch.tensor([[5, 6, 7, 8, cfg.eos_id], [9, 10, cfg.eos_id, cfg.pad_id, cfg.pad_id]])
    src_mask = src.ne(cfg.pad_id)
    cross = model.cross_kv(model.encode(src, src_mask))
    start = cfg.decoder_start_id
    targets = torch.tensor([[start, 11, 12, 13], [start, 14, cfg.pad_id, cfg.pad_id]])
    feed = {"input_ids": targets.numpy(), "src_mask": src_mask.numpy()}
    for i in range(layer + 1):
        for name, t in zip(kv_pair("cross", i), cross[i], strict=True):
            feed[name] = t.numpy()
    (got,) = aligner.run(None, feed)
    want = model.cross_attention(targets, cross, src_mask, layer).numpy()
    assert got.shape == (2, 4, 5)
    assert np.abs(got - want).max() < 1e-5
    assert np.allclose(got.sum(-1), 1.0, atol=1e-5)  # a distribution over the source
    assert (got[1, :, 3:] == 0).all()  # never on padding
    # A target token's attention does not depend on what comes after it (causal).
    feed["input_ids"] = targets[:, :2].numpy()
    assert np.abs(aligner.run(None, feed)[0] - got[:, :2]).max() < 1e-5
