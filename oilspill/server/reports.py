"""A finished job's reports: summary.csv, report.json and slicks.geojson.

Each image's share is made as it is committed (`write_parts`, from the record
that `results` returned); the files are joined once, when the job finishes;
`archive` streams them with the images.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from oilspill import __version__
from oilspill.io.geojson import slicks_geojson
from oilspill.io.georef import Georef
from oilspill.io.s1name import parse_s1_product_id
from oilspill.server.jobs import Item, ItemStatus, Job
from oilspill.server.store import JobStore, dumps, write_atomic

REPORTS = ("summary.csv", "report.json", "slicks.geojson")
SUMMARY_COLUMNS = (
    "name", "status", "slicks", "lookalikes", "ships", "oil_pixels", "oil_fraction",
    "oil_area_km2", "max_confidence", "width", "height", "error", "note",
)  # fmt: skip
NO_KM2 = (
    "pixel size unknown: oil area in pixels only; give --pixel-size-m, or a georeferenced "
    "file (GeoTIFF, Sentinel-1 product)"
)


NO_MASK = (
    "no mask: the model server answered with an annotated image only; serve the model "
    "with `oilspill ml-serve` (it answers JSON) for masks and slicks"
)


PARTS_SUFFIX = ".report-parts"  # an image's report.json entry and GeoJSON features


def write_parts(store: JobStore, job_id: str, item: Item, record: dict[str, Any]) -> None:
    """Write one processed image's share of report.json and slicks.geojson, as JSON text
    (blocking). Written as each image is done, so that the job's end only joins them: by
    the worker that made its outputs for the embedded detector (`runner.process_and_share`),
    else as it is committed.

    Line 1 is the report entry, line 2 "pixel" when a feature is in pixel coordinates
    (else "lonlat"), then one feature a line. Written before the image's record, which
    alone marks it done: a part without a record is redone with the image, and a record
    without a part (a job from an older version) is reported from the record.
    """
    write_share(store.out_path(job_id, item.index, PARTS_SUFFIX), item, record)


def write_share(path: Path, item: Item, record: dict[str, Any]) -> None:
    """`write_parts` to a path: what a worker process writes beside an image's outputs."""
    entry, pixel, features = _share(item, record)
    lines = [entry, "pixel" if pixel else "lonlat", *features]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _share(item: Item, record: dict[str, Any]) -> tuple[str, bool, list[str]]:
    """An image's (report entry, any feature in pixel coordinates, features) as JSON text."""
    features = _features(item, record)
    pixel = any("lon/lat" not in f["properties"]["coordinates"] for f in features)
    return _json(report_image(item, record)), pixel, [_json(f) for f in features]


def _parts(store: JobStore, job_id: str, item: Item) -> tuple[str, bool, list[str]]:
    """An image's `_share`: read from its part when it has one, else made from its record."""
    try:
        text = store.out_path(job_id, item.index, PARTS_SUFFIX).read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    lines = text.splitlines()
    if len(lines) >= 2 and lines[1] in ("pixel", "lonlat"):
        return lines[0], lines[1] == "pixel", lines[2:]
    return _share(item, store.load_item_result(job_id, item.index) or {})


def write_reports(store: JobStore, job: Job) -> None:
    """Write summary.csv, report.json and slicks.geojson once, when the job finishes,
    joining the images' parts (`write_parts`).

    The JSON is written one image at a time: a single `json.dumps` of a large job's
    report is one C call that holds the GIL, and so the event loop, for up to a second.
    """
    job_dir = store.job_dir(job.id)
    write_atomic(job_dir / "summary.csv", summary_csv(job), fsync=False)
    report_out, geo_out = job_dir / ".report.json.tmp", job_dir / ".slicks.geojson.tmp"
    with report_out.open("w", encoding="utf-8") as rep, geo_out.open("w", encoding="utf-8") as gj:
        head = json.dumps(report_head(job), ensure_ascii=False)
        rep.write(head[:-1] + ', "images": [')
        gj.write('{"type": "FeatureCollection", "features": [')
        pixel_coordinates = False
        first_feature = True
        for n, item in enumerate(job.items):
            entry, pixel, features = _parts(store, job.id, item)
            rep.write(("," if n else "") + "\n" + entry)
            pixel_coordinates |= pixel
            for feature in features:
                gj.write(("" if first_feature else ",") + "\n" + feature)
                first_feature = False
        rep.write("\n]}\n")
        note = "some features are in pixel coordinates (see each feature's properties)"
        gj.write("\n]" + (f', "note": "{note}"' if pixel_coordinates else "") + "}\n")
    os.replace(report_out, job_dir / "report.json")
    os.replace(geo_out, job_dir / "slicks.geojson")


def _json(value: Any) -> str:
    return dumps(value).decode()


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
        elif not item.masks:
            row["note"] = NO_MASK
        elif item.oil_area_km2 is None:
            row["note"] = NO_KM2
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in SUMMARY_COLUMNS])
    for name in job.skipped:
        skipped = {"name": name, "status": "skipped", "error": "not an image"}
        writer.writerow([skipped.get(c, "") for c in SUMMARY_COLUMNS])
    return buf.getvalue().encode("utf-8")


def report_image(item: Item, record: dict[str, Any]) -> dict[str, Any]:
    """One image's entry in report.json: its summary, slicks with features, ships, detector."""
    return {
        "name": item.name,
        "mask": item.mask_name if item.status is ItemStatus.DONE and item.masks else None,
        "status": item.status.value,
        "error": item.error,
        "summary": record.get("summary"),
        "slicks": record.get("slicks", []),
        "ships": record.get("ships", []),
        "detector": record.get("info"),
        "georef": record.get("georef"),
        "product": product_metadata(item, record),
        "seconds": item.seconds,
    }


def product_metadata(item: Item, record: dict[str, Any]) -> dict[str, Any] | None:
    """A Sentinel-1 product's metadata: what its annotation says (read with the product),
    over what its name says (also for single measurement TIFFs named like ESA's)."""
    named = parse_s1_product_id(Path(item.name).name)
    read = record.get("product")
    if named is None and read is None:
        return None
    return {**(named or {}), **(read or {})}


def report_head(job: Job) -> dict[str, Any]:
    """report.json without its "images" list."""
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
    }


def _features(item: Item, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The GeoJSON features of one image's slicks."""
    if item.status is not ItemStatus.DONE:
        return []
    raw_georef = record.get("georef")
    georef = Georef.from_record(raw_georef) if raw_georef else None
    slicks = record.get("slicks", [])
    product = product_metadata(item, record)
    extra = {"product": product} if product else None
    collection = slicks_geojson([(item.name, georef, slicks)], extra)
    features: list[dict[str, Any]] = collection["features"]
    return features
