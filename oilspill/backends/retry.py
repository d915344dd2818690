"""Retries of requests to model servers, shared by the http and v2 backends.

A connection error, a timeout, a 5xx or a 429 is worth another try (`Retry`);
the wait doubles from `BACKOFF_S` with full jitter, and a Retry-After header
(seconds or an HTTP date) is honoured up to the request timeout. Nothing else
is retried: a 4xx is the image's own error.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from oilspill.errors import BackendError

log = logging.getLogger(__name__)
T = TypeVar("T")

BACKOFF_S = 0.2  # first retry after 0.2-0.4 s, then doubling
BACKOFF_MAX_S = 10.0


class Retry(Exception):
    """A failure worth another try, on this or another endpoint."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.after = after  # seconds a Retry-After asked for, if any


def delay(attempt: int, after: float | None, timeout: float) -> float:
    """Seconds to wait before retry `attempt` + 1 (0-based): backoff with jitter, at least
    what Retry-After asked for (but never more than `timeout`)."""
    wait = min(BACKOFF_S * 2.0**attempt, BACKOFF_MAX_S)
    wait += random.uniform(0, wait)
    if after is not None:
        wait = max(wait, min(after, timeout))
    return wait


def retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks to wait (a number or an HTTP date), else None."""
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


async def with_retries(attempt: Callable[[], Awaitable[T]], retries: int, longest: float) -> T:
    """`attempt()` until it answers, at most `retries` + 1 times, waiting `delay` between
    tries that raise Retry (a Retry-After at most `longest` s, the request timeout);
    BackendError saying the last failure when none answered."""
    last = "no attempt was made"
    for n in range(retries + 1):
        try:
            return await attempt()
        except Retry as exc:
            last = exc.message
            if n == retries:
                break
            wait = delay(n, exc.after, longest)
            log.info("%s; retry %d of %d in %.2fs", last, n + 1, retries, wait)
            await asyncio.sleep(wait)
    raise BackendError(f"{last} (after {retries + 1} tries)")
