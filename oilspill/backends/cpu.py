"""The CPU pool: blocking work in threads, at most `--workers` at once.

One limiter for all CPU work, so segmentation can never starve the threads
that serve files and uploads. With `processes`, whole images of the embedded
detector run in worker processes instead (`run_isolated`): their Python and
NumPy work then holds no lock the event loop needs (the GIL), at the price of a
process per worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import functools
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.synchronize import Event
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import cv2

from oilspill.errors import NotRun, WorkerDied

T = TypeVar("T")
log = logging.getLogger(__name__)
WORKER_NICE = 10  # worker processes' niceness, above the service's
# Whole-image calls waiting in each worker process's queue beyond the one it runs, so that
# it starts its next image as it ends one. Without them a process idled through the round
# trip to the service's event loop and back (result, commit, next call) between images:
# 5 ms median an image with two busy workers and commits in flight, ~4 % of their time.
AHEAD = 1


class CpuPool:
    """Runs blocking CPU work in threads, at most `size` at once (0 runs it inline, for tools)."""

    def __init__(self, size: int, processes: bool = False) -> None:
        self.size = size
        # Our threads are the parallelism: OpenCV's own pool would add threads on top,
        # so `--workers 1` used 1.3 cores and 2 workers fought over 2 cores.
        cv2.setNumThreads(1)
        keep_freed_memory()
        self._limiter = anyio.CapacityLimiter(max(size, 1))
        # Threads of their own, below the service's priority (`_thread_init`), not anyio's
        # shared ones: the event loop's thread then gets a core first when images fill both.
        self._threads = ThreadPoolExecutor(
            max(size, 1), thread_name_prefix="oilspill-cpu", initializer=_thread_init
        )
        self._isolate = processes and size > 0
        self._processes: ProcessPoolExecutor | None = None  # started by the first call
        # In processes, each runs one call and holds the next (AHEAD): at most `slots` in
        # flight. Threads run all the calls they have, so they take `size`.
        self.slots = size * (1 + AHEAD) if self._isolate else max(size, 1)
        self._in_flight = anyio.CapacityLimiter(self.slots)
        self._stop: Event | None = None  # the processes' "start no more calls" (`stop_taking`)
        self._stopping = False

    def _new_processes(self) -> ProcessPoolExecutor:
        """The worker processes, this process's children, which die with it (`_child_init`).

        Forked on Linux while this process runs no other thread (the first call, made at
        the service's start, before any; the CLI keeps OpenBLAS from starting its own):
        a fork has this process's modules already imported and is ready in ~0.1 s, not the
        ~0.4 s a fresh interpreter takes to import them, which `oilspill segment` paid before
        its first image. Otherwise (a replacement once threads run, whose locks a fork would
        copy held; other systems) they are fresh interpreters (spawn). The pool forks them
        all at its first call, before it starts threads of its own.
        """
        method = "fork" if sys.platform.startswith("linux") and _threads() == 1 else "spawn"
        context = multiprocessing.get_context(method)
        self._stop = context.Event()
        if self._stopping:
            self._stop.set()
        return ProcessPoolExecutor(
            self.size, context, initializer=_child_init, initargs=(self._stop,)
        )

    def stop_taking(self) -> None:
        """The service is stopping: the worker processes finish the calls they run, and the
        calls waiting for them (`AHEAD`) raise NotRun at once instead of running."""
        self._stopping = True
        if self._stop is not None:
            self._stop.set()

    @property
    def processes(self) -> bool:
        """True when whole images run in worker processes (`run_isolated`)."""
        return self._isolate

    async def run_isolated(self, func: Callable[..., T], *args: Any) -> T:
        """`func(*args)` in a worker process when there are some, else as `run` does; the
        arguments and the result cross by pickling, so keep them small (paths, records).
        Up to `slots` calls are taken at once: those beyond one a process wait, already
        sent, in the pool's queue, and each process takes the next as it ends one.

        A worker process that dies (the kernel's OOM killer, a crash in a native library)
        breaks the pool and every call running in it: those raise WorkerDied, and the
        next calls get a fresh pool."""
        if not self._isolate:
            return await self.run(func, *args)
        async with self._in_flight:
            loop = asyncio.get_running_loop()
            if self._processes is None:
                self._processes = self._new_processes()
            pool = self._processes
            try:
                # No await between the pool's making and this submit: a fork happens here.
                return await loop.run_in_executor(
                    pool, functools.partial(_unless_stopping, func, *args)
                )
            except BrokenProcessPool as exc:
                if self._processes is pool:  # the first caller to see it replaces it
                    log.error("a worker process died; starting new ones")
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._processes = self._new_processes()
                raise WorkerDied(
                    "the worker process segmenting this image died (out of memory, or a "
                    "crash in a native library)"
                ) from exc

    async def aclose(self) -> None:
        """Stop the worker processes and threads: queued calls are dropped, running ones end
        first (the runner has already waited for its images, up to the shutdown grace)."""
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._processes is not None:
            pool, self._processes = self._processes, None
            await anyio.to_thread.run_sync(functools.partial(pool.shutdown, cancel_futures=True))

    async def run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`func(*args, **kwargs)` in one of the pool's threads. A cancelled caller stops
        waiting; the call runs on to its end in its thread, which the pool does not give
        to another call before then."""
        call = functools.partial(func, *args, **kwargs)
        if self.size == 0:
            return call()
        async with self._limiter:
            loop = asyncio.get_running_loop()
            context = contextvars.copy_context()  # the caller's log context, as anyio does
            return await loop.run_in_executor(self._threads, context.run, call)


def _threads() -> int:
    """Threads this process runs, native ones too (Linux's count), else Python's."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[17])
    except (OSError, ValueError, IndexError):
        return threading.active_count()


def _thread_init() -> None:
    """A CPU thread: below the service in the kernel's eyes, as the worker processes are
    (Linux keeps a nice value per thread; elsewhere it would be the whole process's)."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)


def keep_freed_memory() -> None:
    """glibc: keep the arrays an image frees for the next image, rather than give them back
    to the kernel and fault them in again, page by page.

    An image allocates and frees tens of arrays of a few MiB. By default glibc maps such
    blocks afresh or trims its heap's free top after each image, and the kernel then zeroes
    and maps every page again: thousands of page faults and several ms of system CPU an
    image at 1250x650 (`python bench/allocator.py`). Fixed at the largest values glibc's own
    sliding thresholds reach (blocks under 32 MiB from the heap, up to 64 MiB of free heap
    kept), the faults stop after the first image, and a process keeps at most 64 MiB it is
    not using. Larger arrays (big scenes) are mapped and returned as before. Elsewhere
    (musl, macOS) nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (glibc's own: these mallopt options are its)
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 32 << 20)
    libc.mallopt(m_trim_threshold, 64 << 20)


_STOP: Event | None = None  # in a worker process: set when the service stops (`stop_taking`)


def _unless_stopping(func: Callable[..., T], *args: Any) -> T:
    """A worker process's call: run, unless the service has begun to stop meanwhile."""
    if _STOP is not None and _STOP.is_set():
        raise NotRun("the service is stopping; the image is processed after its restart")
    return func(*args)


def _child_init(stop: Event | None = None) -> None:
    global _STOP
    _STOP = stop
    # A forked worker starts with the service's signal set-up: the event loop's wakeup fd
    # (a signal here would reach the service's loop) and its handlers (the server's SIGTERM
    # one would keep it alive when its pool terminates it). A Ctrl-C reaches the whole
    # process group: the service decides when its workers stop (they finish their image
    # within the shutdown grace, and die with the service).
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)  # one image per process: the processes are the parallelism
    keep_freed_memory()
    _die_with_parent()
    # Below the service in the kernel's eyes: when the cores are busy with images, the
    # process that answers the API (and hands out the work) still runs first.
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICE)


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the service dies, even by SIGKILL, so no
    worker outlives it (elsewhere workers exit when the service closes the pool)."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the service died before the line above ran
        os._exit(1)
