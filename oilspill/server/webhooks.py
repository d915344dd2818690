"""Webhooks: when a job finishes, fails or is cancelled, POST its resource to its callback_url.

Each delivery is a background task: it never delays a job, and at most
`CONCURRENCY` run at once. The body is the v1 job resource as JSON, signed:
`X-Oilspill-Signature: sha256=<hex HMAC-SHA256 of the body under --webhook-secret>`,
with `X-Oilspill-Timestamp` (Unix seconds of the attempt), `X-Oilspill-Event` and
`X-Oilspill-Delivery` (one id for all attempts of a delivery). An attempt that fails
by connection error, timeout (--webhook-timeout), 5xx, 408 or 429 is retried
--webhook-retries times with exponential backoff and jitter (a Retry-After is
honoured, up to a minute); any other answer ends it. Every attempt is logged.

No SSRF: a destination must be http(s), match --webhook-allow when that is set, and
resolve (off the event loop) only to public addresses unless its host is matched by
name by a --webhook-allow pattern. The request goes to the address that was checked
(the URL's host is kept for Host and TLS), no proxy from the environment is used,
and redirects are not followed blindly: each Location is checked the same way.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

import anyio.to_thread

from oilspill import __version__
from oilspill.config import Settings
from oilspill.errors import CallbackRefused
from oilspill.server import logs, resources

if TYPE_CHECKING:
    import httpx
from oilspill.server.jobs import Job, JobStatus
from oilspill.server.metrics import Metrics

log = logging.getLogger(__name__)

CONCURRENCY = 16  # deliveries in flight at once
MAX_REDIRECTS = 5
MAX_URL = 2048
_REDIRECTS = (301, 302, 303, 307, 308)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def sign(secret: str, body: bytes) -> str:
    """The X-Oilspill-Signature header's value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def blocked(address: str) -> str | None:
    """Why a webhook may not go to `address` unless allowed by name (loopback, private...),
    or None for a public address. IPv4 inside IPv6 (mapped, 6to4, NAT64) is judged as IPv4."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
        address.split("%", 1)[0]
    )
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    for what, flag in (
        ("a loopback", ip.is_loopback),
        ("an unspecified", ip.is_unspecified),
        ("a link-local", ip.is_link_local),
        ("a multicast", ip.is_multicast),
        ("a private", ip.is_private),
        ("a reserved", ip.is_reserved),
        ("a non-public", not ip.is_global),
    ):
        if flag:
            return f"{what} address ({ip})"
    return None


async def _resolve(host: str, port: int) -> list[str]:
    """The addresses of `host`, by the event loop's getaddrinfo (in a thread, not blocking).
    Tests patch this function to make a name resolve where they want."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def public(url: str) -> str:
    """A URL as the log shows it: without its query (it may hold a receiver's token)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class Webhooks:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.secret = settings.webhook_secret
        self.allow = settings.webhook_hosts
        self.timeout = settings.webhook_timeout
        self.retries = settings.webhook_retries
        self.metrics = metrics
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None  # made for the first hook (see _client)

    def __repr__(self) -> str:
        return f"<Webhooks in_flight={len(self._tasks)}>"

    def _client(self) -> httpx.AsyncClient:
        """The HTTP client, made on first use: httpx takes 40-120 ms to import, which
        `oilspill segment` and a service without webhooks need not pay."""
        import httpx

        if self._http is None:
            # No pooled connections: one is bound to the address and TLS name checked for it.
            self._http = httpx.AsyncClient(
                follow_redirects=False,
                trust_env=False,  # a proxy from the environment would reach what we refused
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_keepalive_connections=0),
                headers={"User-Agent": f"oilspill/{__version__}"},
            )
        return self._http

    @property
    def enabled(self) -> bool:
        return bool(self.secret)

    # Destinations -----------------------------------------------------------------
    async def check(self, url: str) -> None:
        """Refuse (CallbackRefused, 400) a callback_url the service would not call."""
        if not self.enabled:
            raise CallbackRefused(
                "this server sends no webhooks (it has no --webhook-secret); "
                "poll the job instead, or ask its operator to set one"
            )
        await self.destination(url)

    def _allowed(self, host: str) -> tuple[bool, bool]:
        """(may go there, matched by name by a pattern other than '*')."""
        if not self.allow:
            return True, False
        for pattern in self.allow:
            if fnmatch.fnmatchcase(host, pattern):
                return True, pattern != "*"
        return False, False

    async def destination(self, url: str) -> tuple[SplitResult, list[str]]:
        """The URL's parts and the addresses it may be sent to; CallbackRefused if none."""
        if len(url) > MAX_URL:
            raise CallbackRefused(f"callback_url is longer than {MAX_URL} characters")
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise CallbackRefused(f"callback_url {url[:200]!r} is not a URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CallbackRefused(
                f"callback_url must be an http:// or https:// URL with a host, not {url[:200]!r}"
            )
        if parts.username is not None or parts.password is not None:
            raise CallbackRefused("callback_url may not hold a user name or password")
        try:
            host = parts.hostname.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise CallbackRefused(f"callback_url's host {parts.hostname!r} is not valid") from None
        allowed, by_name = self._allowed(host)
        if not allowed:
            raise CallbackRefused(
                f"callback_url's host {host} is not among the hosts this server calls "
                "(--webhook-allow)"
            )
        try:
            addresses = await _resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise CallbackRefused(f"callback_url's host {host} does not resolve: {exc}") from None
        if not addresses:
            raise CallbackRefused(f"callback_url's host {host} has no address")
        for address in addresses:
            why = blocked(address)
            if why is not None and not by_name:
                raise CallbackRefused(
                    f"callback_url's host {host} resolves to {why}: refused (name the host in "
                    "--webhook-allow to allow it)"
                )
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return parts._replace(netloc=netloc), addresses

    # Deliveries ---------------------------------------------------------------------
    def send(self, job: Job, event: str | None = None) -> None:
        """Deliver the job's resource to its callback_url, if it has one, in the background."""
        url = job.settings.get("callback_url")
        if not url or not self.enabled:
            return
        if event is None:
            event = "job.succeeded" if job.status is JobStatus.SUCCESS else "job.failed"
        task = asyncio.create_task(self._deliver(job, url, event), name=f"webhook-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, job: Job, url: str, event: str) -> None:
        logs.job_id.set(job.id)  # this task's own context
        body = await anyio.to_thread.run_sync(_body, job)
        delivery = uuid.uuid4().hex
        async with self._slots:
            for attempt in range(1, self.retries + 2):
                outcome, wait, said = await self._attempt(url, body, event, delivery)
                if outcome == "delivered":
                    log.info(
                        "job %s: webhook %s delivered to %s (attempt %d): %s",
                        job.id, event, public(url), attempt, said,
                    )  # fmt: skip
                    self.metrics.webhook("delivered")
                    return
                if outcome != "retry" or attempt > self.retries:
                    log.warning(
                        "job %s: webhook %s to %s not delivered (attempt %d): %s",
                        job.id, event, public(url), attempt, said,
                    )  # fmt: skip
                    self.metrics.webhook("refused" if outcome == "refused" else "failed")
                    return
                if wait is None:
                    wait = min(30.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.75, 1.0)
                log.info(
                    "job %s: webhook %s attempt %d to %s: %s; again in %.1f s",
                    job.id, event, attempt, public(url), said, wait,
                )  # fmt: skip
                self.metrics.webhook("retried")
                await asyncio.sleep(wait)

    async def _attempt(
        self, url: str, body: bytes, event: str, delivery: str
    ) -> tuple[str, float | None, str]:
        """One attempt: (delivered, retry, failed or refused; seconds to wait; what happened)."""
        headers = {
            "Content-Type": "application/json",
            "X-Oilspill-Event": event,
            "X-Oilspill-Delivery": delivery,
            "X-Oilspill-Timestamp": str(int(time.time())),
            "X-Oilspill-Signature": sign(self.secret, body),
        }
        import httpx

        try:
            async with asyncio.timeout(self.timeout):
                status, retry_after = await self._post(url, body, headers)
        except CallbackRefused as exc:
            return "refused", None, exc.message
        except TimeoutError:
            return "retry", None, f"no answer in {self.timeout:g} s"
        except (httpx.HTTPError, OSError) as exc:
            return "retry", None, f"{type(exc).__name__}: {exc}"
        if 200 <= status < 300:
            return "delivered", None, f"HTTP {status}"
        again = status >= 500 or status in (408, 429)
        return ("retry" if again else "failed"), retry_after, f"HTTP {status}"

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, float | None]:
        """POST, following redirects by hand: each Location is checked as the first URL was."""
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            parts, addresses = await self.destination(current)
            response = await self._post_to(parts, addresses, body, headers)
            location = response.headers.get("location")
            if response.status_code in _REDIRECTS and location:
                current = urljoin(current, location)
                log.info("webhook redirected to %s", public(current))
                continue
            return response.status_code, _retry_after(response.headers.get("retry-after"))
        raise CallbackRefused(f"more than {MAX_REDIRECTS} redirects")

    async def _post_to(
        self, parts: SplitResult, addresses: list[str], body: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        """POST to the checked addresses in turn until one connects (the answer's body is
        not read)."""
        host = parts.hostname or ""
        name = f"[{host}]" if ":" in host else host
        import httpx

        failure: Exception | None = None
        for address in addresses:
            literal = f"[{address}]" if ":" in address else address
            target = urlunsplit(
                (parts.scheme, f"{literal}:{parts.port}", parts.path or "/", parts.query, "")
            )
            default = {"http": 80, "https": 443}[parts.scheme] == parts.port
            client = self._client()
            request = client.build_request(
                "POST",
                target,
                content=body,
                headers={**headers, "Host": name if default else f"{name}:{parts.port}"},
                extensions={"sni_hostname": host} if parts.scheme == "https" else {},
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.ConnectError as exc:
                failure = exc
                continue
            await response.aclose()
            return response
        assert failure is not None
        raise failure

    async def aclose(self, grace: float = 5.0) -> None:
        """Let deliveries in flight finish for up to `grace` seconds, then drop them."""
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in late:
                task.cancel()
            if late:
                log.warning("%d webhook deliveries dropped at shutdown", len(late))
                await asyncio.gather(*late, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()


def _body(job: Job) -> bytes:
    """The job resource (its first page of images) as JSON bytes (blocking: big jobs)."""
    resource: dict[str, Any] = resources.job_resource(job)
    return json.dumps(resource, ensure_ascii=False).encode()


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None
    return min(60.0, float(value.strip()))
