"""The rows' token histories (one matrix, reordered by index) against plain per-row lists, through
beam reorders, deaths, compactions and joins."""

from __future__ import annotations

import numpy as np

from contract.options import SearchOptions
from service.rows import Rows

PAD, START = 1, 0


def joining(owners: list[int], beam: int) -> Rows:
    n = len(owners)
    return Rows.joining(
        [np.zeros((n, 1, 2, 1), dtype=np.float32)] * 2,
        np.ones((n, 2), dtype=bool),
        START,
        [np.zeros((1, 1, 0, 1), dtype=np.float32)] * 2,
        np.array(owners),
        SearchOptions(beam_size=beam),
        np.full(n, 50),
    )


def advanced(rows: Rows, parent: np.ndarray, tokens: np.ndarray) -> Rows:
    mask = np.concatenate([rows.self_mask, np.ones((len(rows), 1), dtype=bool)], axis=1)
    cache = [np.zeros((len(rows), 1, mask.shape[1], 1), dtype=np.float32)] * 2
    return rows.advanced(cache, mask, parent, tokens, rows.scores.copy())


def test_histories_follow_reorders_compactions_and_joins() -> None:
    rng = np.random.default_rng(0)
    rows = Rows.empty(
        [np.zeros((0, 1, 0, 1), dtype=np.float32)] * 2,
        [np.zeros((0, 1, 0, 1), dtype=np.float32)] * 2,
    )
    want: list[list[int]] = []  # each row's generated tokens, kept the slow, obvious way
    owner = 0
    for step in range(60):
        if step % 7 == 0:  # sentences join, after a compaction as the engine does it
            keep = np.flatnonzero(rows.alive)
            beam = int(rng.integers(1, 4))
            new = joining(list(range(owner, owner + 2)), beam)
            owner += 2
            rows = rows.take(keep).without_unused_past().concat(new)
            want = [want[i] for i in keep] + [[] for _ in range(len(new))]
            # Trimmed to the longest output still there, not grown forever.
            assert rows.history.shape[1] == max(map(len, want))
        elif step % 5 == 0 and rows.alive.any():  # a sentence leaves; compact now and then
            rows.kill(rows.owned_by(int(rng.choice(rows.owner[rows.alive]))), PAD)
            if step % 10 == 0:
                keep = np.flatnonzero(rows.alive)
                rows = rows.take(keep).without_unused_past()
                want = [want[i] for i in keep]
        # Beam reorder: every live row continues a random row of its own sentence.
        parent = np.arange(len(rows))
        for o in np.unique(rows.owner[rows.alive]):
            mine = rows.owned_by(int(o))
            parent[mine] = rng.choice(mine, len(mine))
        tokens = rng.integers(3, 100, len(rows))
        rows = advanced(rows, parent, tokens)
        want = [[*want[p], int(t)] for p, t in zip(parent, tokens, strict=True)]
        for r in np.flatnonzero(rows.alive).tolist():
            assert rows.generated(r, int(rows.positions[r])) == want[r]
            assert want[r][-1] == rows.tokens[r]
    assert owner > 10 and rows.alive.sum() > 2


def test_joining_an_empty_batch_copies_no_cross_keys_or_values() -> None:
    """The cross keys/values are the biggest arrays a join makes (beam x sentences x source,
    every layer): an empty batch takes the joining rows as they are, and greedy rows use the
    encoder's arrays without a copy, so a join never holds two copies of them at once."""
    encoder_cross = [np.arange(12, dtype=np.float32).reshape(3, 1, 4, 1) for _ in range(2)]
    for beam in (1, 4):
        new = Rows.joining(
            encoder_cross,
            np.ones((3, 4), dtype=bool),
            START,
            [np.zeros((1, 1, 0, 1), dtype=np.float32)] * 2,
            np.arange(3),
            SearchOptions(beam_size=beam),
            np.full(3, 50),
        )
        assert [c.shape[0] for c in new.cross] == [3 * beam] * 2
        shared = [np.shares_memory(a, b) for a, b in zip(new.cross, encoder_cross, strict=True)]
        assert all(shared) == (beam == 1)
        empty = Rows.empty(
            [np.zeros((0, 1, 0, 1), dtype=np.float32)] * 2,
            [np.zeros((0, 1, 0, 1), dtype=np.float32)] * 2,
        )
        assert empty.concat(new) is new
        # A batch with rows still copies (and pads) as before.
        both = new.concat(joining([7], beam))
        assert len(both) == 4 * beam and both.src_mask.shape == (4 * beam, 4)
