"""Tests for bot.nlu_batcher: batching, ordering, errors, cancellation."""

from __future__ import annotations

import asyncio
import threading
from datetime import date
from typing import Any

import pytest

from bot.nlu_batcher import BatchingParser

TODAY = date(2026, 11, 20)


class RecordingModel:
    """A parse_many model that records its calls and the thread they ran on."""

    def __init__(self, *, fail_on: str | None = None, delay_s: float = 0.0) -> None:
        self.calls: list[tuple[list[str], date | None]] = []
        self.threads: set[int] = set()
        self.fail_on = fail_on
        self.delay_s = delay_s
        self.started = threading.Event()

    def parse_many(self, texts: list[str], *, reference_date: date | None = None) -> list[dict]:
        self.started.set()
        self.calls.append((list(texts), reference_date))
        self.threads.add(threading.get_ident())
        if self.delay_s:
            threading.Event().wait(self.delay_s)
        if self.fail_on is not None and self.fail_on in texts:
            raise ValueError(f"cannot parse {self.fail_on!r}")
        return [{"text": t, "intent": {"name": f"i-{t}"}, "ref": reference_date} for t in texts]


async def test_concurrent_requests_share_one_batch_and_keep_their_own_results() -> None:
    model = RecordingModel()
    parser = BatchingParser(model, window_s=0.05)
    texts = [f"message {i}" for i in range(10)]
    results = await asyncio.gather(*(parser.parse(t, TODAY) for t in texts))
    assert [r["text"] for r in results] == texts
    assert [r["intent"]["name"] for r in results] == [f"i-{t}" for t in texts]
    assert model.calls == [(texts, TODAY)]
    assert parser.batch_sizes == [10]
    await parser.aclose()


async def test_runs_off_the_event_loop_thread() -> None:
    model = RecordingModel()
    parser = BatchingParser(model)
    await parser.parse("hello", TODAY)
    assert threading.get_ident() not in model.threads
    await parser.aclose()


async def test_a_lone_request_is_a_batch_of_one_and_does_not_wait_long() -> None:
    model = RecordingModel()
    parser = BatchingParser(model, window_s=0.002)
    result = await parser.parse("alone", TODAY)
    assert result["text"] == "alone"
    assert model.calls == [(["alone"], TODAY)]
    assert parser.batch_sizes == [1]
    await parser.aclose()


async def test_batches_are_capped_at_max_batch() -> None:
    model = RecordingModel()
    parser = BatchingParser(model, max_batch=4, window_s=0.05)
    texts = [str(i) for i in range(10)]
    results = await asyncio.gather(*(parser.parse(t, TODAY) for t in texts))
    assert [r["text"] for r in results] == texts
    assert all(len(call[0]) <= 4 for call in model.calls)
    assert sum(parser.batch_sizes) == 10
    await parser.aclose()


async def test_different_reference_dates_get_their_own_call() -> None:
    model = RecordingModel()
    parser = BatchingParser(model, window_s=0.05)
    other = date(2026, 12, 1)
    a, b, c = await asyncio.gather(
        parser.parse("a", TODAY), parser.parse("b", other), parser.parse("c", TODAY)
    )
    assert (a["ref"], b["ref"], c["ref"]) == (TODAY, other, TODAY)
    assert sorted(model.calls, key=lambda c: c[0]) == [(["a", "c"], TODAY), (["b"], other)]
    await parser.aclose()


async def test_an_error_reaches_only_the_caller_whose_message_caused_it() -> None:
    model = RecordingModel(fail_on="bad")
    parser = BatchingParser(model, window_s=0.05)
    results = await asyncio.gather(
        parser.parse("good 1", TODAY),
        parser.parse("bad", TODAY),
        parser.parse("good 2", TODAY),
        return_exceptions=True,
    )
    assert results[0]["text"] == "good 1"
    assert isinstance(results[1], ValueError) and "bad" in str(results[1])
    assert results[2]["text"] == "good 2"
    # The parser keeps working after a failure.
    assert (await parser.parse("later", TODAY))["text"] == "later"
    await parser.aclose()


async def test_model_without_parse_many_falls_back_to_parse() -> None:
    class ParseOnly:
        def parse(self, text: str, *, reference_date: Any = None) -> dict:
            return {"text": text.upper()}

    parser = BatchingParser(ParseOnly(), window_s=0.02)
    a, b = await asyncio.gather(parser.parse("x", TODAY), parser.parse("y", TODAY))
    assert (a["text"], b["text"]) == ("X", "Y")
    await parser.aclose()


async def test_a_caller_cancelled_while_queued_is_skipped() -> None:
    model = RecordingModel(delay_s=0.2)
    parser = BatchingParser(model, window_s=0.0)
    first = asyncio.create_task(parser.parse("first", TODAY))
    await asyncio.to_thread(model.started.wait, 2)  # the worker is busy with "first"
    doomed = asyncio.create_task(parser.parse("doomed", TODAY))
    kept = asyncio.create_task(parser.parse("kept", TODAY))
    await asyncio.sleep(0)
    doomed.cancel()
    assert (await first)["text"] == "first"
    assert (await kept)["text"] == "kept"
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert all("doomed" not in texts for texts, _ in model.calls)
    await parser.aclose()


async def test_a_caller_cancelled_mid_batch_does_not_disturb_the_others() -> None:
    model = RecordingModel(delay_s=0.1)
    parser = BatchingParser(model, window_s=0.05)
    a = asyncio.create_task(parser.parse("a", TODAY))
    b = asyncio.create_task(parser.parse("b", TODAY))
    await asyncio.to_thread(model.started.wait, 2)
    a.cancel()
    assert (await b)["text"] == "b"
    with pytest.raises(asyncio.CancelledError):
        await a
    assert (await parser.parse("c", TODAY))["text"] == "c"
    await parser.aclose()


async def test_aclose_cancels_waiting_callers() -> None:
    model = RecordingModel(delay_s=0.2)
    parser = BatchingParser(model, window_s=0.0)
    pending = asyncio.create_task(parser.parse("x", TODAY))
    await asyncio.to_thread(model.started.wait, 2)
    await parser.aclose()
    with pytest.raises(asyncio.CancelledError):
        await pending


def test_works_across_event_loops() -> None:
    parser = BatchingParser(RecordingModel())
    assert asyncio.run(parser.parse("one", TODAY))["text"] == "one"
    assert asyncio.run(parser.parse("two", TODAY))["text"] == "two"


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        BatchingParser(RecordingModel(), max_batch=0)
    with pytest.raises(ValueError):
        BatchingParser(RecordingModel(), window_s=-1)


async def test_without_company_a_lone_request_does_not_wait_the_window() -> None:
    model = RecordingModel()
    parser = BatchingParser(model, window_s=30.0, company=lambda: False)
    # With the 30 s window this would time out; alone, the batch runs at once.
    result = await asyncio.wait_for(parser.parse("alone", TODAY), timeout=10)
    assert result["text"] == "alone"
    assert parser.batch_sizes == [1]
    await parser.aclose()


async def test_with_company_the_window_gathers_later_arrivals() -> None:
    model = RecordingModel()
    parser = BatchingParser(model, window_s=0.5, company=lambda: True)
    first = asyncio.ensure_future(parser.parse("first", TODAY))
    await asyncio.sleep(0.01)  # the worker has taken "first" and is waiting the window
    second = await parser.parse("second", TODAY)
    assert (await first)["text"] == "first" and second["text"] == "second"
    assert model.calls == [(["first", "second"], TODAY)]
    await parser.aclose()


async def test_the_cache_answers_a_repeated_message_without_the_model() -> None:
    model = RecordingModel()
    parser = BatchingParser(model, cache_size=2)
    first = await parser.parse("balance", TODAY)
    first["intent"]["name"] = "changed by the caller"  # a caller's change stays its own
    again = await parser.parse("balance", TODAY)
    assert again["intent"]["name"] == "i-balance"
    assert model.calls == [(["balance"], TODAY)]
    await parser.parse("balance", date(2026, 11, 21))  # another day: parsed again
    await parser.parse("Balance", TODAY)  # another text: parsed again (offsets would differ)
    assert (parser.cache_hits, parser.cache_misses) == (1, 3)
    await parser.parse("balance", TODAY)  # the oldest of 3 in a cache of 2: dropped
    assert len(model.calls) == 4 and (parser.cache_hits, parser.cache_misses) == (1, 4)
    await parser.aclose()


async def test_without_a_cache_every_message_is_parsed() -> None:
    model = RecordingModel()
    parser = BatchingParser(model)
    for _ in range(3):
        await parser.parse("balance", TODAY)
    assert len(model.calls) == 3 and (parser.cache_hits, parser.cache_misses) == (0, 0)
    await parser.aclose()
