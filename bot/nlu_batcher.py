"""Batched, off-loop NLU parsing for the dialogue engine.

Encoding one message with the sentence encoder costs about as much CPU as
encoding a dozen together, and it is CPU work that would otherwise block the
event loop for every other conversation. :class:`BatchingParser` queues parse
requests from concurrent turns and lets a single worker task drain them: it
waits at most ``window_s`` after the first request for more to arrive, takes up
to ``max_batch`` of them and calls the model's ``parse_many`` in a thread
(``asyncio.to_thread``; torch releases the GIL while it multiplies), then
resolves each caller's future with its own result.

Example::

    parser = BatchingParser(nlu.load_model())
    parse = await parser.parse("how much do I owe?", date(2026, 11, 20))
    await parser.aclose()

With ``cache_size`` > 0 it remembers the parses of the last ``cache_size`` distinct
messages (the exact text and the reference date; a parse depends on nothing else):
a repeated message (a command's fixed words, "balance", "yes") is answered from the
cache without the encoder. :attr:`cache_hits` and :attr:`cache_misses` count them.

A failing batch is retried message by message, so an error reaches only the
caller whose message caused it. A caller that is cancelled while queued is
skipped; one cancelled while its batch runs simply gets no result.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from billtalk.logs import get_logger

log = get_logger("bot.nlu_batcher")


@dataclass
class _Request:
    text: str
    reference_date: date | None
    future: asyncio.Future[dict[str, Any]]


class BatchingParser:
    """Queue NLU parse requests and run them in batches on a worker thread.

    Args:
        model: The NLU: ``parse_many(texts, *, reference_date=None)`` (preferred) or
            only ``parse(text, *, reference_date=None)``, returning Rasa parse dicts.
        max_batch: The most messages parsed in one call.
        window_s: How long the worker waits after the first queued message for
            others to join its batch.
        company: Optional; returns whether other turns are in progress. When it
            returns False nobody can join the batch, so the worker does not wait
            the window (a lone conversation's turn is not delayed by it).
        cache_size: Parses remembered, least recently used dropped first (0: none).

    The parser binds to the event loop of its first :meth:`parse`; used from
    another loop (e.g. a later ``asyncio.run``) it starts a fresh queue and worker
    there.
    """

    def __init__(
        self,
        model: Any,
        *,
        max_batch: int = 32,
        window_s: float = 0.002,
        company: Callable[[], bool] | None = None,
        cache_size: int = 0,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if window_s < 0:
            raise ValueError("window_s must not be negative")
        self.model = model
        self.max_batch = max_batch
        self.window_s = window_s
        self.company = company
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Request] | None = None
        self._worker: asyncio.Task[None] | None = None
        #: Sizes of the batches run so far (for benchmarks and tests).
        self.batch_sizes: list[int] = []
        self.cache_size = max(0, cache_size)
        self._cache: OrderedDict[tuple[str, date | None], dict[str, Any]] = OrderedDict()
        #: Parses answered from the cache, and parses the model ran (with a cache).
        self.cache_hits = 0
        self.cache_misses = 0

    async def parse(self, text: str, reference_date: date | None = None) -> dict[str, Any]:
        """Parse one message; resolves when its batch has run.

        Raises:
            Whatever the model raises for this message.
        """
        if not self.cache_size:
            return await self._queued(text, reference_date)
        key = (text, reference_date)
        cached = self._cache.get(key)
        if cached is not None:
            self.cache_hits += 1
            self._cache.move_to_end(key)
            return copy.deepcopy(cached)
        self.cache_misses += 1
        result = await self._queued(text, reference_date)
        self._cache[key] = copy.deepcopy(result)
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return result

    async def _queued(self, text: str, reference_date: date | None) -> dict[str, Any]:
        queue = self._ensure_worker()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        queue.put_nowait(_Request(text, reference_date, future))
        return await future

    async def aclose(self) -> None:
        """Stop the worker; requests still queued fail with ``CancelledError``."""
        worker, self._worker = self._worker, None
        same_loop = self._loop is asyncio.get_running_loop()
        if worker is not None and not worker.done() and same_loop:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if self._queue is not None and same_loop:
            while not self._queue.empty():
                self._queue.get_nowait().future.cancel()
        self._queue = None
        self._loop = None

    # -- the worker -----------------------------------------------------------------

    def _ensure_worker(self) -> asyncio.Queue[_Request]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._queue is None:
            self._loop = loop
            self._queue = asyncio.Queue()
            self._worker = None
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._run(self._queue), name="nlu-batcher")
        return self._queue

    async def _run(self, queue: asyncio.Queue[_Request]) -> None:
        while True:
            batch = [await queue.get()]
            alone = self.company is not None and not self.company()
            deadline = asyncio.get_running_loop().time() + (0.0 if alone else self.window_s)
            while len(batch) < self.max_batch:
                if queue.empty():
                    remaining = deadline - asyncio.get_running_loop().time()
                    if remaining <= 0:
                        break
                    try:
                        batch.append(await asyncio.wait_for(queue.get(), remaining))
                    except TimeoutError:
                        break
                else:
                    batch.append(queue.get_nowait())
            live = [r for r in batch if not r.future.done()]  # skip cancelled callers
            if not live:
                continue
            self.batch_sizes.append(len(live))
            try:
                await self._run_batch(live)
            except asyncio.CancelledError:
                for request in live:
                    request.future.cancel()
                raise

    async def _run_batch(self, batch: list[_Request]) -> None:
        # One parse_many call per reference date (all turns of a day share one).
        groups: dict[date | None, list[_Request]] = {}
        for request in batch:
            groups.setdefault(request.reference_date, []).append(request)
        for reference_date, requests in groups.items():
            texts = [r.text for r in requests]
            try:
                results = await asyncio.to_thread(self._parse_many, texts, reference_date)
            except Exception as exc:
                if len(requests) == 1:
                    _fail(requests[0].future, exc)
                    continue
                log.warning("nlu_batch_failed", size=len(requests))
                await self._one_by_one(requests, reference_date)
                continue
            for request, result in zip(requests, results, strict=True):
                if not request.future.done():
                    request.future.set_result(result)

    async def _one_by_one(self, requests: list[_Request], reference_date: date | None) -> None:
        for request in requests:
            if request.future.done():
                continue
            try:
                [result] = await asyncio.to_thread(self._parse_many, [request.text], reference_date)
            except Exception as exc:
                _fail(request.future, exc)
            else:
                if not request.future.done():
                    request.future.set_result(result)

    def _parse_many(self, texts: list[str], reference_date: date | None) -> list[dict[str, Any]]:
        parse_many = getattr(self.model, "parse_many", None)
        if parse_many is not None:
            results = list(parse_many(texts, reference_date=reference_date))
        else:
            results = [self.model.parse(t, reference_date=reference_date) for t in texts]
        if len(results) != len(texts):
            raise RuntimeError(f"NLU returned {len(results)} parses for {len(texts)} texts")
        return [dict(r) for r in results]


def _fail(future: asyncio.Future[dict[str, Any]], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


__all__ = ["BatchingParser"]
