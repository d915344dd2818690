"""The result zip, streamed while it is downloaded and never built on disk.

Entries are stored, not deflated (images are already compressed), so the
exact size is known up front and the response carries a Content-Length.
The reports it holds are written once by `reports` when the job finishes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from zipstream import ZipStream

from oilspill.server import results
from oilspill.server.jobs import ItemStatus, Job
from oilspill.server.reports import REPORTS
from oilspill.server.store import JobStore


class ResultZip:
    """A sized zip stream of one job's results; iterate it (blocking) to get its bytes."""

    def __init__(self, stream: ZipStream) -> None:
        self._stream = stream
        self.size = len(stream)

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream


def entries(store: JobStore, job: Job) -> Iterator[tuple[str, Path]]:
    """Every (name in the zip, file) of a finished job's results (blocking: it stats files)."""
    for item in job.items:
        if item.status is ItemStatus.DONE:
            suffix = results.overlay_suffix(item.name, item.fmt)
            yield item.name, store.out_path(job.id, item.index, suffix)
            if not item.masks:  # the backend gave an annotated picture only
                continue
            mask = store.out_path(job.id, item.index, results.mask_suffix(item.mask_name))
            yield item.mask_name, mask
            preview = store.out_path(job.id, item.index, results.MASK_PREVIEW_SUFFIX)
            if preview.exists():  # jobs finished by versions before it have none
                yield item.mask_preview_name, preview
    for name in REPORTS:
        yield name, store.job_dir(job.id) / name


def build(store: JobStore, job: Job) -> ResultZip:
    """A sized zip stream of a finished job's results (blocking)."""
    zs = ZipStream(sized=True)
    for name, path in entries(store, job):
        zs.add_path(str(path), name)
    return ResultZip(zs)
