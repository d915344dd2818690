"""The CPU pool: blocking work in threads, at most `--workers` at once.

One limiter for all CPU work, so segmentation can never starve the threads
that serve files and uploads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import cv2

T = TypeVar("T")


class CpuPool:
    """Runs blocking CPU work in threads, at most `size` at once (0 runs it inline, for tools)."""

    def __init__(self, size: int) -> None:
        self.size = size
        # Our threads are the parallelism: OpenCV's own pool would add threads on top,
        # so `--workers 1` used 1.3 cores and 2 workers fought over 2 cores.
        cv2.setNumThreads(1)
        self._limiter = anyio.CapacityLimiter(max(size, 1))

    async def run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        call = functools.partial(func, *args, **kwargs)
        if self.size == 0:
            return call()
        return await anyio.to_thread.run_sync(call, limiter=self._limiter, abandon_on_cancel=True)
