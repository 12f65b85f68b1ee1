"""``tongyeok keys``: a key added is printed once and stored only as its hash; its limits are
listed, changed and cleared; revoking marks it; mistakes are one line, not a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.state.keys import KEYS_FILE, digest_of
from tongyeok.cli import main


def keys(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main(["keys", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_keys_add_list_set_limits_revoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TONGYEOK_DATA_DIR", str(tmp_path))
    added = keys(capsys, "add", "alice", "--characters", "1000", "--per-minute", "5")
    assert isinstance(added, dict) and added["key"].startswith("ty-")
    stored = (tmp_path / KEYS_FILE).read_bytes()
    assert added["key"].encode() not in stored  # only the hash is kept
    assert digest_of(added["key"]).encode() in stored
    changed = keys(capsys, "set-limits", "alice", "--characters", "2000", "--clear", "per-minute")
    assert isinstance(changed, dict)
    assert (changed["characters"], changed["per_minute"]) == (2000, None)
    listed = keys(capsys, "list")
    assert isinstance(listed, list) and [k["name"] for k in listed] == ["alice"]
    assert (listed[0]["used"], listed[0]["characters"]) == (0, 2000)
    revoked = keys(capsys, "revoke", "alice")
    assert isinstance(revoked, dict) and revoked["revoked"] is not None
    assert main(["keys", "add", "alice"]) == 1
    assert "a key named 'alice' exists already" in capsys.readouterr().err
    assert main(["keys", "revoke", "bob"]) == 1
    assert "no key named 'bob'" in capsys.readouterr().err
