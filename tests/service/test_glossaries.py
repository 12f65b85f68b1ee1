"""Glossaries through DeepL's API and its official client (issue 36): made, listed, read, used,
deleted; kept per key in SQLite across a restart; refused with DeepL's errors when malformed.

The client raised ``GlossaryNotFoundException`` for every glossary call before (no routes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import deepl
import pytest
from deepl.api_data import MultilingualGlossaryDictionaryEntries
from deepl.util import convert_tsv_to_dict

from tests.service.conftest import Server, running_server

SENTENCE = "A dog runs on the beach."


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def shipped(shipped_repository: Path, data_dir: Path) -> Iterator[Server]:
    with running_server(shipped_repository, data_dir=data_dir) as server:
        yield server


def client(server: Server, key: str = "any-key") -> deepl.DeepLClient:
    return deepl.DeepLClient(key, server_url=server.url)


def test_a_glossary_is_made_listed_read_used_and_deleted_with_the_official_client(
    shipped: Server,
) -> None:
    translator = client(shipped)
    plain = translator.translate_text(SENTENCE, source_lang="EN", target_lang="DE").text
    assert "Hund" in plain and "Köter" not in plain
    glossary = translator.create_glossary(
        "animals", source_lang="EN", target_lang="DE", entries={"dog": "Köter", "cat": "Mieze"}
    )
    assert (glossary.source_lang, glossary.target_lang, glossary.entry_count) == ("EN", "DE", 2)
    assert glossary.glossary_id in [g.glossary_id for g in translator.list_glossaries()]
    assert translator.get_glossary_entries(glossary) == {"dog": "Köter", "cat": "Mieze"}
    used = translator.translate_text(
        SENTENCE, source_lang="EN", target_lang="DE", glossary=glossary
    ).text
    assert "Köter" in used and "Hund" not in used
    # the words around the term are the model's own
    assert used.replace("Köter", "Hund") == plain
    # a sentence without any term is translated exactly as without the glossary
    other = "Two men are playing soccer in a park."
    assert (
        translator.translate_text(other, source_lang="EN", target_lang="DE", glossary=glossary).text
        == translator.translate_text(other, source_lang="EN", target_lang="DE").text
    )
    translator.delete_glossary(glossary)
    assert glossary.glossary_id not in [g.glossary_id for g in translator.list_glossaries()]
    with pytest.raises(deepl.GlossaryNotFoundException):
        translator.get_glossary(glossary.glossary_id)


def test_a_multilingual_glossary_and_the_native_api(shipped: Server) -> None:
    translator = client(shipped)
    dictionary = MultilingualGlossaryDictionaryEntries("EN", "DE", {"beach": "Gestade"})
    glossary = translator.create_multilingual_glossary("coast", [dictionary])
    assert [(d.source_lang, d.target_lang) for d in glossary.dictionaries] == [("EN", "DE")]
    listed = translator.list_multilingual_glossaries()
    assert glossary.glossary_id in [g.glossary_id for g in listed]
    entries = translator.get_multilingual_glossary_entries(glossary, "EN", "DE")
    assert convert_tsv_to_dict(entries.dictionaries[0].entries) == {"beach": "Gestade"}
    used = translator.translate_text(
        SENTENCE, source_lang="EN", target_lang="DE", glossary=glossary
    ).text
    assert "Gestade" in used
    native = shipped.translate([SENTENCE], glossary=glossary.glossary_id)
    assert native.status == 200 and "Gestade" in native.body["translations"][0]["text"]
    missing = shipped.translate([SENTENCE], glossary="no-such-glossary")
    assert missing.status == 404 and "no glossary" in missing.body["error"]
    translator.delete_multilingual_glossary(glossary)


def test_glossaries_survive_a_restart_and_belong_to_their_key(
    shipped_repository: Path, tmp_path: Path
) -> None:
    keys = {"api_keys": ["key-a", "key-b"], "data_dir": tmp_path}
    with running_server(shipped_repository, **keys) as server:
        made = client(server, "key-a").create_glossary(
            "kept", source_lang="EN", target_lang="DE", entries={"dog": "Köter"}
        )
        assert client(server, "key-b").list_glossaries() == []
        with pytest.raises(deepl.GlossaryNotFoundException):
            client(server, "key-b").get_glossary(made.glossary_id)
    with running_server(shipped_repository, **keys) as server:
        again = client(server, "key-a").list_glossaries()
        assert [g.glossary_id for g in again] == [made.glossary_id]
        text = (
            client(server, "key-a")
            .translate_text(SENTENCE, source_lang="EN", target_lang="DE", glossary=again[0])
            .text
        )
        assert "Köter" in text


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("dog\t", "target term is empty"),
        ("\tHund", "source term is empty"),
        ("dog\tHund\tx", "expected a source and a target term"),
        ("dog\tHu\x00nd", "control character"),
        ("dog\tHund\ndog\tKöter", "listed twice"),
        ("", "at least one entry"),
        ("".join(f"w{i}\tt{i}\n" for i in range(10_001)), "more than 10000 entries"),
        ("x" * 1025 + "\ty", "exceeds 1024 bytes"),
    ],
)
def test_malformed_entries_are_refused_with_what_is_wrong(
    shipped: Server, entries: str, message: str
) -> None:
    reply = shipped.request(
        "POST",
        "/v2/glossaries",
        {
            "name": "bad",
            "source_lang": "en",
            "target_lang": "de",
            "entries": entries,
            "entries_format": "tsv",
        },
    )
    assert reply.status == 400, reply.body
    assert message in reply.body["message"]


def test_a_glossary_for_a_pair_not_served_or_without_source_lang_is_refused(
    shipped: Server,
) -> None:
    translator = client(shipped)
    with pytest.raises(deepl.DeepLException, match="not served"):
        translator.create_glossary("x", source_lang="EN", target_lang="FR", entries={"a": "b"})
    glossary = translator.create_glossary(
        "y", source_lang="EN", target_lang="DE", entries={"dog": "Köter"}
    )
    reply = shipped.request(
        "POST",
        "/v2/translate",
        {"text": [SENTENCE], "target_lang": "DE", "glossary_id": glossary.glossary_id},
    )
    assert reply.status == 422 and "source_lang is required" in reply.body["message"]
    translator.delete_glossary(glossary)


def test_a_million_entries_are_refused_by_their_size_before_they_are_read() -> None:
    """Over HTTP the body limit (max_body_bytes) stops them first; the store's own bound holds
    for any caller, at once."""
    import time

    from service.state.glossaries import GlossaryError, parse_entries

    started = time.perf_counter()
    with pytest.raises(GlossaryError, match="larger than"):
        parse_entries("a\tb\n" * 1_000_000, "tsv")
    assert time.perf_counter() - started < 0.5


def test_a_glossary_file_that_cannot_be_read_is_state_unavailable_and_none_is_no_glossaries(
    tmp_path: Path,
) -> None:
    from service.errors import NotFound
    from service.state.glossaries import GLOSSARIES_FILE, Dictionary, SQLiteGlossaryStore
    from service.state.keys import StateUnavailable

    absent = SQLiteGlossaryStore(tmp_path / "none" / GLOSSARIES_FILE)
    assert absent.list("owner") == []
    with pytest.raises(NotFound):
        absent.get("owner", "some-id")
    assert not (tmp_path / "none").exists()  # reads never create it
    (tmp_path / GLOSSARIES_FILE).write_bytes(b"this is not a database" * 100)
    corrupt = SQLiteGlossaryStore(tmp_path / GLOSSARIES_FILE)
    for call in (
        lambda: corrupt.list("owner"),
        lambda: corrupt.create("owner", "g", [Dictionary("en", "de", {"dog": "Hund"})]),
    ):
        with pytest.raises(StateUnavailable, match=f"glossary database .*{GLOSSARIES_FILE}"):
            call()
