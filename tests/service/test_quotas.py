"""One quota for several server processes sharing a real redis-server, and what a database that
is down or broken does: /readyz says so, keyed requests get 503 (state_failure=closed), never a
500 or a hang."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.state.keys import KEYS_FILE, KeyRecord, digest_of, period_of
from service.state.redis_keys import RedisKeyStore
from tests.service.conftest import free_port, running_server

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server (Debian's package) not installed"
)


class Redis:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", tempfile.mkdtemp(prefix="tongyeok-redis-")],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.answers():
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def answers(self) -> bool:
        async def ping() -> bool:
            store = RedisKeyStore(self.url)
            try:
                await store.ping()
                return True
            except Exception:
                return False
            finally:
                await store.close()

        return asyncio.run(ping())

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def redis_server() -> Iterator[Redis]:
    server = Redis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def add_key(url: str, name: str, **limits: object) -> str:
    key = f"secret-{name}"

    async def add() -> None:
        store = RedisKeyStore(url)
        await store.add(KeyRecord(name, digest_of(key), created=time.time(), **limits))  # type: ignore[arg-type]
        await store.close()

    asyncio.run(add())
    return key


def used(url: str, key: str) -> int:
    async def read() -> int:
        store = RedisKeyStore(url)
        try:
            return (await store.used(digest_of(key), period_of("month", time.time())[0]))[0]
        finally:
            await store.close()

    return asyncio.run(read())


def post(url: str, key: str, text: str) -> int:
    request = urllib.request.Request(
        url + "/v1/translate",
        data=json.dumps({"texts": [text], "source": "en", "target": "de"}).encode(),
        headers={"content-type": "application/json", "Authorization": f"Bearer {key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


SERVE = """
import sys, uvicorn
from service.api.app import create_app
from service.settings import Settings
settings = Settings(model_repository=sys.argv[1], port=int(sys.argv[2]), threads=1)
uvicorn.run(create_app(settings), host="127.0.0.1", port=settings.port, log_level="error")
"""


def serve_process(repository: Path, url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "TONGYEOK_STATE_URL": url}
    env["TONGYEOK_DATA_DIR"] = tempfile.mkdtemp(prefix="tongyeok-data-")
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(repository), str(port)], cwd=REPO, env=env
    )
    return process, f"http://127.0.0.1:{port}"


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None, "the server process exited"
        assert time.monotonic() < deadline, "the server process did not get ready"
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)


def test_two_processes_sixteen_clients_each_never_overshoot_one_quota(
    toy_repository: Path, redis_server: Redis
) -> None:
    quota, text = 400, "a dog runs in the park."  # 23 characters: 17 fit, the 18th is refused
    key = add_key(redis_server.url, "shared", characters=quota)
    servers = [serve_process(toy_repository, redis_server.url) for _ in range(2)]
    try:
        for process, url in servers:
            wait_ready(url, process)
        served: list[int] = []
        statuses: list[int] = []

        def client(url: str) -> None:
            for _ in range(4):  # 2 x 16 x 4 = 128 requests, far past the quota
                status = post(url, key, text)
                statuses.append(status)
                if status == 200:
                    served.append(len(text))

        threads = [
            threading.Thread(target=client, args=(url,)) for _, url in servers for _ in range(16)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(t.is_alive() for t in threads)
        billed = used(redis_server.url, key)
        print(
            f"served {len(served)} requests, {sum(served)} characters, billed {billed}, quota "
            f"{quota}, overshoot {max(0, billed - quota)}, {time.monotonic() - started:.1f} s"
        )
        assert set(statuses) <= {200, 429}
        assert billed == sum(served) <= quota  # billed exactly once, never past the quota
        assert quota - billed < len(text)  # and the quota is used up, not left idle
    finally:
        for process, _ in servers:
            process.terminate()
            process.wait(30)


def test_redis_down_makes_readyz_say_so_and_keyed_requests_503(
    toy_repository: Path, redis_server: Redis
) -> None:
    key = add_key(redis_server.url, "hal", characters=1000)
    with running_server(toy_repository, state_url=redis_server.url) as server:
        assert server.request("GET", "/readyz").status == 200
        assert server.translate(["a dog."]).status == 401
        ok = server.request(
            "POST",
            "/v1/translate",
            {"texts": ["a dog."], "source": "en", "target": "de"},
            {"Authorization": f"Bearer {key}"},
        )
        assert ok.status == 200
        redis_server.stop()
        started = time.monotonic()
        ready = server.request("GET", "/readyz")
        assert ready.status == 503 and "key database" in ready.body["state"]
        down = server.request(
            "POST",
            "/v1/translate",
            {"texts": ["a dog."], "source": "en", "target": "de"},
            {"Authorization": f"Bearer {key}"},
        )
        assert down.status == 503 and down.body["error_type"] == "state_unavailable"
        assert time.monotonic() - started < 10  # a one-second timeout per call, not a hang
        redis_server.start()  # back: served again without a restart
        assert server.request("GET", "/readyz").status == 200


def test_a_corrupt_sqlite_file_is_reported_and_refused_not_a_500(toy_repository: Path) -> None:
    data = Path(tempfile.mkdtemp(prefix="tongyeok-data-"))
    (data / KEYS_FILE).write_bytes(b"this is not a database" * 100)
    with running_server(toy_repository, data_dir=str(data)) as server:
        ready = server.request("GET", "/readyz")
        assert ready.status == 503 and KEYS_FILE in ready.body["state"]
        refused = server.request("GET", "/v1/usage", headers={"Authorization": "Bearer x"})
        assert refused.status == 503 and refused.body["error_type"] == "state_unavailable"
