"""The web page in a real headless Chromium (Debian's) against a real `oilspill serve`.

Playwright drives the browser; no browser is downloaded. Every request the
page makes outside 127.0.0.1 is refused, so the page is also checked to
work offline (no CDN).
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Callable, Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import Server, image_zip, make_zip
from playwright.sync_api import Browser, Page, Request, ViewportSize, expect, sync_playwright

from oilspill.sar import synth

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
    """Open a page in a fresh browser context; only 127.0.0.1 can be reached."""
    contexts = []

    def factory(locale: str = "en-US", viewport: ViewportSize = LAPTOP) -> Page:
        context = browser.new_context(locale=locale, viewport=viewport)
        context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/])"), lambda route: route.abort())
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        return context.new_page()

    yield factory
    for context in contexts:
        context.close()


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


def shown_percent(fraction: float) -> str:
    """A confidence as the page shows it: whole percent, 100 % only when certain.

    Rounded as Chromium's Intl.NumberFormat rounds: half away from zero, on the number's
    shortest decimal form (0.145 is 15 %, where float arithmetic would make it 14 %).
    """
    if fraction >= 1:
        return "100%"
    percent = (Decimal(repr(fraction)) * 100).quantize(Decimal(1), ROUND_HALF_UP)
    return f"{min(99, int(percent))}%"


def card_confidences(confidences: list[float]) -> str:
    """A card's confidence line: the first three, then how many more."""
    if not confidences:
        return "No oil found"
    text = ", ".join(shown_percent(c) for c in confidences[:3])
    if len(confidences) > 3:
        text += f" +{len(confidences) - 3}"
    return f"Confidence: {text}"


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
    start_server: Callable[..., Server], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    server = start_server("--workers", "2")
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
    start_server: Callable[..., Server], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    server = start_server("--max-upload-mb", "1")
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
    start_server: Callable[..., Server], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    server = start_server()
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
    start_server: Callable[..., Server], new_page: Callable[..., Page], tmp_path: Path
) -> None:
    server = start_server()
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
    expect(page.locator("#job-message")).to_contain_text("deleted")
    response = httpx.get(f"{server.url}/api/v1/jobs/{job_id}", timeout=10)
    assert response.status_code == 404


def test_a_deleted_job_and_an_unknown_one_say_different_things(
    start_server: Callable[..., Server], new_page: Callable[..., Page]
) -> None:
    server = start_server()
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
