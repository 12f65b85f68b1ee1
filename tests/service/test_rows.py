"""The rows' token histories (one matrix, reordered by index) against plain per-row lists, and the
source each row reads (shared by a sentence's beams, or one per row), through beam reorders,
deaths, compactions and joins."""

from __future__ import annotations

import numpy as np

from contract.options import SearchOptions
from service.decoding.rows import Rows

PAD, START = 1, 0


def joining(owners: list[int], beam: int) -> Rows:
    """Each sentence's cross keys/values and source mask say whose they are (its owner)."""
    n = len(owners)
    mine = np.array(owners, dtype=np.float32).reshape(n, 1, 1, 1)
    return Rows.joining(
        [np.broadcast_to(mine, (n, 1, 2, 1)).copy()] * 2,
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
    groups_seen: set[int] = set()
    for step in range(60):
        if step % 7 == 0:  # sentences join, after a compaction as the engine does it
            keep = np.flatnonzero(rows.alive)
            beam = (2, 2, 1, 3)[step // 7 % 4]  # shared by beams of 2 first, then mixed
            new = joining(list(range(owner, owner + 2)), beam)
            owner += 2
            rows = rows.take(keep).without_unused_past().concat(new).sharing_sources()
            want = [want[i] for i in keep] + [[] for _ in range(len(new))]
            # Trimmed to the longest output still there, not grown forever.
            assert rows.history.shape[1] == max(map(len, want))
        elif step % 5 == 0 and rows.alive.any():  # a sentence leaves; compact now and then
            rows.kill(rows.owned_by(int(rng.choice(rows.owner[rows.alive]))), PAD)
            if step % 10 == 0:
                keep = np.flatnonzero(rows.alive)
                rows = rows.take(keep).without_unused_past().sharing_sources()
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
        # Every row reads its own sentence's source, shared by its beams or copied per row.
        assert (
            len(rows)
            == rows.rows_per_source * len(rows.src_mask)
            == rows.rows_per_source * len(rows.cross[0])
        )
        sources = np.arange(len(rows)) // rows.rows_per_source
        assert (rows.cross[0][sources, 0, 0, 0] == rows.owner).all()
        groups_seen.add(rows.rows_per_source)
    assert owner > 10 and rows.alive.sum() > 2
    assert groups_seen == {1, 2}  # shared while every sentence has 2 beams, then per row


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
        # The beams of a sentence share its source: the encoder's arrays, uncopied.
        assert new.rows_per_source == beam and [c.shape[0] for c in new.cross] == [3] * 2
        assert all(a is b for a, b in zip(new.cross, encoder_cross, strict=True))
        assert [c.shape[0] for c in new.per_row().cross] == [3 * beam] * 2
        empty = Rows.empty(
            [np.zeros((0, 1, 0, 1), dtype=np.float32)] * 2,
            [np.zeros((0, 1, 0, 1), dtype=np.float32)] * 2,
        )
        assert empty.concat(new) is new
        # A batch with rows still copies (and pads) as before.
        both = new.concat(joining([7], beam))
        assert (
            len(both) == 4 * beam and both.src_mask.shape == (4, 4) and both.rows_per_source == beam
        )
    # Whole sentences keep sharing; rows cut out of a sentence get a source each, still theirs.
    rows = joining([5, 6, 7], 2)
    whole = rows.take(np.array([4, 5, 0, 1]))
    assert whole.rows_per_source == 2 and whole.cross[0][:, 0, 0, 0].tolist() == [7, 5]
    cut = rows.take(np.array([5, 0, 3]))
    assert cut.rows_per_source == 1 and cut.cross[0][:, 0, 0, 0].tolist() == [7, 5, 6]
    assert cut.src_mask.shape == (3, 2)
