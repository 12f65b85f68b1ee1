"""The one translate use case every route calls: split, cache, tokenize, schedule, decode, join.

Routes only translate shapes (native, LibreTranslate, DeepL) into a ``TranslateRequest`` and back;
limits, caching, batching and errors are decided here, once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from contract.options import Hypothesis, SearchOptions
from service.cache import LRUCache
from service.errors import Cancelled, DeadlineExceeded, InvalidRequest, ShuttingDown
from service.metrics import Metrics
from service.models import LoadedModel, ModelRepository
from service.scheduler import Job, Scheduler
from service.schemas import TranslateRequest, TranslateResponse, Translation
from service.segment import Segmented, split
from service.settings import Settings

# Resolves when the client has gone away (the route knows how to tell).
Disconnect = Callable[[], Awaitable[None]]


def finish_reason(model: LoadedModel, hypothesis: Hypothesis) -> str:
    """eos | length — the one place that reads it until the scheduler puts it on its results."""
    tokens = hypothesis.tokens
    return "eos" if tokens and tokens[-1] == model.engine.config.eos_id else "length"


def joined(segmented: Segmented, parts: list[Translation]) -> Translation:
    """One text's translation from its sentences', with the text's own spacing."""
    if not parts:
        return Translation(text=segmented.join([]), score=0.0, tokens=0, finish_reason="empty")
    return Translation(
        text=segmented.join([p.text for p in parts]),
        score=sum(p.score for p in parts) / len(parts),
        tokens=sum(p.tokens for p in parts),
        finish_reason="length" if any(p.finish_reason == "length" for p in parts) else "eos",
        alternatives=parts[0].alternatives if len(parts) == 1 else [],
    )


class TranslateUseCase:
    """Translates a validated request over the repository, one scheduler job per request."""

    def __init__(
        self,
        settings: Settings,
        repository: ModelRepository,
        metrics: Metrics,
        draining: Callable[[], bool],
    ) -> None:
        self.settings, self.repository, self.metrics = settings, repository, metrics
        self.draining = draining
        self.cache: LRUCache[Translation] = LRUCache(settings.cache_entries)

    def check_limits(self, body: TranslateRequest) -> SearchOptions:
        """The request's options, or InvalidRequest naming the limit it breaks."""
        settings = self.settings
        if len(body.texts) > settings.max_texts:
            raise InvalidRequest(f"{len(body.texts)} texts exceed max_texts={settings.max_texts}")
        for i, text in enumerate(body.texts):
            if len(text) > settings.max_text_chars:
                raise InvalidRequest(
                    f"texts[{i}] has {len(text)} characters, more than "
                    f"max_text_chars={settings.max_text_chars}"
                )
        if body.beam_size > settings.max_beam_size:
            raise InvalidRequest(
                f"beam_size={body.beam_size} exceeds max_beam_size={settings.max_beam_size}"
            )
        try:
            return SearchOptions(
                body.beam_size,
                body.length_penalty,
                body.max_length_a,
                body.max_length_b,
                body.nbest,
            )
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None

    async def __call__(self, body: TranslateRequest, disconnect: Disconnect) -> TranslateResponse:
        if self.draining():
            raise ShuttingDown("the server is shutting down")
        options = self.check_limits(body)
        model = self.repository.route(body.source, body.target)
        started = time.perf_counter()
        # Every text is split into sentences; all sentences of the request go in one job.
        segmented = [split(text) for text in body.texts]
        done: dict[tuple[int, int], Translation] = {}
        todo: list[tuple[int, int]] = []  # (text, sentence) neither cached nor translated yet
        for i, seg in enumerate(segmented):
            for j, sentence in enumerate(seg.sentences):
                cached = self.cache.get((model.name, options, sentence))
                self.metrics.cache_lookups.labels("hit" if cached else "miss").inc()
                if cached:
                    done[i, j] = cached
                else:
                    todo.append((i, j))
        sources = model.tokenizer.encode_batch([segmented[i].sentences[j] for i, j in todo])
        for (i, _), ids in zip(todo, sources, strict=True):
            if len(ids) + 1 > model.max_source_tokens:
                raise InvalidRequest(
                    f"texts[{i}] has a sentence of {len(ids)} tokens; the model takes at "
                    f"most {model.max_source_tokens - 1} per sentence"
                )
        results = (
            await self.run_job(model.scheduler, sources, options, disconnect) if sources else []
        )
        for (i, j), hyps in zip(todo, results, strict=True):
            best = hyps[0]
            done[i, j] = Translation(
                text=model.tokenizer.decode(best.tokens),
                score=best.score,
                tokens=len(best.tokens),
                finish_reason=finish_reason(model, best),
                alternatives=[model.tokenizer.decode(h.tokens) for h in hyps[1:]],
            )
            self.cache.put((model.name, options, segmented[i].sentences[j]), done[i, j])
        translations = [
            joined(seg, [done[i, j] for j in range(len(seg.sentences))])
            for i, seg in enumerate(segmented)
        ]
        return TranslateResponse(
            translations=translations,
            model=model.name,
            timings={"total_seconds": round(time.perf_counter() - started, 4)},
        )

    async def run_job(
        self,
        scheduler: Scheduler,
        sources: list[list[int]],
        options: SearchOptions,
        disconnect: Disconnect,
    ) -> list[list[Hypothesis]]:
        """The job's hypotheses; cancels it when the client goes away or the deadline passes."""
        timeout = self.settings.request_timeout
        loop = asyncio.get_running_loop()
        job = Job(sources, options, time.monotonic() + timeout, loop, loop.create_future())
        scheduler.submit(job)
        disconnected = asyncio.ensure_future(disconnect())
        try:
            done, _ = await asyncio.wait(
                {job.future, disconnected},
                timeout=timeout + 1.0,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            disconnected.cancel()
        if job.future in done:
            results: list[list[Hypothesis]] = job.future.result()
            return results
        scheduler.cancel(job)
        if disconnected in done:
            raise Cancelled("the client disconnected")
        raise DeadlineExceeded(f"no answer within request_timeout={timeout} s")
