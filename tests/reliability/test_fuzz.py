"""Hypothesis fuzzing through the real server on loopback: whatever the body — invalid UTF-8,
lone surrogates, controls, right-to-left text, combining marks, huge or empty texts, wrong types,
deep nesting — the answer is a translation or a JSON 4xx, never a 5xx (bounded examples)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.service.conftest import Server

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
)
ROUTES = ["/v1/translate", "/translate", "/v2/translate"]
FORM = {"content-type": "application/x-www-form-urlencoded"}

# Surrogates (Cs), controls (Cc, Cf: RTL and zero-width marks), combining marks (Mn, Me),
# letters and spaces of every script.
hostile_chars = st.characters(categories=["Cs", "Cc", "Cf", "Mn", "Me", "L", "Zs", "P"])
texts = st.one_of(
    st.text(hostile_chars, max_size=80),
    st.sampled_from(["", " ", "\n\n", "\u202eevil\u202c", "e\u0301" * 50, "a" * 5001]),
    st.just(" " * 3000 + "x"),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(hostile_chars, max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


def assert_answered(server: Server, path: str, raw: bytes, headers: dict | None = None) -> None:
    reply = server.request("POST", path, raw=raw, headers=headers)
    assert reply.status < 500, (path, raw[:120], reply.status, reply.body)
    if reply.status >= 400:
        assert {"error", "error_type"} <= set(reply.body), reply.body


def body_for(path: str, items: list[str]) -> dict:
    if path == "/v1/translate":
        return {"texts": items, "source": "en", "target": "de", "beam_size": 1}
    if path == "/translate":
        return {"q": items, "source": "en", "target": "de"}
    return {"text": items, "target_lang": "DE", "source_lang": "EN"}


def test_hostile_texts(server: Server) -> None:
    @FUZZ
    @given(path=st.sampled_from(ROUTES), items=st.lists(texts, min_size=1, max_size=4))
    def run(path: str, items: list[str]) -> None:
        assert_answered(server, path, json.dumps(body_for(path, items)).encode())

    run()


def test_wrong_types_and_nesting(server: Server) -> None:
    @FUZZ
    @given(
        path=st.sampled_from(ROUTES),
        field=st.sampled_from(
            ["texts", "q", "text", "source", "target", "target_lang", "source_lang", "beam_size"]
        ),
        value=json_values,
        depth=st.integers(0, 3000),
    )
    def run(path: str, field: str, value: object, depth: int) -> None:
        body = body_for(path, ["red dog"])
        body[field] = value
        assert_answered(server, path, json.dumps(body).encode())
        assert_answered(server, path, b"[" * depth + b"1" + b"]" * depth)
        assert_answered(server, path, b'{"a": ' * depth + b"1" + b"}" * depth)

    run()


def test_invalid_bytes(server: Server) -> None:
    @FUZZ
    @given(path=st.sampled_from(ROUTES), raw=st.binary(max_size=300), form=st.booleans())
    def run(path: str, raw: bytes, form: bool) -> None:
        assert_answered(server, path, raw, FORM if form else None)
        assert_answered(server, path, b'{"texts": ["' + raw + b'"], "q": "x", "text": "x"}')

    run()
