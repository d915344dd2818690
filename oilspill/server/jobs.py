"""Job records: what a job is and its status.

A `Job` is plain data. The runner changes it, the store persists it, and
`resources` renders it for clients. `to_meta`/`from_meta` are the on-disk form.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field, fields
from typing import Any


class JobStatus(enum.StrEnum):
    """Wire strings of the legacy API (Celery's names)."""

    PENDING = "PENDING"  # queued, no image started yet
    STARTED = "STARTED"  # at least one image is being processed
    SUCCESS = "SUCCESS"  # every image was handled; some may have failed on their own
    FAILURE = "FAILURE"  # the job as a whole failed: no image could be processed


class ItemStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for a worker
    DONE = "done"  # segmented, outputs written
    FAILED = "failed"  # could not be read or segmented; `error` says why


META_VERSION = 1  # of the meta.json layout; raise it when a change needs a migration


class NewerMeta(ValueError):
    """A meta file written by a newer version of oilspill."""


@dataclass
class Item:
    """One image of a job, from intake to its result summary."""

    index: int
    name: str  # decoded name inside the upload; the annotated image's name in the result zip
    mask_name: str  # "masks/<stem>.png" (or .tif for GeoTIFF inputs), unique in the zip
    fmt: str  # real format found by content; "" when the content is not an image
    status: ItemStatus = ItemStatus.PENDING
    error: str | None = None
    # What kind of failure, for clients to word it in their language (`error` says it in
    # English): bad_image, not_an_image, too_large, disk_full, out_of_memory, missing_input,
    # not_saved, backend_error, cancelled, internal_error.
    error_code: str | None = None
    # Counts are None when the backend gave no mask (an annotated picture only): nothing
    # was counted, which is not the same as nothing found.
    masks: bool = True  # False: no mask, no slick records (see `masks`)
    slicks: int | None = 0
    lookalikes: int | None = 0
    ships: int | None = 0
    oil_pixels: int | None = 0
    oil_fraction: float | None = 0.0
    oil_area_km2: float | None = None
    max_confidence: float | None = None
    confidences: list[float] = field(default_factory=list)  # of each oil slick, highest first
    width: int = 0
    height: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The item as JSON-ready data, shallow (its `confidences` list is shared): a deep
        `asdict` per item made a page of 1000 images cost ~20 ms to render."""
        return {name: getattr(self, name) for name in _ITEM_FIELDS}

    @property
    def mask_preview_name(self) -> str:
        """The mask as a colour picture in the result zip: `masks/<stem>.preview.png`."""
        return mask_preview_name(self.mask_name)


_ITEM_FIELDS = tuple(f.name for f in fields(Item))


def mask_preview_name(mask_name: str) -> str:
    return mask_name.rpartition(".")[0] + ".preview.png"


@dataclass
class Job:
    id: str
    user_hash: str
    items: list[Item]
    skipped: list[str] = field(default_factory=list)
    status: JobStatus = JobStatus.PENDING
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    expires_at: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    upload_name: str = ""  # the zip's file name as the client sent it

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def processed(self) -> int:
        return sum(1 for item in self.items if item.status is not ItemStatus.PENDING)

    @property
    def failed(self) -> int:
        return sum(1 for item in self.items if item.status is ItemStatus.FAILED)

    @property
    def finished(self) -> bool:
        return self.status in (JobStatus.SUCCESS, JobStatus.FAILURE)

    def seconds_left(self, now: float | None = None) -> int:
        if not self.finished or self.expires_at is None:
            return 0
        return max(0, int(self.expires_at - (time.time() if now is None else now)))

    # On-disk form -------------------------------------------------------------
    def to_meta(self) -> dict[str, Any]:
        meta = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "items"}
        meta["items"] = [item.to_dict() for item in self.items]
        meta["version"] = META_VERSION
        return meta

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Job:
        """A job from its meta file, of this version or an older one.

        Fields an older version did not write take their defaults; fields a version
        since dropped are ignored. A newer version's meta raises NewerMeta: this
        version must not rewrite what it does not understand.
        """
        version = int(meta.get("version", 1))
        if version > META_VERSION:
            raise NewerMeta(f"meta version {version}, newer than this oilspill's {META_VERSION}")
        known = {f.name for f in fields(Item)} - {"status"}
        items = [
            Item(
                **{k: v for k, v in raw.items() if k in known},
                status=ItemStatus(raw.get("status", ItemStatus.PENDING.value)),
            )
            for raw in meta.get("items", [])
        ]
        return cls(
            id=meta["id"],
            user_hash=meta["user_hash"],
            items=items,
            skipped=list(meta.get("skipped", [])),
            status=JobStatus(meta["status"]),
            error=meta.get("error"),
            created_at=meta["created_at"],
            started_at=meta.get("started_at"),
            finished_at=meta.get("finished_at"),
            expires_at=meta.get("expires_at"),
            settings=dict(meta.get("settings", {})),
            upload_name=meta.get("upload_name", ""),
        )
