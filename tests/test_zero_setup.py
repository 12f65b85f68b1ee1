"""A newcomer's first minutes: ``pip install .`` from a clone-like copy, then ``tongyeok serve``
with nothing set up (no model repository, an empty cache) serves the shipped model, the page and
the API; a repository that cannot serve is refused with one line, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

from tests.service.conftest import free_port

REPO = Path(__file__).resolve().parents[1]


def tongyeok(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tongyeok.cli", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_repository_that_cannot_serve_is_one_line(tmp_path: Path) -> None:
    # --port 0: a free one, so that a server the user runs on 8000 does not answer first
    serve = ("serve", "--port", "0")
    missing = tongyeok(*serve, "--model-repository", str(tmp_path / "nope"), cwd=tmp_path)
    (tmp_path / "empty").mkdir()
    empty = tongyeok(*serve, "--model-repository", str(tmp_path / "empty"), cwd=tmp_path)
    named = tongyeok(
        *serve, cwd=tmp_path, env={"TONGYEOK_MODEL_REPOSITORY": str(tmp_path / "gone")}
    )
    for result, words in (
        (missing, "is not a directory"),
        (empty, "holds no model package"),
        (named, "is not a directory"),  # named by the environment: never replaced
    ):
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tongyeok serve: error:"), result.stderr
        assert words in lines[0]


def test_a_repository_whose_only_package_is_corrupt_is_one_line(
    toy_repository: Path, tmp_path: Path
) -> None:
    """Every package refused at load: one error line and status 1, not uvicorn's 57-line
    traceback with status 3 (issue 34); and no "translation page" line for a page never served."""
    repo = tmp_path / "repo"
    shutil.copytree(toy_repository, repo)
    (repo / "en-de" / "decoder.onnx").write_bytes(b"garbage")
    port = free_port()
    result = tongyeok("serve", "--model-repository", str(repo), "--port", str(port), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "translation page" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("tongyeok serve: error:")]
    assert len(errors) == 1 and "no loadable model package" in errors[0]
    assert "decoder.onnx" in errors[0] and "does not match the manifest" in errors[0]


def clone_like_copy(target: Path) -> Path:
    """The files a clone has: tracked and not ignored, no build output, no venv."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_pip_install_then_serve_with_nothing_set_up(tmp_path: Path) -> None:
    clone = clone_like_copy(tmp_path / "clone")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # dependencies come from this environment (downloading torch would take minutes); tongyeok
    # itself is built from the copy and installed as a wheel, static files and model included
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    site.mkdir(parents=True, exist_ok=True)
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TONGYEOK_", "PYTHONPATH"))}
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(clone),
        ],
        check=True,
        timeout=300,
    )
    print(f"pip install . (no deps): {time.monotonic() - started:.1f} s")
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import service; print(service.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=env,
    ).stdout
    assert installed.startswith(str(venv))  # the wheel, not this checkout

    port = free_port()
    work = tmp_path / "newcomer"  # no models/ here
    work.mkdir()
    env.update(TONGYEOK_CACHE_DIR=str(tmp_path / "cache"), TONGYEOK_PORT=str(port))
    server = subprocess.Popen(
        [str(venv / "bin" / "tongyeok"), "serve"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # the shipped model is exported once, on first use
        while True:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(1)
        print(f"first start with an empty cache: {time.monotonic() - started:.1f} s")
        # The export ran in a child process: the server never loaded torch (issue 34).
        maps = Path(f"/proc/{server.pid}/maps").read_text()
        assert "libtorch" not in maps, "torch stayed resident in the server"
        request = urllib.request.Request(
            base + "/v1/translate",
            data=json.dumps(
                {"texts": ["Two dogs are playing in the snow."], "source": "en", "target": "de"}
            ).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as reply:
            body = reply.read().decode()
        assert "Hunde" in body, body  # the shipped model, really translating
        with urllib.request.urlopen(base + "/", timeout=10) as reply:
            page = reply.read().decode()
        assert "<title>Tongyeok" in page and "/static/app.js" in page
        with urllib.request.urlopen(base + "/static/app.js", timeout=10) as reply:
            assert b"AbortController" in reply.read()
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert f"translation page {base}/" in output and f"API docs {base}/docs" in output
    assert "Traceback" not in output
    # The first run logs like every other (the int8 export once silenced the root logger).
    assert '"event": "settings"' in output and "loaded en-de" in output, output
    assert '"route": "/v1/translate", "status": 200' in output and '"event": "stopped"' in output
    exported = list((tmp_path / "cache" / "packages").iterdir())  # into the given cache
    assert [json.loads((p / "config.json").read_text())["precision"] for p in exported] == ["int8"]
