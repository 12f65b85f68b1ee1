"""The architecture's invariants: masks mask, the cache is exact, the layout is Marian's."""

from __future__ import annotations

import math

import pytest
import torch

from model.transformer import ModelConfig, Transformer, sinusoidal_table

CFG = ModelConfig(vocab_size=50, d_model=32, n_heads=4, d_ff=64, encoder_layers=2, decoder_layers=2)


@pytest.fixture
def model() -> Transformer:
    torch.manual_seed(0)
    return Transformer(CFG).eval()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    src = torch.randint(3, CFG.vocab_size, (3, 7), generator=g)
    src[1, 4:] = CFG.pad_id  # row 1 is padded
    tgt = torch.randint(3, CFG.vocab_size, (3, 6), generator=g)
    tgt[:, 0] = CFG.decoder_start_id
    return src, tgt


def logits(model: Transformer, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.project(model(src, tgt))


def test_padded_source_tokens_are_masked(model: Transformer) -> None:
    src, tgt = batch()
    changed = src.clone()
    changed[1, 5] = 7  # a token under the padding mask... still marked as padding below
    src_mask = src.ne(CFG.pad_id)
    with torch.no_grad():
        a = model.encode(src, src_mask)
        b = model.encode(changed, src_mask)
    keep = src_mask
    assert torch.equal(a[keep], b[keep])
    # and the decoder, which reads the source only through the masked cross-attention
    with torch.no_grad():
        pos = torch.arange(6).expand(3, -1)
        la, _ = model.decode_step(tgt, pos, model.cross_kv(a), src_mask)
        lb, _ = model.decode_step(tgt, pos, model.cross_kv(b), src_mask)
    assert torch.equal(la, lb)


def test_unmasked_source_change_does_change_outputs(model: Transformer) -> None:
    """The counter-check: the test above would pass trivially if the source were ignored."""
    src, tgt = batch()
    changed = src.clone()
    changed[1, 2] = 7 if src[1, 2] != 7 else 8
    assert not torch.allclose(logits(model, src, tgt)[1], logits(model, changed, tgt)[1])


def test_future_target_tokens_are_masked(model: Transformer) -> None:
    src, tgt = batch()
    changed = tgt.clone()
    changed[:, 4] = 9 if tgt[0, 4] != 9 else 10
    a, b = logits(model, src, tgt), logits(model, src, changed)
    assert torch.equal(a[:, :4], b[:, :4])  # positions before the change see nothing of it
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_incremental_decoding_equals_full_decoding(model: Transformer) -> None:
    src, tgt = batch()
    full = logits(model, src, tgt)
    src_mask = src.ne(CFG.pad_id)
    with torch.no_grad():
        cross = model.cross_kv(model.encode(src, src_mask))
        cache, steps = None, []
        for t in range(tgt.shape[1]):
            pos = torch.full((3, 1), t)
            out, cache = model.decode_step(tgt[:, t : t + 1], pos, cross, src_mask, cache)
            steps.append(out)
            assert cache[0][0].shape == (3, CFG.n_heads, t + 1, CFG.head_dim)
    assert (torch.cat(steps, dim=1) - full).abs().max() <= 1e-5


def test_rows_that_join_later_decode_as_if_alone(model: Transformer) -> None:
    """Row 1 starts two steps after row 0: its cache slots for those steps are masked padding and
    its positions start at 0. Its logits must equal decoding it alone (the continuous-batching
    contract)."""
    src, tgt = batch()
    src_mask = src.ne(CFG.pad_id)
    with torch.no_grad():
        cross = model.cross_kv(model.encode(src, src_mask))
        alone_cross = [(k[1:2], v[1:2]) for k, v in cross]
        alone = model.project(
            model.decoder_states(tgt[1:2, :4], torch.arange(4)[None], alone_cross, src_mask[1:2])[0]
        )
        two = [(k[[0, 1]], v[[0, 1]]) for k, v in cross]
        mask2 = src_mask[[0, 1]]
        cache, late = None, []
        for t in range(6):  # step t: row 0 at position t, row 1 at position t - 2 (joins at t=2)
            tokens = torch.tensor([[tgt[0, t]], [tgt[1, max(t - 2, 0)]]])
            pos = torch.tensor([[t], [max(t - 2, 0)]])
            joined = torch.tensor([True, t >= 2])
            self_mask = torch.ones(2, t + 1, dtype=torch.bool)
            self_mask[1, : min(t + 1, 2)] = False  # row 1's first two slots are not its own
            self_mask[1, t] = bool(joined[1])
            out, cache = model.decode_step(tokens, pos, two, mask2, cache, self_mask)
            if t >= 2:
                late.append(out[1])
    assert (torch.cat(late) - alone[0]).abs().max() <= 1e-5


def test_sinusoids_use_marians_layout() -> None:
    table = sinusoidal_table(10, 8)
    pos, half = 3, 4
    for i in range(half):
        angle = pos / 10000 ** (2 * i / 8)
        assert table[pos, i] == pytest.approx(math.sin(angle), abs=1e-6)  # all sines first
        assert table[pos, half + i] == pytest.approx(math.cos(angle), abs=1e-6)  # then cosines


def test_embeddings_are_scaled_tied_and_biased(model: Transformer) -> None:
    assert model.embed_scale == pytest.approx(math.sqrt(CFG.d_model))
    states = torch.randn(2, CFG.d_model)
    with torch.no_grad():
        model.final_logits_bias.fill_(0.5)
        expected = states @ model.shared.weight.T + 0.5
    assert torch.allclose(model.project(states), expected, atol=1e-6)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="not divisible by n_heads"):
        ModelConfig(vocab_size=50, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({**CFG.to_dict(), "layers": 3})
    long = torch.ones(1, CFG.max_positions + 1, dtype=torch.long)
    with pytest.raises(ValueError, match="exceeds max_positions"):
        Transformer(CFG).encode(long, long.ne(0))
