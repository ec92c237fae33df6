"""Heavy media work at a lower CPU priority than text turns (Linux).

A text turn costs ~20-30 ms of CPU. Decoding a voice note or checking a face (dlib)
costs hundreds. On a two-core machine they compete, and a text turn that wakes while
both cores are busy with media work waits for one. Linux's niceness and scheduling
class are per thread, so media work runs in child processes whose every thread is of
lower priority: the kernel then runs a text turn's thread first and gives media what
is left. On an idle machine nothing changes (a niced thread runs at full speed when
nothing else wants the core).

:func:`lower_process` is a child process's initializer. It lowers *every* thread the
child already has: a library may start a thread pool at import (OpenBLAS can), before
an initializer runs, and such threads would otherwise keep the parent's priority (on
the 2-vCPU test machine the face and voice children had one thread at that point).
Threads started later inherit the priority of the thread that starts them, so pools
that ONNX Runtime, torch or OpenMP create on first use are lowered too. The face
check's process pool uses it with the ``BILLTALK_MEDIA_*`` settings
(:func:`lower_media_process`); the voice note decoders (:mod:`bot.voice_input`) with
their own (``BILLTALK_DIALOGUE_VOICE_NICE`` / ``_IDLE``).

Only processes, never a thread of the bot's own process: work that holds the GIL (dlib
holds it for a whole detection; pocketsphinx and numpy for stretches) on a starved
low-priority thread would keep the event loop, and so every text turn of the process,
waiting for it (priority inversion).

Settings (``BILLTALK_MEDIA_*``): ``NICE`` (10: the niceness added, capped at 19) and
``IDLE`` (true: also Linux's ``SCHED_IDLE`` class, which runs a thread only on a core
no normal thread wants; a waking text turn preempts it at once). ``NICE=0`` with
``IDLE=false`` leaves media work at its parent's priority, as before.

Caveat: niceness and ``SCHED_IDLE`` rank threads of one scheduling group. With
autogroup (``/proc/sys/kernel/sched_autogroup_enabled``), each session (``setsid``) is
a group that gets its share of the CPU whatever its threads' niceness, so a job in
another session, even one run with ``chrt -i 0 nice -n 19``, still takes up to its
group's share from this one (see docs/telegram.md).
"""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The highest (weakest) niceness Linux knows.
MAX_NICE = 19


class MediaSettings(BaseSettings):
    """How much lower heavy media work runs than text turns (``BILLTALK_MEDIA_*``)."""

    model_config = SettingsConfigDict(env_prefix="BILLTALK_MEDIA_", extra="ignore", frozen=True)

    #: Niceness added to every thread of a media process (0: none; capped at 19).
    nice: int = Field(default=10, ge=0, le=39)
    #: Whether a media process's threads also run in Linux's SCHED_IDLE class.
    idle: bool = True


@lru_cache(maxsize=1)
def get_media_settings() -> MediaSettings:
    """The process's media-priority settings, read once from the environment."""
    return MediaSettings()


def lower_thread(tid: int, nice: int, idle: bool) -> None:
    """Lower the thread ``tid`` (a Linux thread id; 0: the calling thread) by ``nice``
    (capped at 19) and, with ``idle``, put it in ``SCHED_IDLE``.

    Where the class or the call is not available (not Linux, a sandbox refusing it) the
    thread stays as it is: priority is an optimisation, never a reason to fail.
    """
    if idle:
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
    if nice:
        with contextlib.suppress(AttributeError, OSError):
            current = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(MAX_NICE, current + nice))


def thread_ids() -> list[int]:
    """This process's Linux thread ids (empty where ``/proc`` is missing)."""
    try:
        return sorted(int(name) for name in os.listdir("/proc/self/task"))
    except OSError:
        return []


def lower_process(nice: int, idle: bool) -> None:
    """Lower every thread this process has now (a child process's initializer); threads
    started later inherit the priority of the thread that starts them."""
    for tid in thread_ids() or [0]:
        lower_thread(tid, nice, idle)


def lower_media_process() -> None:
    """:func:`lower_process` with the ``BILLTALK_MEDIA_*`` settings."""
    settings = get_media_settings()
    lower_process(settings.nice, settings.idle)


__all__ = [
    "MediaSettings",
    "get_media_settings",
    "lower_media_process",
    "lower_process",
    "lower_thread",
    "thread_ids",
]
