"""Settings: each declared once (name, default, help), read from flags, env or `.env`.

Precedence: command-line flag > `OILSPILL_<NAME>` environment variable >
`.env` file in the working directory > default. The CLI help and the README
table are generated from the fields of `Settings`, and a test checks they agree.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from oilspill.errors import ConfigError
from oilspill.io.images import ReadOptions

ENV_PREFIX = "OILSPILL_"


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    cast: Callable[[str], Any] = str


def _optional_float(value: str) -> float | None:
    return float(value) if value.strip() else None


def _urls(value: str) -> str:
    """Comma-separated URLs, stripped (the repeated flag is joined the same way)."""
    return ",".join(u.strip() for u in str(value).split(",") if u.strip())


_csv = _urls  # any comma-separated list (keys, host patterns), read the same way


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _bool(text: str) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{text!r} is not a yes/no value (use 1/0, true/false, yes/no)")


def _auto_bool(text: str) -> str:
    """auto, yes or no, from those words or any yes/no value `_bool` takes."""
    value = str(text).strip().lower()
    return "auto" if value == "auto" else ("yes" if _bool(value) else "no")


def _setting(
    default: Any, help: str, cast: Callable[[str], Any] | None = None, *, secret: bool = False
) -> Any:
    """A `Settings` field with its help text and the cast that reads it from a string.

    A `secret` one (API keys, the webhook secret) is left out of the settings' repr."""
    meta = {"help": help, "cast": cast or type(default)}
    return field(default=default, metadata=meta, repr=not secret)


BACKENDS = ("sar", "http", "onnx", "v2")
MODEL_KINDS = ("auto", "semantic", "yolo")
DEVICES = ("cpu", "cuda")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one service instance; pass it to `create_app`.

    Each field is the one declaration of a setting: its default and help here
    make the CLI flags, the `OILSPILL_<NAME>` variables and the README table.
    """

    host: str = _setting("127.0.0.1", "Interface to listen on (0.0.0.0 for all).")
    port: int = _setting(8000, "TCP port to listen on.")
    data_dir: Path = _setting("./results", "Folder for uploads, job files and results.", Path)
    ttl: int = _setting(600, "Seconds a finished job's results stay downloadable.")
    workers: int = _setting(0, "Images processed at once; 0 means one per CPU core.")
    worker_processes: str = _setting(
        "auto",
        "Run the embedded detector's images in worker processes (yes) or threads (no): "
        "in processes they share no interpreter lock with each other or the API, at the "
        "price of a process per worker. auto: processes for the embedded detector with 2 "
        "or more workers.",
        _auto_bool,
    )
    max_upload_mb: int = _setting(
        2048,
        "Largest accepted upload, in MiB (413 past it); a Sentinel-1 GRD product is ~1-1.7 GiB.",
    )
    max_entries: int = _setting(10000, "Most entries a zip may hold.")
    max_uncompressed_mb: int = _setting(8192, "Most bytes all entries may unpack to, in MiB.")
    max_ratio: int = _setting(200, "Highest compression ratio of an entry (zip-bomb guard).")
    max_image_mpx: int = _setting(500, "Largest image, in megapixels (decompression-bomb guard).")
    min_free_mb: int = _setting(
        1024, "Free disk space the data folder keeps, in MiB: uploads that would go below get 507."
    )
    max_data_mb: int = _setting(
        0, "Most the data folder may hold, in MiB (uploads past it get 507); 0 for no cap."
    )
    max_queued_jobs: int = _setting(100, "Jobs waiting or running before uploads get 503.")
    cors_origins: str = _setting("*", "Comma-separated origins allowed by CORS ('*' for any).")
    backend: str = _setting(
        "sar",
        "Segmenter: 'sar' (embedded detector), 'http' (model servers at --ml-url), "
        "'onnx' (--model in process) or 'v2' (Open Inference Protocol server at --v2-url).",
    )
    ml_url: str = _setting(
        "",
        "Model server endpoint for --backend http (repeat the flag, or comma-separate, "
        "to share the load between several).",
        _urls,
    )
    ml_timeout: float = _setting(60.0, "Seconds to wait for a model server per request.")
    ml_concurrency: int = _setting(8, "Requests in flight to each model server at once.")
    ml_retries: int = _setting(
        3, "Retries of a request after a connection error, 5xx or 429 (never after a 4xx)."
    )
    model: str = _setting("", "ONNX model file for --backend onnx.")
    model_kind: str = _setting(
        "auto", "What the model is: semantic (class logits or labels), yolo (-seg export), auto."
    )
    device: str = _setting("cpu", "Where --backend onnx runs the model: cpu or cuda.")
    model_size: str = _setting(
        "",
        "Model input size WxH or N (default: the model's fixed input size, else 512); "
        "larger images are tiled with overlap.",
    )
    model_mean: str = _setting(
        "0", "Per-channel mean subtracted from 0..255 pixels before the model (comma-separated)."
    )
    model_std: str = _setting(
        "255", "Per-channel divisor applied after the mean (255: pixels scaled to 0..1)."
    )
    model_channels: int = _setting(
        0, "Channels the model takes: 1 (grey) or 3 (RGB); 0 reads it from the model."
    )
    model_classes: str = _setting(
        "sea,oil,lookalike,ship,land",
        "Our class for each of the model's classes, in its order: sea, oil, lookalike, ship, "
        "land or - (ignored, counted as sea).",
    )
    model_conf: float = _setting(0.25, "Least score of a YOLO detection.")
    model_iou: float = _setting(0.45, "IoU above which NMS drops the weaker YOLO detection.")
    v2_url: str = _setting(
        "", "Base URL of an Open Inference Protocol server (KServe, Triton, MLServer)."
    )
    v2_model: str = _setting("", "Model name on the --v2-url server.")
    pixel_size_m: float | None = _setting(
        None,
        "Ground pixel size in metres for files that carry none (else no km²).",
        _optional_float,
    )
    polarisation: str = _setting(
        "", "Sentinel-1 polarisation to read: VV, HH, VH or HV (default VV, else HH)."
    )
    noise_removal: bool = _setting(
        False, "Subtract the Sentinel-1 thermal noise LUT from σ0 (1/true/yes to enable).", _bool
    )
    shutdown_grace: float = _setting(30.0, "Seconds running images may finish after SIGTERM.")
    log_level: str = _setting("info", "Log level: debug, info, warning or error.")
    log_format: str = _setting(
        "text",
        "Log lines as text, or json: one object per line (time, level, event, job_id, request_id).",
    )
    api_key: str = _setting(
        "",
        "API key that uploads, job listing and DELETE need as 'Authorization: Bearer KEY' "
        "(repeat the flag, or comma-separate, for several); none: no keys needed.",
        _csv,
        secret=True,
    )
    api_key_file: str = _setting(
        "", "File of API keys, one per line ('#' comments), read again on SIGHUP."
    )
    max_jobs_per_client: int = _setting(
        0,
        "Unfinished jobs (uploads included) one client (API key, else address) may have; "
        "past it 429. 0 for no limit.",
    )
    uploads_per_minute: int = _setting(
        0, "Uploads one client (API key, else address) may start per minute; past it 429. 0: any."
    )
    forwarded_allow_ips: str = _setting(
        "127.0.0.1,::1",
        "Proxies whose X-Forwarded-For/-Proto are believed (comma-separated IPs or networks, "
        "'*' for any): the client address of the limits and the log.",
    )
    webhook_secret: str = _setting(
        "",
        "Key of the X-Oilspill-Signature HMAC-SHA256 of webhook bodies; needed for an upload to "
        "carry callback_url.",
        secret=True,
    )
    webhook_allow: str = _setting(
        "",
        "Host patterns webhooks may go to (repeat or comma-separate; '*.example.com'); none: any "
        "public host. A host matched by name may resolve to a private or loopback address.",
        _csv,
    )
    webhook_timeout: float = _setting(10.0, "Seconds one webhook attempt may take.")
    webhook_retries: int = _setting(
        5, "Retries of a webhook after a connection error, timeout, 5xx, 408 or 429, with backoff."
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if self.backend == "http" and not self.ml_url:
            raise ConfigError("--backend http needs --ml-url (e.g. http://127.0.0.1:8002/segment)")
        if self.backend == "onnx" and not self.model:
            raise ConfigError("--backend onnx needs --model PATH.onnx")
        if self.backend == "v2" and not (self.v2_url and self.v2_model):
            raise ConfigError(
                "--backend v2 needs --v2-url (e.g. http://127.0.0.1:8080) and --v2-model NAME"
            )
        if self.model_kind not in MODEL_KINDS:
            raise ConfigError(f"model kind must be one of {', '.join(MODEL_KINDS)}")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, not {self.device!r}")
        if self.ml_retries < 0 or self.ml_concurrency < 1 or self.ml_timeout <= 0:
            raise ConfigError("ml_retries must be >= 0, ml_concurrency >= 1, ml_timeout > 0")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(
                f"log level must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}"
            )
        if self.worker_processes not in ("auto", "yes", "no"):
            raise ConfigError(f"worker_processes is auto, yes or no, not {self.worker_processes!r}")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"log format must be text or json, not {self.log_format!r}")
        if min(self.max_jobs_per_client, self.uploads_per_minute, self.webhook_retries) < 0:
            raise ConfigError("max_jobs_per_client, uploads_per_minute and webhook_retries >= 0")
        if self.webhook_timeout <= 0:
            raise ConfigError("webhook_timeout must be > 0")
        if self.polarisation.upper() not in ("", "VV", "HH", "VH", "HV"):
            raise ConfigError(f"polarisation must be VV, HH, VH or HV, not {self.polarisation!r}")
        if self.ttl < 0 or self.workers < 0 or self.max_upload_mb <= 0:
            raise ConfigError("ttl and workers must be >= 0 and max_upload_mb > 0")

    @property
    def ml_urls(self) -> list[str]:
        return [u for u in self.ml_url.split(",") if u]

    @property
    def api_keys(self) -> list[str]:
        return [k for k in self.api_key.split(",") if k]

    @property
    def webhook_hosts(self) -> list[str]:
        return [h.lower() for h in self.webhook_allow.split(",") if h]

    @property
    def worker_count(self) -> int:
        return self.workers or _cpu_count()

    @property
    def processes(self) -> bool:
        """Whether the embedded detector's images run in worker processes (`worker_processes`
        resolved): with threads, two images and the API take turns at one interpreter lock,
        which cost 2 workers 7-11 % of their rate (bench/speed.py, README)."""
        if self.worker_processes == "auto":
            return self.backend == "sar" and self.worker_count >= 2
        return self.worker_processes == "yes"

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

    @property
    def read_options(self) -> ReadOptions:
        return ReadOptions(
            self.max_image_pixels, self.polarisation.upper() or None, self.noise_removal
        )


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, f.default, f.metadata["help"], f.metadata["cast"]) for f in fields(Settings)
)


def markdown_table() -> str:
    """Every setting as the README's Markdown table (`oilspill settings` prints it)."""
    rows = ["| flag | environment | default | what |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = "" if s.default in (None, "") else f"`{s.default}`"
        flag = "--" + s.name.replace("_", "-")
        rows.append(f"| `{flag}` | `{ENV_PREFIX}{s.name.upper()}` | {default} | {s.help} |")
    return "\n".join(rows) + "\n"


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
