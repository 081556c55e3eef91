/* One job in its tab: state, progress, previews, the player and the download. */
import { getJson, api, jobUrl } from "./api.js";
import { $, clearError, el, percent, showError } from "./dom.js";

export const TERMINAL = ["done", "failed", "cancelled"];
export const POLL_MS = 400;
const STAGES = {
  queued: "waiting for a slot", render: "rendering", join: "joining the video", sheet: "keyframe sheet",
  generate: "generating frames", interpolate: "interpolating (SOFP)", encode: "encoding", done: "done",
  cancelled: "cancelled", failed: "failed",
};

export function jobTitle(record) {
  return record.app === "artwalks" ? (record.paintings || []).join(" → ") : `“${record.settings?.prompt ?? ""}”`;
}

const slug = (text, words = 6) => String(text).toLowerCase().normalize("NFKD").replace(/[^\p{L}\p{N}]+/gu, " ")
  .trim().split(" ").filter(Boolean).slice(0, words).join("-");

/** A file name that says what made the video: the paintings (or the prompt) and the seed. */
export function outputName(r) {
  const what = r.app === "artwalks"
    ? (r.paintings || []).map((name) => slug(name.replace(/\.[^.]*$/, ""), 3)).join("_")
    : slug(r.settings?.prompt ?? "");
  const seed = r.settings?.seed;
  return `${r.app === "artwalks" ? "walk" : "landscape"}-${what.slice(0, 80) || r.job_id.slice(0, 8)}`
    + (seed === undefined ? "" : `-seed${seed}`);
}

function duration(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

export class JobView {
  constructor(slot, app) {
    this.slot = slot;
    this.app = app;
    this.id = null;
    this.timer = null;
  }

  url(suffix = "") {
    return jobUrl(this.app, this.id, suffix);
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
    this.shownProgress = 0; // the bar never moves back (a cancel re-reads an older saved record)
    this.frames = null; // {done, total} of a walk, asked for every few polls
    this.framesAsked = 0;
    this.latentsAsked = false; // a scroll's latent preview is on its way
    this.latentsAt = null; // windows done when it was asked for
    $(".job-title", this.root).textContent = `Job ${id.slice(0, 8)}`;
    $(".cancel", this.root).addEventListener("click", () => this.cancel());
    $(".latest", this.root).addEventListener("error", (e) => { e.target.hidden = true; });
    this.slot.replaceChildren(this.root);
    if (matchMedia("(max-width: 800px)").matches) this.slot.scrollIntoView({ block: "start" }); // below the form
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
    await this.followFrames(record);
    if (id !== this.id) return;
    this.render(record);
    if (!TERMINAL.includes(record.state)) this.timer = setTimeout(() => this.poll(), POLL_MS);
  }

  render(r) {
    const root = this.root;
    $(".job-title", root).textContent = jobTitle(r) || `Job ${r.job_id.slice(0, 8)}`;
    const state = $(".state", root);
    state.textContent = r.state;
    state.className = `state ${r.state}`;
    this.shownProgress = Math.max(this.shownProgress, r.progress || 0);
    $("progress", root).value = this.shownProgress;
    $(".progress-text", root).textContent = [STAGES[r.stage] || r.stage, percent(this.shownProgress),
      ...this.counters(r)].join(" · ");
    $(".cancel", root).hidden = TERMINAL.includes(r.state);
    const error = $(".job-error", root);
    error.hidden = !r.error;
    error.textContent = r.error || "";
    $(".settings", root).textContent = JSON.stringify(r.settings, null, 1);
    this.showPreviews(r);
    if (r.state === "done" && !this.videoShown) {
      this.videoShown = true;
      $(".latest", root).hidden = true; // the video itself shows now
      const video = $("video", root);
      video.src = this.url("/video");
      video.hidden = false;
      const download = $(".download", root);
      download.href = this.url("/video");
      download.download = `${outputName(r)}.mp4`;
      const sheet = $(".sheet", root);
      sheet.href = this.url("/keyframes");
      sheet.textContent = this.app === "artwalks" ? "Keyframes sheet" : "Generated frames";
      $(".links", root).hidden = false;
    }
  }

  /** "frame 40 of 120", "windows 3 of 8", "about 2 min left": what the job's record and routes tell. */
  counters(r) {
    const out = [];
    if (this.frames?.total) out.push(`frame ${this.frames.done} of ${this.frames.total}`);
    if (r.windows?.total) {
      const replicas = r.windows.replicas || [];
      out.push(`windows ${r.windows.done} of ${r.windows.total}`
        + (replicas.length ? ` on ${replicas.length === 1 ? "replica" : "replicas"} ${replicas.join(", ")}` : ""));
    }
    if (r.state === "running" && r.started_at && this.shownProgress >= 0.05 && this.shownProgress < 1) {
      const elapsed = Date.now() / 1000 - r.started_at;
      out.push(`about ${duration(elapsed * (1 - this.shownProgress) / this.shownProgress)} left`);
    }
    return out;
  }

  /** A walk's frames finished so far and its newest in-between frame (every few polls; older servers: never). */
  async followFrames(r) {
    if (this.app === "conclvd") {
      this.followLatents(r);
      return;
    }
    if (this.framesAsked < 0) return;
    const last = TERMINAL.includes(r.state);
    if (!last && this.framesAsked++ % 5) return;
    const id = this.id;
    try {
      const frames = await getJson(this.url("/frames"));
      if (id !== this.id) return;
      const moved = frames.done !== this.frames?.done;
      this.frames = frames;
      if (moved && frames.done > 0 && r.state !== "done") {
        const img = $(".latest", this.root);
        img.src = this.url(`/frames/latest?frames=${frames.done}`);
        img.hidden = false;
      }
    } catch (exc) {
      if (exc.status === 404) this.framesAsked = -1; // this server has no such route
    }
    if (last) this.framesAsked = -1;
  }

  /** The scroll sampler's latent preview (servers that report `windows` have one): asked again once
   * windows have finished since the last one came (at most one request at a time). */
  followLatents(r) {
    const img = $(".latest", this.root);
    img.alt = "the video's frames as they are being sampled (a cheap preview of the latents)";
    if (!r.windows || r.state !== "running" || this.latentsAsked || r.windows.done === this.latentsAt) return;
    this.latentsAsked = true;
    this.latentsAt = r.windows.done;
    img.onload = () => { img.hidden = false; this.latentsAsked = false; };
    img.onerror = () => { this.latentsAsked = false; }; // 404 until one exists: the listener above hides it
    img.src = this.url(`/previews/latest?windows=${r.windows.done}`);
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
    const button = $(".cancel", this.root);
    button.disabled = true;
    button.textContent = "Cancelling…";
    try {
      await api(this.url(), { method: "DELETE" });
    } catch (exc) {
      showError(exc, "Cancel");
      button.disabled = false;
      button.textContent = "Cancel";
    }
    this.poll();
  }
}
