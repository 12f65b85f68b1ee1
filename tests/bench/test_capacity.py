"""The CTranslate2 peer server of ``bench capacity --peer ct2``, on the toy model's weights: it
answers the load generator's requests with the same translations the toy model makes."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from bench.capacity import (
    ServerCapacity,
    Trial,
    capacity_markdown,
    comparison_markdown,
    overload_trial,
    start_peer,
)
from bench.race_models import prepare
from bench.serve import Sample, free_port
from model.checkpoint import load_checkpoint
from tests.conftest import copy_pairs


@pytest.mark.parametrize("compute_type", ["float32", "int8"])
def test_the_peer_translates_the_same_weights(
    toy_checkpoint: Path, tmp_path: Path, compute_type: str
) -> None:
    prepare(load_checkpoint(toy_checkpoint), tmp_path, ["ct2 float32"])
    port = free_port()
    proc = start_peer(tmp_path, 1, port, compute_type)
    try:
        sentences = [s for s, _ in copy_pairs(6, seed=41)]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/translate",
            data=json.dumps({"texts": sentences, "source": "en", "target": "de"}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as reply:
            body = json.load(reply)
        assert [t["text"] for t in body["translations"]] == sentences  # the toy task copies
        trial = overload_trial(port, sentences, rate=20, seconds=1.0, beam=1)
        assert trial.samples and trial.failures == 0
    finally:
        proc.terminate()
        proc.wait(30)


def test_comparison_names_the_ratio() -> None:
    fast = Trial(10.0, 1.0, [Sample(0.01, 3, True)] * 10)
    ours = ServerCapacity("ours", 30.0, [fast], fast)
    peer = ServerCapacity("peer", 20.0, [fast], None)
    table = comparison_markdown(ours, peer, 0.25, 0.97, 4)
    assert "**Tongyeok / peer: 1.50×** capacity." in table and "beam 4" in table


def test_a_peer_that_never_met_the_bound_is_named_not_divided_by() -> None:
    fast = Trial(10.0, 1.0, [Sample(0.01, 3, True)] * 10)
    slow = Trial(3.1, 1.0, [Sample(0.9, 3, True)] * 3)
    ours = ServerCapacity("ours", 30.0, [fast], fast)
    peer = ServerCapacity("peer", 0.0, [Trial(6.2, 1.0, []), slow], None)
    table = comparison_markdown(ours, peer, 0.25, 0.97, 1)
    assert "The peer met the bound at no rate tried (lowest 3.1 req/s)." in table


def test_failures_are_broken_down_by_status() -> None:
    """Shedding at the door (429) and timing out admitted work (504) read differently."""
    samples = [Sample(0.01, 3, True)] * 5 + [Sample(0.001, 3, False, 429)] * 3
    trial = Trial(20.0, 1.0, [*samples, Sample(30.0, 3, False, 504), Sample(1.0, 3, False, 0)])
    assert trial.failures == 5 and trial.failure_statuses() == "0: 1, 429: 3, 504: 1"
    table = capacity_markdown(10.0, [trial], 0.25, 0.97, "test machine", "toy")
    assert "| 5 (0: 1, 429: 3, 504: 1) | no |" in table
    assert "| 20.0 | 10† | 5.0 |" in table  # ten requests: fewer than a p97 needs
    ours = ServerCapacity("ours", 10.0, [trial], trial)
    clean = Trial(10.0, 1.0, [Sample(0.01, 3, True)] * 10)
    peer = ServerCapacity("peer", 5.0, [clean], clean)
    table = comparison_markdown(ours, peer, 0.25, 0.97, 1)
    rows = {r.split(" | ")[0]: r for r in table.splitlines()}
    assert rows["| ours"].endswith("| 5 (0: 1, 429: 3, 504: 1) |")
    assert rows["| peer"].endswith("| 0 |")


def test_trials_too_small_for_their_quantile_are_marked() -> None:
    """A p97 over fewer than 34 requests is the slowest one: the table says so."""
    small = Trial(0.4, 15.0, [Sample(0.1, 3, True)] * 6)
    large = Trial(10.0, 15.0, [Sample(0.1, 3, True)] * 150)
    table = capacity_markdown(10.0, [small, large], 0.25, 0.97, "test machine", "toy")
    assert "| 0.4 | 6† |" in table and "| 10.0 | 150 |" in table
    assert "† too few requests for a p97" in table
    assert "†" not in capacity_markdown(10.0, [large], 0.25, 0.97, "test machine", "toy")
