"""The service: jobs in memory, their files on disk, the runner and the TTL scheduler.

`async with Service(settings)` recovers jobs from the data folder, starts the
worker pool and the scheduler in one TaskGroup, and on exit stops them in
order. The HTTP app talks only to this object; it never touches the runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import anyio.to_thread

from oilspill.backends import CpuPool, make_segmenter
from oilspill.backends.base import Segmenter
from oilspill.config import Settings
from oilspill.errors import Busy, ExpiredOrDeleted, NotFound, NotReady
from oilspill.server import intake
from oilspill.server.expiry import Expiry
from oilspill.server.jobs import Job
from oilspill.server.runner import Runner, apply_result
from oilspill.server.store import JobStore, check_id, new_id

log = logging.getLogger(__name__)


class Service:
    def __init__(self, settings: Settings, segmenter: Segmenter | None = None) -> None:
        self.settings = settings
        self.store = JobStore(settings.data_dir)
        self.cpu = CpuPool(settings.worker_count)
        self.segmenter = segmenter or make_segmenter(settings, self.cpu)
        concurrency = settings.worker_count
        if settings.backend == "http":
            concurrency = max(concurrency, settings.ml_concurrency)
        self.runner = Runner(
            self.store,
            self.segmenter,
            self.cpu,
            concurrency=concurrency,
            ttl=settings.ttl,
            read_options=settings.read_options,
            on_finished=self._finished,
        )
        self.expiry = Expiry(self._expire)
        self.jobs: dict[str, Job] = {}
        self._by_hash: dict[str, str] = {}
        # Ids of jobs that expired or were deleted since start-up, so clients can tell
        # "gone" from "never existed"; bounded, oldest forgotten first.
        self._gone: OrderedDict[str, str] = OrderedDict()
        self.accepting = False
        self._stack = contextlib.AsyncExitStack()
        self.limits = intake.Limits(
            max_entries=settings.max_entries,
            max_uncompressed_bytes=settings.max_uncompressed_bytes,
            max_ratio=settings.max_ratio,
            max_image_pixels=settings.max_image_pixels,
            polarisation=settings.polarisation.upper() or None,
        )

    def __repr__(self) -> str:
        return f"<Service jobs={len(self.jobs)} {self.runner!r} {self.expiry!r}>"

    # Lifecycle ---------------------------------------------------------------
    async def __aenter__(self) -> Service:
        await anyio.to_thread.run_sync(self.store.prepare)
        self._stack.callback(self.store.release)
        tg = await self._stack.enter_async_context(asyncio.TaskGroup())
        self.runner.start(tg)
        expiry_task = tg.create_task(self.expiry.run(), name="expiry")
        self._stack.callback(expiry_task.cancel)
        await self._recover()
        self.accepting = True
        log.info(
            "service ready: backend=%s workers=%d data=%s ttl=%ds",
            self.segmenter.name,
            self.runner.concurrency,
            self.store.root,
            self.settings.ttl,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.accepting = False
        await self.runner.stop(self.settings.shutdown_grace)
        await self._stack.aclose()
        await self.segmenter.aclose()
        log.info("service stopped: %r", self.runner)

    async def _recover(self) -> None:
        """Reload jobs from disk: finished ones until their deadline, unfinished ones resume."""
        jobs = await anyio.to_thread.run_sync(self.store.load_all)
        now = time.time()
        for job in jobs:
            if job.finished:
                if job.expires_at is not None and job.expires_at <= now:
                    await anyio.to_thread.run_sync(self.store.delete, job.id)
                    log.info("job %s expired while stopped; deleted", job.id)
                    continue
                self._register(job)
                self._finished(job)
                continue
            await anyio.to_thread.run_sync(self._reload_results, job)
            self._register(job)
            if job.processed == job.total:
                await self.runner.finish(job)
            else:
                log.info("job %s resumes: %d of %d done", job.id, job.processed, job.total)
                self.runner.enqueue(job)

    def _reload_results(self, job: Job) -> None:
        for item in job.items:
            record = self.store.load_item_result(job.id, item.index)
            if record is not None:
                apply_result(item, record)

    # Jobs --------------------------------------------------------------------
    def check_accepting(self) -> None:
        if not self.accepting:
            raise Busy("the service is shutting down; try again in a minute", retry_after=60)
        active = sum(1 for job in self.jobs.values() if not job.finished)
        if active >= self.settings.max_queued_jobs:
            raise Busy(
                f"{active} jobs are queued or running, the limit; try again shortly",
                retry_after=30,
            )

    async def create_job(self, zip_path: Path, upload_name: str = "") -> Job:
        """Unpack an uploaded zip into a new job and queue it. The zip is deleted either way."""
        try:
            fill = functools.partial(intake.unpack, zip_path)
            return await self._new_job(fill, upload_name)
        finally:
            await anyio.to_thread.run_sync(lambda: zip_path.unlink(missing_ok=True))

    async def create_job_from_files(self, paths: list[Path]) -> Job:
        """A job over image files on disk (the `segment` command); the files are left alone."""
        return await self._new_job(functools.partial(intake.collect, paths))

    async def _new_job(
        self, fill: Callable[[Path, intake.Limits], intake.Unpacked], upload_name: str = ""
    ) -> Job:
        self.check_accepting()
        job_id = new_id()
        job_dir = self.store.job_dir(job_id)
        try:
            unpacked = await anyio.to_thread.run_sync(fill, job_dir / "input", self.limits)
            (job_dir / "out").mkdir()
            job = Job(
                id=job_id,
                user_hash=new_id(),
                items=unpacked.items,
                skipped=unpacked.skipped,
                settings=self._job_settings(),
                upload_name=upload_name,
            )
            await anyio.to_thread.run_sync(self.store.save, job)
        except BaseException:
            await anyio.to_thread.run_sync(self.store.delete, job_id)
            raise
        self._register(job)
        self.runner.enqueue(job)
        if job.processed == job.total:  # every entry failed at intake already
            await self.runner.finish(job)
        return job

    def _job_settings(self) -> dict[str, Any]:
        s = self.settings
        return {"backend": s.backend, "ttl": s.ttl, "pixel_size_m": s.pixel_size_m}

    def _register(self, job: Job) -> None:
        self.jobs[job.id] = job
        self._by_hash[job.user_hash] = job.id

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(check_id(job_id))
        if job is None:
            raise self._missing("job", job_id)
        return job

    def get_by_hash(self, user_hash: str) -> Job:
        job_id = self._by_hash.get(check_id(user_hash, "result"))
        if job_id is None or job_id not in self.jobs:
            raise self._missing("result", user_hash)
        return self.jobs[job_id]

    def _missing(self, what: str, key: str) -> NotFound:
        reason = self._gone.get(key)
        if reason is not None:
            said = "expired" if reason == "expired" else "was deleted on request"
            return ExpiredOrDeleted(f"{what} {key} {said}; its files are deleted", reason=reason)
        return NotFound(f"no {what} {key}: it never existed here, or expired before a restart")

    def finished_job(self, job: Job) -> Job:
        if not job.finished:
            raise NotReady(
                f"job {job.id} is not finished ({job.processed}/{job.total} images); "
                "poll its status and download when it says SUCCESS"
            )
        return job

    async def delete(self, job_id: str) -> None:
        """Cancel a job and delete its files now."""
        job = self.get(job_id)
        self.runner.cancel(job.id)
        self._forget(job, "deleted")
        await anyio.to_thread.run_sync(self.store.delete, job.id)
        log.info("job %s deleted on request", job.id)

    def _forget(self, job: Job, reason: Literal["expired", "deleted"]) -> None:
        self.jobs.pop(job.id, None)
        self._by_hash.pop(job.user_hash, None)
        for key in (job.id, job.user_hash):
            self._gone[key] = reason
        while len(self._gone) > 20_000:
            self._gone.popitem(last=False)

    def _finished(self, job: Job) -> None:
        if job.expires_at is not None:
            self.expiry.schedule(job.id, job.expires_at)

    async def _expire(self, job_id: str, deadline: float) -> None:
        job = self.jobs.get(job_id)
        if job is None or job.expires_at != deadline:
            return
        self._forget(job, "expired")
        await anyio.to_thread.run_sync(self.store.delete, job_id)
        log.info("job %s expired; files deleted", job_id)
