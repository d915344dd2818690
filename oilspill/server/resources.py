"""The wire forms of a job: the legacy `/api/status` body and the v1 job resource."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Collection
from typing import Any

from oilspill.server.jobs import ItemStatus, Job, JobStatus


def errors(job: Job) -> list[dict[str, str]]:
    """Each failed image and why."""
    return [{"file": i.name, "error": i.error or ""} for i in job.items if i.error]


def legacy_status(job: Job) -> dict[str, Any]:
    """The old `/api/status` body: result only once the job has finished.

    A job whose every image failed on its own is SUCCESS here, with each file in
    `errors`, as the earlier system answered (its web client shows nothing on FAILURE);
    the v1 resource says `failed`. FAILURE is kept for a job that failed as a whole.
    """
    result: Any = None
    status = job.status
    if status is JobStatus.FAILURE and job.items and all(i.error for i in job.items):
        status = JobStatus.SUCCESS
    if status is JobStatus.SUCCESS:
        result = {
            "archive": f"/api/download/{job.user_hash}",
            "processed_files": [i.name for i in job.items if i.status is ItemStatus.DONE],
            "errors": errors(job),
        }
    elif status is JobStatus.FAILURE:
        result = job.error or "the job failed"
    return {
        "status": status.value,
        "result": result,
        "processed": job.processed,
        "total": job.total,
    }


PAGE_LIMIT = 1000  # images per page of the job resource (and the most one page may ask)


def job_resource(
    job: Job,
    offset: int = 0,
    limit: int = PAGE_LIMIT,
    processing: Collection[int] = (),
) -> dict[str, Any]:
    """The v1 job resource: the whole summary, and images[offset:offset + limit].

    An image's status is pending, processing (a worker has it: `processing` lists
    those), done or failed. `page.next` links the following page while there is one.
    """
    base = f"/api/v1/jobs/{job.id}"
    limit = max(1, min(limit, PAGE_LIMIT))
    offset = max(0, offset)
    state = {
        JobStatus.PENDING: "queued",
        JobStatus.STARTED: "running",
        JobStatus.SUCCESS: "succeeded",
        JobStatus.FAILURE: "failed",
    }[job.status]
    images = []
    for item in job.items[offset : offset + limit]:
        entry = item.to_dict()
        entry["status"] = item.status.value
        if item.status is ItemStatus.PENDING and item.index in processing:
            entry["status"] = "processing"
        if item.status is ItemStatus.DONE:
            img = f"{base}/images/{item.index}"
            entry["links"] = {
                "overlay": f"{img}/overlay",
                # An annotated picture only: it is its own thumbnail (none was made).
                "thumbnail": f"{img}/thumbnail" if item.masks else f"{img}/overlay",
                "detail": img,
            }
            if item.masks:  # else the backend gave an annotated picture only
                entry["links"] |= {
                    "original": f"{img}/original",
                    "mask": f"{img}/mask",
                    "mask-preview": f"{img}/mask-preview",
                }
        images.append(entry)
    links = {"job": base, "legacy_status": f"/api/status/{job.id}"}
    if job.finished:
        links["result"] = f"{base}/result.zip"
        links["legacy_download"] = f"/api/download/{job.user_hash}"
    return {
        "id": job.id,
        "user_hash": job.user_hash,
        "state": state,
        "status": job.status.value,
        "error": job.error,
        "progress": {"done": job.processed, "total": job.total, "failed": job.failed},
        "images": images,
        "page": {
            "offset": offset,
            "limit": limit,
            "total": job.total,
            "next": f"{base}?offset={offset + limit}&limit={limit}"
            if offset + limit < job.total
            else None,
        },
        "skipped": job.skipped,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "expires_at": job.expires_at,
        "seconds_left": job.seconds_left(),
        "ttl": job.settings.get("ttl"),
        "upload_name": job.upload_name,
        "links": links,
    }


class PageCache:
    """The last encoded page of each job resource, reused while nothing it shows changed.

    The page polls a running job once a second per viewer, and a job of 100 images takes
    ~1.2 ms to build and encode on the event loop: between two finished images, every
    poll can share one. The key is everything the page reads that can change: the job's
    status, error, counts, the images being processed, and the seconds left (finished
    jobs). Images change only by being processed, which moves the counts. At most
    `size` pages are kept (least recently used out).
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._pages: OrderedDict[tuple[str, int, int], tuple[tuple[Any, ...], bytes]] = (
            OrderedDict()
        )

    def body(self, job: Job, offset: int, limit: int, processing: Collection[int] = ()) -> bytes:
        """`job_resource(job, offset, limit, processing)` as JSON bytes."""
        key = (
            job.status,
            job.error,
            job.processed,
            job.failed,
            tuple(sorted(processing)),
            job.seconds_left(),
        )
        where = (job.id, offset, limit)
        cached = self._pages.get(where)
        if cached is not None and cached[0] == key:
            self._pages.move_to_end(where)
            return cached[1]
        resource = job_resource(job, offset, limit, processing)
        # As starlette's JSONResponse encodes it.
        body = json.dumps(
            resource, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
        ).encode()
        self._pages[where] = (key, body)
        self._pages.move_to_end(where)
        while len(self._pages) > self.size:
            self._pages.popitem(last=False)
        return body
