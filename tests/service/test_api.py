"""The HTTP API against a real uvicorn on loopback: answers, batching, and every error path."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from contract.options import SearchOptions
from contract.package import load_package_config
from contract.tokenizer import Tokenizer
from service.decoding.engine import Engine
from service.runtime.sessions import PackageRuntime
from tests.conftest import copy_pairs
from tests.service.conftest import Server, running_server


def metric(server: Server, name: str) -> float:
    text = server.request("GET", "/metrics").body["text"]
    return sum(
        float(v)
        for v in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)
    )


def test_translate_health_and_models(server: Server) -> None:
    assert server.request("GET", "/healthz").body == {"status": "ok"}
    assert server.request("GET", "/readyz").body == {"ready": True}
    reply = server.translate(["red dog runs", "", "a cat sits"], beam_size=2, nbest=2)
    assert reply.status == 200
    texts = [t["text"] for t in reply.body["translations"]]
    assert texts == ["red dog runs", "", "a cat sits"]
    assert [t["finish_reason"] for t in reply.body["translations"]] == ["eos", "empty", "eos"]
    assert reply.body["translations"][0]["tokens"] > 0
    assert len(reply.body["translations"][0]["alternatives"]) == 1
    assert reply.body["model"] == "en-de"
    assert "x-request-id" in reply.headers
    models = server.request("GET", "/v1/models").body["models"]
    assert [(m["source"], m["target"]) for m in models] == [("en", "de")]


def test_long_texts_are_split_into_sentences_and_rejoined(server: Server) -> None:
    """Each line is a sentence for the toy copy model; the layout around them survives."""
    text = "  red dog runs\n\nbig bird jumps on a park\na cat sits  "
    reply = server.translate([text, "small cat"], beam_size=1)
    assert reply.status == 200
    first = reply.body["translations"][0]
    assert first["text"] == text  # three sentences translated (copied) and rejoined exactly
    assert first["tokens"] > reply.body["translations"][1]["tokens"] * 2
    long_sentence = server.translate(["red " * 70])
    assert long_sentence.status == 422 and "per sentence" in long_sentence.body["error"]


def test_repeated_sentences_come_from_the_cache(server: Server) -> None:
    hits = metric(server, 'tongyeok_cache_lookups_total{result="hit"}')
    first = server.translate(["big bird jumps on a park"], beam_size=3)
    second = server.translate(["big bird jumps on a park", "small cat"], beam_size=3)
    assert second.body["translations"][0] == first.body["translations"][0]
    assert metric(server, 'tongyeok_cache_lookups_total{result="hit"}') == hits + 1
    other_options = server.translate(["big bird jumps on a park"], beam_size=2)
    assert other_options.status == 200
    assert metric(server, 'tongyeok_cache_lookups_total{result="hit"}') == hits + 1


def test_concurrent_requests_batch_together_and_match_the_engine(
    server: Server, toy_repository: Path
) -> None:
    texts = [s for s, _ in copy_pairs(48, seed=31)]
    chunks = [texts[i : i + 3] for i in range(0, len(texts), 3)]
    steps_before = metric(server, "tongyeok_batch_rows_count")
    rows_before = metric(server, "tongyeok_batch_rows_sum")
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda c: server.translate(c, beam_size=1), chunks))
    got = [t["text"] for r in replies for t in r.body["translations"]]
    package = load_package_config(toy_repository / "en-de")
    tokenizer = Tokenizer.load(package.tokenizer_path)
    alone = Engine(PackageRuntime(package)).run(
        tokenizer.encode_batch(texts), SearchOptions(beam_size=1)
    )
    assert got == [tokenizer.decode(h[0].tokens) for h in alone]
    steps = metric(server, "tongyeok_batch_rows_count") - steps_before
    rows = metric(server, "tongyeok_batch_rows_sum") - rows_before
    assert rows / steps > 1.5, f"{rows / steps:.2f} rows per step: requests were not batched"


def test_bad_requests_get_clear_4xx(server: Server) -> None:
    unknown = server.request(
        "POST", "/v1/translate", {"texts": ["x"], "source": "en", "target": "fr"}
    )
    assert unknown.status == 400
    assert unknown.body == {
        "error": "no model translates en→fr; available: en→de",
        "error_type": "unsupported_language_pair",
    }
    cases = [
        ({"texts": [], "source": "en", "target": "de"}, "texts"),
        ({"texts": ["x"] * 129, "source": "en", "target": "de"}, "max_texts=128"),
        ({"texts": ["x" * 5001], "source": "en", "target": "de"}, "max_text_chars=5000"),
        ({"texts": ["x"], "source": "en", "target": "de", "beam_size": 9}, "max_beam_size=8"),
        ({"texts": ["x"], "source": "en", "target": "de", "beam_size": 2, "nbest": 3}, "nbest"),
        ({"texts": ["red dog"] * 1 + ["red " * 70], "source": "en", "target": "de"}, "tokens"),
        ({"texts": "not a list", "source": "en", "target": "de"}, "texts"),
    ]
    for payload, says in cases:
        reply = server.request("POST", "/v1/translate", payload)
        assert reply.status == 422, payload
        assert reply.body["error_type"] == "invalid_request"
        assert says in reply.body["error"], reply.body
    broken = server.request("POST", "/v1/translate", raw=b'{"texts": [')
    assert broken.status == 422
    assert server.translate(["red dog"]).status == 200  # and it keeps serving


def test_limits_timeouts_and_auth(toy_repository: Path) -> None:
    settings = dict(
        max_queue_sentences=2, max_body_bytes=2000, request_timeout=0.0001, api_keys=["s3cret"]
    )
    with running_server(toy_repository, **settings) as server:
        key = {"authorization": "Bearer s3cret"}
        assert server.translate(["red dog"]).status == 401
        assert (
            server.request(
                "POST",
                "/v1/translate",
                {"texts": ["x"], "source": "en", "target": "de"},
                headers={"authorization": "Bearer wrong"},
            ).status
            == 403
        )
        never = server.request(
            "POST",
            "/v1/translate",
            {"texts": ["a", "b", "c"], "source": "en", "target": "de"},
            headers=key,
        )  # more sentences than the queue can ever hold: no point retrying
        assert never.status == 413 and "max_queue_sentences=2" in never.body["error"]
        big = server.request(
            "POST",
            "/v1/translate",
            {"texts": ["x" * 3000], "source": "en", "target": "de"},
            headers=key,
        )
        assert big.status == 413 and "max_body_bytes=2000" in big.body["error"]
        late = server.request(
            "POST",
            "/v1/translate",
            {"texts": ["red dog runs"], "source": "en", "target": "de"},
            headers=key,
        )
        assert late.status == 504 and late.body["error_type"] == "deadline_exceeded"
        assert metric(server, "tongyeok_requests_rejected_total") >= 5


def test_framework_errors_share_the_error_body_and_are_counted_once(server: Server) -> None:
    """404, 405 and an unparsable form answer {"error", "error_type"} like every other error,
    and each adds exactly one to tongyeok_requests_rejected_total under its own reason."""
    cases = [
        ("GET", "/nowhere", None, {}, 404, "not_found"),
        ("GET", "/v1/translate", None, {}, 405, "method_not_allowed"),
        (
            "POST",
            "/translate",
            b"--x\r\nContent-Disposition: form-data\r\n\r\nq\r\n--x--\r\n",
            {"content-type": "multipart/form-data; boundary=x"},
            400,
            "bad_request",
        ),
    ]
    for method, path, raw, headers, status, error_type in cases:
        label = f'tongyeok_requests_rejected_total{{reason="{error_type}"}}'
        before, total = metric(server, label), metric(server, "tongyeok_requests_rejected_total")
        reply = server.request(method, path, raw=raw, headers=headers)
        assert reply.status == status, (path, reply.body)
        assert set(reply.body) == {"error", "error_type"} and reply.body["error_type"] == error_type
        assert metric(server, label) == before + 1
        assert metric(server, "tongyeok_requests_rejected_total") == total + 1


def test_a_full_queue_answers_429_with_retry_after(toy_repository: Path) -> None:
    """Requests that could fit but find the queue full get 429 and Retry-After; every other
    answer is a translation (bounded: 48 requests of 2 sentences against a queue of 2)."""
    with running_server(toy_repository, max_queue_sentences=2) as server:
        texts = [s for s, _ in copy_pairs(96, seed=7)]
        pairs = [texts[i : i + 2] for i in range(0, len(texts), 2)]
        with ThreadPoolExecutor(16) as pool:
            replies = list(pool.map(lambda t: server.translate(t, beam_size=8), pairs))
        full = [r for r in replies if r.status == 429]
        assert {r.status for r in replies} <= {200, 429}
        assert full, "no request found the queue full"
        assert all(r.headers["retry-after"] == "1" and "limit 2" in r.body["error"] for r in full)
        assert "max_queue_sentences" not in full[0].body["error"]


def test_unknown_fields_are_named_and_codes_take_any_case(server: Server) -> None:
    """A typo in an option is a 422 naming it, not a silently ignored field (issue 34)."""
    typo = server.translate(["red dog"], beam_sise=2, alternatives=3)
    assert typo.status == 422
    assert "beam_sise" in typo.body["error"] and "alternatives" in typo.body["error"]
    upper = server.request(
        "POST", "/v1/translate", {"texts": ["red dog"], "source": "EN", "target": "De"}
    )
    assert upper.status == 200 and upper.body["translations"][0]["text"] == "red dog"
    keyed = server.translate(["red dog"], api_key="unused")  # the body's key is a known field
    assert keyed.status == 200


def test_version_and_process_metrics(server: Server) -> None:
    """What is running, and the process_* series memory and leak alerts read (issue 34)."""
    from contract.version import __version__

    version = server.request("GET", "/version")
    assert version.status == 200 and version.body["version"] == __version__
    assert version.body["onnxruntime"] and version.body["python"].count(".") == 2
    text = server.request("GET", "/metrics").body["text"]
    resident = re.search(r"^process_resident_memory_bytes (\S+)$", text, re.MULTILINE)
    assert resident and float(resident.group(1)) > 50e6  # a loaded model: tens of MB at least
    assert "process_cpu_seconds_total" in text and "python_info" in text


def test_new_request_fields_refuse_hostile_values(server: Server) -> None:
    """The body's api_key, case-folded codes and unknown names: a 4xx naming the problem, and the
    next request is served."""
    for extra, status in (
        ({"api_key": 5}, 422),  # not a string
        ({"api_key": ["k"] * 1000}, 422),
        ({"source": "İN"}, 400),  # lower-cases to two code points: an unknown pair, not a 500
        ({"source": "\u0000"}, 400),
        ({"x" * 10_000: 1}, 422),  # a huge unknown name
        ({"length_penalty": None}, 422),
    ):
        body = {"texts": ["red dog"], "source": "en", "target": "de", **extra}
        reply = server.request("POST", "/v1/translate", body)
        assert reply.status == status, (extra, reply.body)
        assert reply.body["error_type"] in ("invalid_request", "unsupported_language_pair")
    assert server.translate(["red dog"]).status == 200


def test_nothing_to_translate_comes_back_as_it_is_and_invisibles_change_nothing(
    server: Server,
) -> None:
    nothing = ["\ufeff", "\u200b", "2024", "...", "👍", "12:30 - 14:00"]
    reply = server.translate(nothing)
    assert reply.status == 200, reply.body
    assert [t["text"] for t in reply.body["translations"]] == nothing
    assert {t["finish_reason"] for t in reply.body["translations"]} == {"empty"}
    plain, marked = server.translate(["red dog park", "\ufeffred dog park\u200b"]).body[
        "translations"
    ]
    assert marked["text"] == "\ufeff" + plain["text"] + "\u200b"
