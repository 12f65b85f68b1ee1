"""The server a user would build instead: CTranslate2 behind FastAPI/uvicorn, Triton-style
dynamic batching (up to ``max_batch`` sentences or ``max_delay`` seconds, then one
``translate_batch`` in a worker thread). The peer of ``tongyeok bench capacity --peer ct2``.

It speaks the subset of Tongyeok's ``/v1/translate`` that the load generator sends (texts, beam
size) and ``/readyz``, so the same load, sentences and weights drive both servers.

    python -m bench.peer_ct2 --model-dir WORK --port 8001 --threads 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import ctranslate2
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from contract.tokenizer import Tokenizer


class Request(BaseModel):
    texts: list[str]
    source: str = "en"
    target: str = "de"
    beam_size: int = 1


def create_app(
    model_dir: Path, threads: int, max_batch: int, max_delay: float, compute_type: str = "float32"
) -> FastAPI:
    tokenizer = Tokenizer.load(model_dir / "tokenizer.model")
    sp = tokenizer.processor
    eos = sp.IdToPiece(2)
    translator = ctranslate2.Translator(
        str(model_dir / "ct2"),
        device="cpu",
        compute_type=compute_type,
        inter_threads=1,
        intra_threads=threads,
    )
    queue: asyncio.Queue[tuple[list[str], int, asyncio.Future]] = asyncio.Queue()

    async def batcher() -> None:
        """Collect up to ``max_batch`` sentences of one beam size (or wait ``max_delay``), then
        translate them together off the event loop."""
        while True:
            batch = [await queue.get()]
            deadline = asyncio.get_running_loop().time() + max_delay
            while len(batch) < max_batch:
                timeout = deadline - asyncio.get_running_loop().time()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), timeout))
                except TimeoutError:
                    break
            for beam in sorted({b for _, b, _ in batch}):
                group = [(pieces, future) for pieces, b, future in batch if b == beam]
                results = await asyncio.to_thread(
                    translator.translate_batch,
                    [pieces for pieces, _ in group],
                    beam_size=beam,
                    max_decoding_length=256,
                )
                for (_, future), result in zip(group, results, strict=True):
                    if not future.done():
                        future.set_result(sp.DecodePieces(result.hypotheses[0]))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(batcher())
        yield
        task.cancel()

    app = FastAPI(lifespan=lifespan)

    @app.get("/readyz")
    async def readyz() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/v1/translate")
    async def translate(request: Request) -> dict:
        loop = asyncio.get_running_loop()
        futures = []
        for text in request.texts:
            future = loop.create_future()
            await queue.put((sp.EncodeAsPieces(text) + [eos], request.beam_size, future))
            futures.append(future)
        texts = await asyncio.gather(*futures)
        return {"translations": [{"text": t} for t in texts]}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True, help="tokenizer.model + ct2/")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--max-delay", type=float, default=0.005)
    parser.add_argument("--compute-type", default="float32", help="float32 or int8")
    args = parser.parse_args()
    app = create_app(
        args.model_dir, args.threads, args.max_batch, args.max_delay, args.compute_type
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
