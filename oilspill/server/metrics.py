"""Prometheus metrics, in a registry of this app's own (never the global one).

Counters and histograms are updated where things happen (the runner, downloads,
webhooks, the request middleware); gauges of state (jobs by state, queue, disk)
are read from the service when `/metrics` is scraped.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = CONTENT_TYPE_LATEST
JOB_STATES = ("queued", "running", "succeeded", "failed")
STAGES = ("decode", "segment", "write")
WEBHOOK_OUTCOMES = ("delivered", "retried", "failed", "refused")
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)


class Metrics:
    """Every metric of one service instance."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.registry = r = CollectorRegistry()
        self.jobs = Gauge("oilspill_jobs", "Jobs held, by state.", ["state"], registry=r)
        self.images = Counter(
            "oilspill_images_processed", "Images processed (done or failed).", ["backend"],
            registry=r,
        )  # fmt: skip
        self.images_failed = Counter(
            "oilspill_images_failed", "Images that failed.", ["backend"], registry=r
        )
        self.stage_seconds = Histogram(
            "oilspill_processing_seconds",
            "Seconds one image spent in a stage (decode, segment, write).",
            ["backend", "stage"],
            buckets=_SECONDS,
            registry=r,
        )
        self.queue_depth = Gauge("oilspill_queue_depth", "Images waiting for a worker.", registry=r)
        self.busy_workers = Gauge("oilspill_busy_workers", "Workers with an image.", registry=r)
        self.workers = Gauge("oilspill_workers", "Images processed at once, at most.", registry=r)
        self.uploaded = Counter("oilspill_uploaded_bytes", "Bytes of uploads received.", registry=r)
        self.downloaded = Counter(
            "oilspill_downloaded_bytes", "Bytes of result zips and images sent.", registry=r
        )
        self.data_bytes = Gauge(
            "oilspill_data_bytes", "Bytes in the data folder (results, inputs, uploads).",
            registry=r,
        )  # fmt: skip
        self.disk_free = Gauge(
            "oilspill_disk_free_bytes", "Free bytes on the data folder's disk.", registry=r
        )
        self.webhooks = Counter(
            "oilspill_webhook_deliveries",
            "Webhook deliveries by outcome (retried counts attempts that will be tried again).",
            ["outcome"],
            registry=r,
        )
        self.requests = Counter(
            "oilspill_http_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        for state in JOB_STATES:
            self.jobs.labels(state)
        for stage in STAGES:
            self.stage_seconds.labels(backend, stage)
        for outcome in WEBHOOK_OUTCOMES:
            self.webhooks.labels(outcome)
        self.images.labels(backend)
        self.images_failed.labels(backend)

    # Hooks ---------------------------------------------------------------------
    def stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(self.backend, stage).observe(seconds)

    def image(self, ok: bool) -> None:
        self.images.labels(self.backend).inc()
        if not ok:
            self.images_failed.labels(self.backend).inc()

    def webhook(self, outcome: str) -> None:
        self.webhooks.labels(outcome).inc()

    def set_jobs(self, states: Iterable[str]) -> None:
        counts = dict.fromkeys(JOB_STATES, 0)
        for state in states:
            counts[state] = counts.get(state, 0) + 1
        for state, n in counts.items():
            self.jobs.labels(state).set(n)

    def render(self) -> bytes:
        """The text exposition format (blocking only briefly: it reads the metrics' locks)."""
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware: counts each answered request by its route's template, not its path
    (ids would make a series per job)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # an exception before the answer started ends as a 500

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(template, scope["method"], str(status)).inc()
