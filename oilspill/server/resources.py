"""The wire forms of a job: the legacy `/api/status` body and the v1 job resource."""

from __future__ import annotations

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
