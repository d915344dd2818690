"""API keys: who may upload, list and delete jobs.

Keys come from `--api-key` and `--api-key-file` (one per line, read again on SIGHUP).
A request shows one as `Authorization: Bearer <key>`; it is compared with every key
in constant time. Jobs are owned by the key's fingerprint (a hash, never the key),
which is what a job's meta holds and what the log may show. With no key and no key
file configured, nothing needs one. Calls by job id or user hash stay open: those ids
are unguessable links (capabilities), as the legacy web client expects.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path

from starlette.requests import Request

from oilspill.config import Settings
from oilspill.errors import ConfigError, Unauthorized

log = logging.getLogger(__name__)

MIN_KEY_LENGTH = 16


def fingerprint(key: str) -> str:
    """A key's public name: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def read_key_file(path: Path) -> list[str]:
    """The keys of a key file: one per line; blank lines and `#` comments skipped (blocking)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the API key file {path}: {exc}") from exc
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


class Keys:
    """The keys in force; `reload` swaps them whole, so readers need no lock."""

    def __init__(self, keys: list[str], file: Path | None = None) -> None:
        self._given = list(keys)
        self.file = file
        self._keys: tuple[tuple[bytes, str], ...] = ()
        self._install(self._given + (read_key_file(file) if file else []))

    @classmethod
    def from_settings(cls, settings: Settings) -> Keys:
        file = Path(settings.api_key_file) if settings.api_key_file else None
        return cls(settings.api_keys, file)

    def _install(self, keys: list[str]) -> None:
        short = [fingerprint(k) for k in keys if len(k) < MIN_KEY_LENGTH]
        if short:
            raise ConfigError(
                f"API keys must be at least {MIN_KEY_LENGTH} characters; the keys with "
                f"fingerprints {', '.join(short)} are shorter (make keys with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        self._keys = tuple((_digest(k), fingerprint(k)) for k in dict.fromkeys(keys))

    @property
    def enabled(self) -> bool:
        """Keys are needed: some are given, or a key file is (even an empty one: emptying
        the file locks everyone out, it never opens the server)."""
        return bool(self._keys) or self.file is not None

    def __len__(self) -> int:
        return len(self._keys)

    def reload(self) -> None:
        """Read the key file again (blocking: run it in a thread); on error keep the old keys."""
        if self.file is None:
            log.info("SIGHUP: no --api-key-file to reload; %d keys stay", len(self))
            return
        try:
            self._install(self._given + read_key_file(self.file))
        except ConfigError as exc:
            log.error("API keys not reloaded, %d keys stay: %s", len(self), exc.message)
            return
        log.info("API keys reloaded from %s: %d keys", self.file, len(self))

    def match(self, key: str) -> str | None:
        """The fingerprint of `key` if it is one of ours; every key is compared, in constant
        time, so the time taken does not tell which key came close."""
        given = _digest(key)
        found = None
        for digest, name in self._keys:
            if hmac.compare_digest(given, digest):
                found = name
        return found

    def owner(self, request: Request) -> str | None:
        """The caller's key fingerprint; None when no key is configured. Unauthorized when
        keys are configured and the request has none, or one we do not hold."""
        if not self.enabled:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized(
                "this call needs an API key: send it as 'Authorization: Bearer <key>'"
            )
        name = self.match(key.strip())
        if name is None:
            raise Unauthorized("the API key is not valid here", invalid=True)
        return name
