"""The in-process worker pool: images of all jobs flow through one queue.

Workers are asyncio tasks in a TaskGroup; each takes one image at a time,
decodes, segments and writes it through the CPU pool (off the event loop),
then hands its commit (the record and its fsync, the input's removal, and the
report parts where the worker did not write them) to a task of its own and
takes the next image: the CPU slot does not wait for the disk. Each worker has
at most one commit in flight, and an image counts as processed only once its
commit is done. Images of one job and of different jobs run in parallel up to
the pool size; with worker processes there are twice as many tasks, so that
each process's next image already waits in the pool's queue when it ends one
(`cpu.AHEAD`). A failing image is caught and stored as that image's error; it
never cancels the group or fails its job.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread

from oilspill.backends import CpuPool
from oilspill.backends.base import Segmenter
from oilspill.backends.sar import LocalSegmenter
from oilspill.errors import ImageError, NotRun, WorkerDied, is_disk_full
from oilspill.io import images
from oilspill.server import logs, reports, results
from oilspill.server.jobs import Item, ItemStatus, Job, JobStatus
from oilspill.server.metrics import Metrics
from oilspill.server.store import JobStore

log = logging.getLogger(__name__)


def apply_result(item: Item, record: dict[str, Any]) -> None:
    """Copy an image's saved record onto its item (after processing, or at restart)."""
    if record.get("error"):
        item.status = ItemStatus.FAILED
        item.error = record["error"]
        item.error_code = record.get("error_code", "internal_error")
    else:
        item.status = ItemStatus.DONE
        for key, value in record.get("summary", {}).items():
            setattr(item, key, value)
    item.seconds = record.get("seconds", 0.0)


def settled(item: Item, record: dict[str, Any]) -> Item:
    """A copy of the item as its record will make it (the item itself changes only once
    the record is saved)."""
    done = dataclasses.replace(item)
    apply_result(done, record)
    return done


SHARED_KEY = "_share_written"  # in a record: its report parts are written (not saved)


def process_and_share(item: Item, parts: Path, *args: Any) -> dict[str, Any]:
    """What a worker thread or process runs for an image of the embedded detector
    (blocking): `results.process_file(*args)`, then the image's share of the job's reports
    at `parts` (`reports.write_share`), so that the service's commit only writes the record.
    Made here, the share costs ~1 ms of CPU; in the service's thread, beside the event loop
    and two busy workers, it took 1.4-2.8 ms (scratch).

    The record's seconds are the image's own (decode, segment, write), not the time it
    waited in the pool's queue."""
    record = results.process_file(*args)
    record["seconds"] = round(sum(record.get(results.STAGES_KEY, {}).values()), 4)
    reports.write_share(parts, settled(item, record), record)
    record[SHARED_KEY] = True
    return record


class Runner:
    def __init__(
        self,
        store: JobStore,
        segmenter: Segmenter,
        cpu: CpuPool,
        *,
        concurrency: int,
        ttl: int,
        workers: int | None = None,
        read_options: images.ReadOptions,
        on_finished: Callable[[Job], None],
        metrics: Metrics | None = None,
        page_files: bool = True,
    ) -> None:
        self.store = store
        self.segmenter = segmenter
        self.cpu = cpu
        self.concurrency = concurrency  # images in work at once
        # What does that work: CPU workers (or a model server's images in flight). Worker
        # processes also hold their next image (`cpu.AHEAD`): concurrency is more.
        self.workers = min(workers or concurrency, concurrency)
        self.ttl = ttl
        self.read_options = read_options
        self.on_finished = on_finished
        self.metrics = metrics
        self.page_files = page_files  # the page's previews (`results.write_outputs`)
        self._queue: asyncio.Queue[tuple[Job, Item]] = asyncio.Queue()
        self._cancelled: set[str] = set()
        self._remaining: dict[str, int] = {}  # images of each job not yet processed
        self._busy: set[asyncio.Task[None]] = set()
        self._commits: set[asyncio.Task[None]] = set()  # images segmented, being committed
        self._in_progress: dict[str, set[int]] = {}  # job id -> indices being processed now
        self._workers: list[asyncio.Task[None]] = []
        self._stopping = False
        self.done = self.failed = 0

    def __repr__(self) -> str:
        return (
            f"<Runner workers={self.workers} busy={self.busy} queued="
            f"{self._queue.qsize()} done={self.done} failed={self.failed}>"
        )

    @property
    def queued_images(self) -> int:
        return self._queue.qsize()

    @property
    def busy(self) -> int:
        """Workers with an image (images in work, at most one a worker)."""
        return min(len(self._busy), self.workers)

    def processing(self, job_id: str) -> frozenset[int]:
        """Indices of a job's images a worker has in hand right now (with worker processes:
        running, or next in the pool's queue)."""
        return frozenset(self._in_progress.get(job_id, ()))

    @property
    def alive(self) -> bool:
        """True while every worker task runs (or the pool is stopping on purpose)."""
        return self._stopping or all(not t.done() for t in self._workers)

    def enqueue(self, job: Job) -> None:
        pending = [item for item in job.items if item.status is ItemStatus.PENDING]
        if pending:
            self._remaining[job.id] = len(pending)
        for item in pending:
            self._queue.put_nowait((job, item))
        log.info("job %s queued: %d images, %d to process", job.id, job.total, len(pending))

    def cancel(self, job_id: str) -> None:
        """Skip the job's queued images; images already running finish and are discarded."""
        self._cancelled.add(job_id)
        self._remaining.pop(job_id, None)

    def start(self, tg: asyncio.TaskGroup) -> None:
        self._workers = [
            tg.create_task(self._work(), name=f"worker-{n}") for n in range(self.concurrency)
        ]

    async def stop(self, grace: float) -> None:
        """Stop taking images, let running ones finish and be committed within `grace`
        seconds, then cancel."""
        self._stopping = True
        self.cpu.stop_taking()  # images waiting for a worker process stay pending
        for task in self._workers:
            if task not in self._busy:
                task.cancel()
        deadline = time.monotonic() + grace
        if self._busy:
            log.info("waiting up to %.0fs for %d images in work", grace, len(self._busy))
            _, late = await asyncio.wait(set(self._busy), timeout=grace)
            for task in late:
                task.cancel()
        if self._commits:  # the busy workers' last images have joined them by now
            left = max(deadline - time.monotonic(), 0.0)
            _, late_commits = await asyncio.wait(set(self._commits), timeout=left)
            for commit in late_commits:
                commit.cancel()

    async def _work(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        committing: asyncio.Task[None] | None = None  # this worker's previous image's commit
        while not self._stopping:
            job, item = await self._queue.get()
            if job.id in self._cancelled or item.status is not ItemStatus.PENDING:
                continue
            self._busy.add(task)
            logs.job_id.set(job.id)  # the log lines of this image carry its job
            self._in_progress.setdefault(job.id, set()).add(item.index)
            handed_off = False
            try:
                record = await self._process(job, item)
                if committing is not None:
                    await asyncio.shield(committing)  # at most one commit in flight per worker
                if record is not None:
                    committing = asyncio.create_task(self._commit_task(job, item, record))
                    self._commits.add(committing)
                    committing.add_done_callback(self._commits.discard)
                    handed_off = True
            except NotRun:  # the service stops: the image stays pending, for the restart
                log.info("job %s: %s left for the restart (the service stops)", job.id, item.name)
            except Exception as exc:  # a full disk must not end the worker, nor stall the job
                await self._not_saved(job, item, exc)
            finally:
                self._busy.discard(task)
                if not handed_off:
                    self._leave(job, item)
                logs.job_id.set(None)

    async def _commit_task(self, job: Job, item: Item, record: dict[str, Any]) -> None:
        """Commit a segmented image, then count it: the job's last one finishes the job."""
        try:
            try:
                await anyio.to_thread.run_sync(self._commit, job, item, record)
            except FileNotFoundError:
                if job.id in self._cancelled:
                    return
                raise
            if job.id not in self._cancelled:
                await self._settle(job, item, record)
        except Exception as exc:
            await self._not_saved(job, item, exc)
        finally:
            self._leave(job, item)

    async def _not_saved(self, job: Job, item: Item, exc: Exception) -> None:
        """Settle an image whose results could not be saved (a full disk), once: if it was
        settled already, the failure came later (the job's finish), which
        `_finish_or_fail` has handled."""
        if job.id not in self._cancelled and item.status is ItemStatus.PENDING:
            log.error("job %s: could not record %s", job.id, item.name, exc_info=exc)
            failure = {"error": f"could not save results: {exc}", "error_code": "not_saved"}
            await self._settle(job, item, failure)

    def _leave(self, job: Job, item: Item) -> None:
        """The image is no longer in work (for the page's list of images in work)."""
        running = self._in_progress.get(job.id)
        if running is not None:
            running.discard(item.index)
            if not running:
                del self._in_progress[job.id]

    async def _process(self, job: Job, item: Item) -> dict[str, Any] | None:
        """Segment one image in the CPU pool; its record, or None if its job was cancelled."""
        if job.status is JobStatus.PENDING:
            job.status = JobStatus.STARTED
            job.started_at = time.time()
            log.info("job %s started", job.id)
            await anyio.to_thread.run_sync(self.store.save, job)
        started = time.monotonic()
        record = await self._segment(job, item)
        record.setdefault("seconds", round(time.monotonic() - started, 4))
        return None if job.id in self._cancelled else record

    async def _settle(self, job: Job, item: Item, record: dict[str, Any]) -> None:
        """Count a processed image; the job's last one finishes the job."""
        apply_result(item, record)
        if self.metrics is not None:
            self.metrics.image(item.status is ItemStatus.DONE)
        if item.status is ItemStatus.DONE:
            self.done += 1
        else:
            self.failed += 1
            log.warning("job %s: %s failed: %s", job.id, item.name, item.error)
        self._remaining[job.id] -= 1
        if self._remaining[job.id] == 0:
            del self._remaining[job.id]
            await self._finish_or_fail(job)

    async def _finish_or_fail(self, job: Job) -> None:
        """Finish the job; if its files cannot be written (a full disk), it fails, saying why.

        Either way it reaches a final state and its deadline, so the TTL deletes it, and
        the worker pool goes on with other jobs.
        """
        try:
            await self.finish(job)
        except Exception as exc:
            log.exception("job %s: could not write its reports or meta", job.id)
            job.status = JobStatus.FAILURE
            job.error = (
                f"could not write the job's results: {exc}; free disk space and upload again"
            )
            job.finished_at = time.time()
            job.expires_at = job.finished_at + self.ttl
            with contextlib.suppress(Exception):
                await anyio.to_thread.run_sync(self.store.save, job)
            self.on_finished(job)

    async def _segment(self, job: Job, item: Item) -> dict[str, Any]:
        path = self.store.input_path(job.id, item.index)
        try:
            if isinstance(self.segmenter, LocalSegmenter):
                whole = await self._whole_image(job, item, self.segmenter.pixel_size_m)
                for stage, seconds in whole.pop(results.STAGES_KEY, {}).items():
                    if self.metrics is not None:
                        self.metrics.stage(stage, seconds)
                return whole
            # A backend that sends the file itself gets it undecoded (`images.header`).
            read = images.load if self.segmenter.decodes else images.header
            started = time.monotonic()
            raster = await self.cpu.run(read, path, item.name, item.fmt, self.read_options)
            started = self._timed("decode", started)
            try:
                raster.source = path
                seg = await self.segmenter.segment(raster)
                started = self._timed("segment", started)
                out_dir = self.store.out_dir(job.id)
                record: dict[str, Any] = await self.cpu.run(
                    results.write_outputs,
                    raster,
                    seg,
                    out_dir,
                    item.index,
                    item.mask_name,
                    self.page_files,
                )
                self._timed("write", started)
                return record
            finally:
                raster.close()
        except NotRun:
            raise
        except ImageError as exc:
            return {"error": exc.message, "error_code": exc.code}
        except FileNotFoundError:
            if job.id in self._cancelled:
                return {"error": "cancelled", "error_code": "cancelled"}
            return {
                "error": "the image's input file is missing (was the data folder cleaned?)",
                "error_code": "missing_input",
            }
        except MemoryError:
            return {
                "error": "not enough memory to process this image",
                "error_code": "out_of_memory",
            }
        except OSError as exc:
            if is_disk_full(exc):
                return {
                    "error": "the server's disk filled up while writing this image's results",
                    "error_code": "disk_full",
                }
            log.exception("job %s: unexpected error on %s", job.id, item.name)
            return {
                "error": f"internal error while processing this image: {exc!r}",
                "error_code": "internal_error",
            }
        except Exception as exc:  # one image's bug must not end the worker
            log.exception("job %s: unexpected error on %s", job.id, item.name)
            return {
                "error": f"internal error while processing this image: {exc!r}",
                "error_code": "internal_error",
            }

    async def _whole_image(
        self, job: Job, item: Item, pixel_size_m: float | None
    ) -> dict[str, Any]:
        """The embedded detector's image in one call (`process_and_share`), in a worker
        thread or process. A dying worker process takes the pool's other images with it
        (running and waiting): each is tried once more, so an image that kills its worker
        again fails, and so may one that was in the pool both times."""
        call = functools.partial(
            process_and_share,
            item,
            self.store.out_path(job.id, item.index, reports.PARTS_SUFFIX),
            self.store.input_path(job.id, item.index),
            item.name,
            item.fmt,
            self.read_options,
            pixel_size_m,
            self.store.out_dir(job.id),
            item.index,
            item.mask_name,
            self.page_files,
        )
        try:
            return await self.cpu.run_isolated(call)
        except WorkerDied:
            log.warning("job %s: %s: worker process died; trying again", job.id, item.name)
        try:
            return await self.cpu.run_isolated(call)
        except WorkerDied as exc:
            raise WorkerDied(
                f"{exc.message}, twice on this image; it may need more memory than the "
                "server has: try it alone, or with fewer --workers"
            ) from exc

    def _timed(self, stage: str, started: float) -> float:
        """Record the seconds of a stage since `started`; return the time now."""
        now = time.monotonic()
        if self.metrics is not None:
            self.metrics.stage(stage, now - started)
        return now

    def _commit(self, job: Job, item: Item, record: dict[str, Any]) -> None:
        if not record.pop(SHARED_KEY, False):  # not written with the outputs
            reports.write_parts(self.store, job.id, settled(item, record), record)
        self.store.save_item_result(job.id, item.index, record)
        self.store.remove_input(job.id, item.index)

    async def finish(self, job: Job) -> None:
        """Write the reports and the final meta, then publish the final state.

        Clients see SUCCESS only once every file of the result zip exists.
        """
        ok = sum(1 for i in job.items if i.status is ItemStatus.DONE)
        final = dataclasses.replace(job, status=JobStatus.SUCCESS if ok else JobStatus.FAILURE)
        if not ok:
            first = next((i.error for i in job.items if i.error), "unknown error")
            final.error = f"none of the {job.total} images could be processed; first error: {first}"
        final.finished_at = time.time()
        final.expires_at = final.finished_at + self.ttl
        await anyio.to_thread.run_sync(self._finish_files, final)
        job.error, job.finished_at = final.error, final.finished_at
        job.expires_at, job.status = final.expires_at, final.status
        elapsed = job.finished_at - (job.started_at or job.created_at)
        log.info(
            "job %s %s: %d ok, %d failed in %.2fs",
            job.id,
            job.status.value,
            ok,
            job.failed,
            elapsed,
        )
        self.on_finished(job)

    def _finish_files(self, job: Job) -> None:
        reports.write_reports(self.store, job)
        self.store.save(job)
        shutil.rmtree(self.store.job_dir(job.id) / "input", ignore_errors=True)
