"""API keys as DeepL's and LibreTranslate's clients expect them, on every route but liveness and
readiness, checked before anything else, in constant time; /metrics behind its own token."""

from __future__ import annotations

import urllib.error
from collections.abc import Iterator
from pathlib import Path

import deepl
import pytest
from libretranslatepy import LibreTranslateAPI
from pydantic import ValidationError

from service.settings import Settings
from tests.service.conftest import Server, running_server

KEY = "s3cret"
TOKEN = "m3trics"
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def guarded(toy_repository: Path) -> Iterator[Server]:
    with running_server(toy_repository, api_keys=[KEY], metrics_token=TOKEN) as server:
        yield server


def test_every_route_but_liveness_and_readiness_needs_the_key(guarded: Server) -> None:
    for path in ("/healthz", "/readyz"):
        assert guarded.request("GET", path).status == 200
    protected = ["/v1/models", "/version", "/languages", "/v2/languages", "/v2/usage", "/docs"]
    protected.append("/openapi.json")
    for path in protected:
        missing = guarded.request("GET", path)
        assert missing.status == 401, path
        assert missing.body["error_type"] == "unauthorized" and "refused" not in str(missing.body)
        assert guarded.request("GET", path, headers={"x-api-key": "nope"}).status == 403, path
        assert guarded.request("GET", path, headers={"x-api-key": KEY}).status == 200, path
    assert guarded.request("GET", "/metrics").status == 401
    assert (
        guarded.request("GET", "/metrics", headers={"authorization": f"Bearer {KEY}"}).status == 403
    )
    scraped = guarded.request("GET", "/metrics", headers={"authorization": f"bearer {TOKEN}"})
    assert scraped.status == 200 and "tongyeok_requests_rejected_total" in scraped.body["text"]


def test_key_is_checked_before_the_body_is_validated(guarded: Server) -> None:
    """No validation details for clients without a key, even for a body that cannot parse."""
    for raw in (b'{"texts": 5}', b'{"texts": [', b"[" * 5000):
        reply = guarded.request("POST", "/v1/translate", raw=raw)
        assert reply.status == 401 and reply.body["error_type"] == "unauthorized", raw[:20]
    wrong = guarded.request(
        "POST", "/v1/translate", raw=b'{"texts": 5}', headers={"authorization": "Bearer x"}
    )
    assert wrong.status == 403
    keyed = guarded.request(
        "POST", "/v1/translate", raw=b'{"texts": 5}', headers={"authorization": f"BEARER {KEY}"}
    )
    assert keyed.status == 422 and "texts" in keyed.body["error"]


def test_keys_where_clients_put_them(guarded: Server) -> None:
    payload = {"q": "red dog", "source": "en", "target": "de"}
    assert guarded.request("POST", "/translate", {**payload, "api_key": KEY}).status == 200
    stale = {**payload, "api_key": "old-key"}  # the header wins over a stale body key
    assert guarded.request("POST", "/translate", stale, headers={"x-api-key": KEY}).status == 200
    form = f"text=red+dog&target_lang=DE&auth_key={KEY}".encode()  # DeepL's form field
    assert guarded.request("POST", "/v2/translate", raw=form, headers=FORM).status == 200
    lower = {"authorization": f"deepl-auth-key {KEY}"}
    assert guarded.request("GET", "/v2/languages", headers=lower).status == 200


def test_official_clients_see_their_own_errors(guarded: Server) -> None:
    with pytest.raises(deepl.AuthorizationException, match="invalid API key"):
        deepl.Translator("wrong", server_url=guarded.url).translate_text("x", target_lang="DE")
    translator = deepl.Translator(KEY, server_url=guarded.url)
    assert translator.translate_text("red dog", target_lang="DE").text == "red dog"
    usage = translator.get_usage()
    assert usage.character.count >= len("red dog") and not usage.any_limit_reached
    with pytest.raises(urllib.error.HTTPError) as refused:
        LibreTranslateAPI(guarded.url + "/", api_key="wrong").translate("red dog", "en", "de")
    assert refused.value.code == 403
    libre = LibreTranslateAPI(guarded.url + "/", api_key=KEY)
    assert libre.translate("red dog", "en", "de") == "red dog"


def test_empty_keys_are_refused_at_start_up() -> None:
    for keys in ([""], ["  "], [KEY, ""]):
        with pytest.raises(ValidationError, match="empty key"):
            Settings(api_keys=keys)
    with pytest.raises(ValidationError, match="empty key"):
        Settings(metrics_token="")
