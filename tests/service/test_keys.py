"""Managed API keys on a real server: each key's usage and quota through the official clients,
its rate limit, revocation and expiry, keys from the environment beside them, and counts that
survive a restart (SQLite)."""

from __future__ import annotations

import asyncio
import http.client
import tempfile
import threading
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import deepl
import pytest
from libretranslatepy import LibreTranslateAPI

from service.state.keys import KEYS_FILE, KeyRecord, SQLiteKeyStore, digest_of
from tests.service.conftest import running_server


def add_key(data_dir: Path, name: str, **limits: object) -> str:
    """A key in the server's store, as ``tongyeok keys add`` makes one; its secret."""
    key = f"secret-{name}"
    store = SQLiteKeyStore(data_dir / KEYS_FILE)

    async def add() -> None:
        await store.add(KeyRecord(name, digest_of(key), created=time.time(), **limits))  # type: ignore[arg-type]
        await store.close()

    asyncio.run(add())
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_deepl_client_sees_its_own_usage_and_limit_then_quota_exceeded(
    toy_repository: Path,
) -> None:
    data = Path(tempfile.mkdtemp(prefix="tongyeok-keys-"))
    alice = add_key(data, "alice", characters=30)
    bob = add_key(data, "bob", characters=1000)
    with running_server(toy_repository, data_dir=str(data)) as server:
        translator = deepl.Translator(alice, server_url=server.url)
        translator.translate_text("a dog runs.", target_lang="DE")  # 11 characters
        usage = translator.get_usage()
        assert (usage.character.count, usage.character.limit) == (11, 30)
        translator.translate_text("a man walks.", target_lang="DE")  # 12: 23 in all
        with pytest.raises(deepl.QuotaExceededException):
            translator.translate_text("two dogs play.", target_lang="DE")  # 14 would make 37
        assert translator.get_usage().character.count == 23  # the refused one is not billed
        translator.translate_text("a cat.", target_lang="DE")  # 6 still fit: 29
        with pytest.raises(deepl.QuotaExceededException):
            translator.translate_text("ab", target_lang="DE")  # 29 + 2 > 30
        other = deepl.Translator(bob, server_url=server.url).get_usage()
        assert (other.character.count, other.character.limit) == (0, 1000)  # bob's own count
        native = server.request("GET", "/v1/usage", headers=bearer(alice))
        assert native.status == 200
        assert native.body["name"] == "alice"
        assert (native.body["characters"], native.body["character_limit"]) == (29, 30)
        assert native.body["requests"] == 3


def test_libretranslate_client_gets_its_limit_error_and_native_a_429(toy_repository: Path) -> None:
    data = Path(tempfile.mkdtemp(prefix="tongyeok-keys-"))
    carol = add_key(data, "carol", characters=10)
    with running_server(toy_repository, data_dir=str(data)) as server:
        client = LibreTranslateAPI(server.url + "/", api_key=carol)
        assert client.translate("a dog.", "en", "de")  # 6 characters
        with pytest.raises(urllib.error.HTTPError) as refused:
            client.translate("a dog runs.", "en", "de")  # 6 + 11 > 10
        assert refused.value.code == 429
        body = refused.value.read().decode()
        assert '"error"' in body and "quota of 10 characters per month" in body
        native = server.request(
            "POST",
            "/v1/translate",
            {"texts": ["a dog runs."], "source": "en", "target": "de"},
            bearer(carol),
        )
        assert native.status == 429 and native.body["error_type"] == "quota_exceeded"
        assert int(native.headers["retry-after"]) >= 1


def test_a_key_over_its_rate_gets_429_with_retry_after(toy_repository: Path) -> None:
    data = Path(tempfile.mkdtemp(prefix="tongyeok-keys-"))
    dave = add_key(data, "dave", per_minute=3)
    with running_server(toy_repository, data_dir=str(data)) as server:
        statuses = [
            server.request("GET", "/v1/usage", headers=bearer(dave)).status for _ in range(3)
        ]
        assert statuses == [200, 200, 200]
        limited = server.request("GET", "/v1/usage", headers=bearer(dave))
        assert limited.status == 429 and limited.body["error_type"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 60


def test_revoked_and_expired_keys_are_refused_and_environment_keys_still_work(
    toy_repository: Path,
) -> None:
    data = Path(tempfile.mkdtemp(prefix="tongyeok-keys-"))
    erin = add_key(data, "erin")
    old = add_key(data, "old", expires=time.time() - 1)
    with running_server(toy_repository, data_dir=str(data), api_keys="static-one") as server:
        assert server.translate(["a dog."]).status == 401  # no key
        assert server.request("GET", "/v1/usage", headers=bearer(erin)).status == 200
        expired = server.request("GET", "/v1/usage", headers=bearer(old))
        assert expired.status == 403 and "expired" in expired.body["error"]
        assert server.request("GET", "/v1/usage", headers=bearer("nobody")).status == 403
        static = server.request(
            "POST",
            "/v1/translate",
            {"texts": ["a dog."], "source": "en", "target": "de"},
            bearer("static-one"),
        )
        assert static.status == 200
        usage = server.request("GET", "/v1/usage", headers=bearer("static-one")).body
        assert (usage["characters"], usage["character_limit"]) == (6, None)
        store = SQLiteKeyStore(data / KEYS_FILE)
        asyncio.run(store.revoke("erin"))
        assert server.request("GET", "/v1/usage", headers=bearer(erin)).status == 403


def test_a_refused_or_failed_request_is_not_billed(toy_repository: Path) -> None:
    data = Path(tempfile.mkdtemp(prefix="tongyeok-keys-"))
    fay = add_key(data, "fay", characters=1000)
    with running_server(toy_repository, data_dir=str(data)) as server:
        unsupported = server.request(
            "POST",
            "/v1/translate",
            {"texts": ["a dog."], "source": "en", "target": "xx"},
            bearer(fay),
        )
        assert unsupported.status >= 400
        too_many = server.request(
            "POST",
            "/v1/translate",
            {"texts": ["a dog."], "source": "en", "target": "de", "beam_size": 99},
            bearer(fay),
        )
        assert too_many.status == 422
        assert server.request("GET", "/v1/usage", headers=bearer(fay)).body["characters"] == 0


def test_usage_survives_a_restart(toy_repository: Path) -> None:
    data = Path(tempfile.mkdtemp(prefix="tongyeok-keys-"))
    gus = add_key(data, "gus", characters=20)
    with running_server(toy_repository, data_dir=str(data)) as server:
        translator = deepl.Translator(gus, server_url=server.url)
        translator.translate_text("a dog runs.", target_lang="DE")  # 11
    with running_server(toy_repository, data_dir=str(data)) as server:
        translator = deepl.Translator(gus, server_url=server.url)
        assert translator.get_usage().character.count == 11
        with pytest.raises(deepl.QuotaExceededException):
            translator.translate_text("a man walks.", target_lang="DE")  # 11 + 12 > 20


def test_a_service_without_keys_never_creates_the_key_database(toy_repository: Path) -> None:
    data = Path(tempfile.mkdtemp(prefix="tongyeok-keys-"))
    with running_server(toy_repository, data_dir=str(data)) as server:
        assert server.request("GET", "/readyz").status == 200
        assert (
            server.translate(
                ["a dog."],
            ).status
            == 200
        )
        assert server.request("GET", "/v1/usage").body == {"keys": False}
    assert not (data / KEYS_FILE).exists()  # a read-only data directory serves as before


def test_key_guessing_is_limited_per_address_and_odd_keys_are_403s(toy_repository: Path) -> None:
    """Wrong keys from one address: 403 each up to the limit, then 429 with Retry-After for
    every key it sends, the right one too (its answer would tell a hit); another address is not
    held back. Huge keys and keys with odd bytes are a plain 403, never a 500."""
    data = Path(tempfile.mkdtemp(prefix="tongyeok-keys-"))
    right = add_key(data, "right")
    settings = {"data_dir": str(data), "max_wrong_keys_per_minute": 5}
    with running_server(toy_repository, **settings) as server:
        odd = ["x" * 30_000, "k\u00ff\u00e9y", "tab\tkey", "\U0001f511"]
        for key in odd:  # header values are latin-1 on the wire; the emoji goes in the body
            body = {"texts": ["a dog."], "source": "en", "target": "de", "api_key": key}
            reply = server.request("POST", "/v1/translate", body)
            assert reply.status == 403 and reply.body["error_type"] == "forbidden", reply
        assert server.request("GET", "/v1/usage", headers=bearer("guess-5")).status == 403
        held = server.request("GET", "/v1/usage", headers=bearer("guess-6"))
        assert held.status == 429 and int(held.headers["retry-after"]) >= 1, held
        assert "wrong API keys" in held.body["error"]
        assert server.request("GET", "/v1/usage", headers=bearer(right)).status == 429
        port = int(server.url.rsplit(":", 1)[1])
        elsewhere = http.client.HTTPConnection("127.0.0.1", port, source_address=("127.0.0.2", 0))
        elsewhere.request("GET", "/v1/usage", headers=bearer(right))  # from another address
        assert elsewhere.getresponse().status == 200
        elsewhere.close()
    with running_server(toy_repository, data_dir=str(data)) as server:  # the default: 30
        for i in range(30):
            assert server.request("GET", "/v1/usage", headers=bearer(f"g{i}")).status == 403
        assert server.request("GET", "/v1/usage", headers=bearer("g30")).status == 429


def test_a_key_revoked_during_traffic_is_refused_from_then_on_and_nothing_fails(
    toy_repository: Path,
) -> None:
    """16 clients translate with one key while it is revoked (as ``tongyeok keys revoke`` does,
    through the store): every answer is a 200 or a 403, none a 5xx, every request answered; once
    the revocation returns, the key is refused; another key never noticed."""
    data = Path(tempfile.mkdtemp(prefix="tongyeok-keys-"))
    doomed, other = add_key(data, "doomed"), add_key(data, "other")
    with running_server(toy_repository, data_dir=str(data)) as server:
        revoked = threading.Event()
        after: list[int] = []

        def client(key: str) -> list[int]:
            statuses = []
            for _ in range(12):
                was_revoked = revoked.is_set()
                status = server.request(
                    "POST",
                    "/v1/translate",
                    {"texts": ["a dog runs."], "source": "en", "target": "de"},
                    bearer(key),
                ).status
                statuses.append(status)
                if was_revoked and key == doomed:
                    after.append(status)
            return statuses

        with ThreadPoolExecutor(17) as pool:
            doomed_runs = [pool.submit(client, doomed) for _ in range(16)]
            other_run = pool.submit(client, other)
            time.sleep(0.3)
            store = SQLiteKeyStore(data / KEYS_FILE)
            asyncio.run(store.revoke("doomed"))
            revoked.set()
            statuses = [s for run in doomed_runs for s in run.result()]
        assert len(statuses) == 16 * 12 and set(statuses) <= {200, 403}, statuses
        assert 403 in statuses and after and set(after) == {403}, after
        assert other_run.result() == [200] * 12
