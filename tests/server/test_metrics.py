"""GET /metrics of a real server after a job, read with prometheus-client's own parser."""

from __future__ import annotations

from collections.abc import Callable

from helpers import Server, image_zip, wait_for
from prometheus_client.parser import text_string_to_metric_families


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_a_scrape_after_a_job(start_server: Callable[..., Server]) -> None:
    data = image_zip(3, size=(96, 64))
    server = start_server()
    with server.client() as http:
        job = http.post("/api/v1/jobs", files={"file": ("x.zip", data)}).json()
        wait_for(http, job["id"])
        http.get(f"/api/v1/jobs/{job['id']}")
        zipped = http.get(f"/api/v1/jobs/{job['id']}/result.zip").content
        http.get("/api/v1/jobs/nope")
        answer = http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    m = _samples(answer.text)
    sar = (("backend", "sar"),)
    assert m[("oilspill_jobs", (("state", "succeeded"),))] == 1
    assert m[("oilspill_jobs", (("state", "running"),))] == 0
    assert m[("oilspill_images_processed_total", sar)] == 3
    assert m[("oilspill_images_failed_total", sar)] == 0
    for stage in ("decode", "segment", "write"):
        labels = (("backend", "sar"), ("stage", stage))
        assert m[("oilspill_processing_seconds_count", labels)] == 3
        assert m[("oilspill_processing_seconds_sum", labels)] > 0
    assert m[("oilspill_queue_depth", ())] == 0
    assert m[("oilspill_busy_workers", ())] == 0
    assert m[("oilspill_uploaded_bytes_total", ())] == len(data)
    assert m[("oilspill_downloaded_bytes_total", ())] == len(zipped)
    assert m[("oilspill_data_bytes", ())] > 0
    assert m[("oilspill_disk_free_bytes", ())] > 0
    for outcome in ("delivered", "retried", "failed", "refused"):
        assert m[("oilspill_webhook_deliveries_total", (("outcome", outcome),))] == 0
    route = (("method", "GET"), ("route", "/api/v1/jobs/{job_id}"), ("status", "200"))
    assert m[("oilspill_http_requests_total", route)] >= 1
    missing = (("method", "GET"), ("route", "/api/v1/jobs/{job_id}"), ("status", "404"))
    assert m[("oilspill_http_requests_total", missing)] == 1
    posted = (("method", "POST"), ("route", "/api/v1/jobs"), ("status", "202"))
    assert m[("oilspill_http_requests_total", posted)] == 1
