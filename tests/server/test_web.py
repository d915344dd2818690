"""The web page in a real headless Chromium (Debian's) against a real `oilspill serve`.

Playwright drives the browser; no browser is downloaded. Every request the
page makes outside 127.0.0.1 is refused, so the page is also checked to
work offline (no CDN).
"""

from __future__ import annotations

import json
import os
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from backends.onnx_models import dark_is_oil_labels
from helpers import Server, encode, image_zip, make_zip, sar_image, serve_in_thread
from playwright.sync_api import (
    Browser,
    Page,
    Request,
    Response,
    Route,
    ViewportSize,
    expect,
    sync_playwright,
)
from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse
from starlette.responses import Response as HttpResponse
from starlette.routing import Route as HttpRoute

from oilspill.sar import synth
from oilspill.sar.overlay import CLASS_RGB

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# A path (e.g. docs/screenshot.png) to save the README's screenshot at; plain runs write none.
SCREENSHOT = os.environ.get("OILSPILL_SCREENSHOT", "")
# Cumulative layout shift, as Chrome's Web Vitals count it (shifts right after input excluded).
RECORD_LAYOUT_SHIFTS = """
window.layoutShift = 0;
new PerformanceObserver((list) => {
  for (const shift of list.getEntries()) {
    if (!shift.hadRecentInput) window.layoutShift += shift.value;
  }
}).observe({ type: "layout-shift", buffered: true });
"""
LAPTOP: ViewportSize = {"width": 1280, "height": 900}
SMALL_LAPTOP: ViewportSize = {"width": 1366, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
WAIT_MS = 30_000
# One image's detail record: asked for by the enlarged view only, never for the gallery.
DETAIL_URL = re.compile(r"/api/v1/jobs/[0-9a-f]+/images/\d+$")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing; install Debian's chromium package"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """Open a page in a fresh browser context; only 127.0.0.1 can be reached.

    Other keywords go to the context (e.g. has_touch, is_mobile).
    """
    contexts = []

    def factory(locale: str = "en-US", viewport: ViewportSize = LAPTOP, **options: Any) -> Page:
        context = browser.new_context(locale=locale, viewport=viewport, **options)
        context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/])"), lambda route: route.abort())
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        return context.new_page()

    yield factory
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server (2 workers, default settings) for the tests that need nothing else of it."""
    server = Server(tmp_path_factory.mktemp("shared") / "data", "--workers", "2")
    yield server
    server.stop(kill=True)


def finished_job(server: Server, data: bytes, name: str) -> dict[str, Any]:
    """Upload a zip through the API and wait (bounded) for its job to finish."""
    files = {"file": (name, data, "application/zip")}
    job = httpx.post(f"{server.url}/api/v1/jobs", files=files, timeout=30).json()
    expect_by = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < expect_by:
        body = job_resource(server, job["id"])
        if body["state"] in ("succeeded", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job['id']} did not finish in {WAIT_MS} ms")


def synth_entries(tmp_path: Path, n: int, seed: int) -> dict[str, bytes]:
    """`n` synthetic scenes (several slicks, look-alikes; their PNGs carry a pixel size)."""
    path = tmp_path / f"synth_{seed}_{n}.zip"
    synth.write_zip(path, n, seed=seed, size=(1000, 520))
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


@pytest.fixture(scope="module")
def scenes_job(shared_server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A finished job of six synthetic scenes, each of known pixel size."""
    entries = synth_entries(tmp_path_factory.mktemp("scenes"), 6, seed=7)
    job = finished_job(shared_server, make_zip(entries, zipfile.ZIP_STORED), "scenes.zip")
    assert all(image["oil_area_km2"] is not None for image in job["images"])
    assert any(len(image["confidences"]) > 3 for image in job["images"])
    assert any(image["lookalikes"] > 0 for image in job["images"])
    return job


@pytest.fixture(scope="module")
def mixed_job(shared_server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A finished job of two scenes of known pixel size and one image with oil of unknown."""
    entries = synth_entries(tmp_path_factory.mktemp("mixed"), 2, seed=7)
    entries["plain.png"] = encode(sar_image(3))
    job = finished_job(shared_server, make_zip(entries, zipfile.ZIP_STORED), "mixed.zip")
    plain = [image for image in job["images"] if image["name"] == "plain.png"]
    assert plain[0]["oil_area_km2"] is None and plain[0]["oil_pixels"] > 0
    return job


def open_job(page: Page, server: Server, job: dict[str, Any]) -> None:
    page.goto(f"{server.url}/jobs/{job['id']}")
    expect(page.locator("#job")).to_have_attribute("data-state", "succeeded")
    expect(page.locator("#gallery .card")).to_have_count(len(job["images"]))


def press_enter_on_the_drop_zone(page: Page) -> None:
    """A keyboard user opens the file picker: focus the drop zone, press Enter.

    The picker opening is seen from the page (a click reaches the file input
    while the key press still counts as user activation). Playwright's
    filechooser event is not waited for: it is sometimes lost in Chromium.
    """
    page.evaluate(
        """window.pickerClicks = [];
        document.getElementById("file").addEventListener("click", () =>
          window.pickerClicks.push(navigator.userActivation.isActive));"""
    )
    page.locator("#drop").focus()
    page.keyboard.press("Enter")
    page.wait_for_function("window.pickerClicks.length === 1")
    assert page.evaluate("window.pickerClicks") == [True]


def wait_until_finished(page: Page) -> str:
    expect(page).to_have_url(re.compile(r"/jobs/[0-9a-f]{32}$"))
    expect(page.locator("#job")).to_have_attribute("data-state", "succeeded")
    return str(page.url.rsplit("/", 1)[1])


def many_scenes(tmp_path: Path, n: int) -> bytes:
    """A zip of `n` copies of one synthetic scene: minutes of work for one worker, made at once."""
    one = tmp_path / "one.zip"
    synth.write_zip(one, 1, seed=1)
    with zipfile.ZipFile(one) as zf:
        data = zf.read(zf.namelist()[0])
    return make_zip({f"scene_{i:03d}.png": data for i in range(n)}, zipfile.ZIP_STORED)


def record_requests(page: Page, method: str, pattern: re.Pattern[str]) -> list[str]:
    """The URLs of the page's requests with this method that match `pattern`, as they are made."""
    urls: list[str] = []

    def seen(request: Request) -> None:
        if request.method == method and pattern.search(request.url):
            urls.append(request.url)

    page.on("request", seen)
    return urls


def shown_percent(fraction: float, lang: str = "en") -> str:
    """A confidence as the page shows it: to the nearest whole percent (0.998 is 100 %).

    Rounded as Chromium's Intl.NumberFormat rounds: half away from zero, on the number's
    shortest decimal form (0.145 is 15 %, where float arithmetic would make it 14 %).
    """
    percent = int((Decimal(repr(fraction)) * 100).quantize(Decimal(1), ROUND_HALF_UP))
    return f"{percent}%" if lang == "en" else f"{percent}\u00a0%"


def card_confidences(confidences: list[float], lang: str = "en") -> str:
    """A card's confidence line: the first three, then how many more."""
    label, none = {"en": ("Confidence", "No oil found"), "ru": ("Уверенность", "Нефть не найдена")}[
        lang
    ]
    if not confidences:
        return none
    text = ", ".join(shown_percent(c, lang) for c in confidences[:3])
    if len(confidences) > 3:
        text += f" +{len(confidences) - 3}"
    return f"{label}: {text}"


def job_resource(server: Server, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/api/v1/jobs/{job_id}", timeout=10)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def test_gallery_shows_every_image_with_its_slick_count(
    start_server: Callable[..., Server], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    server = start_server("--workers", "2", "--pixel-size-m", "40")
    scenes = tmp_path / "scenes.zip"
    synth.write_zip(scenes, 6, seed=7, size=(1000, 520))
    page = new_page()
    page.add_init_script(RECORD_LAYOUT_SHIFTS)
    details = record_requests(page, "GET", DETAIL_URL)
    page.goto(server.url)

    press_enter_on_the_drop_zone(page)
    page.set_input_files("#file", str(scenes))
    job_id = wait_until_finished(page)

    job = job_resource(server, job_id)
    cards = page.locator("#gallery .card")
    expect(cards).to_have_count(len(job["images"]))
    for image in job["images"]:
        card = page.locator(f'.card[data-name="{image["name"]}"]')
        expect(card).to_have_attribute("data-status", "done")
        count = card.locator(".count")
        expect(count).to_have_attribute("data-slicks", str(image["slicks"]))
        expect(count).to_contain_text(f"Oil slicks: {image['slicks']}")
        expect(card.locator(".area")).to_contain_text("km²")
        expect(card.locator(".confidence")).to_have_text(card_confidences(image["confidences"]))
    assert details == []  # the confidences came with the job resource
    expect(page.locator("#summary [data-key=images]")).to_have_text(str(len(job["images"])))
    expect(page.locator("#download")).to_have_attribute("href", job["links"]["result"])
    expect(page.locator("#job-countdown")).to_contain_text(re.compile(r"deleted in \d+:\d\d"))
    assert page.evaluate("window.layoutShift") < 0.05  # nothing jumped while the job ran
    page.locator("#drop").blur()  # no focus ring in the picture
    page.wait_for_timeout(400)  # let the progress bar's 0.3 s width transition end
    if SCREENSHOT:
        page.screenshot(path=SCREENSHOT, full_page=True)

    with page.expect_download() as download:
        page.locator("#download").click()
    with zipfile.ZipFile(download.value.path()) as zf:
        names = set(zf.namelist())
    assert {image["name"] for image in job["images"]} <= names


def test_enlarged_view_lists_each_slick_with_its_confidence_and_esc_closes_it(
    shared_server: Server, new_page: Callable[..., Page], tmp_path: Path
) -> None:
    server = shared_server
    zip_path = tmp_path / "images.zip"
    zip_path.write_bytes(image_zip(2))
    page = new_page()
    details = record_requests(page, "GET", DETAIL_URL)
    page.goto(server.url)
    page.set_input_files("#file", str(zip_path))
    job_id = wait_until_finished(page)
    expect(page.locator(".card .confidence").first).to_contain_text("Confidence: ")
    assert details == []

    detail = httpx.get(f"{server.url}/api/v1/jobs/{job_id}/images/0", timeout=10).json()
    page.locator('.card[data-index="0"] .thumb').click()
    viewer = page.locator("#viewer")
    expect(viewer).to_be_visible()
    expect(page.locator("#viewer-original")).to_have_attribute("src", re.compile(r"/original$"))
    rows = viewer.locator("tbody tr")
    expect(rows).to_have_count(len(detail["slicks"]))
    for slick in detail["slicks"]:
        expect(viewer.locator("tbody")).to_contain_text(shown_percent(slick["confidence"]))
    assert [url.rsplit("/", 1)[1] for url in details] == ["0"]  # the enlarged image only
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    expect(page.locator('.card[data-index="0"] .thumb')).to_be_focused()


def test_rejected_uploads_show_the_servers_own_message(
    shared_server: Server, new_page: Callable[..., Page], tmp_path: Path
) -> None:
    server = shared_server
    not_a_zip = tmp_path / "notes.zip"
    not_a_zip.write_bytes(b"these are notes, not a zip archive\n" * 10)
    page = new_page()
    uploads = record_requests(page, "POST", re.compile(r"/api/v1/jobs$"))
    page.goto(server.url)
    message = page.locator("#upload-message")

    answer = httpx.post(f"{server.url}/api/v1/jobs", files={"file": not_a_zip.read_bytes()})
    assert answer.status_code == 400
    page.set_input_files("#file", str(not_a_zip))
    expect(message).to_be_visible()
    expect(message).to_contain_text("(400)")
    expect(message).to_contain_text(answer.json()["detail"])
    assert len(uploads) == 1
    expect(page.locator("#job")).to_be_hidden()


def test_a_too_large_zip_is_refused_before_it_is_sent(
    start_server: Callable[..., Server], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    server = start_server("--max-upload-mb", "1")
    too_large = tmp_path / "large.zip"
    too_large.write_bytes(make_zip({"big.bin": os.urandom(1_200_000)}))
    page = new_page()
    uploads = record_requests(page, "POST", re.compile(r"/api/v1/jobs$"))
    page.goto(server.url)
    expect(page.locator("#drop-hint")).to_contain_text("of up to 1 MiB")
    message = page.locator("#upload-message")

    page.set_input_files("#file", str(too_large))
    expect(message).to_contain_text("large.zip is too large to upload: 1.1 MiB.")
    expect(message).to_contain_text("This server accepts a zip of up to 1 MiB;")
    page.get_by_role("button", name="Русский").click()
    expect(message).to_contain_text("Файл large.zip слишком большой для загрузки: 1,1 МиБ.")
    expect(message).to_contain_text("не больше 1 МиБ;")
    assert uploads == []
    expect(page.locator("#job")).to_be_hidden()

    # Without the limit from /healthz the zip is sent, and the server's own refusal shown.
    answer = httpx.post(f"{server.url}/api/v1/jobs", files={"file": too_large.read_bytes()})
    assert answer.status_code == 413
    blind = new_page()
    blind.route(re.compile(r"/healthz$"), lambda route: route.abort())
    blind.goto(server.url)
    blind.set_input_files("#file", str(too_large))
    expect(blind.locator("#upload-message")).to_contain_text("(413)")
    expect(blind.locator("#upload-message")).to_contain_text(answer.json()["detail"])


def test_upload_progress_counts_real_bytes(
    shared_server: Server, new_page: Callable[..., Page], tmp_path: Path
) -> None:
    server = shared_server
    zip_path = tmp_path / "images.zip"
    zip_path.write_bytes(image_zip(4, size=(640, 480)))
    page = new_page()
    page.goto(server.url)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 5e5},
    )
    page.set_input_files("#file", str(zip_path))
    text = page.locator("#upload-text")
    expect(text).to_contain_text(re.compile(r"Uploading images\.zip: [\d.]+\s(KiB|MiB) of"))
    percent = re.compile(r"\(([1-9]\d?)%\)")
    expect(text).to_contain_text(percent)
    expect(page.locator("#job")).to_be_visible()
    expect(page.locator("#upload-progress")).to_be_hidden()


def test_language_follows_the_browser_and_the_choice_survives_a_reload(
    shared_server: Server, new_page: Callable[..., Page], tmp_path: Path
) -> None:
    server = shared_server
    zip_path = tmp_path / "images.zip"
    zip_path.write_bytes(image_zip(2))
    page = new_page(locale="ru-RU")
    page.goto(server.url)
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(page.locator("h1")).to_have_text("Поиск нефтяных разливов")
    page.set_input_files("#file", str(zip_path))
    wait_until_finished(page)
    expect(page.locator(".card .count").first).to_contain_text("Пятен нефти:")
    expect(page.locator("#job-source")).to_have_text("Архив: images.zip")

    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Oil spill finder")
    expect(page.locator("#job-state")).to_have_text("Done")
    expect(page.locator(".card .count").first).to_contain_text("Oil slicks:")

    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#job")).to_have_attribute("data-state", "succeeded")
    expect(page.locator("#gallery .card")).to_have_count(2)
    expect(page.locator("#job-source")).to_have_text("From images.zip")


def test_countdown_runs_out_and_the_page_says_the_results_expired(
    start_server: Callable[..., Server], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    server = start_server("--ttl", "3")
    zip_path = tmp_path / "images.zip"
    zip_path.write_bytes(image_zip(1))
    page = new_page()
    page.goto(server.url)
    page.set_input_files("#file", str(zip_path))
    wait_until_finished(page)
    expect(page.locator("#job-countdown")).to_contain_text(re.compile(r"deleted in 0:0[0-3]"))

    expect(page.locator("#job")).to_have_attribute("data-state", "expired", timeout=15_000)
    expect(page.locator("#job-message")).to_contain_text("expired")
    expect(page.locator("#download")).to_be_hidden()
    expect(page.locator("#gallery")).to_be_hidden()
    page.reload()  # now only the server's word tells an expired job from an unknown one
    expect(page.locator("#job")).to_have_attribute("data-state", "expired")
    expect(page.locator("#job-message")).to_have_text(
        "These results expired and were deleted from the server."
    )


def test_cancel_stops_a_running_job_and_deletes_it(
    start_server: Callable[..., Server], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    server = start_server("--workers", "1")
    zip_path = tmp_path / "many.zip"
    zip_path.write_bytes(many_scenes(tmp_path, 40))
    page = new_page()
    page.goto(server.url)
    page.set_input_files("#file", str(zip_path))
    expect(page.locator("#job")).to_have_attribute("data-state", re.compile("queued|running"))
    job_id = page.url.rsplit("/", 1)[1]
    cancel = page.locator("#cancel")
    expect(cancel).to_have_text("Cancel job")
    expect(page.locator("#job-countdown")).to_have_text(
        "Results are kept 10 minutes after processing."
    )
    expect(page.locator("#job-source")).to_have_text("From many.zip")

    page.once("dialog", lambda dialog: dialog.accept())
    cancel.click()
    expect(page.locator("#job")).to_have_attribute("data-state", "cancelled")
    expect(page.locator("#job-message")).to_have_text("The job and its files were deleted.")
    response = httpx.get(f"{server.url}/api/v1/jobs/{job_id}", timeout=10)
    assert response.status_code == 404

    # The card collapses to its heading and that line, with no empty band above it.
    for gone in ("#summary", "#gallery", "#job-bar", "#job-progress-text", "#cancel", "#download"):
        expect(page.locator(gone)).to_be_hidden()
    expect(page.locator("#job-source")).to_have_text("From many.zip")  # which job it was
    drop = page.locator("#drop").bounding_box()
    job = page.locator("#job").bounding_box()
    assert drop and job
    assert job["y"] - (drop["y"] + drop["height"]) < 24  # the upload's message was there
    assert job["height"] < 200


def test_a_deleted_job_and_an_unknown_one_say_different_things(
    shared_server: Server, new_page: Callable[..., Page]
) -> None:
    server = shared_server
    files = {"file": ("images.zip", image_zip(1), "application/zip")}
    job = httpx.post(f"{server.url}/api/v1/jobs", files=files, timeout=30).json()
    assert httpx.delete(f"{server.url}/api/v1/jobs/{job['id']}", timeout=10).status_code == 204
    page = new_page()
    state = page.locator("#job")
    message = page.locator("#job-message")

    page.goto(f"{server.url}/jobs/{job['id']}")
    expect(state).to_have_attribute("data-state", "deleted")
    expect(message).to_have_text("These results were deleted on request, with all their files.")
    for empty in ("#download", "#job-bar", "#job-source"):  # nothing was known of it
        expect(page.locator(empty)).to_be_hidden()
    page.get_by_role("button", name="Русский").click()
    expect(message).to_have_text("Эти результаты удалены по запросу вместе со всеми файлами.")

    page.goto(f"{server.url}/jobs/{'0' * 32}")
    expect(state).to_have_attribute("data-state", "missing")
    expect(page.locator("#job-state")).to_have_text("Не найдено")
    expect(message).to_contain_text("Такого задания нет: проверьте ссылку.")
    page.get_by_role("button", name="English").click()
    expect(message).to_contain_text("There is no such job: check the link.")


# The first hour of a new user ------------------------------------------------------------

CARD_TEXTS = "#gallery .card, #gallery .card :is(.card-body, .card-name, .card-line)"
CARD_OVERFLOWS = f"""() =>
  [...document.querySelectorAll("{CARD_TEXTS}")]
    .filter((box) => box.scrollWidth > box.clientWidth + 1)
    .map((box) => box.className + ": " + box.textContent)"""


def test_card_texts_wrap_instead_of_being_cut_off(
    shared_server: Server, scenes_job: dict[str, Any], new_page: Callable[..., Page]
) -> None:
    page = new_page(viewport=SMALL_LAPTOP)
    open_job(page, shared_server, scenes_job)
    for viewport in (SMALL_LAPTOP, PHONE):
        page.set_viewport_size(viewport)
        for lang, button in (("ru", "Русский"), ("en", "English")):
            page.get_by_role("button", name=button).click()
            expect(page.locator("html")).to_have_attribute("lang", lang)
            for image in scenes_job["images"]:
                confidence = page.locator(f'.card[data-index="{image["index"]}"] .confidence')
                expect(confidence).to_have_text(card_confidences(image["confidences"], lang))
            assert page.evaluate(CARD_OVERFLOWS) == [], (viewport, lang)


def test_the_more_marker_says_how_many_more(
    shared_server: Server, scenes_job: dict[str, Any], new_page: Callable[..., Page]
) -> None:
    image = next(i for i in scenes_job["images"] if len(i["confidences"]) > 3)
    more = len(image["confidences"]) - 3
    page = new_page()
    open_job(page, shared_server, scenes_job)
    marker = page.locator(f'.card[data-index="{image["index"]}"] .confidence .more')
    expect(marker).to_have_text(f"+{more}")
    expect(marker).to_have_attribute("title", f"and {more} more")
    expect(page.get_by_role("img", name=f"and {more} more").first).to_be_visible()
    page.get_by_role("button", name="Русский").click()
    expect(marker).to_have_attribute("title", f"и ещё {more}")
    expect(marker).to_have_attribute("aria-label", f"и ещё {more}")


def test_total_area_is_in_km2_when_every_image_with_oil_has_a_pixel_size(
    shared_server: Server, scenes_job: dict[str, Any], new_page: Callable[..., Page]
) -> None:
    page = new_page()
    open_job(page, shared_server, scenes_job)
    total = sum(image["oil_area_km2"] for image in scenes_job["images"])
    area = page.locator("#summary [data-key=area]")
    expect(area).to_have_text(re.compile(r"^[\d.,]+\s?km²$"))
    assert float(area.inner_text().split()[0].replace(",", "")) == pytest.approx(total, abs=0.01)
    expect(page.locator("#area-note")).to_be_hidden()


def test_pixels_of_unknown_size_are_not_summed(
    shared_server: Server, mixed_job: dict[str, Any], new_page: Callable[..., Page]
) -> None:
    page = new_page()
    open_job(page, shared_server, mixed_job)
    area = page.locator("#summary [data-key=area]")
    note = page.locator("#area-note")
    expect(area).to_have_text("not known")
    expect(note).to_contain_text("pixel size unknown")
    expect(note).to_contain_text("--pixel-size-m or use georeferenced images")
    plain = page.locator('.card[data-name="plain.png"] .area')
    expect(plain).to_contain_text("px")  # each image's own area stays
    expect(plain).to_have_attribute("title", re.compile("Pixel size unknown"))
    expect(page.locator(".card:not([data-name='plain.png']) .area").first).to_contain_text("km²")
    page.get_by_role("button", name="Русский").click()
    expect(area).to_have_text("неизвестна")
    expect(note).to_contain_text("размер пикселя неизвестен")


def test_confidences_round_to_the_nearest_percent(
    shared_server: Server, scenes_job: dict[str, Any], new_page: Callable[..., Page]
) -> None:
    page = new_page()

    def nearly_sure(route: Route) -> None:  # one image's slicks as the model might score them
        response = route.fetch()
        body = response.json()
        body["images"][0]["confidences"] = [0.998, 0.994, 0.5]
        route.fulfill(response=response, json=body)

    page.route(re.compile(r"/api/v1/jobs/[0-9a-f]{32}$"), nearly_sure)
    open_job(page, shared_server, scenes_job)
    confidence = page.locator('.card[data-index="0"] .confidence')
    expect(confidence).to_have_text("Confidence: 100%, 99%, 50%")


def test_a_lookalike_shows_its_oil_score_not_a_confidence(
    shared_server: Server, scenes_job: dict[str, Any], new_page: Callable[..., Page]
) -> None:
    image = next(i for i in scenes_job["images"] if i["lookalikes"] > 0)
    url = f"{shared_server.url}/api/v1/jobs/{scenes_job['id']}/images/{image['index']}"
    slicks = httpx.get(url, timeout=10).json()["slicks"]
    top = max(s["confidence"] for s in slicks if s["cls"] == 2)  # listed first of its class
    page = new_page()
    open_job(page, shared_server, scenes_job)
    thumb = page.locator(f'.card[data-index="{image["index"]}"] .thumb')
    cell = page.locator("#viewer tbody tr.cls-2").first.locator("td").nth(2)
    thumb.click()
    expect(cell).to_have_text(f"look-alike (oil score {shown_percent(top)})")
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Русский").click()
    thumb.click()
    expect(cell).to_have_text(f"ложное пятно (оценка нефти {shown_percent(top, 'ru')})")


CARD_MARKS = """() => [...document.querySelectorAll("#gallery .card")].map((card) =>
  [card.dataset.status, card.querySelector(".thumb-mark").textContent])"""


def test_the_image_being_processed_says_so_and_the_rest_wait(
    start_server: Callable[..., Server], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    server = start_server("--workers", "1")
    zip_path = tmp_path / "many.zip"
    # 30 scenes: ~4 s for one worker, several of the page's polls (1/s); 8 took ~1 s, and
    # the job could end between two polls without one showing an image in work.
    zip_path.write_bytes(many_scenes(tmp_path, 30))
    page = new_page()
    page.goto(server.url)
    page.set_input_files("#file", str(zip_path))
    expect(page.locator('.card[data-status="processing"]')).to_have_count(1)
    marks = page.evaluate(CARD_MARKS)  # one moment's cards, in index order
    statuses = [status for status, _ in marks]
    at = statuses.index("processing")
    assert set(statuses[:at]) <= {"done"}
    assert marks[at][1] == "Processing…"
    assert marks[at + 1 :] and all(mark == ["pending", "Waiting"] for mark in marks[at + 1 :])


def test_recent_jobs_lead_back_to_an_earlier_upload(
    shared_server: Server, new_page: Callable[..., Page], tmp_path: Path
) -> None:
    page = new_page()
    page.goto(shared_server.url)
    recent = page.locator("#recent")
    ids = []
    for name in ("first.zip", "second.zip"):
        path = tmp_path / name
        path.write_bytes(image_zip(1, prefix=name.split(".")[0]))
        page.set_input_files("#file", str(path))
        expect(page.locator("#job-source")).to_have_text(f"From {name}")
        ids.append(page.url.rsplit("/", 1)[1])
    assert ids[0] != ids[1]
    expect(recent.get_by_role("heading")).to_have_text("Your recent jobs")
    links = recent.get_by_role("link")
    expect(links).to_have_text(["second.zip", "first.zip"])
    expect(links.first).to_have_attribute("aria-current", "page")
    links.last.click()
    expect(page).to_have_url(f"{shared_server.url}/jobs/{ids[0]}")
    expect(page.locator("#job-source")).to_have_text("From first.zip")
    expect(page.locator("#gallery .card")).to_have_count(1)
    expect(links.last).to_have_attribute("aria-current", "page")


def test_recent_jobs_leave_out_the_deleted_and_the_expired(
    shared_server: Server, new_page: Callable[..., Page]
) -> None:
    files = {"file": ("kept.zip", image_zip(1), "application/zip")}
    kept = httpx.post(f"{shared_server.url}/api/v1/jobs", files=files, timeout=30).json()
    files = {"file": ("deleted.zip", image_zip(1), "application/zip")}
    deleted = httpx.post(f"{shared_server.url}/api/v1/jobs", files=files, timeout=30).json()
    assert httpx.delete(f"{shared_server.url}/api/v1/jobs/{deleted['id']}").status_code == 204
    now = time.time()
    entries = [
        {"id": kept["id"], "name": "kept.zip", "created": now, "expires_at": now + 600},
        {"id": deleted["id"], "name": "deleted.zip", "created": now, "expires_at": now + 600},
        {"id": "ab" * 16, "name": "expired.zip", "created": now - 900, "expires_at": now - 300},
    ]
    page = new_page()
    page.add_init_script(
        f"localStorage.setItem('oilspill.recent', {json.dumps(json.dumps(entries))})"
    )
    page.goto(shared_server.url)
    expect(page.locator("#recent").get_by_role("link")).to_have_text(["kept.zip"])
    stored = page.evaluate("JSON.parse(localStorage.getItem('oilspill.recent'))")
    assert [entry["id"] for entry in stored] == [kept["id"]]


def test_server_errors_are_worded_in_the_pages_language(
    shared_server: Server, new_page: Callable[..., Page], tmp_path: Path
) -> None:
    not_a_zip = tmp_path / "notes.zip"
    not_a_zip.write_bytes(b"these are notes, not a zip archive\n" * 10)
    answer = httpx.post(f"{shared_server.url}/api/v1/jobs", files={"file": not_a_zip.read_bytes()})
    assert answer.json()["error"] == "bad_archive"
    page = new_page(locale="ru-RU")
    page.goto(shared_server.url)
    page.set_input_files("#file", str(not_a_zip))
    message = page.locator("#upload-message")
    expect(message.locator("strong")).to_have_text(
        "notes.zip не читается как zip-архив: он повреждён, зашифрован или это не zip (400)."
    )
    expect(message.locator(".detail")).to_have_text(answer.json()["detail"])
    page.get_by_role("button", name="English").click()
    expect(message.locator("strong")).to_contain_text("notes.zip is not a readable zip archive")


def test_a_touch_screen_is_asked_to_choose_a_zip_not_to_drop_it(
    shared_server: Server, new_page: Callable[..., Page]
) -> None:
    phone = new_page(viewport=PHONE, has_touch=True, is_mobile=True)
    phone.goto(shared_server.url)
    title = phone.locator("#drop-title")
    expect(title).to_have_text("Choose a zip of images")
    expect(phone.locator("#drop")).not_to_contain_text("Drop")
    phone.get_by_role("button", name="Русский").click()
    expect(title).to_have_text("Выберите zip-архив со снимками")
    laptop = new_page()
    laptop.goto(shared_server.url)
    expect(laptop.locator("#drop-title")).to_have_text("Drop a zip of images here")


def test_an_images_own_error_is_worded_in_the_pages_language(
    shared_server: Server, new_page: Callable[..., Page]
) -> None:
    entries = {"good.png": encode(sar_image(1)), "broken.jpg": b"not a jpeg at all"}
    job = finished_job(shared_server, make_zip(entries), "broken.zip")
    (broken,) = [image for image in job["images"] if image["name"] == "broken.jpg"]
    assert broken["error_code"] == "not_an_image"
    page = new_page(locale="ru-RU")
    open_job(page, shared_server, job)
    line = page.locator("#gallery .card").nth(broken["index"]).locator(".card-line.area")
    expect(line).to_contain_text("Причина: не изображение")
    expect(line).to_have_attribute("title", broken["error"])  # the server's own words


# What a model may not give: a mask (a picture only), a confidence (labels only) ----------


@pytest.fixture
def echo_model() -> Iterator[str]:
    """A model server of the earlier API on 127.0.0.1 whose "annotated image" is the upload.

    `POST /segment` answers with the uploaded file's bytes and content type, as the
    earlier system's echo model did; `GET /health` says it is up. Served by uvicorn in a
    thread; yields its base URL.
    """

    async def segment(request: HttpRequest) -> HttpResponse:
        async with request.form() as form:
            part = form["file"]
            assert not isinstance(part, str)
            data = await part.read()
            kind = part.content_type or "application/octet-stream"
        return HttpResponse(data, media_type=kind)

    async def health(request: HttpRequest) -> HttpResponse:
        return JSONResponse({"status": "ok"})

    app = Starlette(
        routes=[HttpRoute("/segment", segment, methods=["POST"]), HttpRoute("/health", health)]
    )
    with serve_in_thread(app) as server:
        yield f"http://127.0.0.1:{server.config.port}"


def record_failures(page: Page) -> list[str]:
    """Each answer of 400 or more that the page gets (images included), as it comes."""
    failed: list[str] = []

    def seen(response: Response) -> None:
        if response.status >= 400:
            failed.append(f"{response.status} {response.url}")

    page.on("response", seen)
    return failed


IMAGES_LOADED = """(selector) => [...document.querySelectorAll(selector)]
  .every((img) => img.complete && img.naturalWidth > 0)"""


def test_an_annotated_picture_without_a_mask_is_shown_and_counted_apart(
    start_server: Callable[..., Server],
    new_page: Callable[..., Page],
    echo_model: str,
) -> None:
    server = start_server("--backend", "http", "--ml-url", f"{echo_model}/segment")
    entries = {"a.png": encode(sar_image(1)), "b.jpg": encode(sar_image(2), ".jpg")}
    job = finished_job(server, make_zip(entries), "pictures.zip")
    assert job["state"] == "succeeded"
    assert all(i["masks"] is False and i["slicks"] is None for i in job["images"])
    assert all(set(i["links"]) == {"overlay", "thumbnail", "detail"} for i in job["images"])
    page = new_page()
    failures = record_failures(page)
    details = record_requests(page, "GET", DETAIL_URL)
    open_job(page, server, job)

    gallery = page.locator("#gallery")
    for image in job["images"]:
        card = page.locator(f'.card[data-name="{image["name"]}"]')
        expect(card).to_have_attribute("data-masks", "false")
        expect(card.locator(".count")).to_have_text("Annotated image only")
        expect(card.locator(".area")).to_have_text(
            "This model server gives no mask and no slick count."
        )
        expect(card.locator(".confidence")).to_be_hidden()
    for wrong in ("Oil slicks", "No oil found", "null", "NaN", "0 px"):
        expect(gallery).not_to_contain_text(wrong)
    page.wait_for_function(IMAGES_LOADED, arg="#gallery .thumb img")  # the pictures themselves
    summary = page.locator("#summary")
    expect(summary.locator("[data-key=processed]")).to_have_text("2")
    expect(summary.locator("[data-key=noMask]")).to_have_text("2")
    expect(summary.locator("[data-key=withSlicks]")).to_have_text("not known")
    expect(summary.locator("[data-key=area]")).to_have_text("not known")  # not "0 km²"
    expect(page.locator("#mask-note")).to_have_text(
        re.compile(r"^2 images without a mask: the model server gave annotated images only")
    )
    expect(page.locator("#area-note")).to_be_hidden()  # the pixel size is not what is missing

    page.locator('.card[data-index="0"] .thumb').click()
    viewer = page.locator("#viewer")
    expect(viewer).to_be_visible()
    expect(page.locator("#viewer-overlay")).to_have_attribute(
        "src", job["images"][0]["links"]["overlay"]
    )
    page.wait_for_function(IMAGES_LOADED, arg="#viewer-overlay")
    expect(page.locator("#viewer-second")).to_be_hidden()
    for toggle in ("Original", "Mask"):
        expect(viewer.get_by_role("button", name=toggle)).to_have_count(0)
    for absent in ("#viewer-original", "#viewer-mask"):
        expect(page.locator(absent)).not_to_have_attribute("src", re.compile("."))
    expect(page.locator("#viewer-summary")).to_have_text(
        "This model server gives an annotated image only: no mask, no slick count."
    )
    expect(viewer.locator("table")).to_have_count(0)
    expect(page.locator("#viewer-detections")).to_have_text(
        "No detection table: this model server gives an annotated image only, "
        "with no mask and no slick records."
    )
    page.keyboard.press("ArrowRight")  # the next one is the same
    expect(page.locator("#viewer-title")).to_have_text(job["images"][1]["name"])
    expect(page.locator("#viewer-second")).to_be_hidden()

    page.keyboard.press("Escape")

    page.get_by_role("button", name="Русский").click()
    card = page.locator('.card[data-index="0"]')
    expect(card.locator(".count")).to_have_text("Только размеченное изображение")
    expect(card.locator(".area")).to_have_text(
        "Этот сервер модели не даёт ни маски, ни числа пятен."
    )
    expect(summary.locator("[data-key=withSlicks]")).to_have_text("неизвестно")
    expect(page.locator("#mask-note")).to_contain_text("Снимков без маски: 2.")
    expect(page.locator("#summary-no-mask dt")).to_have_text("Без маски")
    card.locator(".thumb").click()
    expect(page.locator("#viewer-detections")).to_contain_text("Таблицы найденного нет")
    assert details == []  # there are no slick records to list
    assert failures == []  # nothing the page asked for was missing (no /original, no /mask)


def css_rgb(colour: str) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in re.findall(r"\d+", colour)[:3])
    return r, g, b


MASK_LEGEND = """() => [...document.querySelectorAll("#mask-legend li")].map((item) =>
  [item.textContent, getComputedStyle(item.querySelector(".swatch")).backgroundColor])"""
# The mask's colours as drawn (each distinct one once), read back from a canvas.
MASK_COLOURS = """() => {
  const img = document.getElementById("viewer-mask");
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = [img.naturalWidth, img.naturalHeight];
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0);
  const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
  const seen = new Set();
  for (let i = 0; i < data.length; i += 4) seen.add(`${data[i]},${data[i + 1]},${data[i + 2]}`);
  return [...seen];
}"""


def test_the_mask_view_shows_the_mask_preview_in_the_legends_colours(
    shared_server: Server, scenes_job: dict[str, Any], new_page: Callable[..., Page]
) -> None:
    image = max(scenes_job["images"], key=lambda i: i["slicks"])
    following = scenes_job["images"][(image["index"] + 1) % len(scenes_job["images"])]
    page = new_page()
    failures = record_failures(page)
    open_job(page, shared_server, scenes_job)
    page.locator(f'.card[data-index="{image["index"]}"] .thumb').click()
    original, mask = page.locator("#viewer-original"), page.locator("#viewer-mask")
    views = page.locator("#viewer-views")
    expect(original).to_be_visible()
    expect(mask).to_be_hidden()
    expect(page.locator("#mask-legend")).to_be_hidden()

    views.get_by_role("button", name="Mask").click()
    expect(views.get_by_role("button", name="Mask")).to_have_attribute("aria-pressed", "true")
    expect(views.get_by_role("button", name="Original")).to_have_attribute("aria-pressed", "false")
    expect(mask).to_be_visible()
    expect(original).to_be_hidden()
    expect(mask).to_have_attribute("src", image["links"]["mask-preview"])
    page.wait_for_function(IMAGES_LOADED, arg="#viewer-mask")
    legend = page.evaluate(MASK_LEGEND)
    assert [name for name, _ in legend] == ["sea", "oil", "look-alike", "ship", "land", "no data"]
    assert [css_rgb(c) for _, c in legend] == list(CLASS_RGB.values())
    drawn = {tuple(int(v) for v in c.split(",")) for c in page.evaluate(MASK_COLOURS)}
    assert drawn <= set(CLASS_RGB.values()), drawn  # every pixel is one legend colour
    assert {(0, 0, 0), (0, 255, 255)} <= drawn  # sea, and the slicks found on it

    page.keyboard.press("ArrowRight")  # the view stays as chosen, image after image
    expect(mask).to_have_attribute("src", following["links"]["mask-preview"])
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Русский").click()
    page.locator(f'.card[data-index="{following["index"]}"] .thumb').click()
    expect(views.get_by_role("button", name="Маска")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#mask-legend")).to_contain_text("море")
    views.get_by_role("button", name="Исходный снимок").click()
    expect(original).to_have_attribute("src", following["links"]["original"])
    expect(mask).to_be_hidden()
    assert failures == []


def dark_rectangles(seed: int) -> bytes:
    """Bright speckled sea with two dark rectangles: two slicks for a dark-is-oil model."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(180, 20, (240, 320)), 110, 255).astype(np.uint8)
    img[80:140, 100:220] = 30
    img[180:200, 20:60] = 30
    return encode(img)


def test_a_model_of_labels_only_shows_a_dash_for_each_confidence(
    start_server: Callable[..., Server], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    model = dark_is_oil_labels(tmp_path / "labels.onnx")  # no probabilities: no confidence
    server = start_server("--backend", "onnx", "--model", str(model))
    job = finished_job(server, make_zip({"dark.png": dark_rectangles(1)}), "labels.zip")
    (image,) = job["images"]
    assert image["slicks"] == 2 and image["confidences"] == []
    page = new_page()
    open_job(page, server, job)
    confidence = page.locator(".card .confidence")
    dash = confidence.locator(".no-confidence")
    expect(confidence).to_have_text("Confidence: —")
    expect(dash).to_have_attribute("title", "The model gives no confidence (class labels only)")
    expect(page.get_by_role("img", name="The model gives no confidence")).to_be_visible()

    page.locator(".card .thumb").click()
    cells = page.locator("#viewer tbody tr td:nth-child(3)")
    expect(cells).to_have_text(["—", "—"])
    expect(cells.locator(".no-confidence").first).to_have_attribute(
        "title", "The model gives no confidence (class labels only)"
    )
    for wrong in ("NaN", "%"):
        expect(page.locator("#viewer tbody")).not_to_contain_text(wrong)
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Русский").click()
    expect(confidence).to_have_text("Уверенность: —")
    expect(dash).to_have_attribute("title", "Модель не даёт уверенности (только метки классов)")
    page.locator(".card .thumb").click()
    expect(cells).to_have_text(["—", "—"])
