"""The v2 backend: a model on an Open Inference Protocol server (KServe v2, Triton, MLServer).

At first use the backend checks the server and the model (`GET /v2/health/ready`,
`GET /v2/models/{name}/ready`) and reads the model's metadata (`GET /v2/models/{name}`):
its input's name, datatype and shape (N×C×H×W, -1 for a free dimension) and its outputs.
Each image is cut into tiles of the model's input size (`tensors.windows`, with overlap;
an image smaller than a free-sized model's input goes whole) and each tile is sent as one
tensor to `POST /v2/models/{name}/infer`. The answer, class logits N×K×H×W or labels
N×H×W, becomes our classes and an oil probability (`tensors.semantic`), the tiles are
stitched, and the class map is measured as the detector's is (`base.from_labels`).

Tensors go as JSON, or with the binary tensor data extension (a JSON header of
`Inference-Header-Content-Length` bytes, then the raw little-endian data; outputs asked
with `"binary_data": true`) when the server takes it: a server that lists
`binary_tensor_data` in its metadata (Triton) gets it at once; on any other, the first
tile is tried in binary once and the answer remembered (MLServer 1.7 answers 500: JSON
from then on). Answers are read either way.

Each request has `--ml-timeout`; at most `--ml-concurrency` are in flight. A connection
error, a timeout, a 5xx or a 429 is retried `--ml-retries` times with exponential backoff
and jitter (a Retry-After is honoured, up to `--ml-timeout`); a 4xx never is: it is that
image's BackendError, with the server's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np

from oilspill.backends import retry, tensors
from oilspill.backends.base import Segmentation, from_labels
from oilspill.backends.cpu import CpuPool
from oilspill.backends.tensors import ModelInput, Window
from oilspill.config import Settings
from oilspill.errors import BackendError, ConfigError, ImageError
from oilspill.io import images
from oilspill.io.images import Raster

log = logging.getLogger(__name__)

BINARY_EXTENSION = "binary_tensor_data"  # its name in the server metadata's extensions
HEADER_LENGTH = "Inference-Header-Content-Length"
DATATYPES = {  # the protocol's tensor datatypes as numpy's (BYTES is no image tensor)
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}
INPUT_TYPES = ("FP16", "FP32", "FP64")  # what an image tensor (normalised floats) may be
NOT_UNDERSTOOD = (500, 501)  # beside 4xx, answers to a binary tensor that mean "send JSON"


@dataclass(frozen=True)
class ModelMeta:
    """What the server says of the model: its one input, and the output we read."""

    name: str
    input_name: str
    datatype: str  # of the input: one of INPUT_TYPES
    shape: tuple[int, ...]  # of the input, N×C×H×W; -1 where free
    output: str | None  # the output asked for (the first the metadata lists), or None

    @classmethod
    def parse(cls, body: Any, model: str) -> ModelMeta:
        """The metadata answer `GET /v2/models/{name}`; ConfigError when it is none we feed."""
        if not isinstance(body, dict):
            raise ConfigError(f"the metadata of model {model!r} is not a JSON object")
        inputs = body.get("inputs") or []
        if len(inputs) != 1 or not isinstance(inputs[0], dict):
            raise ConfigError(
                f"model {model!r} has {len(inputs)} inputs: the v2 backend feeds models "
                "that take one image tensor (N×C×H×W)"
            )
        tensor = inputs[0]
        try:
            name, datatype = str(tensor["name"]), str(tensor["datatype"]).upper()
            shape = tuple(int(d) for d in tensor["shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"model {model!r} describes its input oddly: {tensor!r}") from exc
        if datatype not in INPUT_TYPES:
            raise ConfigError(
                f"model {model!r} takes {datatype} input {name!r}: the v2 backend feeds "
                f"normalised images, as {', '.join(INPUT_TYPES)}"
            )
        if len(shape) == 4 and shape[0] not in (-1, 1):
            raise ConfigError(
                f"model {model!r} takes batches of exactly {shape[0]}: the v2 backend sends "
                "one tile at a time (export it with a free or 1 batch dimension)"
            )
        outputs = [o for o in body.get("outputs") or [] if isinstance(o, dict) and "name" in o]
        output = str(outputs[0]["name"]) if outputs else None
        return cls(model, name, datatype, shape, output)

    @property
    def free(self) -> tuple[bool, bool]:
        """Whether the input's width and height are free (N×C×H×W: `ModelInput` checks)."""
        return self.shape[-1] <= 0, self.shape[-2] <= 0


class V2Segmenter:
    """Segments each image with a model on an Open Inference Protocol server."""

    name = "v2"
    decodes = True

    def __init__(self, cpu: CpuPool, settings: Settings) -> None:
        self.cpu = cpu
        self.settings = settings
        self.url = settings.v2_url.rstrip("/")
        self.model = settings.v2_model
        self.timeout = settings.ml_timeout
        self.retries = settings.ml_retries
        self.concurrency = settings.ml_concurrency
        limits = httpx.Limits(
            max_connections=self.concurrency, max_keepalive_connections=self.concurrency
        )
        self._client = httpx.AsyncClient(base_url=self.url, timeout=self.timeout, limits=limits)
        self._slots = asyncio.Semaphore(self.concurrency)
        self._starting = asyncio.Lock()
        self._probing = asyncio.Lock()
        self.meta: ModelMeta | None = None
        self.spec: ModelInput | None = None
        self.binary: bool | None = None  # the binary tensor data extension; None: not known yet
        self._path = f"/v2/models/{quote(self.model, safe='')}"

    # Start-up ----------------------------------------------------------------
    async def start(self) -> None:
        """Check the server and the model and read its metadata (once).

        ConfigError, saying what to do, when the server does not answer, is not ready,
        has no such model or has one that the settings cannot feed.
        """
        async with self._starting:
            if self.meta is not None:
                return
            try:
                await self._start()
            except BackendError as exc:  # no answer, even after retries
                raise ConfigError(
                    f"{exc.message}: start the Open Inference Protocol server, or fix --v2-url"
                ) from exc

    async def _start(self) -> None:
        ready = await self._send("GET", "/v2/health/ready")
        if ready.status_code != 200:
            raise ConfigError(
                f"the server at {self.url} is not ready (GET /v2/health/ready answered "
                f"{ready.status_code}): wait until it has loaded its models, or read its log"
            )
        ready = await self._send("GET", f"{self._path}/ready")
        if ready.status_code == 404:
            known = await self._model_names()
            there = f" (it serves {', '.join(known)})" if known else ""
            raise ConfigError(
                f"the server at {self.url} has no model {self.model!r}{there}: fix --v2-model"
            )
        if ready.status_code != 200:
            raise ConfigError(
                f"model {self.model!r} at {self.url} is not ready ({ready.status_code}: "
                f"{_error_text(ready)}): wait until the server has loaded it, or read its log"
            )
        answer = await self._send("GET", self._path)
        if answer.status_code != 200:
            raise ConfigError(
                f"the server at {self.url} gives no metadata for model {self.model!r} "
                f"({answer.status_code}: {_error_text(answer)})"
            )
        meta = ModelMeta.parse(_json(answer, self.url), self.model)
        spec = ModelInput.from_settings(self.settings, meta.shape)
        if await self._lists_binary():
            self.binary = True
        self.meta, self.spec = meta, spec
        log.info(
            "v2 model %s at %s: input %s %s %s, output %s, tiles of %dx%d, %s tensors",
            self.model,
            self.url,
            meta.input_name,
            meta.datatype,
            list(meta.shape),
            meta.output or "(the first)",
            *spec.size,
            "binary" if self.binary else "JSON or binary (tried at the first tile)",
        )

    async def _model_names(self) -> list[str]:
        """The models the server's repository index lists (MLServer, Triton), else []."""
        with contextlib.suppress(httpx.HTTPError, ValueError, TypeError, AttributeError):
            answer = await self._client.post("/v2/repository/index", json={})
            if answer.status_code == 200:
                return [
                    str(m["name"]) for m in answer.json() if isinstance(m, dict) and "name" in m
                ]
        return []

    async def _lists_binary(self) -> bool:
        """Whether the server metadata (`GET /v2`) lists the binary tensor data extension."""
        with contextlib.suppress(httpx.HTTPError, ValueError, AttributeError):
            answer = await self._client.get("/v2")
            if answer.status_code == 200:
                return BINARY_EXTENSION in (answer.json().get("extensions") or [])
        return False

    # Segmentation ------------------------------------------------------------
    async def segment(self, raster: Raster) -> Segmentation:
        if not isinstance(raster.pixels, np.ndarray):
            raise ImageError(
                "model backends take images that fit in memory: Sentinel-1 products and "
                "rasters read by windows need --backend sar"
            )
        try:
            meta, spec = await self._started()
        except ConfigError as exc:
            raise BackendError(exc.message) from exc
        started = time.perf_counter()
        image = await self.cpu.run(images.to_display, raster.pixels)
        h, w = image.shape[:2]
        spec = _tile_spec(meta, spec, h, w)
        grid = tensors.windows(h, w, spec.size)
        stitcher = tensors.Stitcher(h, w)
        todo = iter(grid)

        async def work() -> None:
            for window in todo:  # shared: each worker takes the next tile
                tensor = await self.cpu.run(_tile, image, window, spec, meta.datatype)
                output = await self._infer(meta, tensor)
                classes, oil = await self.cpu.run(tensors.semantic, output, spec)
                stitcher.add(window, classes, oil)

        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(min(len(grid), self.concurrency)):
                    tg.create_task(work())
        except BaseExceptionGroup as group:
            raise group.exceptions[0] from None
        classes, oil_prob = stitcher.result()
        inferred = time.perf_counter()
        timings = {"infer": round((inferred - started) * 1000, 1)}
        info: dict[str, Any] = {
            "backend": "v2",
            "model_server": self.url,
            "model": self.model,
            "input_size": list(spec.size),
            "channels": spec.channels,
            "tiles": len(grid),
            "tensor_data": "binary" if self.binary else "json",
            "timings_ms": timings,
        }
        seg = await self.cpu.run(
            from_labels, raster, classes, oil_prob, info, self.settings.pixel_size_m
        )
        timings["measure"] = round((time.perf_counter() - inferred) * 1000, 1)
        return seg

    async def _started(self) -> tuple[ModelMeta, ModelInput]:
        await self.start()
        assert self.meta is not None and self.spec is not None
        return self.meta, self.spec

    async def _infer(self, meta: ModelMeta, tensor: np.ndarray) -> np.ndarray:
        """The model's output for one input tensor."""
        if self.binary is None:
            async with self._probing:  # the first tile finds out; the others wait for it
                if self.binary is None:
                    return await self._probe(meta, tensor)
        return await self._post(meta, tensor, bool(self.binary))

    async def _post(self, meta: ModelMeta, tensor: np.ndarray, binary: bool) -> np.ndarray:
        body, headers = await self.cpu.run(_request, tensor, meta, binary)
        answer = await self._send("POST", f"{self._path}/infer", body, headers)
        return await self._read(meta, answer)

    async def _probe(self, meta: ModelMeta, tensor: np.ndarray) -> np.ndarray:
        """Send a tensor in binary, once (retried as any request); remember the verdict.

        A 4xx, 500 or 501 to it (MLServer answers 500) and a 200 to the same tensor as
        JSON mean the server takes JSON only. Other failures leave it for the next tile.
        """
        body, headers = await self.cpu.run(_request, tensor, meta, True)
        answer = await self._send("POST", f"{self._path}/infer", body, headers, NOT_UNDERSTOOD)
        if answer.status_code == 200:
            output = await self._read(meta, answer)
            self.binary = True
            log.info("the server at %s takes binary tensor data", self.url)
            return output
        output = await self._post(meta, tensor, False)
        self.binary = False
        log.info(
            "the server at %s does not take binary tensor data (it answered %d: %s): "
            "JSON tensors from now on",
            self.url,
            answer.status_code,
            _error_text(answer),
        )
        return output

    async def _read(self, meta: ModelMeta, answer: httpx.Response) -> np.ndarray:
        if answer.status_code != 200:
            raise BackendError(
                f"the model server at {self.url} refused the image ({answer.status_code}): "
                f"{_error_text(answer)}"
            )
        length = answer.headers.get(HEADER_LENGTH)
        return await self.cpu.run(_response, answer.content, length, meta.output, self.url)

    # Requests ----------------------------------------------------------------
    async def _send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        final: tuple[int, ...] = (),
    ) -> httpx.Response:
        """The answer to a request, retried after transient failures; BackendError when
        none came after `--ml-retries` retries. A 4xx, or a status in `final`, is
        returned, not retried."""

        async def attempt() -> httpx.Response:
            return await self._attempt(method, path, body, headers, final)

        return await retry.with_retries(attempt, self.retries, self.timeout)

    async def _attempt(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str] | None,
        final: tuple[int, ...],
    ) -> httpx.Response:
        """One request: its answer, or retry.Retry for no answer, a 5xx or a 429."""
        async with self._slots:
            try:
                answer = await self._client.request(method, path, content=body, headers=headers)
            except httpx.TimeoutException as exc:
                raise retry.Retry(
                    f"the model server at {self.url} did not answer in {self.timeout:g} s"
                ) from exc
            except httpx.TransportError as exc:
                raise retry.Retry(f"the model server at {self.url} failed: {exc!r}") from exc
            except httpx.HTTPError as exc:
                raise BackendError(f"the model server at {self.url} failed: {exc!r}") from exc
        status = answer.status_code
        if (status == 429 or status >= 500) and status not in final:
            raise retry.Retry(
                f"the model server at {self.url} answered {status}: {_error_text(answer)}",
                retry.retry_after(answer.headers.get("retry-after")),
            )
        return answer

    async def aclose(self) -> None:
        await self._client.aclose()


# Tensors on the wire (blocking) -------------------------------------------------


def _tile_spec(meta: ModelMeta, spec: ModelInput, h: int, w: int) -> ModelInput:
    """The model input for an h×w image: along a free side, no larger than the image."""
    free_w, free_h = meta.free
    width, height = spec.size
    size = (min(width, w) if free_w else width, min(height, h) if free_h else height)
    return dataclasses.replace(spec, size=size)


def _tile(image: np.ndarray, window: Window, spec: ModelInput, datatype: str) -> np.ndarray:
    """One tile of the 8-bit image as the model's input tensor."""
    tensor = tensors.to_tensor(tensors.crop(image, window, spec.size), spec)
    return tensor.astype(DATATYPES[datatype], copy=False)


def _request(tensor: np.ndarray, meta: ModelMeta, binary: bool) -> tuple[bytes, dict[str, str]]:
    """The infer request body and headers: JSON, or a JSON header then the raw tensor."""
    spec: dict[str, Any] = {
        "name": meta.input_name,
        "datatype": meta.datatype,
        "shape": list(tensor.shape),
    }
    request: dict[str, Any] = {"inputs": [spec]}
    if binary:
        raw = np.ascontiguousarray(tensor, tensor.dtype.newbyteorder("<")).tobytes()
        spec["parameters"] = {"binary_data_size": len(raw)}
        if meta.output is None:
            request["parameters"] = {"binary_data_output": True}
        else:
            request["outputs"] = [{"name": meta.output, "parameters": {"binary_data": True}}]
        header = json.dumps(request, separators=(",", ":")).encode()
        headers = {HEADER_LENGTH: str(len(header)), "Content-Type": "application/octet-stream"}
        return header + raw, headers
    spec["data"] = tensor.ravel().tolist()
    if meta.output is not None:
        request["outputs"] = [{"name": meta.output}]
    body = json.dumps(request, separators=(",", ":")).encode()
    return body, {"Content-Type": "application/json"}


def _response(body: bytes, header_length: str | None, wanted: str | None, url: str) -> np.ndarray:
    """The output tensor `wanted` (else the first) of an infer answer, JSON or binary."""
    try:
        size = int(header_length) if header_length is not None else len(body)
        if not 0 < size <= len(body):
            raise ValueError(f"{HEADER_LENGTH} {header_length} for {len(body)} bytes")
        header = json.loads(body[:size])
        if not isinstance(header, dict):
            raise ValueError("the answer is not a JSON object")
        blob = memoryview(body)[size:]
        offset = 0
        for out in header.get("outputs") or []:
            params = out.get("parameters") or {}
            nbytes = params.get("binary_data_size")
            raw = None
            if nbytes is not None:
                raw = blob[offset : offset + int(nbytes)]
                offset += int(nbytes)
            if wanted is None or out.get("name") == wanted:
                return _array(out, raw)
        names = [str(o.get("name")) for o in header.get("outputs") or []]
        raise ValueError(f"no output {wanted!r} in it (it has {names or 'none'})")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise BackendError(
            f"the model server at {url} answered what is no inference response: {exc}"
        ) from exc


def _array(out: dict[str, Any], raw: memoryview | None) -> np.ndarray:
    """One output tensor of an answer, from its JSON data or its binary bytes."""
    datatype = str(out["datatype"]).upper()
    if datatype not in DATATYPES:
        raise ValueError(f"output {out.get('name')!r} is {datatype}, no numeric tensor")
    shape = [int(d) for d in out["shape"]]
    dtype = np.dtype(DATATYPES[datatype])
    if raw is not None:
        if len(raw) != dtype.itemsize * int(np.prod(shape)):
            raise ValueError(f"{len(raw)} bytes of {datatype} do not make a {shape} tensor")
        return np.frombuffer(raw, dtype.newbyteorder("<")).reshape(shape)
    data = np.asarray(out["data"], dtype)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{data.size} values do not make a {shape} tensor")
    return data.reshape(shape)


def _json(answer: httpx.Response, url: str) -> Any:
    try:
        return answer.json()
    except ValueError as exc:
        raise ConfigError(f"the server at {url} answered what is no JSON: {exc}") from exc


def _error_text(answer: httpx.Response) -> str:
    """The server's message: the `error` (or `detail`) of a JSON body, else the text."""
    with contextlib.suppress(ValueError):
        body = answer.json()
        if isinstance(body, dict) and (body.get("error") or body.get("detail")):
            return str(body.get("error") or body.get("detail"))[:300]
    return answer.text[:300].strip() or "(empty body)"
