"""The CPU pool: a worker process that dies fails the calls it ran, and the pool goes on;
the memory an image frees is kept for the next one."""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
import time

import pytest

from oilspill.backends.cpu import CpuPool
from oilspill.errors import NotRun, WorkerDied


def test_a_dead_worker_process_fails_its_call_and_the_pool_is_replaced() -> None:
    async def scenario() -> int:
        pool = CpuPool(1, processes=True)
        try:
            with pytest.raises(WorkerDied, match="worker process"):
                await pool.run_isolated(os._exit, 3)  # the process dies mid-call
            result: int = await pool.run_isolated(pow, 2, 5)
            return result
        finally:
            await pool.aclose()

    assert asyncio.run(scenario()) == 32


def test_worker_processes_take_one_call_each_beyond_the_one_they_run() -> None:
    assert CpuPool(2, processes=True).slots == 4  # each process's next call waits queued
    assert CpuPool(2).slots == 2  # threads run every call they are given
    assert CpuPool(0, processes=True).slots == 1  # inline, for tools


def test_a_stopping_pool_finishes_the_running_call_and_runs_no_waiting_one() -> None:
    async def scenario() -> None:
        pool = CpuPool(1, processes=True)
        try:
            await pool.run_isolated(pow, 1, 1)  # the process is up and idle
            running = asyncio.ensure_future(pool.run_isolated(time.sleep, 1.0))
            waiting = asyncio.ensure_future(pool.run_isolated(pow, 2, 5))  # in the queue
            await asyncio.sleep(0.3)
            pool.stop_taking()
            await running  # ends as it would have
            with pytest.raises(NotRun, match="stopping"):
                await waiting
            with pytest.raises(NotRun):  # and so does any later call
                await pool.run_isolated(pow, 2, 6)
        finally:
            await pool.aclose()

    asyncio.run(scenario())


FAULTS = """
import resource, sys
import numpy as np
from oilspill.backends import cpu
if sys.argv[1] == "kept":
    cpu.keep_freed_memory()
def image():  # an image's worth of arrays of a few MiB, made and freed
    a = np.ones((650, 1250), np.float32)
    b = a * 2.0
    c = np.sqrt(b)
    return float(c[0, 0])
image()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    image()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc's malloc options",
)
def test_kept_memory_is_reused_by_the_next_image_without_page_faults() -> None:
    # 20 images of three 3.1 MiB arrays: glibc's defaults map (and fault in) most of
    # them afresh; kept, they come from the heap the first image grew.
    assert _faults("defaults") > 2000
    assert _faults("kept") < 200
