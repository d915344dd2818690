"""Per-client limits: unfinished jobs at once and uploads per minute; past them 429.

A client is its API key (by fingerprint) when it shows one, else its address (as
uvicorn gives it: the proxy's X-Forwarded-For when the proxy is in
--forwarded-allow-ips). An upload holds a slot of the client's jobs from its first
byte, so parallel uploads cannot overshoot; the slot becomes the job, which frees
it when it finishes or is deleted. In memory only: after a restart the jobs that
resume count for their key, not for an address.
"""

from __future__ import annotations

import collections
import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.requests import Request

from oilspill.errors import TooManyRequests

WINDOW_S = 60.0


def client_of(request: Request, owner: str | None) -> str:
    """The identity limits count by: `key:<fingerprint>`, else `ip:<address>`."""
    if owner is not None:
        return f"key:{owner}"
    return f"ip:{request.client.host if request.client else 'unknown'}"


class ClientLimits:
    def __init__(
        self,
        max_jobs: int,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_jobs = max_jobs  # 0: no limit
        self.per_minute = per_minute  # 0: no limit
        self._clock = clock
        self._starts: dict[str, collections.deque[float]] = {}  # client -> upload times
        self._uploading: collections.Counter[str] = collections.Counter()
        self._jobs: dict[str, str] = {}  # unfinished job id -> client
        self._checks = 0

    def __repr__(self) -> str:
        return f"<ClientLimits clients={len(self._starts)} jobs={len(self._jobs)}>"

    def unfinished(self, client: str) -> int:
        return self._uploading[client] + sum(1 for c in self._jobs.values() if c == client)

    @contextlib.contextmanager
    def upload(self, client: str) -> Iterator[None]:
        """Hold one of `client`'s job slots while its upload is received and unpacked.

        TooManyRequests (429, Retry-After) when the client is past a limit."""
        self._check_rate(client)
        if self.max_jobs and self.unfinished(client) >= self.max_jobs:
            raise TooManyRequests(
                f"this client has {self.unfinished(client)} unfinished jobs, its limit "
                f"(--max-jobs-per-client {self.max_jobs}); wait for one to finish",
                retry_after=15,
            )
        self._uploading[client] += 1
        try:
            yield
        finally:
            self._uploading[client] -= 1
            if self._uploading[client] <= 0:
                del self._uploading[client]

    def _check_rate(self, client: str) -> None:
        now = self._clock()
        self._sweep(now)
        if not self.per_minute:
            return
        starts = self._starts.setdefault(client, collections.deque())
        while starts and starts[0] <= now - WINDOW_S:
            starts.popleft()
        if len(starts) >= self.per_minute:
            wait = max(1, math.ceil(starts[0] + WINDOW_S - now))
            raise TooManyRequests(
                f"this client started {len(starts)} uploads in the last minute, its limit "
                f"(--uploads-per-minute {self.per_minute}); try again in {wait} s",
                retry_after=wait,
            )
        starts.append(now)

    def _sweep(self, now: float) -> None:
        """Forget clients idle for a whole window (every 256 checks): memory stays bounded
        by the clients of the last minute."""
        self._checks += 1
        if self._checks % 256:
            return
        idle = [c for c, s in self._starts.items() if not s or s[-1] <= now - WINDOW_S]
        for client in idle:
            del self._starts[client]

    def track(self, job_id: str, client: str) -> None:
        """Count an unfinished job for its client (until `untrack`)."""
        self._jobs[job_id] = client

    def untrack(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)
