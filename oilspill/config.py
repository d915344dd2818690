"""Settings: each declared once (name, default, help), read from flags, env or `.env`.

Precedence: command-line flag > `OILSPILL_<NAME>` environment variable >
`.env` file in the working directory > default. The CLI help and the README
table are generated from `SETTINGS`, and a test checks none is undocumented.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from oilspill.errors import ConfigError

ENV_PREFIX = "OILSPILL_"


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    cast: Callable[[str], Any] = str


def _optional_float(value: str) -> float | None:
    return float(value) if value.strip() else None


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", "Interface to listen on (0.0.0.0 for all)."),
    Setting("port", 8000, "TCP port to listen on.", int),
    Setting("data_dir", "./results", "Folder for uploads, job files and results.", str),
    Setting("ttl", 600, "Seconds a finished job's results stay downloadable.", int),
    Setting("workers", 0, "Images processed at once; 0 means one per CPU core.", int),
    Setting("max_upload_mb", 1024, "Largest accepted upload, in MiB (413 past it).", int),
    Setting("max_entries", 10000, "Most entries a zip may hold.", int),
    Setting("max_uncompressed_mb", 8192, "Most bytes all entries may unpack to, in MiB.", int),
    Setting("max_ratio", 200, "Highest compression ratio of an entry (zip-bomb guard).", int),
    Setting("max_image_mpx", 500, "Largest image, in megapixels (decompression-bomb guard).", int),
    Setting("max_queued_jobs", 100, "Jobs waiting or running before uploads get 503.", int),
    Setting("cors_origins", "*", "Comma-separated origins allowed by CORS ('*' for any).", str),
    Setting("backend", "sar", "Segmenter: 'sar' (embedded detector) or 'http' (remote).", str),
    Setting("ml_url", "", "Remote segmentation endpoint for --backend http.", str),
    Setting("ml_timeout", 60.0, "Seconds to wait for the remote segmenter per image.", float),
    Setting("ml_concurrency", 8, "Images in flight to the remote segmenter at once.", int),
    Setting(
        "pixel_size_m", None, "Ground pixel size in metres when files carry none.", _optional_float
    ),
    Setting("shutdown_grace", 30.0, "Seconds running images may finish after SIGTERM.", float),
    Setting("log_level", "info", "Log level: debug, info, warning or error.", str),
)

BACKENDS = ("sar", "http")


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one service instance; pass it to `create_app`."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("./results")
    ttl: int = 600
    workers: int = 0
    max_upload_mb: int = 1024
    max_entries: int = 10000
    max_uncompressed_mb: int = 8192
    max_ratio: int = 200
    max_image_mpx: int = 500
    max_queued_jobs: int = 100
    cors_origins: str = "*"
    backend: str = "sar"
    ml_url: str = ""
    ml_timeout: float = 60.0
    ml_concurrency: int = 8
    pixel_size_m: float | None = None
    shutdown_grace: float = 30.0
    log_level: str = "info"

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if self.backend == "http" and not self.ml_url:
            raise ConfigError("--backend http needs --ml-url (e.g. http://127.0.0.1:8002/segment)")
        if self.ttl < 0 or self.workers < 0 or self.max_upload_mb <= 0:
            raise ConfigError("ttl and workers must be >= 0 and max_upload_mb > 0")

    @property
    def worker_count(self) -> int:
        return self.workers or _cpu_count()

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def max_uncompressed_bytes(self) -> int:
        return self.max_uncompressed_mb * 1024 * 1024

    @property
    def max_image_pixels(self) -> int:
        return self.max_image_mpx * 1_000_000


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines of a `.env` file; comments, blanks and `export ` are allowed."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    dotenv: Path | None = Path(".env"),
) -> Settings:
    """Resolve every setting; a bad value names the key that holds it."""
    env = dict(read_dotenv(dotenv)) if dotenv else {}
    env.update(os.environ if environ is None else environ)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        key = ENV_PREFIX + setting.name.upper()
        if setting.name in overrides:
            values[setting.name] = overrides[setting.name]
        elif key in env:
            try:
                values[setting.name] = setting.cast(env[key])
            except ValueError as exc:
                raise ConfigError(f"{key}={env[key]!r} is not valid: {exc}") from exc
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in values.items() if k in known})
