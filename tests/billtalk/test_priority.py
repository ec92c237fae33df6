"""Media work at a lower CPU priority (billtalk/priority.py): real threads, real processes.

Every check reads the kernel's own view of a thread (its scheduling class and nice
value by thread id), not a mock.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor

import pytest

from billtalk.priority import MAX_NICE, MediaSettings, lower_process, lower_thread, thread_ids

pytestmark = pytest.mark.skipif(
    not hasattr(os, "SCHED_IDLE") or not os.path.isdir("/proc/self/task"),
    reason="Linux scheduling classes",
)


def scheduling_of_thread(tid: int) -> tuple[str, int]:
    """A thread's CPU scheduling class (``"idle"``, ``"other"``...) and nice value (Linux)."""
    names = {getattr(os, f"SCHED_{n.upper()}", None): n for n in ("other", "batch", "idle")}
    policy = os.sched_getscheduler(tid)
    return names.get(policy, str(policy)), os.getpriority(os.PRIO_PROCESS, tid)


def threads_of(pid: int) -> dict[int, tuple[str, int]]:
    """Every thread of process ``pid`` with its class and nice value."""
    out = {}
    for name in os.listdir(f"/proc/{pid}/task"):
        try:
            out[int(name)] = scheduling_of_thread(int(name))
        except (ProcessLookupError, FileNotFoundError):  # a thread that just ended
            continue
    return out


def _in_a_thread(nice: int, idle: bool) -> tuple[str, int]:
    seen: list[tuple[str, int]] = []

    def work() -> None:
        lower_thread(0, nice, idle)
        seen.append(scheduling_of_thread(threading.get_native_id()))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return seen[0]


def test_a_thread_lowers_itself_and_no_other() -> None:
    mine = scheduling_of_thread(threading.get_native_id())
    assert _in_a_thread(5, True) == ("idle", min(MAX_NICE, mine[1] + 5))
    assert _in_a_thread(3, False) == ("other", min(MAX_NICE, mine[1] + 3))
    assert _in_a_thread(0, False) == mine
    assert scheduling_of_thread(threading.get_native_id()) == mine  # the caller untouched


def _child_with_an_early_thread(nice: int, idle: bool) -> dict[str, list[tuple[str, int]]]:
    """In a spawned child: a thread started before the lowering (as a library may start a
    pool at import), then :func:`lower_process`, then a thread started after it."""
    stop = threading.Event()
    early = threading.Thread(target=stop.wait, daemon=True)
    early.start()
    before = [scheduling_of_thread(t) for t in thread_ids()]
    lower_process(nice, idle)
    seen: list[tuple[str, int]] = []
    late = threading.Thread(
        target=lambda: seen.append(scheduling_of_thread(threading.get_native_id()))
    )
    late.start()
    late.join()
    after = [scheduling_of_thread(t) for t in thread_ids()]
    stop.set()
    return {"before": before, "after": after, "late": seen}


def test_lower_process_lowers_threads_started_before_it_and_after_it() -> None:
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        seen = pool.submit(_child_with_an_early_thread, 7, True).result(timeout=60)
    assert len(seen["before"]) >= 2  # the main thread and the early one
    assert set(seen["before"]) == {("other", mine)}
    assert len(seen["after"]) == len(seen["before"])
    assert set(seen["after"]) == {("idle", min(MAX_NICE, mine + 7))}
    assert seen["late"] == [("idle", min(MAX_NICE, mine + 7))]


def _own_threads() -> dict[int, tuple[str, int]]:
    return threads_of(os.getpid())


def test_the_face_pool_runs_every_thread_at_the_media_priority(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The face check's real process pool (dlib loaded): every thread of the child at the
    configured niceness and class (before this change: ("other", its parent's nice))."""
    pytest.importorskip("dlib")
    from billtalk.priority import get_media_settings
    from biometrics.face.pool import make_executor

    monkeypatch.setenv("BILLTALK_MEDIA_NICE", "6")  # the spawned child reads it
    get_media_settings.cache_clear()
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    pool = make_executor(1)
    try:
        threads = pool.submit(_own_threads).result(timeout=180)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        get_media_settings.cache_clear()
    assert threads
    assert set(threads.values()) == {("idle", min(MAX_NICE, mine + 6))}
    assert scheduling_of_thread(threading.get_native_id())[0] == "other"  # parent untouched


def test_the_defaults_and_the_off_switch() -> None:
    assert (MediaSettings().nice, MediaSettings().idle) == (10, True)
    off = MediaSettings(nice=0, idle=False)
    mine = scheduling_of_thread(threading.get_native_id())
    assert _in_a_thread(off.nice, off.idle) == mine
