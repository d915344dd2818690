"""The wire forms of a job: the legacy `/api/status` body and the v1 job resource."""

from __future__ import annotations

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


def job_resource(job: Job) -> dict[str, Any]:
    """The v1 job resource."""
    base = f"/api/v1/jobs/{job.id}"
    state = {
        JobStatus.PENDING: "queued",
        JobStatus.STARTED: "running",
        JobStatus.SUCCESS: "succeeded",
        JobStatus.FAILURE: "failed",
    }[job.status]
    images = []
    for item in job.items:
        entry = item.to_dict()
        entry["status"] = item.status.value
        if item.status is ItemStatus.DONE:
            img = f"{base}/images/{item.index}"
            entry["links"] = {
                "overlay": f"{img}/overlay",
                "original": f"{img}/original",
                "thumbnail": f"{img}/thumbnail",
                "mask": f"{img}/mask",
                "detail": img,
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
