"""The service: jobs in memory, their files on disk, the runner and the TTL scheduler.

`async with Service(settings)` recovers jobs from the data folder, starts the
worker pool and the scheduler in one TaskGroup, and on exit stops them in
order. The HTTP app talks only to this object; it never touches the runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import shutil
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import anyio.to_thread

from oilspill.backends import CpuPool, make_segmenter
from oilspill.backends.base import Segmenter
from oilspill.backends.sar import LocalSegmenter
from oilspill.config import Settings
from oilspill.errors import ArchiveTooLarge, Busy, DiskFull, ExpiredOrDeleted, NotFound, NotReady
from oilspill.server import intake
from oilspill.server.expiry import Expiry
from oilspill.server.jobs import Job, JobStatus
from oilspill.server.limits import ClientLimits
from oilspill.server.metrics import Metrics
from oilspill.server.runner import Runner, apply_result
from oilspill.server.store import JobStore, check_id, new_id
from oilspill.server.webhooks import Webhooks

log = logging.getLogger(__name__)


class Service:
    READ_GRACE_S = 3600.0  # longest a deletion waits for the downloads that started before it

    def __init__(
        self,
        settings: Settings,
        segmenter: Segmenter | None = None,
        *,
        metrics: Metrics | None = None,
        page_files: bool = True,
        durable: bool = True,
    ) -> None:
        """`page_files`: make the page's previews (`results.write_outputs`); `durable`:
        fsync each record and meta (`JobStore`); both off for `oilspill segment`."""
        self.settings = settings
        self.store = JobStore(settings.data_dir, durable=durable)
        self.cpu = CpuPool(settings.worker_count, settings.processes)
        self.segmenter = segmenter or make_segmenter(settings, self.cpu)
        self.metrics = metrics or Metrics(self.segmenter.name)
        self.clients = ClientLimits(settings.max_jobs_per_client, settings.uploads_per_minute)
        self.webhooks = Webhooks(settings, self.metrics)
        workers = concurrency = settings.worker_count
        if settings.backend in ("http", "v2"):  # remote: images in flight, not CPU threads
            endpoints = len(settings.ml_urls) if settings.backend == "http" else 1
            workers = concurrency = max(concurrency, settings.ml_concurrency * endpoints)
        elif isinstance(self.segmenter, LocalSegmenter):  # whole images: each process's next
            concurrency = self.cpu.slots  # image waits in its queue (`cpu.AHEAD`)
        self.runner = Runner(
            self.store,
            self.segmenter,
            self.cpu,
            concurrency=concurrency,
            workers=workers,
            ttl=settings.ttl,
            read_options=settings.read_options,
            on_finished=self._finished,
            metrics=self.metrics,
            page_files=page_files,
        )
        self.expiry = Expiry(self._expire)
        self.jobs: dict[str, Job] = {}
        self._by_hash: dict[str, str] = {}
        # Ids of jobs that expired or were deleted since start-up, so clients can tell
        # "gone" from "never existed"; bounded, oldest forgotten first.
        self._gone: OrderedDict[str, str] = OrderedDict()
        self.accepting = False
        self._readers: dict[str, int] = {}  # job id -> requests streaming its files
        self._idle: dict[str, asyncio.Event] = {}  # set when a job's last reader is done
        self._deleting: set[asyncio.Task[None]] = set()
        self._data_size = (0, float("-inf"))  # (bytes, monotonic time measured)
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
        await self.segmenter.start()  # a remote model that is missing stops us here, saying so
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
            self.runner.workers,
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
        for task in list(self._deleting):  # files stay; the restart deletes them
            task.cancel()
        await asyncio.gather(*self._deleting, return_exceptions=True)
        await self.webhooks.aclose(grace=min(5.0, self.settings.shutdown_grace))
        await self._stack.aclose()
        await self.segmenter.aclose()
        await self.cpu.aclose()
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
                self._schedule_expiry(job)  # its webhook went when it finished
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

    async def check_disk(self) -> int:
        """Bytes the data folder may still take: above the disk's free-space floor and under
        the folder's cap (if one is set). DiskFull when there is no room."""
        usage = await anyio.to_thread.run_sync(shutil.disk_usage, self.store.root)
        floor = self.settings.min_free_mb << 20
        room = usage.free - floor
        if room <= 0:
            raise DiskFull(
                f"the server's disk has {usage.free >> 20} MiB free, under the {floor >> 20} MiB "
                "it keeps free (--min-free-mb): nothing was kept; try again later, or ask its "
                "operator to free space"
            )
        cap = self.settings.max_data_mb << 20
        if cap:
            held = await self._data_bytes()
            if held >= cap:
                raise DiskFull(
                    f"the data folder holds {held >> 20} MiB, its cap is {cap >> 20} MiB "
                    "(--max-data-mb): nothing was kept; try again when results have expired"
                )
            room = min(room, cap - held)
        return room

    async def _data_bytes(self, max_age: float = 2.0) -> int:
        """The data folder's size, measured off the loop, at most `max_age` seconds old."""
        now = time.monotonic()
        if now - self._data_size[1] > max_age:
            self._data_size = (await anyio.to_thread.run_sync(_folder_bytes, self.store.root), now)
        return self._data_size[0]

    async def create_job(
        self,
        zip_path: Path,
        upload_name: str = "",
        *,
        owner: str | None = None,
        client: str | None = None,
        callback_url: str | None = None,
    ) -> Job:
        """Unpack an uploaded zip into a new job and queue it. The zip is deleted either way.

        `owner` is the API key's fingerprint (who may list and delete it), `client` whom
        the per-client limits count it for, `callback_url` where its webhook goes."""
        extra = {"owner": owner, "callback_url": callback_url}
        try:
            fill = functools.partial(intake.unpack, zip_path)
            return await self._new_job(fill, upload_name, extra, client)
        finally:
            await anyio.to_thread.run_sync(lambda: zip_path.unlink(missing_ok=True))

    async def create_job_from_files(self, paths: list[Path]) -> Job:
        """A job over image files on disk (the `segment` command); the files are left alone."""
        return await self._new_job(functools.partial(intake.collect, paths))

    async def _new_job(
        self,
        fill: Callable[[Path, intake.Limits], intake.Unpacked],
        upload_name: str = "",
        extra: dict[str, Any] | None = None,
        client: str | None = None,
    ) -> Job:
        self.check_accepting()
        room = await self.check_disk()
        limits = dataclasses.replace(
            self.limits, max_uncompressed_bytes=min(self.limits.max_uncompressed_bytes, room)
        )
        job_id = new_id()
        job_dir = self.store.job_dir(job_id)
        try:
            try:
                unpacked = await anyio.to_thread.run_sync(fill, job_dir / "input", limits)
            except ArchiveTooLarge as exc:
                if limits.max_uncompressed_bytes < self.limits.max_uncompressed_bytes:
                    raise DiskFull(
                        f"{exc.message}; the data folder has room for {room >> 20} MiB (above "
                        "the disk's free-space floor, --min-free-mb, and under its cap, "
                        "--max-data-mb)"
                    ) from exc
                raise
            (job_dir / "out").mkdir()
            job = Job(
                id=job_id,
                user_hash=new_id(),
                items=unpacked.items,
                skipped=unpacked.skipped,
                settings=self._job_settings(extra or {}),
                upload_name=upload_name,
            )
            await anyio.to_thread.run_sync(self.store.save, job)
        except BaseException:
            await anyio.to_thread.run_sync(self.store.delete, job_id)
            raise
        self._register(job, client)
        self.runner.enqueue(job)
        if job.processed == job.total:  # every entry failed at intake already
            await self.runner.finish(job)
        return job

    def _job_settings(self, extra: dict[str, Any]) -> dict[str, Any]:
        s = self.settings
        chosen = {"backend": s.backend, "ttl": s.ttl, "pixel_size_m": s.pixel_size_m}
        return chosen | {k: v for k, v in extra.items() if v is not None}

    def _register(self, job: Job, client: str | None = None) -> None:
        self.jobs[job.id] = job
        self._by_hash[job.user_hash] = job.id
        owner = job.settings.get("owner")
        client = client or (f"key:{owner}" if owner else None)
        if client and not job.finished:
            self.clients.track(job.id, client)

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(check_id(job_id))
        if job is None:
            raise self._missing("job", job_id)
        return job

    def get_owned(self, job_id: str, owner: str | None) -> Job:
        """A job the caller may act on: with keys on (`owner` given), one of its key's jobs
        or one created while keys were off. Another key's job is 'not found', as an
        unknown id is: nothing says it exists."""
        job = self.get(job_id)
        if owner is not None and job.settings.get("owner") not in (None, owner):
            raise self._missing("job", job_id)
        return job

    def owned_jobs(self, owner: str) -> list[Job]:
        """The jobs of one API key, newest first."""
        mine = [j for j in self.jobs.values() if j.settings.get("owner") == owner]
        return sorted(mine, key=lambda j: j.created_at, reverse=True)

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

    # Who owns a job's files: the runner writes them until the job is final; readers
    # (downloads, images) hold a lease while they stream; expiry and DELETE first make the
    # job unreachable (new requests get 404/410), then wait for the leases to end, then
    # delete. A download never loses a file it is streaming, and no request gets a 500.
    def lease(self, job: Job) -> None:
        """Take a read lease on a live job's files (release it with `release`)."""
        if job.id not in self.jobs:
            raise self._missing("job", job.id)
        self._readers[job.id] = self._readers.get(job.id, 0) + 1

    def release(self, job_id: str) -> None:
        left = self._readers.get(job_id, 0) - 1
        if left > 0:
            self._readers[job_id] = left
            return
        self._readers.pop(job_id, None)
        idle = self._idle.pop(job_id, None)
        if idle is not None:
            idle.set()

    async def _delete_when_unread(self, job_id: str) -> None:
        if self._readers.get(job_id):
            idle = self._idle.setdefault(job_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.READ_GRACE_S):
                    await idle.wait()
        await anyio.to_thread.run_sync(self.store.delete, job_id)

    async def _remove(self, job_id: str, why: str) -> None:
        """Delete a forgotten job's files now, or once its readers are done (in the background)."""
        if not self._readers.get(job_id):
            await anyio.to_thread.run_sync(self.store.delete, job_id)
            log.info("job %s %s; files deleted", job_id, why)
            return
        log.info("job %s %s; files go when its %d downloads end", job_id, why,
                 self._readers[job_id])  # fmt: skip
        task = asyncio.create_task(self._delete_when_unread(job_id), name=f"delete-{job_id}")
        self._deleting.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._deleting.discard(t)
            if not t.cancelled() and t.exception() is None:
                log.info("job %s %s; files deleted", job_id, why)
            elif not t.cancelled():
                log.error("job %s: could not delete its files: %r", job_id, t.exception())

        task.add_done_callback(done)

    async def delete(self, job_id: str, owner: str | None = None) -> None:
        """Cancel a job; its files go as soon as no download or image request reads them.

        An unfinished job's webhook says it was cancelled."""
        job = self.get_owned(job_id, owner)
        self.runner.cancel(job.id)
        await anyio.to_thread.run_sync(self.store.mark_deleted, job.id)
        self._forget(job, "deleted")
        if not job.finished:
            self.webhooks.send(job, "job.cancelled")
        await self._remove(job.id, "deleted on request")

    def _forget(self, job: Job, reason: Literal["expired", "deleted"]) -> None:
        self.jobs.pop(job.id, None)
        self.clients.untrack(job.id)
        self._by_hash.pop(job.user_hash, None)
        for key in (job.id, job.user_hash):
            self._gone[key] = reason
        while len(self._gone) > 20_000:
            self._gone.popitem(last=False)

    def _finished(self, job: Job) -> None:
        """A job reached its final state: it counts for its client no more, its deadline is
        set, its webhook goes."""
        self.clients.untrack(job.id)
        self._schedule_expiry(job)
        self.webhooks.send(job)

    def _schedule_expiry(self, job: Job) -> None:
        if job.expires_at is not None:
            self.expiry.schedule(job.id, job.expires_at)

    def job_states(self) -> list[str]:
        """Each job's v1 state (queued, running, succeeded, failed), for the metrics."""
        names = {
            JobStatus.PENDING: "queued",
            JobStatus.STARTED: "running",
            JobStatus.SUCCESS: "succeeded",
            JobStatus.FAILURE: "failed",
        }
        return [names[job.status] for job in self.jobs.values()]

    async def data_bytes(self) -> int:
        """Bytes in the data folder (measured off the loop, at most 2 s old)."""
        return await self._data_bytes()

    async def _expire(self, job_id: str, deadline: float) -> None:
        job = self.jobs.get(job_id)
        if job is None or job.expires_at != deadline:
            return
        self._forget(job, "expired")
        await self._remove(job_id, "expired")


def _folder_bytes(root: Path) -> int:
    """Bytes of every file under `root` (blocking; a walk, no file is opened)."""
    total = 0
    stack = [root]
    while stack:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
    return total
