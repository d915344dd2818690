"""--backend v2 against a real MLServer (its own virtualenv) and a small faulty OIP server.

MLServer pins an older FastAPI and Starlette than ours, so it is not installed here:
`OILSPILL_MLSERVER` names its `mlserver` executable (.ci/run sets it up). Without it the
MLServer tests are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from helpers import encode, free_port, make_zip, serve_in_thread
from oil_logits import logits
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from oilspill.backends.cpu import CpuPool
from oilspill.backends.v2 import V2Segmenter
from oilspill.config import Settings
from oilspill.errors import BackendError, ConfigError
from oilspill.io.images import Raster
from oilspill.sar.records import Cls
from oilspill.server.app import create_app

HERE = Path(__file__).parent
SETUP = (
    "MLServer is not set up: python3 -m venv /tmp/mlvenv && "
    "/tmp/mlvenv/bin/pip install 'mlserver==1.7.1' numpy, then "
    "export OILSPILL_MLSERVER=/tmp/mlvenv/bin/mlserver (.ci/run does this)"
)
RECT = (slice(60, 110), slice(100, 220))  # rows, cols of the dark rectangle


def oil_probability(pixels: np.ndarray) -> np.ndarray:
    scores = logits(pixels[None, None].astype(np.float32) / 255)[0]
    e = np.exp(scores - scores.max(axis=0))
    return np.asarray(e[1] / e.sum(axis=0))


def scene(
    size: tuple[int, int] = (320, 240), seed: int = 0, rect: tuple[slice, slice] = RECT
) -> np.ndarray:
    """Bright speckled sea (120-230) with a dark rectangle (15-45) at `rect`."""
    rng = np.random.default_rng(seed)
    width, height = size
    img = rng.integers(120, 231, (height, width), dtype=np.uint8)
    img[rect] = rng.integers(15, 46, img[rect].shape, dtype=np.uint8)
    return img


def raster(pixels: np.ndarray) -> Raster:
    return Raster(pixels=pixels, name="scene.png", fmt="png")


def settings(url: str, model: str = "oil", **overrides: Any) -> Settings:
    values: dict[str, Any] = {"backend": "v2", "v2_url": url, "v2_model": model, "workers": 2}
    return Settings(**(values | overrides))


def segment(url: str, pixels: np.ndarray, **overrides: Any) -> tuple[Any, V2Segmenter]:
    async def scenario() -> tuple[Any, V2Segmenter]:
        seg = V2Segmenter(CpuPool(2), settings(url, **overrides))
        try:
            return await seg.segment(raster(pixels)), seg
        finally:
            await seg.aclose()

    return asyncio.run(scenario())


def expect_one_slick_on_the_rectangle(
    result: Any, pixels: np.ndarray, rect: tuple[slice, slice] = RECT, labels: bool = False
) -> None:
    oil = np.asarray(result.mask) == Cls.OIL
    expected = np.zeros(pixels.shape, bool)
    expected[rect] = True
    assert (oil == expected).all()
    (slick,) = result.slicks
    if labels:
        assert slick.confidence is None  # labels give no probability
    else:
        mean = float(oil_probability(pixels)[rect].mean())
        assert slick.confidence == pytest.approx(mean, abs=1e-3)


# A real MLServer ---------------------------------------------------------------------


def _model(folder: Path, name: str, inputs: list[int], out: dict[str, Any], **extra: Any) -> None:
    (folder / name).mkdir()
    spec = {
        "name": name,
        "implementation": "mlserver_model.OilModel",
        "inputs": [{"name": "image", "datatype": "FP32", "shape": inputs}],
        "outputs": [out],
        "parameters": {"extra": extra},
    }
    (folder / name / "model-settings.json").write_text(json.dumps(spec))


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlserver start` on 127.0.0.1 serving `oil` (free size, logits) and `fixed`
    (64×64 tiles only, labels); its URL."""
    exe = os.environ.get("OILSPILL_MLSERVER", "")
    if not exe:
        if os.environ.get("CI") == "true":
            pytest.fail(SETUP)
        pytest.skip(SETUP)
    if not Path(exe).is_file():
        pytest.fail(f"OILSPILL_MLSERVER={exe} is no file; {SETUP}")
    folder = tmp_path_factory.mktemp("mlserver")
    port = free_port()
    config = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),  # gRPC cannot be turned off
        "metrics_endpoint": None,  # no metrics server
        "parallel_workers": 0,
        "debug": False,
    }
    (folder / "settings.json").write_text(json.dumps(config))
    _model(
        folder,
        "oil",
        [-1, 1, -1, -1],
        {"name": "logits", "datatype": "FP32", "shape": [-1, 5, -1, -1]},
    )
    _model(
        folder,
        "fixed",
        [1, 1, 64, 64],
        {"name": "labels", "datatype": "INT32", "shape": [1, 64, 64]},
        output="labels",
        size=[64, 64],
    )
    env = {**os.environ, "PYTHONPATH": str(HERE), "PYTHONUNBUFFERED": "1"}
    log = folder / "mlserver.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [exe, "start", str(folder)], cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, url, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mlserver exited with {proc.returncode}: {log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if all(
                httpx.get(f"{url}{path}", timeout=1).status_code == 200
                for path in ("/v2/health/ready", "/v2/models/oil/ready", "/v2/models/fixed/ready")
            ):
                return
        time.sleep(0.1)
    raise AssertionError(f"mlserver was not ready in {timeout} s: {log.read_text()}")


def test_the_dark_rectangle_is_one_slick_with_the_mean_oil_probability(mlserver: str) -> None:
    pixels = scene()
    result, seg = segment(mlserver, pixels)
    expect_one_slick_on_the_rectangle(result, pixels)
    assert result.info["tiles"] == 1 and result.info["model"] == "oil"
    assert seg.binary is False  # MLServer 1.7 takes JSON tensors only


def test_a_large_image_is_tiled(mlserver: str) -> None:
    rect = (slice(40, 150), slice(100, 220))  # across the tiles' cores, both ways
    pixels = scene((300, 220), seed=1, rect=rect)
    result, _ = segment(mlserver, pixels, model_size="160")
    assert result.info["tiles"] == 3 * 2 and result.info["input_size"] == [160, 160]
    expect_one_slick_on_the_rectangle(result, pixels, rect)


def test_a_fixed_size_model_gets_padded_tiles_and_its_labels_are_read(mlserver: str) -> None:
    rect = (slice(10, 40), slice(90, 150))  # to the right edge of a 50 px high image
    pixels = scene((150, 50), seed=2, rect=rect)
    result, _ = segment(mlserver, pixels, model="fixed")
    assert result.info["input_size"] == [64, 64] and result.info["tiles"] == 4  # 64 high, padded
    expect_one_slick_on_the_rectangle(result, pixels, rect, labels=True)


def test_a_model_the_server_does_not_have_is_a_config_error_at_start(mlserver: str) -> None:
    async def scenario() -> None:
        seg = V2Segmenter(CpuPool(1), settings(mlserver, model="nope"))
        try:
            await seg.start()
        finally:
            await seg.aclose()

    with pytest.raises(ConfigError, match=r"no model 'nope' \(it serves .*oil.*\): fix --v2-model"):
        asyncio.run(scenario())


def test_a_zip_job_through_the_service_succeeds(mlserver: str, tmp_path: Path) -> None:
    data = make_zip({f"scene_{i}.png": encode(scene(seed=i)) for i in range(3)})
    job = asyncio.run(run_job(settings(mlserver, data_dir=tmp_path / "data"), data))
    assert job["state"] == "succeeded" and job["progress"]["done"] == 3
    assert [image["slicks"] for image in job["images"]] == [1, 1, 1]


async def run_job(config: Settings, data: bytes) -> dict[str, Any]:
    """Upload a zip to the app in process (httpx.ASGITransport) and wait for its end."""
    async with app_client(config) as client:
        answer = await client.post(
            "/api/v1/jobs", files={"file": ("images.zip", data, "application/zip")}
        )
        assert answer.status_code == 202, answer.text
        url = f"/api/v1/jobs/{answer.json()['id']}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job: dict[str, Any] = (await client.get(url)).json()
            if job["state"] in ("succeeded", "failed"):
                return job
            await asyncio.sleep(0.05)
    raise AssertionError("the job did not finish in 60 s")


@contextlib.asynccontextmanager
async def app_client(config: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run, and a client that calls it in process."""
    app = create_app(config)
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = dict(state or {})  # what a server gives each request
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client


# A faulty server ---------------------------------------------------------------------


class FaultyServer:
    """A small Open Inference Protocol server with model `oil` (`logits` above).

    `faults` are answered first, one per infer request; a tile whose first pixel is
    white is refused with a 400. `binary`: it takes the binary tensor data extension;
    `lists_binary`: its metadata says so. Optional fields are always null.
    """

    REFUSED = "the model refuses tiles that start with a white pixel"

    def __init__(self, binary: bool = False, lists_binary: bool = False) -> None:
        self.binary, self.lists_binary = binary, lists_binary
        self.faults: list[Response] = []
        self.infers: list[tuple[float, bool]] = []  # (monotonic time, binary?) of each
        self.model_ready = True
        self.in_flight = self.most_in_flight = 0
        self.app = Starlette(
            routes=[
                Route("/v2", self.server_metadata),
                Route("/v2/health/ready", self.ok),
                Route("/v2/models/oil/ready", self.ready),
                Route("/v2/models/oil", self.metadata),
                Route("/v2/models/oil/infer", self.infer, methods=["POST"]),
            ]
        )

    async def ok(self, request: Request) -> Response:
        return Response()

    async def ready(self, request: Request) -> Response:
        if self.model_ready:
            return Response()
        return JSONResponse({"error": "Model oil is not ready yet."}, 400)  # as MLServer

    async def server_metadata(self, request: Request) -> Response:
        extensions = ["binary_tensor_data"] if self.lists_binary else None
        return JSONResponse({"name": "faulty", "version": "0", "extensions": extensions})

    async def metadata(self, request: Request) -> Response:
        inputs = [{"name": "x", "datatype": "FP32", "shape": [-1, 1, -1, -1], "parameters": None}]
        body = {"name": "oil", "versions": None, "platform": "", "parameters": None}
        return JSONResponse(body | {"inputs": inputs, "outputs": None})

    async def infer(self, request: Request) -> Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.02)  # a model takes its time: let requests overlap
            return await self._infer(request)
        finally:
            self.in_flight -= 1

    async def _infer(self, request: Request) -> Response:
        body = await request.body()
        length = request.headers.get("inference-header-content-length")
        self.infers.append((time.monotonic(), length is not None))
        if self.faults:
            return self.faults.pop(0)
        if length is not None and not self.binary:
            return JSONResponse({"error": "binary tensor data is not supported"}, 400)
        header = json.loads(body[: int(length)] if length else body)
        spec = header["inputs"][0]
        if length:
            x = np.frombuffer(body[int(length) :], "<f4").reshape(spec["shape"])
        else:
            x = np.asarray(spec["data"], np.float32).reshape(spec["shape"])
        if x[0, 0, 0, 0] >= 1.0:
            return JSONResponse({"error": self.REFUSED}, 400)
        out = logits(x)
        output = {
            "name": "scores",
            "datatype": "FP32",
            "shape": list(out.shape),
            "parameters": None,
        }
        answer = {"model_name": "oil", "model_version": None, "id": None, "parameters": None}
        asked = [
            (o.get("parameters") or {}).get("binary_data") for o in header.get("outputs") or []
        ]
        if (header.get("parameters") or {}).get("binary_data_output") or any(asked):
            raw = out.astype("<f4").tobytes()
            output["parameters"] = {"binary_data_size": len(raw)}
            head = json.dumps(answer | {"outputs": [output]}).encode()
            headers = {"Inference-Header-Content-Length": str(len(head))}
            return Response(head + raw, headers=headers, media_type="application/octet-stream")
        return JSONResponse(answer | {"outputs": [output | {"data": out.ravel().tolist()}]})


@pytest.fixture
def faulty() -> Iterator[Callable[..., tuple[FaultyServer, str]]]:
    """Start a FaultyServer on 127.0.0.1 (uvicorn in a thread): (server, URL)."""
    with contextlib.ExitStack() as stack:

        def start(**options: bool) -> tuple[FaultyServer, str]:
            fake = FaultyServer(**options)
            config = {"log_level": "warning", "lifespan": "off", "ws": "none"}
            server = stack.enter_context(serve_in_thread(fake.app, **config))
            return fake, f"http://127.0.0.1:{server.config.port}"

        yield start


def test_a_503_is_retried(faulty: Callable[..., tuple[FaultyServer, str]]) -> None:
    fake, url = faulty(binary=True, lists_binary=True)
    fake.faults = [JSONResponse({"error": "overloaded"}, 503)]
    pixels = scene()
    result, _ = segment(url, pixels)
    expect_one_slick_on_the_rectangle(result, pixels)
    assert len(fake.infers) == 2


def test_a_429s_retry_after_is_honoured(faulty: Callable[..., tuple[FaultyServer, str]]) -> None:
    fake, url = faulty(binary=True, lists_binary=True)
    fake.faults = [JSONResponse({"error": "slow down"}, 429, headers={"Retry-After": "1"})]
    result, _ = segment(url, scene())
    (first, _), (second, _) = fake.infers
    assert second - first >= 0.95  # not the 0.2-0.4 s of the first backoff
    assert len(result.slicks) == 1


def test_a_400_is_not_retried_and_fails_the_image_with_the_servers_message(
    faulty: Callable[..., tuple[FaultyServer, str]],
) -> None:
    fake, url = faulty(binary=True, lists_binary=True)
    pixels = scene()
    pixels[0, 0] = 255
    with pytest.raises(BackendError, match=f"refused the image \\(400\\): {fake.REFUSED}"):
        segment(url, pixels)
    assert len(fake.infers) == 1


def test_a_refused_image_fails_alone_in_a_job(
    faulty: Callable[..., tuple[FaultyServer, str]], tmp_path: Path
) -> None:
    _, url = faulty(binary=True, lists_binary=True)
    refused = scene(seed=1)
    refused[0, 0] = 255
    images = {"a.png": encode(scene()), "b.png": encode(refused), "c.png": encode(scene(seed=2))}
    job = asyncio.run(run_job(settings(url, data_dir=tmp_path / "data"), make_zip(images)))
    assert job["state"] == "succeeded"
    assert [i["status"] for i in job["images"]] == ["done", "failed", "done"]
    assert FaultyServer.REFUSED in job["images"][1]["error"]


def test_nulls_for_optional_fields_are_read(
    faulty: Callable[..., tuple[FaultyServer, str]],
) -> None:
    _, url = faulty()  # metadata outputs null; answers with "parameters": null everywhere
    pixels = scene()
    result, _ = segment(url, pixels)
    expect_one_slick_on_the_rectangle(result, pixels)


def test_binary_is_tried_once_and_json_remembered(
    faulty: Callable[..., tuple[FaultyServer, str]],
) -> None:
    fake, url = faulty()
    result, seg = segment(url, scene((300, 220)), model_size="160")
    assert result.info["tiles"] > 1 and result.info["tensor_data"] == "json"
    assert [binary for _, binary in fake.infers].count(True) == 1
    assert len(fake.infers) == result.info["tiles"] + 1 and seg.binary is False


def test_binary_tensors_when_the_server_takes_them(
    faulty: Callable[..., tuple[FaultyServer, str]],
) -> None:
    fake, url = faulty(binary=True)  # not listed: found by trying
    pixels = scene((300, 220))
    result, seg = segment(url, pixels, model_size="160")
    assert seg.binary is True and all(binary for _, binary in fake.infers)
    assert len(fake.infers) == result.info["tiles"]
    expect_one_slick_on_the_rectangle(result, pixels)


def test_binary_from_the_first_tile_when_the_server_lists_it(
    faulty: Callable[..., tuple[FaultyServer, str]],
) -> None:
    fake, url = faulty(binary=True, lists_binary=True)
    fake.faults = [JSONResponse({"error": "warming up"}, 503)]  # no verdict: retried, binary
    result, seg = segment(url, scene())
    assert [binary for _, binary in fake.infers] == [True, True]
    assert seg.binary is True and result.info["tensor_data"] == "binary"


def test_a_garbage_answer_is_that_images_backend_error(
    faulty: Callable[..., tuple[FaultyServer, str]],
) -> None:
    fake, url = faulty(binary=True, lists_binary=True)
    fake.faults = [Response(b"<html>proxy error</html>", 200, media_type="text/html")]
    with pytest.raises(BackendError, match="no inference response"):
        segment(url, scene())


def test_a_server_that_is_not_there_is_a_config_error_at_start() -> None:
    async def scenario() -> None:
        seg = V2Segmenter(CpuPool(1), settings(f"http://127.0.0.1:{free_port()}", ml_retries=1))
        try:
            await seg.start()
        finally:
            await seg.aclose()

    with pytest.raises(
        ConfigError, match="start the Open Inference Protocol server, or fix --v2-url"
    ):
        asyncio.run(scenario())


def test_at_most_ml_concurrency_requests_are_in_flight(
    faulty: Callable[..., tuple[FaultyServer, str]],
) -> None:
    fake, url = faulty(binary=True, lists_binary=True)
    result, _ = segment(url, scene((300, 220)), model_size="128", ml_concurrency=2)
    assert result.info["tiles"] > 4 and fake.most_in_flight == 2


def test_a_model_not_ready_is_a_config_error_at_start(
    faulty: Callable[..., tuple[FaultyServer, str]],
) -> None:
    fake, url = faulty()
    fake.model_ready = False

    async def scenario() -> None:
        seg = V2Segmenter(CpuPool(1), settings(url))
        try:
            await seg.start()
        finally:
            await seg.aclose()

    with pytest.raises(ConfigError, match=r"not ready yet.*wait until the server has loaded it"):
        asyncio.run(scenario())
