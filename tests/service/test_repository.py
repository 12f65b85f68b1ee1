"""Several packages in one repository, routing by language pair, a broken package refused, and
a client that goes away has its sentences cancelled."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from export.onnx_export import export_package
from model.checkpoint import load_checkpoint
from tests.conftest import copy_pairs
from tests.service.conftest import running_server
from tests.service.test_api import metric


def test_routes_by_pair_and_refuses_a_broken_package(toy_checkpoint: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    export_package(toy_checkpoint, repo / "en-de")
    ckpt = load_checkpoint(toy_checkpoint)
    ckpt.source_lang, ckpt.target_lang = "de", "en"  # the copy task reads the same both ways
    ckpt.save(tmp_path / "de-en.pt")
    export_package(tmp_path / "de-en.pt", repo / "de-en")
    export_package(toy_checkpoint, repo / "broken")
    (repo / "broken" / "decoder.onnx").write_bytes(b"truncated")
    with running_server(repo) as server:
        models = server.request("GET", "/v1/models").body
        assert sorted((m["source"], m["target"]) for m in models["models"]) == [
            ("de", "en"),
            ("en", "de"),
        ]
        assert "decoder.onnx" in models["refused"]["broken"]
        for source, target in (("en", "de"), ("de", "en")):
            reply = server.request(
                "POST", "/v1/translate", {"texts": ["red dog"], "source": source, "target": target}
            )
            assert reply.status == 200 and reply.body["model"] == f"{source}-{target}"
        unknown = server.request(
            "POST", "/v1/translate", {"texts": ["x"], "source": "fr", "target": "de"}
        )
        assert unknown.status == 400
        assert unknown.body["error"].endswith("available: de→en, en→de")


def test_a_client_that_disconnects_has_its_sentences_cancelled(toy_repository: Path) -> None:
    with running_server(toy_repository) as server:
        texts = [" ".join([s] * 8) for s, _ in copy_pairs(128, seed=51)]
        body = json.dumps(
            {"texts": texts, "source": "en", "target": "de", "beam_size": 8, "max_length_a": 2.0}
        ).encode()
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(
                b"POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: "
                b"application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            time.sleep(0.3)  # it is running now; hang up without reading
        deadline = time.monotonic() + 20
        while metric(server, 'tongyeok_requests_rejected_total{reason="cancelled"}') < 1:
            assert time.monotonic() < deadline, "the abandoned request was never cancelled"
            time.sleep(0.1)
        repository = server.app.state.repository
        while not repository.idle:
            assert time.monotonic() < deadline, "the engine kept working for nobody"
            time.sleep(0.1)
        assert server.translate(["red dog"]).status == 200
