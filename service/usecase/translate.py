"""The one translate use case every route calls: split, cache, tokenize, schedule, decode, join.

Routes only translate shapes (native, LibreTranslate, DeepL) into a ``TranslateRequest`` and back;
limits, caching, batching and errors are decided here, once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass

from contract.options import Hypothesis, SearchOptions
from service.decoding.alignment import WordAlignment
from service.errors import (
    Cancelled,
    DeadlineExceeded,
    InvalidRequest,
    PayloadTooLarge,
    Retired,
    ShuttingDown,
    SourceTooLong,
)
from service.metrics import Metrics
from service.scheduling.batching import ANONYMOUS
from service.scheduling.repository import LoadedModel, ModelRepository
from service.scheduling.scheduler import Job, JobQueue
from service.settings import Settings
from service.usecase.access import charged
from service.usecase.cache import LRUCache
from service.usecase.detect import Detector, language_name
from service.usecase.glossary import Match, Terms, apply_terms
from service.usecase.schemas import (
    SourceWarning,
    TranslateRequest,
    TranslateResponse,
    Translation,
)
from service.usecase.segment import Segmented, split

# Requests with more characters than this are split, looked up and tokenized in a worker thread
# (a few milliseconds of work at most on the event loop itself).
OFF_LOOP_CHARS = 2000
# Routing again after a reload retired the model: once is enough unless reloads race.
ROUTING_ATTEMPTS = 3

# Resolves when the client has gone away (the route knows how to tell).
Disconnect = Callable[[], Awaitable[None]]

# Who is asking: the API key's digest, or the client's address without keys. Set by the key
# check every translating route runs (api/deps.py), read when the job is made: the scheduler
# shares the queue and the batch between clients. A context variable because every route
# reaches the use case through shapes of its own; each request runs in a task (a context) of
# its own, and the tasks and threads it starts copy it.
CLIENT: ContextVar[str] = ContextVar("tongyeok_client", default=ANONYMOUS)
# What a cache entry holds besides its strings: the key's tuple, the Translation, the cache's
# node (measured with tracemalloc, docs/decisions.md #49).
ENTRY_BYTES = 730


class Bill:
    """The characters served to one HTTP request, billed to each use case's ``characters``
    (DeepL's usage) only when the request is answered 2xx (``settle``, api/observe.py): a
    request refused in part, such as a document one of whose batches fails, bills nothing."""

    def __init__(self) -> None:
        self.served: list[tuple[TranslateUseCase, int]] = []

    def add(self, usecase: TranslateUseCase, characters: int) -> None:
        self.served.append((usecase, characters))

    def settle(self) -> None:
        for usecase, characters in self.served:
            usecase.characters += characters
        self.served.clear()


# The bill of the HTTP request being answered (a task's context, copied by the tasks it starts);
# None outside one: each call bills at once.
BILL: ContextVar[Bill | None] = ContextVar("tongyeok_bill", default=None)


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


@dataclass
class Work:
    """A request's sentences: those answered from the cache, and the token ids of the rest."""

    segmented: list[Segmented]
    done: dict[tuple[int, int], Translation]
    todo: list[tuple[int, int]]  # (text, sentence) to translate, in the order of ``sources``
    sources: list[list[int]]


def cached_bytes(key: Hashable, value: Translation) -> int:
    """What a cache entry holds in memory: its sentence and its translations as CPython stores
    them (one astral character makes a str take 4 bytes per character), and the objects
    around them."""
    sentence = key[-1] if isinstance(key, tuple) else ""
    texts = [str(sentence), value.text, *value.alternatives]
    return ENTRY_BYTES + sum(sys.getsizeof(t) for t in texts)


class TranslateUseCase:
    """Translates a validated request over the repository, one scheduler job per request."""

    def __init__(
        self,
        settings: Settings,
        repository: ModelRepository,
        metrics: Metrics,
        draining: Callable[[], bool],
        detector: Detector | None = None,
    ) -> None:
        self.settings, self.repository, self.metrics = settings, repository, metrics
        self.draining = draining
        self.detector = detector or Detector()
        self.cache: LRUCache[Translation] = LRUCache(
            settings.cache_entries, settings.cache_bytes, cached_bytes
        )
        self.characters = 0  # translated by this process (DeepL's usage)

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
        try:
            options = SearchOptions.of(body)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        if options.beam_size > settings.max_beam_size:  # the one bound on beams
            raise InvalidRequest(
                f"beam_size={options.beam_size} exceeds max_beam_size={settings.max_beam_size}"
            )
        return options

    async def __call__(
        self,
        body: TranslateRequest,
        disconnect: Disconnect,
        *,
        check_source: bool = False,
        terms: Terms | None = None,
    ) -> TranslateResponse:
        """The translations; with ``check_source``, a warning for each text clearly not in
        ``body.source`` (the native API's; the drop-in shapes have no place for one); with
        ``terms``, a glossary's target terms where its source terms are."""
        if self.draining():
            raise ShuttingDown("the server is shutting down")
        options = self.check_limits(body)
        started = time.perf_counter()
        self.repository.route(body.source, body.target)  # an unknown pair: 400 before any work
        # The language check runs beside the translation, in a thread: it changes only the
        # warnings, and on the event loop it waited for the GIL behind the scheduler's thread.
        checked = (
            asyncio.ensure_future(
                asyncio.to_thread(self.source_warnings, body.texts, body.source, body.target)
            )
            if check_source
            else None
        )
        try:
            # the key's characters, charged before any work and given back if it fails
            async with charged(sum(len(t) for t in body.texts)):  # (usecase/access.py)
                for attempt in range(ROUTING_ATTEMPTS):  # a reload may retire the model
                    model = self.repository.route(body.source, body.target)
                    if sum(len(t) for t in body.texts) > OFF_LOOP_CHARS:  # keep the loop free
                        work = await asyncio.to_thread(self.prepare, body.texts, model, options)
                    else:
                        work = self.prepare(body.texts, model, options)
                    try:
                        results = (
                            await self.run_job(model.scheduler, work.sources, options, disconnect)
                            if work.sources
                            else []
                        )
                        break
                    except Retired:
                        if attempt == ROUTING_ATTEMPTS - 1:
                            raise
            warnings = await checked if checked is not None else []
        finally:
            if checked is not None and not checked.done():
                checked.cancel()  # the request failed: nobody reads its warnings
        served, bill = sum(len(t) for t in body.texts), BILL.get()
        if bill is None:
            self.characters += served  # outside an HTTP request: billed once served
        else:
            bill.add(self, served)
        done = work.done
        for (i, j), hyps in zip(work.todo, results, strict=True):
            best = hyps[0]
            done[i, j] = Translation(
                text=model.tokenizer.decode(best.tokens),
                score=best.score,
                tokens=len(best.tokens),
                finish_reason=best.finish_reason,
                alternatives=[model.tokenizer.decode(h.tokens) for h in hyps[1:]],
            )
            self.cache.put((model.identity, options, work.segmented[i].sentences[j]), done[i, j])
        if terms is not None:  # on the model's own translations, cached or not
            await self.use_terms(model, work, terms)
        translations = [
            joined(seg, [done[i, j] for j in range(len(seg.sentences))])
            for i, seg in enumerate(work.segmented)
        ]
        return TranslateResponse(
            translations=translations,
            model=model.name,
            timings={"total_seconds": round(time.perf_counter() - started, 4)},
            warnings=warnings,
        )

    async def align(
        self, source: str, target: str, pairs: list[tuple[str, str]]
    ) -> list[WordAlignment | None]:
        """Where each translated word of ``pairs`` (source text, its translation) came from, by
        the model that serves the pair (None for each where it cannot tell); off the event loop."""
        model = self.repository.route(source, target)
        if not model.can_align or not pairs:
            return [None] * len(pairs)
        return await asyncio.to_thread(model.align, pairs)

    def check_terms(self, source: str, target: str) -> None:
        """InvalidRequest when the model of the pair cannot put a glossary's terms in (an fp16
        package has no aligner): said before any work, never a glossary silently ignored."""
        model = self.repository.route(source, target)
        if not model.can_align:
            raise InvalidRequest(
                f"model {model.name!r} cannot apply a glossary (its package has no aligner "
                "graph: fp16 packages do not; export it in fp32 or int8)"
            )

    async def use_terms(self, model: LoadedModel, work: Work, terms: Terms) -> None:
        """Each sentence that holds a source term of ``terms`` gets its target term where the
        term went (service/usecase/glossary.py); the others are left exactly as they are."""

        def found_and_aligned() -> list[tuple[tuple[int, int], list[Match], WordAlignment]]:
            found = [
                ((i, j), matches)
                for i, seg in enumerate(work.segmented)
                for j, sentence in enumerate(seg.sentences)
                if (matches := terms.find(sentence))
            ]
            pairs = [(work.segmented[i].sentences[j], work.done[i, j].text) for (i, j), _ in found]
            alignments = model.align(pairs)
            return [
                (where, matches, alignment)
                for (where, matches), alignment in zip(found, alignments, strict=True)
                if alignment is not None
            ]

        for (i, j), matches, alignment in await asyncio.to_thread(found_and_aligned):
            translation = work.done[i, j]
            text = apply_terms(translation.text, matches, alignment)
            work.done[i, j] = translation.model_copy(update={"text": text, "alternatives": []})

    def source_warnings(self, texts: list[str], source: str, target: str) -> list[SourceWarning]:
        """A warning for each text clearly not in ``source``: its translation is likely
        nonsense. Each text is judged by its first CHECK_CHARS characters (detect.py). The
        advice is one that works: another source only where a model here translates from it."""
        warnings = []
        for i, text in enumerate(texts):
            found = self.detector.mismatch(text, source)
            if found is None:
                continue
            name = language_name(found.detected)
            looks = f"{name} ({found.detected}, {found.confidence:.0%})"
            advice = (
                f"Give {found.detected} as the source, or auto."
                if (found.detected, target) in self.repository.models
                else f"No model here translates {name} into {language_name(target)}: its "
                "translation is likely nonsense."
            )
            warnings.append(
                SourceWarning(
                    index=i,
                    detected=found.detected,
                    confidence=round(found.confidence, 3),
                    message=f"Text {i + 1} does not look like {language_name(source)} "
                    f"({source}); it looks most like {looks}. {advice}",
                )
            )
        return warnings

    def prepare(
        self,
        texts: list[str],
        model: LoadedModel,
        options: SearchOptions,
    ) -> Work:
        """Sentences, cache hits and token ids: the per-sentence work before scheduling, after
        the checks that need only the count (a request that can never fit gets 413 first)."""
        # Every text is split into sentences; all sentences of the request go in one job.
        segmented = [split(text) for text in texts]
        self.check_size(sum(len(seg.sentences) for seg in segmented), options)
        done: dict[tuple[int, int], Translation] = {}
        todo: list[tuple[int, int]] = []  # (text, sentence) neither cached nor translated yet
        for i, seg in enumerate(segmented):
            for j, sentence in enumerate(seg.sentences):
                cached = self.cache.get((model.identity, options, sentence))
                self.metrics.cache_lookups.labels("hit" if cached else "miss").inc()
                if cached:
                    done[i, j] = cached
                else:
                    todo.append((i, j))
        sources = model.tokenizer.encode_batch([segmented[i].sentences[j] for i, j in todo])
        for (i, _), ids in zip(todo, sources, strict=True):
            try:
                model.check_source(ids)
            except SourceTooLong as exc:
                raise InvalidRequest(
                    f"texts[{i}] has a sentence of {exc.tokens} tokens; the model takes at "
                    f"most {exc.limit} per sentence"
                ) from None
        return Work(segmented, done, todo, sources)

    def check_size(self, sentences: int, options: SearchOptions) -> None:
        """PayloadTooLarge (413) for a request that can never be served: more sentences than
        the queue holds, or more sentences x beams than ``max_request_work``, the work the
        request timeout covers at the measured capacity (docs/decisions.md #49)."""
        limit, work = self.settings.max_queue_sentences, self.settings.max_request_work
        if sentences > limit:
            raise PayloadTooLarge(
                f"{sentences} sentences can never fit the queue (max_queue_sentences={limit}): "
                "send fewer per request"
            )
        if sentences * options.beam_size > work:
            raise PayloadTooLarge(
                f"{sentences} sentences at beam_size={options.beam_size} are more work than "
                f"max_request_work={work} (sentences x beams), which the request timeout "
                "covers: send fewer per request, or a smaller beam"
            )

    async def run_job(
        self,
        scheduler: JobQueue,
        sources: list[list[int]],
        options: SearchOptions,
        disconnect: Disconnect,
    ) -> list[list[Hypothesis]]:
        """The job's hypotheses; cancels it when the client goes away or the deadline passes."""
        timeout = self.settings.request_timeout
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        job = Job(sources, options, deadline, loop, loop.create_future(), CLIENT.get())
        scheduler.submit(job)
        disconnected = asyncio.ensure_future(disconnect())
        try:
            done, _ = await asyncio.wait(
                {job.future, disconnected},
                timeout=timeout + 1.0,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:  # the handler itself was cancelled: nobody will read it
            scheduler.cancel(job)
            raise
        finally:
            disconnected.cancel()
        if job.future in done:
            results: list[list[Hypothesis]] = job.future.result()
            return results
        scheduler.cancel(job)
        if disconnected in done:
            raise Cancelled("the client disconnected")
        raise DeadlineExceeded(f"no answer within request_timeout={timeout} s")
