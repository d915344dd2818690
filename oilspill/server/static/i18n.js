// Texts of the page in English and Russian, and the helpers that pick and format them.
//
// Russian texts are written as "label: number" where a number follows, so
// no word has to agree with it. An error from the server is worded here from
// its machine code (`error` in the JSON body); the server's own text (in
// English) follows as the detail.

const TEXTS = {
  en: {
    "page.title": "Oil spill finder",
    "page.tagline":
      "Upload a zip of SAR satellite images. Each image is searched for oil slicks; " +
      "you get annotated pictures, masks and a report.",
    "lang.label": "Language",
    "drop.title": "Drop a zip of images here",
    "drop.or": "or press to choose a file",
    "drop.hint": "PNG, JPEG, WebP, BMP or TIFF images inside a .zip",
    "drop.hintLimit": "PNG, JPEG, WebP, BMP or TIFF images inside a .zip of up to {limit}",
    "drop.active": "Release to upload",
    "drop.titleTouch": "Choose a zip of images",
    "drop.orTouch": "tap to pick a file",
    "upload.progress": "Uploading {name}: {loaded} of {total} ({percent})",
    "upload.unpacking": "Uploaded {total}. The server is checking the archive…",
    "upload.accepted": "{name} ({total}) was accepted: {images} images.",
    "upload.stop": "Stop upload",
    "upload.stopped": "Upload stopped.",
    "upload.rejected": "The server did not accept {name} ({status}):",
    "error.bad_request": "The server could not read the upload of {name} ({status}).",
    "error.bad_archive":
      "{name} is not a readable zip archive: damaged, encrypted or not a zip ({status}).",
    "error.no_images": "{name} holds no images that can be processed ({status}).",
    "error.too_large": "{name} is over one of this server's size limits ({status}).",
    "error.busy": "The server is busy and did not take {name} ({status}).",
    "error.insufficient_storage":
      "The server has no room for {name} now; nothing was kept ({status}).",
    "error.request_timeout": "The upload of {name} was too slow; the server stopped it ({status}).",
    "error.client_closed_request": "The upload of {name} was broken off ({status}).",
    "error.not_found": "The server has no such address ({status}).",
    "error.gone": "These results are no longer on the server ({status}).",
    "error.not_ready": "The results are not ready yet ({status}).",
    "error.method_not_allowed": "The server does not take this request ({status}).",
    "error.internal": "The server failed on its side while taking {name} ({status}).",
    "error.internal_error": "The server failed on its side while taking {name} ({status}).",
    "upload.retry": "Try again in {seconds} s.",
    "upload.network": "Could not reach the server. Check the connection and try again.",
    "upload.one": "Drop one zip file at a time.",
    "upload.tooLarge": "{name} is too large to upload: {size}.",
    "upload.tooLargeHow":
      "This server accepts a zip of up to {limit}; split the images into smaller zips. " +
      "Nothing was sent.",
    "job.heading": "Job",
    "job.state.queued": "Queued",
    "job.state.running": "Processing",
    "job.state.succeeded": "Done",
    "job.state.failed": "Failed",
    "job.state.expired": "Expired",
    "job.state.cancelled": "Deleted",
    "job.state.deleted": "Deleted",
    "job.state.missing": "Not found",
    "job.state.loading": "Loading…",
    "job.progress": "Images processed: {done} of {total}",
    "job.failedCount": "failed: {failed}",
    "job.source": "From",
    "job.kept": "Results are kept {time} after processing.",
    "job.keptSome": "Results are kept for a limited time after processing.",
    "job.keptNone": "Results are deleted as soon as processing ends.",
    "job.countdown": "Results are deleted in {time}",
    "job.expired": "These results expired and were deleted from the server.",
    "job.cancelled": "The job and its files were deleted.",
    "job.deleted": "These results were deleted on request, with all their files.",
    "job.missing":
      "There is no such job: check the link. A job whose results expired before the " +
      "server restarted is not known either.",
    "job.failedWhy": "The job failed: {error}",
    "job.offline": "The server does not answer; trying again…",
    "job.link": "The address of this page opens this job while its results are kept.",
    "job.download": "Download results (.zip)",
    "job.cancel": "Cancel job",
    "job.delete": "Delete now",
    "confirm.cancel": "Cancel this job? Its images and results are deleted.",
    "confirm.delete": "Delete the results of this job now? They cannot be brought back.",
    "summary.heading": "Summary",
    "summary.images": "Images",
    "summary.processed": "Processed",
    "summary.withSlicks": "With oil slicks",
    "summary.area": "Total oil area",
    "summary.failed": "Failed",
    "summary.skipped": "Skipped (not images)",
    "summary.areaUnknown": "not known",
    "summary.countUnknown": "not known",
    "summary.noMask": "Without a mask",
    "summary.noMaskWhy.one":
      "{n} image without a mask: the model server gave an annotated image only, with no " +
      "slick count. It is left out of the counts and the area.",
    "summary.noMaskWhy.other":
      "{n} images without a mask: the model server gave annotated images only, with no " +
      "slick count. They are left out of the counts and the area.",
    "summary.areaWhy":
      "No total in km²: pixel size unknown (run with --pixel-size-m or use georeferenced " +
      "images). Each image's area is on its card.",
    "area.noScale":
      "Pixel size unknown: run with --pixel-size-m or use georeferenced images",
    "recent.heading": "Your recent jobs",
    "recent.created": "uploaded {time}",
    "recent.expires": "deleted at {time}",
    "recent.unnamed": "job {id}",
    "gallery.heading": "Images",
    "image.pending": "Waiting",
    "image.processing": "Processing…",
    "image.done": "Done",
    "image.failed": "Failed",
    "image.enlarge": "Enlarge {name}",
    "image.slicks": "Oil slicks: {n}",
    "image.lookalikes": "look-alikes: {n}",
    "image.area": "Oil area: {area}",
    "image.confidence": "Confidence: {list}",
    "image.noOil": "No oil found",
    "image.noMask": "Annotated image only",
    "image.noMaskWhy": "This model server gives no mask and no slick count.",
    "confidence.none": "—",
    "confidence.noneWhy": "The model gives no confidence (class labels only)",
    "image.more": "+{n}",
    "image.moreLabel": "and {n} more",
    "image.why": "Why: {error}",
    "imageError.bad_image": "the file cannot be read as an image",
    "imageError.not_an_image": "not an image (the content is not PNG, JPEG, WebP, BMP or TIFF)",
    "imageError.too_large": "too many pixels to decode (a decompression bomb?)",
    "imageError.disk_full": "the server's disk filled up",
    "imageError.out_of_memory": "not enough memory for this image",
    "imageError.missing_input": "the image's file went missing on the server",
    "imageError.not_saved": "its results could not be saved",
    "imageError.backend_error": "the segmentation service failed on it",
    "imageError.cancelled": "cancelled",
    "imageError.internal_error": "an internal error (the server's log has details)",
    "viewer.overlay": "Found (annotated)",
    "viewer.original": "Original",
    "viewer.mask": "Mask",
    "viewer.noMask": "This model server gives an annotated image only: no mask, no slick count.",
    "viewer.views": "Shown beside the annotated image",
    "viewer.close": "Close",
    "viewer.prev": "Previous image",
    "viewer.next": "Next image",
    "viewer.legend":
      "Cyan: oil. Orange: look-alike (natural film, low wind). Red circle: ship. Green: land.",
    "viewer.detections": "Detections",
    "viewer.ships": "ships: {n}",
    "viewer.none": "Nothing was found on this image.",
    "viewer.loading": "Loading details…",
    "viewer.loadFailed": "Could not load the details of this image.",
    "viewer.noTable":
      "No detection table: this model server gives an annotated image only, with no mask " +
      "and no slick records.",
    "viewer.col.id": "#",
    "viewer.col.cls": "Class",
    "viewer.col.confidence": "Confidence",
    "viewer.lookalikeScore": "look-alike (oil score {percent})",
    "viewer.col.area": "Area",
    "viewer.col.length": "Length",
    "cls.0": "sea",
    "cls.1": "oil",
    "cls.2": "look-alike",
    "cls.3": "ship",
    "cls.4": "land",
    "cls.255": "no data",
    "unit.km2": "km²",
    "unit.px": "px",
    "unit.km": "km",
    "unit.bytes": ["B", "KiB", "MiB", "GiB"],
    "unit.byte": "B",
    "footer.api": "API description",
  },
  ru: {
    "page.title": "Поиск нефтяных разливов",
    "page.tagline":
      "Загрузите zip-архив радарных (SAR) спутниковых снимков. На каждом снимке ищутся " +
      "нефтяные пятна; вы получите размеченные изображения, маски и отчёт.",
    "lang.label": "Язык",
    "drop.title": "Перетащите сюда zip-архив со снимками",
    "drop.or": "или нажмите, чтобы выбрать файл",
    "drop.hint": "Внутри .zip — изображения PNG, JPEG, WebP, BMP или TIFF",
    "drop.hintLimit": "Внутри .zip (не больше {limit}) — изображения PNG, JPEG, WebP, BMP или TIFF",
    "drop.active": "Отпустите, чтобы загрузить",
    "drop.titleTouch": "Выберите zip-архив со снимками",
    "drop.orTouch": "нажмите, чтобы выбрать файл",
    "upload.progress": "Загрузка {name}: {loaded} из {total} ({percent})",
    "upload.unpacking": "Загружено {total}. Сервер проверяет архив…",
    "upload.accepted": "Файл {name} ({total}) принят, снимков: {images}.",
    "upload.stop": "Прервать загрузку",
    "upload.stopped": "Загрузка прервана.",
    "upload.rejected": "Сервер не принял {name} ({status}):",
    "error.bad_request": "Сервер не смог прочитать загрузку {name} ({status}).",
    "error.bad_archive":
      "{name} не читается как zip-архив: он повреждён, зашифрован или это не zip ({status}).",
    "error.no_images": "В {name} нет снимков, которые можно обработать ({status}).",
    "error.too_large": "{name} превышает ограничение размера на этом сервере ({status}).",
    "error.busy": "Сервер занят и не принял {name} ({status}).",
    "error.insufficient_storage":
      "На сервере сейчас нет места для {name}; ничего не сохранено ({status}).",
    "error.request_timeout":
      "Загрузка {name} шла слишком медленно, и сервер её прервал ({status}).",
    "error.client_closed_request": "Загрузка {name} прервалась ({status}).",
    "error.not_found": "На сервере нет такого адреса ({status}).",
    "error.gone": "Этих результатов больше нет на сервере ({status}).",
    "error.not_ready": "Результаты ещё не готовы ({status}).",
    "error.method_not_allowed": "Сервер не принимает такой запрос ({status}).",
    "error.internal": "Сбой на стороне сервера при приёме {name} ({status}).",
    "error.internal_error": "Сбой на стороне сервера при приёме {name} ({status}).",
    "upload.retry": "Попробуйте снова через {seconds} с.",
    "upload.network": "Сервер недоступен. Проверьте соединение и попробуйте снова.",
    "upload.one": "Перетащите один zip-файл.",
    "upload.tooLarge": "Файл {name} слишком большой для загрузки: {size}.",
    "upload.tooLargeHow":
      "Этот сервер принимает zip-архивы не больше {limit}; разделите снимки на архивы " +
      "поменьше. Файл не отправлялся.",
    "job.heading": "Задание",
    "job.state.queued": "В очереди",
    "job.state.running": "Обработка",
    "job.state.succeeded": "Готово",
    "job.state.failed": "Ошибка",
    "job.state.expired": "Срок истёк",
    "job.state.cancelled": "Удалено",
    "job.state.deleted": "Удалено",
    "job.state.missing": "Не найдено",
    "job.state.loading": "Загрузка…",
    "job.progress": "Обработано снимков: {done} из {total}",
    "job.failedCount": "с ошибкой: {failed}",
    "job.source": "Архив:",
    "job.kept": "Результаты хранятся {time} после обработки.",
    "job.keptSome": "Результаты хранятся ограниченное время после обработки.",
    "job.keptNone": "Результаты удаляются сразу после обработки.",
    "job.countdown": "Результаты будут удалены через {time}",
    "job.expired": "Срок хранения этих результатов истёк, они удалены с сервера.",
    "job.cancelled": "Задание и его файлы удалены.",
    "job.deleted": "Эти результаты удалены по запросу вместе со всеми файлами.",
    "job.missing":
      "Такого задания нет: проверьте ссылку. Задания, срок хранения которых истёк " +
      "до перезапуска сервера, тоже не находятся.",
    "job.failedWhy": "Задание не выполнено: {error}",
    "job.offline": "Сервер не отвечает; повторяем попытку…",
    "job.link": "Адрес этой страницы открывает это задание, пока результаты хранятся.",
    "job.download": "Скачать результаты (.zip)",
    "job.cancel": "Отменить задание",
    "job.delete": "Удалить сейчас",
    "confirm.cancel": "Отменить задание? Его снимки и результаты будут удалены.",
    "confirm.delete": "Удалить результаты задания сейчас? Восстановить их будет нельзя.",
    "summary.heading": "Итог",
    "summary.images": "Снимков",
    "summary.processed": "Обработано",
    "summary.withSlicks": "С пятнами нефти",
    "summary.area": "Общая площадь нефти",
    "summary.failed": "С ошибкой",
    "summary.skipped": "Пропущено (не изображения)",
    "summary.areaUnknown": "неизвестна",
    "summary.countUnknown": "неизвестно",
    "summary.noMask": "Без маски",
    "summary.noMaskWhy":
      "Снимков без маски: {n}. Сервер модели дал только размеченные изображения, без " +
      "подсчёта пятен; в подсчёты и площадь они не входят.",
    "summary.areaWhy":
      "Общая площадь в км² не посчитана: размер пикселя неизвестен (запустите с " +
      "--pixel-size-m или используйте снимки с геопривязкой). Площадь каждого снимка — " +
      "на его карточке.",
    "area.noScale":
      "Размер пикселя неизвестен: запустите с --pixel-size-m или используйте снимки " +
      "с геопривязкой",
    "recent.heading": "Ваши недавние задания",
    "recent.created": "загружено: {time}",
    "recent.expires": "будет удалено: {time}",
    "recent.unnamed": "задание {id}",
    "gallery.heading": "Снимки",
    "image.pending": "Ожидает",
    "image.processing": "Обрабатывается…",
    "image.done": "Готово",
    "image.failed": "Ошибка",
    "image.enlarge": "Увеличить {name}",
    "image.slicks": "Пятен нефти: {n}",
    "image.lookalikes": "ложных пятен: {n}",
    "image.area": "Площадь нефти: {area}",
    "image.confidence": "Уверенность: {list}",
    "image.noOil": "Нефть не найдена",
    "image.noMask": "Только размеченное изображение",
    "image.noMaskWhy": "Этот сервер модели не даёт ни маски, ни числа пятен.",
    "confidence.none": "—",
    "confidence.noneWhy": "Модель не даёт уверенности (только метки классов)",
    "image.more": "+{n}",
    "image.moreLabel": "и ещё {n}",
    "image.why": "Причина: {error}",
    "imageError.bad_image": "файл не читается как изображение",
    "imageError.not_an_image": "не изображение (содержимое не PNG, JPEG, WebP, BMP или TIFF)",
    "imageError.too_large": "слишком много пикселей (декомпрессионная бомба?)",
    "imageError.disk_full": "на диске сервера кончилось место",
    "imageError.out_of_memory": "не хватило памяти для этого снимка",
    "imageError.missing_input": "файл снимка пропал с сервера",
    "imageError.not_saved": "не удалось сохранить результаты",
    "imageError.backend_error": "сервис сегментации не справился с ним",
    "imageError.cancelled": "отменено",
    "imageError.internal_error": "внутренняя ошибка (подробности в журнале сервера)",
    "viewer.overlay": "Найденное (разметка)",
    "viewer.original": "Исходный снимок",
    "viewer.mask": "Маска",
    "viewer.noMask":
      "Этот сервер модели даёт только размеченное изображение: без маски и без подсчёта пятен.",
    "viewer.views": "Что показать рядом с разметкой",
    "viewer.close": "Закрыть",
    "viewer.prev": "Предыдущий снимок",
    "viewer.next": "Следующий снимок",
    "viewer.legend":
      "Голубой — нефть. Оранжевый — ложное пятно (природная плёнка, штиль). " +
      "Красный круг — судно. Зелёный — суша.",
    "viewer.detections": "Найденные пятна",
    "viewer.ships": "судов: {n}",
    "viewer.none": "На этом снимке ничего не найдено.",
    "viewer.loading": "Загрузка подробностей…",
    "viewer.loadFailed": "Не удалось загрузить подробности этого снимка.",
    "viewer.noTable":
      "Таблицы найденного нет: этот сервер модели даёт только размеченное изображение, без " +
      "маски и без записей о пятнах.",
    "viewer.col.id": "№",
    "viewer.col.cls": "Класс",
    "viewer.col.confidence": "Уверенность",
    "viewer.lookalikeScore": "ложное пятно (оценка нефти {percent})",
    "viewer.col.area": "Площадь",
    "viewer.col.length": "Длина",
    "cls.0": "море",
    "cls.1": "нефть",
    "cls.2": "ложное пятно",
    "cls.3": "судно",
    "cls.4": "суша",
    "cls.255": "нет данных",
    "unit.km2": "км²",
    "unit.px": "пикс.",
    "unit.km": "км",
    "unit.bytes": ["Б", "КиБ", "МиБ", "ГиБ"],
    "unit.byte": "Б",
    "footer.api": "Описание API",
  },
};

export const LANGUAGES = Object.keys(TEXTS);
const STORAGE_KEY = "oilspill.lang";
let current = "en";

/** The language to start with: the one picked before, else the browser's. */
export function initialLanguage() {
  let saved = null;
  try {
    saved = localStorage.getItem(STORAGE_KEY);
  } catch {
    // storage blocked: fall back to the browser's language
  }
  if (LANGUAGES.includes(saved)) return saved;
  const preferred = navigator.languages?.length ? navigator.languages : [navigator.language];
  for (const tag of preferred) {
    const base = String(tag || "").toLowerCase().split("-")[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return "en";
}

export function setLanguage(lang, remember = false) {
  current = LANGUAGES.includes(lang) ? lang : "en";
  document.documentElement.lang = current;
  if (remember) {
    try {
      localStorage.setItem(STORAGE_KEY, current);
    } catch {
      // not remembered; nothing else to do
    }
  }
}

export function language() {
  return current;
}

/** The text for `key` with `{name}` placeholders filled from `params`. */
export function t(key, params = {}) {
  const text = TEXTS[current][key] ?? TEXTS.en[key] ?? key;
  return String(text).replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? `{${name}}`));
}

/**
 * The text for `key` that fits the count `n` (`key.one`, `key.other`, as Intl.PluralRules
 * names the forms), else `key` itself (a "label: number" text); `{n}` is the count.
 */
export function tCount(key, n, params = {}) {
  const form = `${key}.${new Intl.PluralRules(current).select(n)}`;
  const all = { ...params, n: formatNumber(n) };
  if (TEXTS[current][form] !== undefined) return t(form, all);
  if (TEXTS[current][key] !== undefined) return t(key, all);
  return t(TEXTS.en[form] !== undefined ? form : `${key}.other`, all);
}

/** Fill every element marked data-i18n (text) or data-i18n-aria (aria-label). */
export function translatePage(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-aria]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAria));
  }
  document.title = t("page.title") + " · oilspill";
}

export function formatNumber(value, digits = 0) {
  return new Intl.NumberFormat(current, {
    minimumFractionDigits: 0,
    maximumFractionDigits: digits,
  }).format(value);
}

/** A whole percent that says 100 % only when it is: an upload at 99.7 % is not done yet. */
export function formatPercent(fraction) {
  const shown = fraction < 1 ? Math.min(fraction, 0.99) : fraction;
  return new Intl.NumberFormat(current, { style: "percent", maximumFractionDigits: 0 }).format(
    shown,
  );
}

/** A detection's confidence: to the nearest whole percent (0.998 is 100 %). */
export function formatConfidence(fraction) {
  return new Intl.NumberFormat(current, { style: "percent", maximumFractionDigits: 0 }).format(
    fraction,
  );
}

/** A moment (Unix seconds) as the time of day, with the date when it is not today. */
export function formatTime(seconds) {
  const date = new Date(seconds * 1000);
  const today = date.toDateString() === new Date().toDateString();
  const options = today
    ? { hour: "2-digit", minute: "2-digit" }
    : { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" };
  return new Intl.DateTimeFormat(current, options).format(date);
}

export function formatBytes(bytes) {
  const units = TEXTS[current]["unit.bytes"];
  let value = bytes;
  let unit = 0;
  // Binary units, as the server counts its limits (--max-upload-mb is MiB).
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${formatNumber(value, unit === 0 ? 0 : 1)}\u00a0${units[unit]}`;
}

/** An area for people: km² to a sensible precision, or pixels when the size is unknown. */
export function formatArea(km2, pixels) {
  if (km2 === null || km2 === undefined) return `${formatNumber(pixels)}\u00a0${t("unit.px")}`;
  const digits = km2 >= 100 ? 0 : km2 >= 1 ? 2 : 3;
  return `${formatNumber(km2, digits)}\u00a0${t("unit.km2")}`;
}

/** A span of time in words, in its largest whole-enough unit: "90 seconds", "10 minutes", "2 hours". */
export function formatSpan(seconds) {
  const s = Math.max(0, Math.round(seconds));
  let [value, unit] = [s, "second"];
  if (s >= 2 * 3600 || (s >= 3600 && s % 3600 === 0)) [value, unit] = [s / 3600, "hour"];
  else if (s >= 120 || (s >= 60 && s % 60 === 0)) [value, unit] = [s / 60, "minute"];
  return new Intl.NumberFormat(current, {
    style: "unit",
    unit,
    unitDisplay: "long",
    maximumFractionDigits: 1,
  }).format(value);
}

/** Seconds as m:ss, or h:mm:ss from an hour up. */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const pad = (n) => String(n).padStart(2, "0");
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}
