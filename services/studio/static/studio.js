/* inkwalk Studio: a page over the job API (docs/studio.md, docs/serving.md "Job API").
 *
 * No framework and no build step. Everything the page shows comes from the two job apps on
 * this origin; user text (file names, prompts, errors) only ever goes into textContent.
 * Progress is polled (GET jobs/{id}); the API token, when the server wants one, is sent as a
 * Bearer header by fetch and as the `inkwalk_token` cookie by <img> and <video>.
 */
"use strict";

const APPS = { artwalks: "../artwalks", conclvd: "../conclvd" };
const TERMINAL = ["done", "failed", "cancelled"];
const POLL_MS = 400;
const PAGE = 12;
const TOKEN_KEY = "inkwalk_token";
const DRAG_TYPE = "application/x-inkwalk-painting";
const IMAGE_NAME = /\.(png|jpe?g|webp|bmp|tiff?)$/i;
const STAGES = {
  queued: "waiting for a slot", render: "rendering", join: "joining the video", sheet: "keyframe sheet",
  generate: "generating frames", interpolate: "interpolating (SOFP)", encode: "encoding", done: "done",
  cancelled: "cancelled", failed: "failed",
};

const $ = (selector, root = document) => root.querySelector(selector);
const oneLine = (text) => String(text).replace(/\s+/g, " ").trim();
let token = localStorage.getItem(TOKEN_KEY) || "";

// ------------------------------------------------------------------ the API and its errors

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The API's one-line `detail` of a refused request (FastAPI's validation lists joined). */
async function detailOf(response) {
  let text = "";
  try { text = await response.text(); } catch (_) { /* no body */ }
  let detail = text;
  try { detail = JSON.parse(text).detail ?? text; } catch (_) { /* not JSON */ }
  if (Array.isArray(detail)) {
    detail = detail.map((d) => [(d.loc || []).filter((x) => x !== "body" && x !== "path").join("."), d.msg]
      .filter(Boolean).join(": ")).join("; ");
  } else if (typeof detail !== "string") {
    detail = JSON.stringify(detail);
  }
  return oneLine(detail) || `${response.status} ${response.statusText}`;
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (token) headers.set("Authorization", `Bearer ${token}`);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (exc) {
    throw new ApiError(0, `the server did not answer (${exc.message}): is inkwalk serve running?`);
  }
  if (response.status === 401) {
    askForToken(token ? "The server refused that token: enter it again." : null);
    throw new ApiError(401, await detailOf(response));
  }
  if (!response.ok) throw new ApiError(response.status, await detailOf(response));
  return response;
}

const getJson = async (path) => (await api(path)).json();

function showError(exc, what) {
  if (exc instanceof ApiError && exc.status === 401) return; // the token prompt says it
  $("#error-text").textContent = oneLine((what ? `${what}: ` : "") + (exc.message || exc));
  $("#error").hidden = false;
}

function clearError() {
  $("#error").hidden = true;
}

// ------------------------------------------------------------------ the token

// Characters a cookie value can carry as is (RFC 6265 cookie-octet): the server compares the
// cookie byte for byte, so a token outside this set could only be sent as a header.
const COOKIE_SAFE = /^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]+$/;

function setCookie(value) {
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = value && COOKIE_SAFE.test(value)
    ? `inkwalk_token=${value}; path=/; SameSite=Strict${secure}`
    : `inkwalk_token=; path=/; SameSite=Strict; Max-Age=0${secure}`;
}

function askForToken(why) {
  views.walk.stop();
  views.text.stop();
  gallery.stop();
  $("#studio").hidden = true;
  $("#tabs").hidden = true;
  $("#token").hidden = false;
  if (why) $("#token-why").textContent = why;
  $("#token-input").focus();
}

function useToken(event) {
  event.preventDefault();
  const value = $("#token-input").value.trim();
  if (!value) return;
  token = value;
  localStorage.setItem(TOKEN_KEY, token);
  setCookie(token);
  $("#token-input").value = "";
  if (!COOKIE_SAFE.test(token)) {
    showError("this token has characters a cookie cannot carry (spaces, quotes, commas, semicolons or "
      + "backslashes): videos and images will not load; use a URL-safe token");
  }
  start();
}

function forgetToken() {
  localStorage.removeItem(TOKEN_KEY);
  setCookie("");
  location.reload();
}

// ------------------------------------------------------------------ small DOM helpers

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function iconButton(text, label, onClick, disabled = false) {
  const button = el("button", { type: "button", textContent: text, title: label, disabled });
  button.setAttribute("aria-label", label);
  button.addEventListener("click", onClick);
  return button;
}

const percent = (progress) => `${Math.round(100 * (progress || 0))}%`;
const when = (seconds) => new Date(seconds * 1000).toLocaleString();

/** Form fields -> settings: empty fields are left out (the server's default applies). */
function formSettings(form) {
  const out = {};
  for (const input of form.querySelectorAll("input[name], select[name], textarea[name]")) {
    const raw = input.value.trim();
    if (raw === "") {
      if (input.validity.badInput) throw new Error(`${labelOf(input)} is not a number`);
      continue;
    }
    const type = input.dataset.type;
    const value = type === "int" || type === "float" ? Number(raw) : raw;
    if (type === "int" && !Number.isInteger(value)) throw new Error(`${labelOf(input)} must be a whole number`);
    if (type === "float" && !Number.isFinite(value)) throw new Error(`${labelOf(input)} is not a number`);
    out[input.name] = value;
  }
  return out;
}

const labelOf = (input) => oneLine(input.closest("label")?.firstChild?.textContent || input.name);

/** Settings of a job -> its form (re-run with edits); `size` fills width and height. */
function fillForm(form, settings) {
  for (const input of form.querySelectorAll("input[name], select[name], textarea[name]")) {
    let value = settings[input.name];
    if (input.name === "width" || input.name === "height") {
      value = Array.isArray(settings.size) ? settings.size[input.name === "width" ? 0 : 1] : undefined;
    }
    input.value = value ?? "";
  }
}

function randomSeed(event) {
  const form = document.getElementById(event.currentTarget.dataset.seedFor);
  form.elements.seed.value = Math.floor(Math.random() * 2 ** 31);
}

// ------------------------------------------------------------------ paintings of the walk

const paintings = []; // {file, url}, in walk order

function addFiles(files) {
  for (const file of files) {
    if (!file.type.startsWith("image/") && !IMAGE_NAME.test(file.name)) {
      showError(`${file.name} is not an image (PNG, JPEG, WebP, BMP or TIFF)`);
      continue;
    }
    paintings.push({ file, url: URL.createObjectURL(file) });
  }
  drawPaintings();
}

function movePainting(from, to) {
  if (to < 0 || to >= paintings.length || from === to) return;
  paintings.splice(to, 0, ...paintings.splice(from, 1));
  drawPaintings();
}

function removePainting(index) {
  URL.revokeObjectURL(paintings[index].url);
  paintings.splice(index, 1);
  drawPaintings();
}

function clearPaintings() {
  while (paintings.length) removePainting(paintings.length - 1);
}

function drawPaintings() {
  const list = $("#paintings");
  list.replaceChildren();
  paintings.forEach(({ file, url }, i) => {
    const name = file.name;
    const item = el("li", { draggable: true, title: name },
      el("img", { src: url, alt: name }),
      el("div", { className: "name", textContent: name }),
      el("div", { className: "tools" },
        iconButton("←", `Move ${name} earlier`, () => movePainting(i, i - 1), i === 0),
        iconButton("×", `Remove ${name}`, () => removePainting(i)),
        iconButton("→", `Move ${name} later`, () => movePainting(i, i + 1), i === paintings.length - 1)));
    item.dataset.name = name;
    item.addEventListener("dragstart", (e) => {
      e.dataTransfer.setData(DRAG_TYPE, String(i));
      e.dataTransfer.effectAllowed = "move";
      item.classList.add("dragging");
    });
    item.addEventListener("dragend", () => item.classList.remove("dragging"));
    item.addEventListener("dragover", (e) => {
      if (e.dataTransfer.types.includes(DRAG_TYPE)) e.preventDefault();
    });
    item.addEventListener("drop", (e) => {
      const from = e.dataTransfer.getData(DRAG_TYPE);
      if (from === "") return;
      e.preventDefault();
      e.stopPropagation();
      movePainting(Number(from), i);
    });
    list.append(item);
  });
}

function setUpDropzone() {
  const zone = $("#dropzone");
  const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types).includes("Files");
  zone.addEventListener("dragover", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    zone.classList.remove("over");
    addFiles(e.dataTransfer.files);
  });
  // a file dropped beside the zone must not make the browser leave the Studio to show it
  window.addEventListener("dragover", (e) => hasFiles(e) && e.preventDefault());
  window.addEventListener("drop", (e) => hasFiles(e) && e.preventDefault());
  $("#walk-files").addEventListener("change", (e) => {
    addFiles(e.target.files);
    e.target.value = "";
  });
}

// ------------------------------------------------------------------ submitting

async function submit(button, busyText, send) {
  clearError();
  const label = button.textContent;
  button.disabled = true;
  button.textContent = busyText;
  try {
    await send();
  } finally {
    button.disabled = false;
    button.textContent = label;
  }
}

async function submitWalk(event) {
  event.preventDefault();
  if (paintings.length < 2) {
    showError("add at least two paintings: a walk goes from each painting to the next");
    return;
  }
  let settings;
  try {
    settings = formSettings($("#walk-form"));
    const { width, height } = settings;
    delete settings.width;
    delete settings.height;
    if ((width === undefined) !== (height === undefined)) throw new Error("give both width and height, or neither");
    if (width !== undefined) settings.size = [width, height];
  } catch (exc) {
    showError(exc);
    return;
  }
  const body = new FormData();
  for (const { file } of paintings) body.append("paintings", file, file.name);
  body.append("settings", JSON.stringify(settings));
  await submit($("#walk-render"), "Uploading…", async () => {
    try {
      const { job_id: id } = await (await api(`${APPS.artwalks}/jobs`, { method: "POST", body })).json();
      openJob("artwalks", id);
    } catch (exc) {
      showError(exc, "Render refused");
    }
  });
}

async function submitText(event) {
  event.preventDefault();
  let settings;
  try {
    settings = formSettings($("#text-form"));
  } catch (exc) {
    showError(exc);
    return;
  }
  const prompt = settings.prompt || "";
  delete settings.prompt;
  if (!prompt) {
    showError("write a prompt: what should the landscape show?");
    return;
  }
  await submit($("#text-render"), "Sending…", async () => {
    try {
      const response = await api(`${APPS.conclvd}/jobs`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ prompt, settings }),
      });
      openJob("conclvd", (await response.json()).job_id);
    } catch (exc) {
      showError(exc, "Generate refused");
    }
  });
}

// ------------------------------------------------------------------ one job: progress, previews, player

function jobTitle(record) {
  return record.app === "artwalks" ? (record.paintings || []).join(" → ") : `“${record.settings?.prompt ?? ""}”`;
}

class JobView {
  constructor(slot, app) {
    this.slot = slot;
    this.app = app;
    this.id = null;
    this.timer = null;
  }

  url(suffix = "") {
    return `${APPS[this.app]}/jobs/${this.id}${suffix}`;
  }

  show(id) {
    if (id === this.id && this.root?.isConnected) {
      this.poll(); // shown already: follow it again (polling stops while the token is asked for)
      return;
    }
    this.stop();
    this.id = id;
    this.root = $("#job-view").content.firstElementChild.cloneNode(true);
    this.root.dataset.job = id;
    this.previews = new Set();
    this.sheetShown = false;
    this.videoShown = false;
    $(".job-title", this.root).textContent = `Job ${id.slice(0, 8)}`;
    $(".cancel", this.root).addEventListener("click", () => this.cancel());
    this.slot.replaceChildren(this.root);
    this.poll();
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  async poll() {
    const id = this.id;
    this.stop();
    let record;
    try {
      record = await getJson(this.url());
    } catch (exc) {
      if (id !== this.id || exc.status === 401) return;
      showError(exc, `Job ${id.slice(0, 8)}`);
      if (exc.status !== 404) this.timer = setTimeout(() => this.poll(), 4 * POLL_MS);
      return;
    }
    if (id !== this.id) return; // another job is shown now
    this.render(record);
    if (!TERMINAL.includes(record.state)) this.timer = setTimeout(() => this.poll(), POLL_MS);
  }

  render(r) {
    const root = this.root;
    $(".job-title", root).textContent = jobTitle(r) || `Job ${r.job_id.slice(0, 8)}`;
    const state = $(".state", root);
    state.textContent = r.state;
    state.className = `state ${r.state}`;
    $("progress", root).value = r.progress;
    $(".progress-text", root).textContent = `${STAGES[r.stage] || r.stage} · ${percent(r.progress)}`;
    $(".cancel", root).hidden = TERMINAL.includes(r.state);
    const error = $(".job-error", root);
    error.hidden = !r.error;
    error.textContent = r.error || "";
    $(".settings", root).textContent = JSON.stringify(r.settings, null, 1);
    this.showPreviews(r);
    if (r.state === "done" && !this.videoShown) {
      this.videoShown = true;
      const video = $("video", root);
      video.src = this.url("/video");
      video.hidden = false;
      const download = $(".download", root);
      download.href = this.url("/video");
      download.download = `${this.app === "artwalks" ? "walk" : "landscape"}-${r.job_id.slice(0, 8)}.mp4`;
      const sheet = $(".sheet", root);
      sheet.href = this.url("/keyframes");
      sheet.textContent = this.app === "artwalks" ? "Keyframes sheet" : "Generated frames";
      $(".links", root).hidden = false;
    }
  }

  showPreviews(r) {
    const box = $(".previews", this.root);
    if (this.app === "artwalks") {
      for (const walk of r.previews || []) {
        if (this.previews.has(walk)) continue;
        this.previews.add(walk);
        const names = r.paintings || [];
        box.append(el("img", {
          src: this.url(`/previews/${walk}`), className: "preview",
          alt: `keyframes of walk ${walk + 1}: ${names[walk] ?? ""} → ${names[walk + 1] ?? ""}`,
          title: `walk ${walk + 1}: ${names[walk] ?? ""} → ${names[walk + 1] ?? ""}`,
        }));
      }
    } else if (!this.sheetShown && (r.state === "done" || r.progress >= 0.8)) {
      this.sheetShown = true; // the generated frames exist once sampling has ended
      const img = el("img", { src: this.url("/keyframes"), className: "preview", alt: "the generated frames" });
      img.addEventListener("error", () => {
        img.remove();
        this.sheetShown = false;
      });
      box.append(img);
    }
  }

  async cancel() {
    clearError();
    try {
      await api(this.url(), { method: "DELETE" });
    } catch (exc) {
      showError(exc, "Cancel");
    }
    this.poll();
  }
}

const views = {
  walk: new JobView($("#walk-job"), "artwalks"),
  text: new JobView($("#text-job"), "conclvd"),
};

// ------------------------------------------------------------------ gallery

/** One app's jobs, newest first, a page at a time. */
class Feed {
  constructor(app) {
    this.app = app;
    this.offset = 0;
    this.total = Infinity;
    this.buffer = [];
  }

  get more() {
    return this.buffer.length > 0 || this.offset < this.total;
  }

  async head() {
    if (!this.buffer.length && this.offset < this.total) {
      let page;
      try {
        page = await getJson(`${APPS[this.app]}/jobs?limit=${PAGE}&offset=${this.offset}`);
      } catch (exc) {
        if (exc.status !== 404) throw exc;
        page = { jobs: [], total: 0 }; // this server does not run that app
      }
      this.buffer.push(...page.jobs);
      this.offset += page.jobs.length;
      this.total = page.jobs.length ? page.total : this.offset;
    }
    return this.buffer[0];
  }
}

const gallery = {
  feeds: [],
  generation: 0,
  timers: new Set(),

  stop() {
    this.generation += 1;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  },

  async reload() {
    this.stop();
    this.feeds = Object.keys(APPS).map((app) => new Feed(app));
    $("#jobs").replaceChildren();
    await this.more();
  },

  /** The next PAGE jobs of both apps, merged newest first. */
  async more() {
    const generation = this.generation;
    const button = $("#gallery-more");
    button.disabled = true;
    try {
      for (let n = 0; n < PAGE; n++) {
        const heads = await Promise.all(this.feeds.map((feed) => feed.head()));
        if (generation !== this.generation) return;
        let best = -1;
        heads.forEach((h, i) => {
          if (h && (best < 0 || h.created_at > heads[best].created_at)) best = i;
        });
        if (best < 0) break;
        $("#jobs").append(this.card(this.feeds[best].buffer.shift()));
      }
    } catch (exc) {
      if (generation === this.generation) showError(exc, "Gallery");
    } finally {
      if (generation === this.generation) {
        button.disabled = false;
        button.hidden = !this.feeds.some((feed) => feed.more);
        $("#gallery-empty").hidden = $("#jobs").children.length > 0;
      }
    }
  },

  card(r) {
    const node = $("#job-card").content.firstElementChild.cloneNode(true);
    const s = r.settings || {};
    node.dataset.job = r.job_id;
    node.dataset.state = r.state;
    const running = !TERMINAL.includes(r.state);
    const thumb = thumbnail(r);
    const box = $(".thumb", node);
    box.textContent = thumb ? "" : r.state;
    if (thumb) {
      const img = el("img", { src: thumb, alt: `thumbnail of job ${r.job_id.slice(0, 8)}`, loading: "lazy" });
      img.addEventListener("error", () => { box.textContent = r.state; });
      box.append(img);
    }
    $(".title", node).textContent = jobTitle(r);
    $(".meta", node).textContent = [r.app === "artwalks" ? "Walk" : "Text to video",
      running ? `${r.state} ${percent(r.progress)}` : r.state, when(r.created_at)].join(" · ");
    $(".summary", node).textContent = summary(r.app, s, r);
    $(".settings", node).textContent = JSON.stringify(s, null, 1);
    $(".open", node).addEventListener("click", () => openJob(r.app, r.job_id));
    $(".rerun", node).addEventListener("click", () => rerun(r));
    const remove = $(".delete", node);
    remove.textContent = running ? "Cancel" : "Delete";
    remove.addEventListener("click", () => this.remove(r, node, running));
    if (running) this.refreshLater(r, node);
    return node;
  },

  /** A running job's card follows its progress while it is on screen. */
  refreshLater(r, node) {
    const generation = this.generation;
    const timer = setTimeout(async () => {
      this.timers.delete(timer);
      if (generation !== this.generation || !node.isConnected) return;
      try {
        node.replaceWith(this.card(await getJson(`${APPS[r.app]}/jobs/${r.job_id}`)));
      } catch (exc) {
        if (exc.status === 404) node.remove();
      }
    }, 4 * POLL_MS);
    this.timers.add(timer);
  },

  async remove(r, node, running) {
    const question = running ? "Cancel this job?" : "Delete this job and its video? This cannot be undone.";
    if (!confirm(question)) return;
    clearError();
    try {
      await api(`${APPS[r.app]}/jobs/${r.job_id}`, { method: "DELETE" });
      if (running) node.replaceWith(this.card({ ...r, state: "running", stage: "cancelling" }));
      else node.remove();
      $("#gallery-empty").hidden = $("#jobs").children.length > 0;
    } catch (exc) {
      showError(exc, running ? "Cancel" : "Delete");
    }
  },
};

function thumbnail(r) {
  const base = `${APPS[r.app]}/jobs/${r.job_id}`;
  if (r.app === "artwalks") return (r.previews || []).includes(0) ? `${base}/previews/0` : null;
  return r.state === "done" ? `${base}/keyframes` : null;
}

function summary(app, s, r) {
  const seed = `seed ${s.seed ?? "default"}`;
  if (app === "conclvd") {
    return [`${s.frames ?? "?"} frames`, `${s.steps ?? "?"} steps`, `guidance ${s.guidance ?? "?"}`,
      `${s.size ?? "?"} px`, seed].join(" · ");
  }
  const size = Array.isArray(s.size) ? `${s.size[0]}×${s.size[1]}` : "?";
  return [`${(r.paintings || []).length} paintings`, s.preset, `${s.keyframes} keyframes`, `${s.frames} frames`,
    `hold ${s.hold} s`, `${size} → ${s.upscale}`, `${s.fps} fps`, `${s.weighting}, ${s.easing} ${s.strength}`,
    seed].join(" · ");
}

// ------------------------------------------------------------------ open, re-run

function openJob(app, id) {
  location.hash = `${app}/${id}`;
}

const MIME = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", webp: "image/webp", bmp: "image/bmp",
  tif: "image/tiff", tiff: "image/tiff" };

async function rerun(r) {
  clearError();
  if (r.app === "conclvd") {
    fillForm($("#text-form"), r.settings || {});
    location.hash = "text";
    return;
  }
  fillForm($("#walk-form"), r.settings || {});
  location.hash = "walk";
  try {
    const files = await Promise.all((r.paintings || []).map(async (name, i) => {
      const blob = await (await api(`${APPS.artwalks}/jobs/${r.job_id}/paintings/${i}`)).blob();
      const fileName = name || `painting-${i + 1}.png`;
      return new File([blob], fileName, { type: MIME[fileName.split(".").pop().toLowerCase()] || "image/png" });
    }));
    clearPaintings();
    addFiles(files);
  } catch (exc) {
    showError(exc, "Could not fetch the job's paintings");
  }
}

// ------------------------------------------------------------------ tabs and routing

const TABS = ["walk", "text", "gallery"];

function selectTab(name) {
  for (const tab of TABS) {
    $(`#tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    document.getElementById(tab).hidden = tab !== name;
  }
  if (name === "gallery") gallery.reload();
  else gallery.stop();
}

/** #walk, #text, #gallery, or #artwalks/<id> and #conclvd/<id> (a job, shown in its tab). */
function route() {
  const [first, id] = location.hash.slice(1).split("/");
  if (first in APPS && /^[0-9a-f]{32}$/.test(id || "")) {
    const tab = first === "artwalks" ? "walk" : "text";
    selectTab(tab);
    views[tab].show(id);
    return;
  }
  selectTab(TABS.includes(first) ? first : "walk");
}

/** Show the Studio once the API answers (with the token, if it wants one). */
async function start() {
  $("#token").hidden = true;
  try {
    await api(`${APPS.artwalks}/jobs?limit=1`);
  } catch (exc) {
    if (exc.status === 401) return;
    showError(exc, "The job API");
  }
  $("#studio").hidden = false;
  $("#tabs").hidden = false;
  $("#forget-token").hidden = !token;
  route();
}

function main() {
  setCookie(token); // <img> and <video> requests carry it
  for (const tab of TABS) $(`#tab-${tab}`).addEventListener("click", () => { location.hash = tab; });
  window.addEventListener("hashchange", route);
  $("#token-form").addEventListener("submit", useToken);
  $("#forget-token").addEventListener("click", forgetToken);
  $("#error-close").addEventListener("click", clearError);
  $("#walk-form").addEventListener("submit", submitWalk);
  $("#text-form").addEventListener("submit", submitText);
  $("#gallery-refresh").addEventListener("click", () => gallery.reload());
  $("#gallery-more").addEventListener("click", () => gallery.more());
  for (const dice of document.querySelectorAll(".dice")) dice.addEventListener("click", randomSeed);
  setUpDropzone();
  start();
}

main();
