// The web page: upload a zip, follow the job, look at the results, download them in time.
//
// Everything shown comes from the public v1 API:
//   POST   /api/v1/jobs                         upload (XMLHttpRequest, for upload progress)
//   GET    /api/v1/jobs/{id}                    the job resource, polled
//   DELETE /api/v1/jobs/{id}                    cancel / delete
//   GET    /api/v1/jobs/{id}/images/{i}         one image's detections (the enlarged view only)
//   GET    /api/v1/jobs/{id}/images/{i}/{kind}  thumbnail, overlay, original, mask-preview
//   GET    /healthz                             the upload limit, how long results are kept,
//                                               how many images are processed at once
// A job has its own address, /jobs/{id}, so it can be reloaded or shared. The jobs
// uploaded from this browser are remembered (localStorage) while they are kept.
//
// An image a model server gave as an annotated picture only has `masks: false`: its
// counts are null (nothing was counted, which is not "nothing found") and its links
// hold the overlay alone. A slick's confidence is null when the model gives labels only.

import {
  formatArea,
  formatBytes,
  formatConfidence,
  formatDuration,
  formatNumber,
  formatPercent,
  formatSpan,
  formatTime,
  initialLanguage,
  language,
  setLanguage,
  t,
  tCount,
  translatePage,
} from "./i18n.js";

const POLL_ACTIVE_MS = 1000; // while the job is queued or running
const POLL_FINISHED_MS = 10000; // afterwards, to keep the countdown in sync
const POLL_RETRY_MS = 3000; // after a network error
const LIMITS_TIMEOUT_MS = 5000; // an upload waits this long at most for /healthz
const CARD_CONFIDENCES = 3; // confidences listed on a card; the viewer lists all
const RECENT_KEY = "oilspill.recent"; // localStorage: this browser's recent jobs
const RECENT_MAX = 10;
// Error codes of the server's JSON bodies that the page words in its own language.
const KNOWN_ERRORS = new Set([
  "bad_request",
  "bad_archive",
  "no_images",
  "too_large",
  "busy",
  "insufficient_storage",
  "request_timeout",
  "client_closed_request",
  "not_found",
  "gone",
  "not_ready",
  "method_not_allowed",
  "internal",
  "internal_error",
]);
// No drag and drop where the pointer is a finger (phones, tablets).
const TOUCH = [window.matchMedia("(pointer: coarse)"), window.matchMedia("(hover: none)")];

const state = {
  generation: 0, // bumped whenever the page switches job; late answers are dropped
  jobId: null,
  job: null, // last job resource from the server
  ended: null, // "expired" | "deleted" | "cancelled" | "missing" once the job is gone
  offline: false,
  secondsLeft: 0, // the server's seconds_left ...
  syncedAt: 0, // ... as of this performance.now()
  pollTimer: 0,
  pollingGeneration: null, // the generation whose job request is in flight
  details: new Map(), // image index -> detail record, or "error" (enlarged view only)
  limits: null, // {max_upload_bytes, ttl, workers} from /healthz, once known
  limitsReady: null, // a promise settled when /healthz answered, failed or timed out
  upload: null, // the XMLHttpRequest in flight
  uploadProgress: null, // {name, loaded, total, sent}
  uploadMessage: null, // {key, params (or a function making them), detail, retry, kind}
  viewerIndex: null,
  viewerView: "original", // beside the annotated image: "original" or "mask"
  dragging: false,
  recent: [], // [{id, name, created, expires_at}], newest first
};

const $ = (id) => document.getElementById(id);

/** Create an element with attributes (`dataset` and `text` handled specially) and children. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

// Upload ------------------------------------------------------------------------

// Limits ---------------------------------------------------------------------------

function loadLimits() {
  state.limitsReady = fetch("/healthz", {
    cache: "no-store",
    signal: AbortSignal.timeout(LIMITS_TIMEOUT_MS),
  })
    .then((response) => (response.ok ? response.json() : null))
    .then((health) => {
      if (!health) return;
      const number = (value) => (typeof value === "number" && value >= 0 ? value : null);
      state.limits = {
        max_upload_bytes: number(health.max_upload_bytes),
        ttl: number(health.ttl),
        workers: number(health.workers),
      };
      renderHint();
      renderJob();
    })
    .catch(() => {
      // unknown limits: the server still refuses a too-large upload with its own message
    });
  return state.limitsReady;
}

function maxUploadBytes() {
  return state.limits?.max_upload_bytes || null;
}

/** Two sizes that read differently, even when they round alike. */
function sizes(size, limit) {
  const a = formatBytes(size);
  const b = formatBytes(limit);
  if (a !== b) return { size: a, limit: b };
  const exact = (n) => `${formatNumber(n)}\u00a0${t("unit.byte")}`;
  return { size: exact(size), limit: exact(limit) };
}

function renderHint() {
  const limit = maxUploadBytes();
  $("drop-hint").textContent = limit
    ? t("drop.hintLimit", { limit: formatBytes(limit) })
    : t("drop.hint");
}

// Upload ------------------------------------------------------------------------

function startUpload(file) {
  const limit = maxUploadBytes();
  if (limit && file.size > limit) {
    // Refused here: sending it would only waste the time of the upload.
    state.uploadMessage = {
      key: "upload.tooLarge",
      params: () => ({ name: file.name, ...sizes(file.size, limit) }),
      more: "upload.tooLargeHow",
    };
    renderUpload();
    return;
  }
  state.upload?.abort();
  const xhr = new XMLHttpRequest();
  state.upload = xhr;
  state.uploadMessage = null;
  state.uploadProgress = { name: file.name, loaded: 0, total: file.size, sent: false };
  xhr.open("POST", "/api/v1/jobs");
  xhr.responseType = "json";
  xhr.upload.addEventListener("progress", (event) => {
    const total = event.lengthComputable ? event.total : file.size;
    Object.assign(state.uploadProgress, { loaded: event.loaded, total });
    renderUpload();
  });
  xhr.upload.addEventListener("load", () => {
    state.uploadProgress.sent = true;
    renderUpload();
  });
  xhr.addEventListener("load", () => uploadAnswered(xhr, file));
  xhr.addEventListener("error", () => uploadFailed(xhr, { key: "upload.network" }));
  xhr.addEventListener("abort", () => uploadFailed(xhr, { key: "upload.stopped" }));
  const form = new FormData();
  form.append("file", file, file.name);
  xhr.send(form);
  renderUpload();
}

function uploadAnswered(xhr, file) {
  if (state.upload !== xhr) return;
  state.upload = null;
  state.uploadProgress = null;
  const body = xhr.response;
  if (xhr.status === 202 && body?.id) {
    rememberJob(body);
    state.uploadMessage = {
      key: "upload.accepted",
      params: () => ({ name: file.name, total: formatBytes(file.size), images: body.progress.total }),
      kind: "ok",
    };
    renderUpload();
    openJob(body.id, { push: true, resource: body });
    return;
  }
  // A known code is worded in the page's language; the server's own text follows.
  const code = typeof body?.error === "string" && KNOWN_ERRORS.has(body.error) ? body.error : null;
  state.uploadMessage = {
    key: code ? `error.${code}` : "upload.rejected",
    params: { name: file.name, status: xhr.status },
    detail: body?.detail ?? xhr.statusText,
    retry: Number(xhr.getResponseHeader("Retry-After")) || 0,
  };
  renderUpload();
  $("upload-message").scrollIntoView({ block: "nearest" });
}

function uploadFailed(xhr, message) {
  if (state.upload !== xhr) return;
  state.upload = null;
  state.uploadProgress = null;
  state.uploadMessage = message;
  renderUpload();
}

function renderUpload() {
  const progress = state.uploadProgress;
  $("upload-progress").hidden = !progress;
  if (progress) {
    const fraction = progress.total ? progress.loaded / progress.total : 0;
    $("upload-bar").value = Math.round(fraction * 100);
    $("upload-text").textContent = progress.sent
      ? t("upload.unpacking", { total: formatBytes(progress.total) })
      : t("upload.progress", {
          name: progress.name,
          loaded: formatBytes(progress.loaded),
          total: formatBytes(progress.total),
          percent: formatPercent(fraction),
        });
    $("upload-stop").hidden = progress.sent;
  }
  renderUploadMessage();
}

function renderUploadMessage() {
  const box = $("upload-message");
  const message = state.uploadMessage;
  box.hidden = !message;
  box.replaceChildren();
  if (!message) return;
  box.dataset.kind = message.kind ?? "error";
  box.setAttribute("role", message.kind === "ok" ? "status" : "alert");
  const params = typeof message.params === "function" ? message.params() : message.params;
  box.append(el("strong", { text: t(message.key, params) }));
  if (message.more) box.append(" ", t(message.more, params));
  if (message.detail) box.append(" ", el("span", { class: "detail", text: message.detail }));
  if (message.retry) box.append(" ", t("upload.retry", { seconds: message.retry }));
}

async function pickFiles(files) {
  if (!files || files.length === 0) return;
  if (files.length > 1) {
    state.uploadMessage = { key: "upload.one" };
    renderUpload();
    return;
  }
  const file = files[0];
  await state.limitsReady; // settles within LIMITS_TIMEOUT_MS, usually long before a pick
  startUpload(file);
}

function isTouch() {
  return TOUCH.some((query) => query.matches);
}

function renderDrop() {
  const touch = isTouch();
  $("drop").classList.toggle("dragging", state.dragging);
  $("drop-title").textContent = t(
    state.dragging ? "drop.active" : touch ? "drop.titleTouch" : "drop.title",
  );
  $("drop-or").textContent = t(touch ? "drop.orTouch" : "drop.or");
}

function setUpDropping() {
  const input = $("file");
  const drop = $("drop");
  drop.addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    pickFiles([...input.files]);
    input.value = ""; // the same file can be picked again
  });
  // The whole window takes the drop, so a near miss does not open the zip in the tab.
  let depth = 0;
  const dragging = (on) => {
    state.dragging = on;
    renderDrop();
  };
  for (const query of TOUCH) query.addEventListener("change", renderDrop);
  const hasFiles = (event) => event.dataTransfer?.types.includes("Files");
  window.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth += 1;
    dragging(true);
  });
  window.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  window.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) dragging(false);
  });
  window.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    dragging(false);
    pickFiles(event.dataTransfer.files);
  });
  $("upload-stop").addEventListener("click", () => state.upload?.abort());
}

// Job: opening, polling, ending ------------------------------------------------------

function jobIdFromPath() {
  const match = location.pathname.match(/^\/jobs\/([^/]+)\/?$/);
  return match ? decodeURIComponent(match[1]) : null;
}

function resetJob(id) {
  state.generation += 1;
  clearTimeout(state.pollTimer);
  Object.assign(state, { jobId: id, job: null, ended: null, offline: false, viewerIndex: null });
  state.details = new Map(); // answers for the previous job are dropped
  if ($("viewer").open) $("viewer").close();
  $("gallery").replaceChildren();
}

function openJob(id, { push = false, resource = null } = {}) {
  resetJob(id);
  if (push) history.pushState(null, "", `/jobs/${encodeURIComponent(id)}`);
  if (resource) applyResource(resource);
  else {
    renderJob();
    poll();
  }
}

function closeJob() {
  resetJob(null);
  renderJob();
}

function forgetAcceptedUpload() {
  if (state.uploadMessage?.kind === "ok") state.uploadMessage = null;
  renderUpload();
}

function route() {
  forgetAcceptedUpload();
  const id = jobIdFromPath();
  if (id && id !== state.jobId) openJob(id);
  else if (!id) closeJob();
}

function schedulePoll(ms) {
  clearTimeout(state.pollTimer);
  state.pollTimer = setTimeout(poll, ms);
}

/** Ask for the job unless a request for it is already in flight. */
async function poll() {
  const { generation } = state;
  if (state.pollingGeneration === generation) return;
  state.pollingGeneration = generation;
  try {
    await pollOnce();
  } finally {
    if (state.pollingGeneration === generation) state.pollingGeneration = null;
  }
}

// Jobs of more than one page (1000 images): follow page.next and gather every image.
async function fetchRemainingPages(body) {
  let next = body.page && body.page.next;
  for (let guard = 0; next && guard < 200; guard += 1) {
    const response = await fetch(next, { cache: "no-store" }).catch(() => null);
    const page = response && response.ok ? await response.json().catch(() => null) : null;
    if (!page) return;
    body.images.push(...page.images);
    next = page.page && page.page.next;
  }
}

async function pollOnce() {
  const { generation, jobId } = state;
  clearTimeout(state.pollTimer);
  let response;
  try {
    response = await fetch(`/api/v1/jobs/${encodeURIComponent(jobId)}`, { cache: "no-store" });
  } catch {
    if (generation !== state.generation) return;
    state.offline = true;
    renderJob();
    schedulePoll(POLL_RETRY_MS);
    return;
  }
  const body = await response.json().catch(() => null);
  if (response.ok && body) await fetchRemainingPages(body);
  if (generation !== state.generation) return;
  if (response.ok && body) applyResource(body);
  else if (response.status >= 400 && response.status < 500) {
    endJob(goneAs(body) ?? (isDue() ? "expired" : "missing"));
  } else {
    state.offline = true; // a 5xx, or a proxy's page instead of JSON: try again later
    renderJob();
    schedulePoll(POLL_RETRY_MS);
  }
}

/** Seconds until the results are deleted, counted down locally from the last sync. */
function secondsLeft() {
  return Math.max(0, state.secondsLeft - (performance.now() - state.syncedAt) / 1000);
}

/**
 * How the server says a job is gone: "gone" (it existed: expired or deleted, as its
 * `reason` says) or "not_found" (never known here). Null for a body of another shape.
 */
function goneAs(body) {
  if (body?.error === "gone") return body.reason === "expired" ? "expired" : "deleted";
  if (body?.error === "not_found" || body?.error === "bad_request") return "missing";
  return null;
}

function isFinished(job) {
  return job?.state === "succeeded" || job?.state === "failed";
}

function isDue() {
  return isFinished(state.job) && secondsLeft() < 3;
}

function applyResource(job) {
  state.job = job;
  updateRecent(job);
  state.offline = false;
  state.secondsLeft = job.seconds_left;
  state.syncedAt = performance.now();
  renderJob();
  if (!isFinished(job)) schedulePoll(POLL_ACTIVE_MS);
  else schedulePoll(Math.min(POLL_FINISHED_MS, Math.max(1000, job.seconds_left * 1000 + 300)));
}

function endJob(kind) {
  clearTimeout(state.pollTimer);
  state.ended = kind;
  forgetRecent(state.jobId); // expired, deleted or unknown: nothing to go back to
  state.offline = false;
  forgetAcceptedUpload();
  if ($("viewer").open) $("viewer").close();
  renderJob();
}

async function cancelJob() {
  const { generation, jobId, job } = state;
  if (!window.confirm(t(isFinished(job) ? "confirm.delete" : "confirm.cancel"))) return;
  $("cancel").disabled = true;
  try {
    const response = await fetch(`/api/v1/jobs/${encodeURIComponent(jobId)}`, {
      method: "DELETE",
    });
    if (generation !== state.generation) return;
    if (response.ok || response.status === 404) endJob("cancelled");
  } catch {
    state.offline = true;
    renderJob();
  } finally {
    $("cancel").disabled = false;
  }
}

function tick() {
  pruneRecent();
  if (!state.job || state.ended) return;
  renderCountdown();
  if (isFinished(state.job) && secondsLeft() <= 0 && !state.offline) poll();
}

// Job: rendering -------------------------------------------------------------------

function renderJob() {
  renderRecent();
  const section = $("job");
  section.hidden = !state.jobId;
  if (!state.jobId) {
    document.title = `${t("page.title")} · oilspill`;
    return;
  }
  const job = state.job;
  // ExpiredOrDeleted before anything was known of it (a reload, a stale link): only say so.
  section.classList.toggle("bare", Boolean(state.ended) && !job);
  renderState();
  renderSource();
  renderActions();
  renderProgress();
  renderCountdown();
  renderJobMessage();
  // A job deleted here collapses to its heading and one line: nothing of it is left.
  const removed = state.ended === "cancelled" || state.ended === "deleted";
  $("summary").hidden = !job || removed;
  $("gallery").hidden = !job || Boolean(state.ended);
  if (removed) $("area-note").hidden = $("skipped").hidden = true;
  if (job && !removed) {
    renderSummary(job);
    renderGallery(job);
  }
}

function stateKey() {
  if (state.ended) return state.ended;
  return state.job ? state.job.state : "loading";
}

function renderState() {
  const key = stateKey();
  const badge = $("job-state");
  badge.textContent = t(`job.state.${key}`);
  badge.dataset.state = key;
  $("job").dataset.state = key;
}

function renderSource() {
  const name = state.job?.upload_name;
  const box = $("job-source");
  box.replaceChildren();
  if (name) box.append(t("job.source"), " ", el("bdi", { id: "job-upload-name", text: name }));
  box.title = name ?? "";
}

function renderActions() {
  const job = state.job;
  const download = $("download");
  const ready = isFinished(job) && !state.ended && job.links?.result;
  if (ready) download.href = job.links.result;
  else download.removeAttribute("href");
  download.setAttribute("aria-disabled", String(!ready));
  const cancel = $("cancel");
  cancel.hidden = !job || Boolean(state.ended);
  cancel.textContent = t(isFinished(job) ? "job.delete" : "job.cancel");
}

function renderProgress() {
  const job = state.job;
  const { done = 0, total = 0, failed = 0 } = job?.progress ?? {};
  const bar = $("job-bar");
  bar.max = Math.max(1, total);
  bar.value = done;
  let text = job ? t("job.progress", { done, total }) : "";
  if (failed) text += ` · ${t("job.failedCount", { failed })}`;
  $("job-progress-text").textContent = text;
  const running = job && !isFinished(job) && !state.ended;
  const prefix = running ? `(${done}/${total}) ` : "";
  document.title = `${prefix}${t("page.title")} · oilspill`;
}

function renderCountdown() {
  const box = $("job-countdown");
  const job = state.job;
  box.dataset.kind = "";
  if (state.ended || !job) box.textContent = "";
  else if (!isFinished(job)) box.textContent = keptText(job);
  else {
    const left = secondsLeft();
    box.textContent = t("job.countdown", { time: formatDuration(left) });
    box.dataset.kind = left < 60 ? "soon" : "";
  }
}

function keptText(job) {
  const ttl = typeof job.ttl === "number" ? job.ttl : state.limits?.ttl;
  if (typeof ttl !== "number") return t("job.keptSome");
  if (ttl === 0) return t("job.keptNone");
  return t("job.kept", { time: formatSpan(ttl) });
}

function renderJobMessage() {
  const box = $("job-message");
  const job = state.job;
  let text = "";
  if (state.ended) text = t(`job.${state.ended}`);
  else if (state.offline) text = t("job.offline");
  else if (job?.state === "failed" && job.error) text = t("job.failedWhy", { error: job.error });
  box.textContent = text;
  box.hidden = !text;
  box.dataset.kind = state.ended || (state.offline ? "offline" : "");
}

const hasKm2 = (image) => typeof image.oil_area_km2 === "number";
/** False for an image the model server gave as an annotated picture only: no mask, no counts. */
const hasMask = (image) => image.masks !== false;

/**
 * The job's total oil area in km², or null when an image with oil has no pixel size:
 * pixels of images of different sizes and resolutions do not add up to anything.
 * `measured` are the done images with a mask (the others have no area to add).
 */
function totalKm2(measured) {
  const withOil = measured.filter((image) => image.oil_pixels > 0);
  if (!withOil.every(hasKm2)) return null;
  return withOil.reduce((sum, image) => sum + image.oil_area_km2, 0);
}

/** The done images, those measured (with a mask) and those given as a picture only. */
function doneImages(job) {
  const done = job.images.filter((image) => image.status === "done");
  return { done, measured: done.filter(hasMask), unmeasured: done.filter((i) => !hasMask(i)) };
}

function summarize(job) {
  const { done, measured, unmeasured } = doneImages(job);
  const km2 = totalKm2(measured);
  let area = "–";
  let withSlicks = "–";
  if (measured.length) {
    area = km2 === null ? t("summary.areaUnknown") : formatArea(km2, 0);
    withSlicks = formatNumber(measured.filter((image) => image.slicks > 0).length);
  } else if (unmeasured.length) {
    area = t("summary.areaUnknown"); // nothing was measured: no 0 km², no 0 images with oil
    withSlicks = t("summary.countUnknown");
  }
  return {
    images: formatNumber(job.progress.total),
    processed: formatNumber(done.length),
    withSlicks,
    area,
    failed: formatNumber(job.progress.failed),
    skipped: formatNumber(job.skipped.length),
    noMask: formatNumber(unmeasured.length),
  };
}

function renderSummary(job) {
  const values = summarize(job);
  for (const dd of $("summary").querySelectorAll("dd")) dd.textContent = values[dd.dataset.key];
  const { measured, unmeasured } = doneImages(job);
  const note = $("area-note");
  const unknown = totalKm2(measured) === null;
  note.hidden = !unknown;
  note.textContent = unknown ? t("summary.areaWhy") : "";
  $("summary-no-mask").hidden = unmeasured.length === 0;
  const maskNote = $("mask-note");
  maskNote.hidden = unmeasured.length === 0;
  maskNote.textContent = unmeasured.length ? tCount("summary.noMaskWhy", unmeasured.length) : "";
  const skipped = $("skipped");
  skipped.hidden = job.skipped.length === 0 || Boolean(state.ended);
  skipped.textContent = `${t("summary.skipped")}: ${job.skipped.join(", ")}`;
}

// Gallery ---------------------------------------------------------------------------

/** The indices of the images a worker has in hand now (the server says "processing"). */
function processingIndices(job) {
  if (state.ended) return new Set();
  return new Set(job.images.filter((i) => i.status === "processing").map((i) => i.index));
}

function renderGallery(job) {
  const gallery = $("gallery");
  const processing = processingIndices(job);
  for (const image of job.images) {
    let card = gallery.children[image.index];
    if (!card) {
      card = createCard(image);
      gallery.append(card);
    }
    updateCard(card, image, processing.has(image.index));
  }
}

function createCard(image) {
  const thumb = el(
    "button",
    { type: "button", class: "thumb" },
    el("img", { alt: "", width: "360", height: "203", decoding: "async", loading: "lazy" }),
    el("span", { class: "thumb-mark", "aria-hidden": "true" }),
  );
  thumb.addEventListener("click", () => openViewer(image.index));
  return el(
    "li",
    { class: "card", dataset: { index: image.index, name: image.name } },
    thumb,
    el(
      "div",
      { class: "card-body" },
      el("h4", { class: "card-name", title: image.name, text: image.name }),
      el("p", { class: "card-line count" }),
      el("p", { class: "card-line area" }),
      el("p", { class: "card-line confidence" }),
    ),
  );
}

function updateCard(card, image, processing) {
  const shown = processing ? "processing" : image.status;
  card.dataset.status = shown;
  const thumb = card.querySelector(".thumb");
  const img = thumb.querySelector("img");
  const done = image.status === "done";
  thumb.disabled = !done;
  thumb.setAttribute("aria-label", t("image.enlarge", { name: image.name }));
  if (done && img.getAttribute("src") !== image.links.thumbnail) img.src = image.links.thumbnail;
  thumb.querySelector(".thumb-mark").textContent = t(`image.${shown}`);
  const [count, area, confidence] = card.querySelectorAll(".card-line");
  const measured = done && hasMask(image);
  card.dataset.masks = String(!done || hasMask(image));
  count.dataset.slicks = measured ? image.slicks : "";
  if (measured) count.replaceChildren(...countParts(image));
  else count.textContent = t(done ? "image.noMask" : `image.${shown}`);
  area.textContent = "";
  if (measured) area.textContent = t("image.area", { area: areaOf(image) });
  else if (done) area.textContent = t("image.noMaskWhy"); // not "0 slicks": none were counted
  area.title = measured && !hasKm2(image) && image.oil_pixels > 0 ? t("area.noScale") : "";
  confidence.replaceChildren(...(measured ? confidenceParts(image) : []));
  card.querySelector(".card-line.count").classList.toggle("error", image.status === "failed");
  if (image.status === "failed") {
    // A known code is worded in the page's language; the server's text is the tooltip.
    const key = `imageError.${image.error_code}`;
    const worded = image.error_code && t(key) !== key ? t(key) : null;
    area.textContent = t("image.why", { error: worded ?? (image.error || "?") });
    area.title = image.error || "";
  }
}

function countParts(image) {
  const parts = [t("image.slicks", { n: formatNumber(image.slicks) })];
  if (image.lookalikes) {
    const text = t("image.lookalikes", { n: formatNumber(image.lookalikes) });
    parts.push(" ", el("span", { class: "lookalikes", text: `· ${text}` }));
  }
  return parts;
}

/** "—" for a slick whose model gives no confidence, saying so on hover and to a screen reader. */
function noConfidence() {
  const why = t("confidence.noneWhy");
  const attrs = { class: "no-confidence", role: "img", "aria-label": why, title: why };
  return el("span", attrs, t("confidence.none"));
}

function areaOf(image) {
  return formatArea(image.oil_area_km2, image.oil_pixels);
}

/**
 * The confidence of each oil slick, from the job resource (highest first): the first
 * few, then "+N" for the rest, which says "and N more" to a screen reader and on hover.
 * Slicks of a model that gives labels only have none: the server lists no confidence
 * for them, and the card says "—" (a null in the list is "—" as well).
 */
function confidenceParts(image) {
  const confidences = image.confidences;
  if (!Array.isArray(confidences)) return [];
  const [before, after] = t("image.confidence", { list: "\u0000" }).split("\u0000");
  if (confidences.length === 0) {
    if (!(image.slicks > 0)) return [t("image.noOil")];
    return [before, noConfidence(), after].filter(Boolean); // slicks, none with a confidence
  }
  const parts = [before];
  confidences.slice(0, CARD_CONFIDENCES).forEach((c, i) => {
    if (i > 0) parts.push(", ");
    parts.push(typeof c === "number" ? formatConfidence(c) : noConfidence());
  });
  if (after) parts.push(after);
  const more = confidences.length - CARD_CONFIDENCES;
  if (more > 0) {
    const label = t("image.moreLabel", { n: formatNumber(more) });
    const marker = t("image.more", { n: formatNumber(more) });
    const attrs = { class: "more", role: "img", "aria-label": label, title: label };
    parts.push(" ", el("span", attrs, marker));
  }
  return parts;
}

// Recent jobs: the ones uploaded from this browser, while the server keeps them -------

function isRecentEntry(entry) {
  return (
    entry &&
    typeof entry.id === "string" &&
    /^[0-9a-f]{1,64}$/.test(entry.id) &&
    (entry.expires_at === null || typeof entry.expires_at === "number")
  );
}

function loadRecent() {
  let list = [];
  try {
    list = JSON.parse(localStorage.getItem(RECENT_KEY) || "[]");
  } catch {
    // storage blocked or garbled: start afresh
  }
  state.recent = Array.isArray(list) ? list.filter(isRecentEntry).slice(0, RECENT_MAX) : [];
}

function saveRecent() {
  try {
    localStorage.setItem(RECENT_KEY, JSON.stringify(state.recent));
  } catch {
    // not remembered beyond this page; nothing else to do
  }
  renderRecent();
}

/** Remember a job just uploaded (the 202 answer is its resource), newest first. */
function rememberJob(job) {
  const entry = {
    id: job.id,
    name: job.upload_name || "",
    created: typeof job.created_at === "number" ? job.created_at : Date.now() / 1000,
    expires_at: typeof job.expires_at === "number" ? job.expires_at : null,
  };
  state.recent = [entry, ...state.recent.filter((e) => e.id !== job.id)].slice(0, RECENT_MAX);
  saveRecent();
}

/** Keep a remembered job's deletion time as the server last said it. */
function updateRecent(job) {
  const entry = state.recent.find((e) => e.id === job.id);
  const expires = typeof job.expires_at === "number" ? job.expires_at : null;
  if (!entry || entry.expires_at === expires) return;
  entry.expires_at = expires;
  saveRecent();
}

function forgetRecent(id) {
  const kept = state.recent.filter((e) => e.id !== id);
  if (kept.length === state.recent.length) return;
  state.recent = kept;
  saveRecent();
}

/** Drop the jobs whose results the server has deleted by now. */
function pruneRecent() {
  const now = Date.now() / 1000;
  const kept = state.recent.filter((e) => e.expires_at === null || e.expires_at > now);
  if (kept.length === state.recent.length) return;
  state.recent = kept;
  saveRecent();
}

/** Ask the server about each remembered job once: a 404 or 410 means it is gone. */
async function checkRecent() {
  for (const entry of [...state.recent]) {
    if (entry.id === state.jobId) continue; // the open job is polled anyway
    let response;
    try {
      const url = `/api/v1/jobs/${encodeURIComponent(entry.id)}?limit=1`;
      response = await fetch(url, { cache: "no-store" });
    } catch {
      return; // offline: keep them all for now
    }
    if (response.status === 404 || response.status === 410) forgetRecent(entry.id);
    else if (response.ok) {
      const body = await response.json().catch(() => null);
      if (body?.id === entry.id) updateRecent(body);
    }
  }
}

let recentShown = ""; // what the list shows, so a poll does not rebuild it (and drop focus)

function renderRecent() {
  const box = $("recent");
  // Shown once there is another job to go back to; the open one is marked in it.
  box.hidden = !state.recent.some((entry) => entry.id !== state.jobId);
  const shown = JSON.stringify([language(), state.jobId, state.recent]);
  if (box.hidden || shown === recentShown) return;
  recentShown = shown;
  const items = state.recent.map((entry) => {
    const link = el(
      "a",
      { href: `/jobs/${encodeURIComponent(entry.id)}`, class: "recent-link" },
      el("bdi", { text: entry.name || t("recent.unnamed", { id: entry.id.slice(0, 8) }) }),
    );
    if (entry.id === state.jobId) link.setAttribute("aria-current", "page");
    link.addEventListener("click", (event) => {
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      if (entry.id === state.jobId) return;
      history.pushState(null, "", link.getAttribute("href"));
      route();
    });
    const meta = el("span", { class: "recent-meta" });
    meta.append(el("span", { text: t("recent.created", { time: formatTime(entry.created) }) }));
    if (entry.expires_at !== null) {
      const time = formatTime(entry.expires_at);
      meta.append(" · ", el("span", { text: t("recent.expires", { time }) }));
    }
    return el("li", { class: "recent-item", dataset: { id: entry.id } }, link, " ", meta);
  });
  $("recent-list").replaceChildren(...items);
}

// Image details: the enlarged view's detections table, fetched once per image -----------

async function loadDetail(index) {
  if (state.details.has(index) && state.details.get(index) !== "error") return;
  const { generation, jobId } = state;
  state.details.set(index, undefined); // asked for; shown as loading
  let record = "error";
  try {
    const url = `/api/v1/jobs/${encodeURIComponent(jobId)}/images/${index}`;
    const response = await fetch(url);
    if (response.ok) record = await response.json();
  } catch {
    // shown as "could not load" in the viewer
  }
  if (generation !== state.generation) return;
  state.details.set(index, record);
  if (state.viewerIndex === index) renderDetections();
}

// The enlarged view -------------------------------------------------------------------

function doneIndices() {
  return (state.job?.images ?? []).filter((i) => i.status === "done").map((i) => i.index);
}

/** An image's detections are asked for only when it has any to list (it has a mask). */
function loadDetailOf(index) {
  const image = state.job?.images[index];
  if (image && hasMask(image)) loadDetail(index);
}

function openViewer(index) {
  loadDetailOf(index);
  state.viewerIndex = index;
  renderViewer();
  const dialog = $("viewer");
  if (!dialog.open) dialog.showModal();
  $("viewer-close").focus();
}

function stepViewer(step) {
  const indices = doneIndices();
  const at = indices.indexOf(state.viewerIndex);
  if (at < 0 || indices.length < 2) return;
  state.viewerIndex = indices[(at + step + indices.length) % indices.length];
  loadDetailOf(state.viewerIndex);
  renderViewer();
}

function renderViewer() {
  const image = state.job?.images[state.viewerIndex];
  if (!image || image.status !== "done") return;
  const measured = hasMask(image);
  $("viewer-title").textContent = image.name;
  $("viewer-summary").textContent = measured
    ? [
        t("image.slicks", { n: formatNumber(image.slicks) }),
        t("image.lookalikes", { n: formatNumber(image.lookalikes) }),
        t("viewer.ships", { n: formatNumber(image.ships) }),
        t("image.area", { area: areaOf(image) }),
      ].join(" · ")
    : t("viewer.noMask");
  const ratio = `${image.width || 16} / ${image.height || 9}`;
  // Beside the annotated image, the original or the mask; neither exists without a mask.
  const view = measured ? state.viewerView : null;
  const shown = [
    ["viewer-overlay", image.links.overlay, "viewer.overlay"],
    ["viewer-original", view === "original" ? image.links.original : null, "viewer.original"],
    ["viewer-mask", view === "mask" ? image.links["mask-preview"] : null, "viewer.mask"],
  ];
  for (const [id, link, caption] of shown) {
    const img = $(id);
    img.hidden = !link;
    img.parentElement.style.aspectRatio = ratio;
    if (!link) img.removeAttribute("src"); // never a request for a file that is not there
    else if (img.getAttribute("src") !== link) img.src = link;
    img.alt = `${image.name}: ${t(caption)}`;
  }
  const second = $("viewer-second");
  second.hidden = !measured;
  second.dataset.view = view ?? "";
  for (const button of second.querySelectorAll(".view-button")) {
    button.setAttribute("aria-pressed", String(button.dataset.view === view));
  }
  $("mask-legend").hidden = view !== "mask";
  $("viewer").classList.toggle("single", !measured);
  // The overlay legend names our colours; a model server's picture has its own.
  $("viewer-legend").hidden = !measured;
  const many = doneIndices().length > 1;
  $("viewer-prev").hidden = !many;
  $("viewer-next").hidden = !many;
  renderDetections();
}

function renderDetections() {
  const box = $("viewer-detections");
  const index = state.viewerIndex;
  const image = state.job?.images[index];
  const detail = state.details.get(index);
  box.replaceChildren();
  if (image && !hasMask(image)) box.append(el("p", { text: t("viewer.noTable") }));
  else if (detail === undefined) box.append(el("p", { text: t("viewer.loading") }));
  else if (detail === "error") box.append(el("p", { text: t("viewer.loadFailed") }));
  else if (detail.slicks.length === 0) box.append(el("p", { text: t("viewer.none") }));
  else box.append(detectionTable(detail.slicks));
}

function detectionTable(slicks) {
  const columns = ["id", "cls", "confidence", "area", "length"];
  const numeric = new Set(["confidence", "area", "length"]);
  const header = (column) =>
    el("th", {
      scope: "col",
      class: numeric.has(column) ? "num" : "",
      text: t(`viewer.col.${column}`),
    });
  const head = el("tr", {}, ...columns.map(header));
  const rows = [...slicks]
    .sort((a, b) => a.cls - b.cls || (b.confidence ?? -1) - (a.confidence ?? -1))
    .map((slick) =>
      el(
        "tr",
        { class: `cls-${slick.cls}` },
        el("td", { text: String(slick.id) }),
        el("td", {}, clsLabel(slick.cls)),
        el("td", { class: "num" }, confidenceOf(slick)),
        el("td", { class: "num", text: formatArea(slick.area_km2 ?? null, slick.area_px) }),
        el("td", { class: "num", text: lengthOf(slick) }),
      ),
    );
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows));
}

/**
 * Oil's confidence; for a look-alike, the oil score that made it one (2 % is not "sure").
 * "—" when the model gives none (labels only).
 */
function confidenceOf(slick) {
  if (typeof slick.confidence !== "number") return noConfidence();
  const percent = formatConfidence(slick.confidence);
  return slick.cls === 2 ? t("viewer.lookalikeScore", { percent }) : percent;
}

function clsLabel(cls) {
  const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
  return el("span", { class: "cls" }, swatch, el("span", { text: t(`cls.${cls}`) }));
}

function lengthOf(slick) {
  if (typeof slick.length_m !== "number") return "–";
  return `${formatNumber(slick.length_m / 1000, 1)}\u00a0${t("unit.km")}`;
}

function setUpViewer() {
  const dialog = $("viewer");
  $("viewer-close").addEventListener("click", () => dialog.close());
  $("viewer-prev").addEventListener("click", () => stepViewer(-1));
  $("viewer-next").addEventListener("click", () => stepViewer(1));
  for (const button of document.querySelectorAll("#viewer-views .view-button")) {
    button.addEventListener("click", () => {
      state.viewerView = button.dataset.view; // kept while stepping through the images
      renderViewer();
    });
  }
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close(); // a click on the backdrop
  });
  dialog.addEventListener("keydown", (event) => {
    if (event.key === "ArrowLeft") stepViewer(-1);
    else if (event.key === "ArrowRight") stepViewer(1);
  });
  dialog.addEventListener("close", () => {
    const card = $("gallery").children[state.viewerIndex];
    state.viewerIndex = null;
    card?.querySelector(".thumb")?.focus();
  });
}

// Language ----------------------------------------------------------------------------

function applyLanguage(lang, remember) {
  setLanguage(lang, remember);
  translatePage();
  for (const button of document.querySelectorAll(".lang-button")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === language()));
  }
  renderDrop();
  renderHint();
  renderUpload();
  renderJob();
  if (state.viewerIndex !== null) renderViewer();
}

// Start -------------------------------------------------------------------------------

async function start() {
  const limits = loadLimits();
  loadRecent();
  pruneRecent();
  applyLanguage(initialLanguage(), false);
  for (const button of document.querySelectorAll(".lang-button")) {
    button.addEventListener("click", () => applyLanguage(button.dataset.lang, true));
  }
  setUpDropping();
  setUpViewer();
  $("cancel").addEventListener("click", cancelJob);
  $("home").addEventListener("click", (event) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    if (location.pathname !== "/") history.pushState(null, "", "/");
    forgetAcceptedUpload();
    closeJob();
  });
  window.addEventListener("popstate", route);
  window.addEventListener("storage", (event) => {
    if (event.key !== RECENT_KEY) return;
    loadRecent(); // another tab uploaded or deleted a job
    renderRecent();
  });
  setInterval(tick, 1000);
  route();
  checkRecent();
  // The drop zone's hint names the upload limit: shown at once rather than moments later.
  await Promise.race([limits, new Promise((resolve) => setTimeout(resolve, 800))]);
  document.body.dataset.ready = "true";
}

start();
