"""The TTL scheduler wakes for the earliest deadline, including ones added while it sleeps."""

from __future__ import annotations

import asyncio
import time

from oilspill.server.expiry import Expiry


def test_deadlines_fire_in_order_and_new_ones_wake_it() -> None:
    fired: list[str] = []

    async def on_expire(job_id: str, at: float) -> None:
        fired.append(job_id)

    async def scenario() -> None:
        expiry = Expiry(on_expire)
        task = asyncio.create_task(expiry.run())
        now = time.time()
        expiry.schedule("late", now + 60)
        await asyncio.sleep(0.05)
        expiry.schedule("soon", now + 0.2)
        expiry.schedule("past", now - 1)
        await asyncio.sleep(0.5)
        task.cancel()

    asyncio.run(scenario())
    assert fired == ["past", "soon"]


def test_a_failing_deletion_does_not_stop_the_scheduler() -> None:
    fired: list[str] = []

    async def on_expire(job_id: str, at: float) -> None:
        fired.append(job_id)
        if job_id == "bad":
            raise OSError("disk gone")

    async def scenario() -> None:
        expiry = Expiry(on_expire)
        task = asyncio.create_task(expiry.run())
        expiry.schedule("bad", time.time())
        expiry.schedule("good", time.time() + 0.1)
        await asyncio.sleep(0.4)
        task.cancel()

    asyncio.run(scenario())
    assert fired == ["bad", "good"]
