"""The TTL scheduler: deletes each finished job when its deadline passes.

Deadlines are wall-clock times stored in the job's meta file, so they
survive a restart. One task sleeps until the earliest deadline, or until a
new deadline is scheduled.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Expiry:
    def __init__(self, on_expire: Callable[[str, float], Awaitable[None]]) -> None:
        self._on_expire = on_expire
        self._heap: list[tuple[float, str]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        """False once the scheduler's task has ended (nothing would expire any more)."""
        return self._task is None or not self._task.done()

    def __repr__(self) -> str:
        return f"<Expiry scheduled={len(self._heap)}>"

    def schedule(self, job_id: str, at: float) -> None:
        heapq.heappush(self._heap, (at, job_id))
        self._wake.set()

    async def run(self) -> None:
        self._task = asyncio.current_task()
        while True:
            self._wake.clear()
            now = time.time()
            while self._heap and self._heap[0][0] <= now:
                at, job_id = heapq.heappop(self._heap)
                try:
                    await self._on_expire(job_id, at)
                except Exception:
                    log.exception("job %s: could not delete expired results", job_id)
            delay = self._heap[0][0] - time.time() if self._heap else None
            # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancellation
            # that arrives just as the event is set, and shutdown would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
