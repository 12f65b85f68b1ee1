"""``tongyeok pull`` end to end through the real ``huggingface_hub`` client.

This machine cannot reach huggingface.co, so the hub is a server on loopback that speaks the
hub's download protocol (tests/export/loopback_hub.py), serving a random-weight model shaped like
Helsinki-NLP/opus-mt-ko-en (bench/marian_dirs.py). Everything from the client on is real: the
download into an empty Hugging Face cache (retried after a cut), the import and its parity check,
the package written into the repository of a running server, which serves it without a restart.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.export.loopback_hub import loopback_hub
from tests.service.conftest import running_server

REPO_ID = "Helsinki-NLP/opus-mt-ko-en"
CARD = """---
language: [ko, en]
tags: [translation]
license: apache-2.0
---
### opus-mt-ko-en
* source languages: ko
* target languages: en
* dataset: opus
* model: transformer-align
"""


def pull(*args: str, endpoint: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``tongyeok pull`` as a user runs it: its own process, an empty home and HF cache."""
    env = {
        **os.environ,
        "HOME": str(home),
        "HF_HOME": str(home / "hf"),
        "HF_ENDPOINT": endpoint,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TONGYEOK_CACHE_DIR": str(home / "tongyeok"),
    }
    tongyeok = str(Path(sys.executable).parent / "tongyeok")
    return subprocess.run(
        [tongyeok, "pull", *args], env=env, capture_output=True, text=True, timeout=600
    )


def test_pull_downloads_imports_and_a_running_server_serves_it(
    marian_dirs: dict[str, Path], toy_repository: Path, tmp_path: Path
) -> None:
    hosted = tmp_path / "hosted"
    shutil.copytree(marian_dirs["ko-en"], hosted)
    (hosted / "README.md").write_text(CARD)
    (hosted / "tf_model.h5").write_bytes(b"\0" * 4096)  # a copy the import never reads
    repository = tmp_path / "models"
    repository.mkdir()
    shutil.copytree(toy_repository / "en-de", repository / "en-de")
    home = tmp_path / "home"
    home.mkdir()

    with (
        loopback_hub({REPO_ID: hosted}) as (endpoint, hub),
        running_server(repository, repository_poll_seconds=0.2) as server,
    ):
        hub.cut_once.add("model.safetensors")  # the first download breaks halfway
        done = pull(REPO_ID, "--model-repository", str(repository), endpoint=endpoint, home=home)
        assert done.returncode == 0, done.stderr
        assert f"wrote {repository / 'ko-en'}: ko->en" in done.stdout
        assert "greedy translations identical to PyTorch" in done.stdout
        assert "a running 'tongyeok serve'" in done.stdout
        assert "tf_model.h5" not in hub.sent  # only what the import reads
        # The cut download was retried and the package is whole (its parity check passed).
        # huggingface_hub keeps what it received in 10 MiB chunks, so a cut this early in a
        # small file is fetched again whole; a large file resumes with a Range request.
        size = (hosted / "model.safetensors").stat().st_size
        assert hub.sent["model.safetensors"] == size + size // 2

        deadline = time.monotonic() + 30
        while ("ko", "en") not in {
            (m["source"], m["target"]) for m in server.request("GET", "/v1/models").body["models"]
        }:
            assert time.monotonic() < deadline, "the running server did not pick up the package"
            time.sleep(0.1)
        reply = server.request(
            "POST", "/v1/translate", {"texts": ["안녕하세요"], "source": "ko", "target": "en"}
        )
        assert reply.status == 200, reply.body
        assert server.translate(["A dog runs."]).status == 200  # the other model still serves
        model = server.request("GET", "/v1/models/ko-en").body
        assert model["description"].startswith(f"{REPO_ID} from the Hugging Face Hub")
        assert "trained on opus data" in model["description"]

        sent = sum(hub.sent.values())
        again = pull(REPO_ID, "--model-repository", str(repository), endpoint=endpoint, home=home)
        assert again.returncode == 0, again.stderr
        assert sum(hub.sent.values()) == sent  # from the Hugging Face cache: no file re-sent


def test_pull_of_a_repository_the_hub_does_not_have_is_one_line(tmp_path: Path) -> None:
    with loopback_hub({}) as (endpoint, _):
        done = pull("Helsinki-NLP/opus-mt-xx-yy", "--out", str(tmp_path / "p"), endpoint=endpoint,
                    home=tmp_path)  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "tongyeok pull: error: no model 'Helsinki-NLP/opus-mt-xx-yy' on the hub (a typo? a "
        "private one needs HF_TOKEN)"
    ], done.stderr
    assert not (tmp_path / "p").exists()
