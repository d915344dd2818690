"""The CPU pool's worker processes: one that dies fails the calls it ran, and the pool goes on."""

from __future__ import annotations

import asyncio
import os

import pytest

from oilspill.backends.cpu import CpuPool
from oilspill.errors import WorkerDied


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
