"""Running dlib work off the event loop, in worker processes.

dlib holds the GIL for the whole of a detection or an encoding, so running it
in a thread would still stall the bot. Async callers submit the picklable
top-level functions below to a :class:`concurrent.futures.ProcessPoolExecutor`.
Workers start with ``spawn`` (safe beside asyncio and threads) and load the
models once each.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import TypeVar

import numpy as np

from billtalk.priority import lower_media_process
from biometrics.face.engine import FaceObservation, analyze, load_models
from biometrics.face.images import load_image
from biometrics.face.settings import FaceSettings
from biometrics.face.video import VideoAnalysis, analyze_video

T = TypeVar("T")


def observe_image(
    data: bytes,
    settings: FaceSettings,
    template: np.ndarray | None = None,
    windows: Sequence[tuple[float, float]] = (),
) -> FaceObservation:
    """Load a photo and observe its one face, with quality gates and the embedding.

    With a ``template``, the mirror pass runs only when the single-pass distance
    falls in one of ``windows`` (see :func:`biometrics.face.engine.mirror_windows`).
    """
    near = None if template is None else (template, tuple(windows))
    return analyze(load_image(data, settings), settings, near=near)


def observe_video(data: bytes, settings: FaceSettings) -> VideoAnalysis:
    """Decode a video note and observe the face in each sampled frame."""
    return analyze_video(data, settings)


def _warm_up() -> None:
    lower_media_process()
    load_models()


def make_executor(workers: int) -> ProcessPoolExecutor:
    """A process pool of ``workers`` processes with the dlib models loaded, every thread
    of each at the media priority (``BILLTALK_MEDIA_NICE`` / ``_IDLE``,
    :mod:`billtalk.priority`), so a face check does not take the cores from text turns."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_warm_up,
    )


async def run_in(executor: Executor, fn: Callable[..., T], *args: object) -> T:
    """Run ``fn(*args)`` in ``executor`` without blocking the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, fn, *args)
