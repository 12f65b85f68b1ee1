"""Glossaries in Redis (``TONGYEOK_STATE_URL=redis://...``), shared by replicas: one made on one
server process is listed, read, used and deleted on another; the 100-per-key bound holds when
many creations race; another key's glossary stays absent; a Redis that is down is a 503."""

from __future__ import annotations

import threading
from pathlib import Path

import deepl
import pytest

from service.errors import NotFound
from service.state.glossaries import MAX_GLOSSARIES, Dictionary, GlossaryError
from service.state.keys import StateUnavailable
from service.state.redis_glossaries import RedisGlossaryStore
from tests.service.test_glossaries import SENTENCE
from tests.service.test_quotas import Redis, redis_server, serve_process, wait_ready  # noqa: F401

PAIR = [Dictionary("en", "de", {"dog": "Köter"})]


def test_a_glossary_made_on_one_replica_is_listed_and_used_on_the_other(
    shipped_repository: Path,
    redis_server: Redis,  # noqa: F811
) -> None:
    servers = [serve_process(shipped_repository, redis_server.url) for _ in range(2)]
    try:
        for process, url in servers:
            wait_ready(url, process)
        one, other = (deepl.DeepLClient("any-key", server_url=url) for _, url in servers)
        made = one.create_glossary("animals", "EN", "DE", {"dog": "Köter", "cat": "Mieze"})
        assert made.glossary_id in [g.glossary_id for g in other.list_glossaries()]
        assert other.get_glossary_entries(made.glossary_id) == {"dog": "Köter", "cat": "Mieze"}
        used = other.translate_text(SENTENCE, source_lang="EN", target_lang="DE", glossary=made)
        assert isinstance(used, deepl.TextResult) and "Köter" in used.text
        other.delete_glossary(made)
        assert made.glossary_id not in [g.glossary_id for g in one.list_glossaries()]
        with pytest.raises(deepl.GlossaryNotFoundException):
            one.get_glossary(made.glossary_id)
    finally:
        for process, _ in servers:
            process.terminate()
            process.wait(30)


def test_racing_creations_never_pass_the_per_key_bound(redis_server: Redis) -> None:  # noqa: F811
    stores = [RedisGlossaryStore(redis_server.url) for _ in range(8)]
    for number in range(MAX_GLOSSARIES - 3):
        stores[0].create("owner-a", f"g{number}", PAIR)
    made, refused = [], []

    def create(store: RedisGlossaryStore) -> None:
        for _ in range(3):
            try:
                made.append(store.create("owner-a", "late", PAIR).glossary_id)
            except GlossaryError:
                refused.append(1)

    threads = [threading.Thread(target=create, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(made) == 3 and len(refused) == 8 * 3 - 3
    assert len(stores[0].list("owner-a")) == MAX_GLOSSARIES
    # another key: its own bound, and the first key's glossaries are absent to it
    assert stores[1].list("owner-b") == []
    with pytest.raises(NotFound):
        stores[1].get("owner-b", made[0])
    with pytest.raises(NotFound):
        stores[1].delete("owner-b", made[0])
    stores[1].delete("owner-a", made[0])
    stores[2].create("owner-a", "again", PAIR)  # room for one again
    for store in stores:
        store.close()


def test_a_redis_that_is_down_is_state_unavailable_not_a_hang(redis_server: Redis) -> None:  # noqa: F811
    store = RedisGlossaryStore(redis_server.url)
    made = store.create("owner", "animals", PAIR)
    assert store.get("owner", made.glossary_id).dictionaries == tuple(PAIR)
    redis_server.stop()
    with pytest.raises(StateUnavailable, match="glossary database"):
        store.list("owner")
    redis_server.start()  # back, and the same store answers again (nothing persisted: empty)
    assert store.list("owner") == []
    store.close()
