"""Load test for Tongyeok with Locust: real sentences, a realistic mix of request shapes.

    locust -f deploy/loadtest/locustfile.py --host http://127.0.0.1:8000 \
        --headless --users 32 --spawn-rate 8 --run-time 60s --json > loadtest.json

Sentences come from TONGYEOK_LOADTEST_SENTENCES (one per line, plain or .gz, e.g. Multi30k's
test_2016_flickr.en.gz), else from a few built-in ones. Most traffic is /v1/translate with 1-8
texts per request (one text in half of them); a tenth goes to each drop-in API. Look at the
failures (any is a bug: every accepted request must get one answer), the p50/p95/p99 of
/v1/translate, and the server's /metrics (tongyeok_batch_rows, tongyeok_queue_depth) meanwhile.
"""

from __future__ import annotations

import gzip
import os
import random
from pathlib import Path

from locust import HttpUser, between, task

BUILT_IN = [
    "A man in an orange hat starring at something.",
    "A Boston Terrier is running on lush green grass in front of a white fence.",
    "A girl in karate uniform breaking a stick with a front kick.",
    "Five people wearing winter jackets and helmets stand in the snow, with snowmobiles in the "
    "background.",
    "People are fixing the roof of a house.",
    "Two dogs play in the water.",
]


def load_sentences() -> list[str]:
    path = os.environ.get("TONGYEOK_LOADTEST_SENTENCES")
    if not path:
        return BUILT_IN
    opener = gzip.open if path.endswith(".gz") else open
    with opener(Path(path), "rt", encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    if not lines:
        raise ValueError(f"{path} holds no sentences")
    return lines


SENTENCES = load_sentences()
TEXTS_PER_REQUEST = [1] * 8 + [2, 2, 3, 4, 5, 8]  # half single texts, some small batches
PAIR = (
    os.environ.get("TONGYEOK_LOADTEST_SOURCE", "en"),
    os.environ.get("TONGYEOK_LOADTEST_TARGET", "de"),
)


class Translator(HttpUser):
    wait_time = between(0.0, 0.2)

    @task(8)
    def translate(self) -> None:
        texts = random.choices(SENTENCES, k=random.choice(TEXTS_PER_REQUEST))
        with self.client.post(
            "/v1/translate",
            json={"texts": texts, "source": PAIR[0], "target": PAIR[1]},
            catch_response=True,
            name="/v1/translate",
        ) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
            elif len(response.json()["translations"]) != len(texts):
                response.failure("not one translation per text")

    @task(1)
    def libretranslate(self) -> None:
        self.client.post(
            "/translate",
            json={"q": random.choice(SENTENCES), "source": PAIR[0], "target": PAIR[1]},
            name="/translate",
        )

    @task(1)
    def deepl(self) -> None:
        self.client.post(
            "/v2/translate",
            json={
                "text": [random.choice(SENTENCES)],
                "target_lang": PAIR[1].upper(),
                "source_lang": PAIR[0].upper(),
            },
            headers={"Authorization": "DeepL-Auth-Key load-test"},
            name="/v2/translate",
        )
