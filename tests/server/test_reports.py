"""The reports are joined from parts made as each image is committed, and come out the same
when a part is missing or broken (a job from an older version, a crash between the writes)."""

from __future__ import annotations

import json
from collections.abc import Callable

from helpers import image_zip, upload, wait_for
from starlette.testclient import TestClient

from oilspill.server import reports


def test_reports_from_parts_equal_reports_from_records(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    body = upload(client, image_zip(3), name="three.zip").json()
    assert wait_for(client, body["job_id"])["status"] == "SUCCESS"
    service = client.app.state.service  # type: ignore[attr-defined]
    job, store = service.jobs[body["job_id"]], service.store
    job_dir = store.job_dir(job.id)
    joined = {name: (job_dir / name).read_bytes() for name in reports.REPORTS}
    parts = sorted(store.out_dir(job.id).glob(f"*{reports.PARTS_SUFFIX}"))
    assert len(parts) == 3
    report = json.loads(joined["report.json"])
    assert [i["name"] for i in report["images"]] == [i.name for i in job.items]
    assert json.loads(joined["slicks.geojson"])["features"], "the scenes have slicks"

    parts[0].unlink()  # no part: made from the record
    parts[1].write_text("truncated", encoding="utf-8")  # a broken part: made from the record
    reports.write_reports(store, job)
    assert {name: (job_dir / name).read_bytes() for name in reports.REPORTS} == joined
