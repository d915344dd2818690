"""The result zip, streamed while it is downloaded and never built on disk.

Entries are stored, not deflated (images are already compressed), so the
exact size is known up front and the response carries a Content-Length.
`summary.csv`, `report.json` and `slicks.geojson` are made in memory from
the per-image records at download time.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zipstream import ZipStream

from oilspill import __version__, geo, results
from oilspill.jobs import ItemStatus, Job
from oilspill.segment import Georef, Slick
from oilspill.store import JobStore, write_atomic

SUMMARY_COLUMNS = (
    "name", "status", "slicks", "lookalikes", "ships", "oil_pixels", "oil_fraction",
    "oil_area_km2", "max_confidence", "width", "height", "error",
)  # fmt: skip


class ResultZip:
    """A sized zip stream of one job's results; iterate it (blocking) to get its bytes."""

    def __init__(self, stream: ZipStream) -> None:
        self._stream = stream
        self.size = len(stream)

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream


REPORTS = ("summary.csv", "report.json", "slicks.geojson")


def write_reports(store: JobStore, job: Job) -> None:
    """Write summary.csv, report.json and slicks.geojson once, when the job finishes.

    Building them reads every image's record (~1 s of CPU per 100 images), so
    downloads stream the written files instead of rebuilding them each time.
    """
    records = {item.index: store.load_item_result(job.id, item.index) or {} for item in job.items}
    contents = (
        summary_csv(job),
        json.dumps(report(job, records), ensure_ascii=False, indent=1).encode(),
        json.dumps(geojson(job, records), ensure_ascii=False).encode(),
    )
    for name, data in zip(REPORTS, contents, strict=True):
        write_atomic(store.job_dir(job.id) / name, data, fsync=False)


def entries(store: JobStore, job: Job) -> Iterator[tuple[str, Path]]:
    """Every (name in the zip, file) of a finished job's results."""
    for item in job.items:
        if item.status is ItemStatus.DONE:
            suffix = results.overlay_suffix(item.name, item.fmt)
            yield item.name, store.out_path(job.id, item.index, suffix)
            mask = store.out_path(job.id, item.index, results.mask_suffix(item.mask_name))
            yield item.mask_name, mask
    for name in REPORTS:
        yield name, store.job_dir(job.id) / name


def build(store: JobStore, job: Job) -> ResultZip:
    """A sized zip stream of a finished job's results (blocking)."""
    zs = ZipStream(sized=True)
    for name, path in entries(store, job):
        zs.add_path(str(path), name)
    return ResultZip(zs)


def summary_csv(job: Job) -> bytes:
    """One row per input: processed, failed or skipped."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for item in job.items:
        row = item.to_dict()
        row["status"] = item.status.value
        if item.status is not ItemStatus.DONE:
            row.update(slicks="", lookalikes="", ships="", oil_pixels="", oil_fraction="")
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in SUMMARY_COLUMNS])
    for name in job.skipped:
        writer.writerow([name, "skipped", *[""] * (len(SUMMARY_COLUMNS) - 3), "not an image"])
    return buf.getvalue().encode("utf-8")


def report(job: Job, records: dict[int, dict[str, Any]]) -> dict[str, Any]:
    images = []
    for item in job.items:
        record = records.get(item.index, {})
        entry: dict[str, Any] = {
            "name": item.name,
            "mask": item.mask_name if item.status is ItemStatus.DONE else None,
            "status": item.status.value,
            "error": item.error,
            "summary": record.get("summary"),
            "slicks": record.get("slicks", []),
            "ships": record.get("ships", []),
            "detector": record.get("info"),
            "georef": record.get("georef"),
            "product": geo.parse_s1_product_id(Path(item.name).name),
            "seconds": item.seconds,
        }
        images.append(entry)
    return {
        "oilspill": __version__,
        "job": {
            "id": job.id,
            "status": job.status.value,
            "error": job.error,
            "created_at": job.created_at,
            "finished_at": job.finished_at,
            "expires_at": job.expires_at,
            "settings": job.settings,
            "images": job.total,
            "failed": job.failed,
            "skipped": job.skipped,
        },
        "classes": {"0": "sea", "1": "oil", "2": "look-alike", "3": "ship", "4": "land"},
        "images": images,
    }


def geojson(job: Job, records: dict[int, dict[str, Any]]) -> dict[str, Any]:
    entries = []
    for item in job.items:
        record = records.get(item.index, {})
        if item.status is not ItemStatus.DONE:
            continue
        raw_georef = record.get("georef")
        georef = _georef(raw_georef) if raw_georef else None
        slicks = [_slick(s) for s in record.get("slicks", [])]
        entries.append((item.name, georef, slicks))
    return geo.slicks_geojson(entries)


def _georef(raw: dict[str, Any]) -> Georef:
    def tup(value: Any) -> Any:
        return tuple(value) if value is not None else None

    return Georef(
        pixel_size_m=tup(raw.get("pixel_size_m")),
        transform=tup(raw.get("transform")),
        epsg=raw.get("epsg"),
        gcps=tuple(tuple(g) for g in raw.get("gcps", ())),
    )


def _slick(raw: dict[str, Any]) -> Slick:
    fields = dict(raw)
    fields["centroid"] = tuple(fields["centroid"])
    fields["bbox"] = tuple(fields["bbox"])
    fields["polygon"] = [tuple(p) for p in fields["polygon"]]
    return Slick(**fields)
