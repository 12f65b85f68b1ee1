"""Hundreds of document uploads at once against a real ``tongyeok serve`` (issue 36): each gets
exactly one HTTP answer, a 200 or DeepL's JSON 429/413, never a reset; the documents held stay
within the job store's bounds; and another key's document still translates afterwards.

The reset (docs/decisions.md #51): uvicorn's keep-alive timer closed an idle connection that a
client was reusing at that moment. With the loop busy the timer ran after the request's bytes had
arrived and before they were read, and closing a socket with unread bytes sends a reset; the
client, which had checked that the connection was open, lost its request. DeepL's client backs
off 1 to 8 s after a 429, so its retries land around the 5 s timeout. Here each client pauses
about that long between its uploads, on one kept-alive connection (requests, as DeepL's client).
"""

from __future__ import annotations

import http.client
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import deepl
import docx
import requests

from service.usecase.documents.jobs import JOBS_PER_OWNER
from tests.service.conftest import serving
from tests.service.documents_fixtures import SENTENCE, docx_document

KEYS = [f"k-upload-{i}" for i in range(8)]
OTHER = "k-upload-other"  # uploads nothing in the flood
CLIENTS, ROUNDS = 96, 3  # 288 uploads, 36 per key: 16 held, the rest refused
PAUSE = (4.95, 5.25)  # seconds between a client's uploads: around uvicorn's keep-alive timeout
MAX_BODY = 200_000
OVERSIZED = b"\0" * MAX_BODY  # every fourth upload: 413 from its Content-Length, before its body
RESENT = "resent"  # an upload sent again after a clean close without answer (closed_unanswered)
MEMORY_GROWTH = 160 * 1024 * 1024  # resident bytes the flood may add (documents held: ~10 MB)


def resident(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) * 1024


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def client(number: int, url: str, document: bytes) -> list[tuple[int, dict] | str]:
    """One client's uploads on one connection, each answer (status, JSON) or the error, and
    ``RESENT`` before an upload sent again."""
    session, key = requests.Session(), KEYS[number % len(KEYS)]
    answers: list[tuple[int, dict] | str] = []
    for upload in range(ROUNDS):
        if upload:
            time.sleep(random.uniform(*PAUSE))
        data = document + OVERSIZED if (number + upload) % 4 == 0 else document
        for attempt in range(2):
            try:
                reply = session.post(
                    f"{url}/v2/document",
                    headers={"Authorization": f"DeepL-Auth-Key {key}"},
                    data={"target_lang": "DE", "source_lang": "EN"},
                    files={"file": ("a.docx", data)},
                    timeout=60,
                )
                answers.append((reply.status_code, reply.json()))
            except requests.ConnectionError as exc:
                if attempt == 0 and closed_unanswered(exc):
                    answers.append(RESENT)
                    continue
                answers.append(f"{type(exc).__name__}: {exc}")
            except (requests.RequestException, ValueError) as exc:
                answers.append(f"{type(exc).__name__}: {exc}")
            break
    return answers


def closed_unanswered(exc: requests.ConnectionError) -> bool:
    """Whether the server closed the connection cleanly before any answer. On a connection
    reused as the server closed it for idleness, the request was read and dropped (the server
    had sent its FIN before the request came), so a client may send it again, as RFC 9112
    section 9.3.1 allows; a reset is never resent: it fails the test."""
    aborted = exc.args[0] if exc.args else None
    return isinstance(getattr(aborted, "args", (None,))[-1], http.client.RemoteDisconnected)


def test_hundreds_of_uploads_at_once_each_get_one_answer(
    toy_repository: Path, tmp_path: Path
) -> None:
    document = docx_document()
    keys = ",".join([*KEYS, OTHER])
    data = tmp_path / "data"
    settings = {"api_keys": keys, "max_body_bytes": str(MAX_BODY), "data_dir": str(data)}
    with serving(toy_repository, **settings) as (proc, server, _):
        before = resident(proc.pid)
        with ThreadPoolExecutor(CLIENTS) as pool:
            work = [pool.submit(client, n, server.url, document) for n in range(CLIENTS)]
            answers = [(n, a) for n, w in enumerate(work) for a in w.result(timeout=120)]
        grown = resident(proc.pid) - before
        resent = sum(a == RESENT for _, a in answers)
        assert resent <= CLIENTS * ROUNDS // 50, f"{resent} uploads closed without answer"
        failed = [(n, a) for n, a in answers if isinstance(a, str) and a != RESENT]
        assert not failed, f"{len(failed)} of {len(answers)} uploads got no answer: {failed[:3]}"
        replies = [(n, a) for n, a in answers if not isinstance(a, str)]
        statuses = Counter(status for _, (status, _) in replies)
        assert set(statuses) == {200, 413, 429}, statuses
        refused = [body for _, (status, body) in replies if status != 200]
        assert all(body.get("message") for body in refused)  # DeepL's shape, read by its clients
        assert statuses[413] == CLIENTS * ROUNDS // 4
        held = Counter(KEYS[n % len(KEYS)] for n, (status, _) in replies if status == 200)
        assert held == {key: JOBS_PER_OWNER for key in KEYS}  # each key's bound, and no more
        assert grown < MEMORY_GROWTH, f"resident memory grew {grown / 2**20:.0f} MiB"
        kept = JOBS_PER_OWNER * len(KEYS) * len(document) * 2  # uploads and their results
        assert directory_bytes(data) < kept + 16 * 1024 * 1024

        translator = deepl.Translator(OTHER, server_url=server.url)
        output = tmp_path / "translated.docx"
        source = tmp_path / "a.docx"
        source.write_bytes(document)
        status = translator.translate_document_from_filepath(
            source, output, source_lang="EN", target_lang="DE"
        )
        assert status.done
        heading = docx.Document(str(output)).paragraphs[0].text
        body = {"texts": [SENTENCE], "source": "en", "target": "de"}
        reply = server.request("POST", "/v1/translate", body, {"x-api-key": OTHER})
        assert heading == reply.body["translations"][0]["text"]
