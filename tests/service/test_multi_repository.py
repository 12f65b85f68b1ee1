"""One repository, three packages: ours (en-de), imported ko-en, imported multi-target en-ko/ja."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.marian_dirs import EN, KO
from service.decoding.translator import Translator
from tests.service.conftest import Server, running_server


@pytest.fixture(scope="module")
def repository(
    toy_repository: Path, marian_packages: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    root = tmp_path_factory.mktemp("three")
    shutil.copytree(toy_repository / "en-de", root / "en-de")
    shutil.copytree(marian_packages["ko-en"], root / "ko-en")
    shutil.copytree(marian_packages["en-mul"], root / "en-ko+ja")
    return root


@pytest.fixture(scope="module")
def three(repository: Path) -> Iterator[Server]:
    with running_server(repository) as server:
        yield server


def translate(server: Server, texts: list[str], source: str, target: str) -> list[str]:
    payload = {"texts": texts, "source": source, "target": target, "beam_size": 1}
    reply = server.request("POST", "/v1/translate", payload)
    assert reply.status == 200, reply.body
    return [t["text"] for t in reply.body["translations"]]


def test_every_pair_is_listed(three: Server) -> None:
    models = three.request("GET", "/v1/models").body
    pairs = {(m["source"], m["target"]): m["name"] for m in models["models"]}
    assert pairs == {
        ("en", "de"): "en-de",
        ("ko", "en"): "ko-en",
        ("en", "ko"): "en-ko+ja:en-ko",
        ("en", "ja"): "en-ko+ja:en-ja",
    }
    assert models["refused"] == {}
    languages = {lang["code"]: lang["targets"] for lang in three.request("GET", "/languages").body}
    assert languages == {"en": ["de", "ja", "ko"], "ko": ["en"]}


def test_every_pair_translates_as_its_package(three: Server, repository: Path) -> None:
    from contract.options import SearchOptions

    greedy = SearchOptions(beam_size=1)
    texts = {("en", "de"): ["red dog runs in the park"], ("ko", "en"): KO[:3]}
    for (source, target), batch in texts.items():
        package = repository / ("en-de" if target == "de" else "ko-en")
        expected = Translator(package).translate(batch, greedy)
        assert translate(three, batch, source, target) == expected
    multi = repository / "en-ko+ja"
    by_target = {}
    for target in ("ko", "ja"):  # the same sentences, twice: the answer depends on the target
        by_target[target] = translate(three, EN[:4], "en", target)
        assert by_target[target] == Translator(multi, target=target).translate(EN[:4], greedy)
    assert by_target["ko"] != by_target["ja"]


def test_compat_routes_serve_the_imported_pair(three: Server) -> None:
    libre = three.request("POST", "/translate", {"q": KO[0], "source": "ko", "target": "en"})
    assert libre.status == 200 and isinstance(libre.body["translatedText"], str)
    deepl = three.request("POST", "/v2/translate", {"text": [EN[0]], "target_lang": "KO"})
    assert deepl.status == 200, deepl.body  # the only model into ko: its source is picked
    assert deepl.body["translations"][0]["detected_source_language"].lower() == "en"


def test_a_pair_no_package_serves_is_a_4xx(three: Server) -> None:
    reply = three.request("POST", "/v1/translate", {"texts": ["x"], "source": "ko", "target": "de"})
    assert 400 <= reply.status < 500
    assert "en→ko" in reply.body["error"] and "ko→en" in reply.body["error"]
