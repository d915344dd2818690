"""The data folder: where each job's files live, and crash-safe meta files.

Layout under `data_dir`:

    .uploads/<random>.zip      an upload being received (deleted at start-up)
    <job_id>/meta.json         the job record, written atomically
    <job_id>/input/<n>         image n as unpacked, deleted once processed
    <job_id>/out/<n>.*         image n's outputs (n as 5 digits; `results` names them);
                               <n>.record.json is written last and marks the image
                               as done (a restart redoes the rest)
    <job_id>/summary.csv, report.json, slicks.geojson
                               the job's reports, written once when it finishes

All functions here block; callers run them in a worker thread.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from oilspill.errors import NotFound
from oilspill.server.jobs import Job

log = logging.getLogger(__name__)

_ID = re.compile(r"^[0-9a-f]{32}$")
UPLOADS = ".uploads"
RECORD_SUFFIX = ".record.json"  # an image's record: its summary, slicks, ships, detector


def new_id() -> str:
    """128 random bits as 32 hex digits: unguessable and safe as a folder name."""
    return secrets.token_hex(16)


def check_id(value: str, what: str = "job") -> str:
    """Reject anything that is not an id we could have made, before it touches a path."""
    if not _ID.fullmatch(value):
        raise NotFound(f"no {what} {value[:80]!r}: ids are 32 lowercase hex digits")
    return value


def write_atomic(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Write, fsync, rename: readers see the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, value: Any, *, fsync: bool = True) -> None:
    write_atomic(path, json.dumps(value, ensure_ascii=False).encode(), fsync=fsync)


class JobStore:
    """Paths and persistence of jobs under one data folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uploads = root / UPLOADS

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.uploads, ignore_errors=True)
        self.uploads.mkdir()

    def job_dir(self, job_id: str) -> Path:
        return self.root / check_id(job_id)

    def input_path(self, job_id: str, index: int) -> Path:
        return self.job_dir(job_id) / "input" / f"{index:05d}"

    def out_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "out"

    def out_path(self, job_id: str, index: int, suffix: str) -> Path:
        return self.out_dir(job_id) / f"{index:05d}{suffix}"

    def new_upload_path(self) -> Path:
        return self.uploads / f"{new_id()}.zip"

    def save(self, job: Job) -> None:
        write_json(self.job_dir(job.id) / "meta.json", job.to_meta())

    def save_item_result(self, job_id: str, index: int, result: dict[str, Any]) -> None:
        # No fsync: losing this file in a power cut only means the image is redone.
        write_json(self.out_path(job_id, index, RECORD_SUFFIX), result, fsync=False)

    def load_item_result(self, job_id: str, index: int) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(
                self.out_path(job_id, index, RECORD_SUFFIX).read_bytes()
            )
        except (FileNotFoundError, ValueError):
            return None
        return data

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def load_all(self) -> list[Job]:
        """Read every job folder; delete folders that hold no readable job."""
        jobs = []
        for path in sorted(self.root.iterdir()):
            if path.name == UPLOADS:
                continue
            if not path.is_dir() or not _ID.fullmatch(path.name):
                log.warning("ignoring %s: not a job folder", path)
                continue
            try:
                job = Job.from_meta(json.loads((path / "meta.json").read_bytes()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("deleting orphaned folder %s (%s)", path.name, exc)
                shutil.rmtree(path, ignore_errors=True)
                continue
            jobs.append(job)
        return jobs
