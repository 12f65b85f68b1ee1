"""Greedy and beam search: scores are what they claim, batching changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from model.checkpoint import load_checkpoint
from model.data import pad
from model.search import SearchOptions, search
from model.transformer import ModelConfig, Transformer

CFG = ModelConfig(vocab_size=30, d_model=32, n_heads=4, d_ff=64, encoder_layers=1, decoder_layers=2)


@pytest.fixture(scope="module")
def model() -> Transformer:
    torch.manual_seed(3)
    m = Transformer(CFG).eval()
    with torch.no_grad():  # make EOS likely enough that hypotheses end at different lengths
        m.final_logits_bias[CFG.eos_id] = 2.0
    return m


def sources() -> torch.Tensor:
    rows = [[5, 6, 7, 8, 2], [9, 10, 2], [11, 12, 13, 2], [14, 2]]
    return pad(rows, CFG.pad_id)


def sequence_logprob(model: Transformer, src: torch.Tensor, tokens: list[int]) -> float:
    """Teacher-forced log-probability of ``tokens`` for one source row."""
    tgt_in = torch.tensor([[CFG.decoder_start_id, *tokens[:-1]]])
    with torch.no_grad():
        logp = F.log_softmax(model.project(model(src, tgt_in)), dim=-1)
    return float(logp[0, torch.arange(len(tokens)), torch.tensor(tokens)].sum())


def test_greedy_is_the_argmax_path(model: Transformer) -> None:
    src = sources()
    hyps = search(model, src, SearchOptions(beam_size=1, max_length_a=0, max_length_b=8))
    for row, (hyp,) in enumerate(hyps):
        prefix: list[int] = []
        for _ in range(len(hyp.tokens)):
            tgt_in = torch.tensor([[CFG.decoder_start_id, *prefix]])
            with torch.no_grad():
                nxt = int(model.project(model(src[row : row + 1], tgt_in))[0, -1].argmax())
            prefix.append(nxt)
            if nxt == CFG.eos_id:
                break
        assert hyp.tokens == prefix


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_scores_are_normalized_sequence_logprobs(
    model: Transformer, length_penalty: float
) -> None:
    src = sources()
    options = SearchOptions(beam_size=4, nbest=4, length_penalty=length_penalty)
    for row, hyps in enumerate(search(model, src, options)):
        assert len(hyps) == 4
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == 4  # n-best are distinct
        for h in hyps:
            expected = sequence_logprob(model, src[row : row + 1], h.tokens)
            assert h.score == pytest.approx(expected / len(h.tokens) ** length_penalty, abs=1e-4)


def test_beam_is_at_least_as_good_as_greedy_on_raw_scores(model: Transformer) -> None:
    src = sources()
    raw = dict(length_penalty=0.0, max_length_a=0.0, max_length_b=6)
    greedy = search(model, src, SearchOptions(beam_size=1, **raw))
    beam = search(model, src, SearchOptions(beam_size=8, **raw))
    better = sum(b[0].score >= g[0].score - 1e-6 for b, g in zip(beam, greedy, strict=True))
    assert better == len(greedy)


def test_a_sentence_does_not_depend_on_its_batch(model: Transformer) -> None:
    src = sources()
    options = SearchOptions(beam_size=4, nbest=2)
    together = search(model, src, options)
    for row in range(src.shape[0]):
        alone_src = src[row : row + 1, : int(src[row].ne(CFG.pad_id).sum())]
        alone = search(model, alone_src, options)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in together[row]]
        for a, t in zip(alone, together[row], strict=True):
            assert a.score == pytest.approx(t.score, abs=1e-5)


def test_max_length_is_a_times_source_plus_b(model: Transformer) -> None:
    with torch.no_grad():
        model.final_logits_bias[CFG.eos_id] = -100.0  # never stop on its own
    try:
        src = sources()
        hyps = search(model, src, SearchOptions(beam_size=2, max_length_a=1.0, max_length_b=2))
        lengths = src.ne(CFG.pad_id).sum(dim=1).tolist()
        assert [len(h[0].tokens) for h in hyps] == [n + 2 for n in lengths]
    finally:
        with torch.no_grad():
            model.final_logits_bias[CFG.eos_id] = 2.0


def test_invalid_options() -> None:
    with pytest.raises(ValueError, match="beam_size must be >= 1"):
        SearchOptions(beam_size=0)
    with pytest.raises(ValueError, match="nbest must be in"):
        SearchOptions(beam_size=2, nbest=3)


def test_toy_model_beam_equals_greedy_on_an_easy_task(toy_checkpoint: Path) -> None:
    ckpt = load_checkpoint(toy_checkpoint)
    model = ckpt.build_model()
    src = pad([ckpt.tokenizer.encode("red dog runs in the park") + [CFG.eos_id]], CFG.pad_id)
    greedy = search(model, src, SearchOptions(beam_size=1))[0][0]
    beam = search(model, src, SearchOptions(beam_size=4))[0][0]
    assert greedy.tokens == beam.tokens
