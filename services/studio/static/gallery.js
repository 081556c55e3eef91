/* The gallery: both apps' jobs merged newest first, a page at a time; open, re-run, delete. */
import { api, APPS, getJson, jobUrl } from "./api.js";
import { $, clearError, el, openJob, percent, showError, when } from "./dom.js";
import { fillForm } from "./forms.js";
import { jobTitle, POLL_MS, TERMINAL } from "./job-view.js";
import { loadPaintingsOf } from "./paintings.js";
import { setSchedule } from "./text.js";

const PAGE = 12;

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

export const gallery = {
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
    this.shown = new Set(); // job ids: a job that moved pages while new ones were made shows once
    this.lastOfTitle = new Map(); // "app|title" -> the oldest card shown so far of that walk or prompt
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
        const record = this.feeds[best].buffer.shift();
        if (this.shown.has(record.job_id)) {
          n -= 1;
          continue;
        }
        this.shown.add(record.job_id);
        const node = this.card(record);
        $("#jobs").append(node);
        this.markRerun(record, node);
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

  /** Re-runs of one walk or prompt look alike: the newer card says what changed since this one. */
  markRerun(record, node) {
    const key = `${record.app}|${jobTitle(record)}`;
    const newer = this.lastOfTitle.get(key);
    this.lastOfTitle.set(key, { record, node });
    if (!newer) return;
    const changes = changed(record.settings || {}, newer.record.settings || {});
    const text = changes.length ? `changed since ${when(record.created_at)}: ${changes.join(", ")}`
      : `same settings as ${when(record.created_at)}`;
    const card = document.querySelector(`#jobs li[data-job="${newer.record.job_id}"]`) || newer.node; // refreshed?
    const differs = $(".differs", card);
    differs.textContent = text;
    differs.hidden = false;
  },

  /** A running job's card follows its progress while it is on screen. */
  refreshLater(r, node) {
    const generation = this.generation;
    const timer = setTimeout(async () => {
      this.timers.delete(timer);
      if (generation !== this.generation || !node.isConnected) return;
      try {
        const fresh = this.card(await getJson(jobUrl(r.app, r.job_id)));
        const differs = $(".differs", node);
        Object.assign($(".differs", fresh), { textContent: differs.textContent, hidden: differs.hidden });
        node.replaceWith(fresh);
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
      await api(jobUrl(r.app, r.job_id), { method: "DELETE" });
      if (running) node.replaceWith(this.card({ ...r, state: "running", stage: "cancelling" }));
      else node.remove();
      $("#gallery-empty").hidden = $("#jobs").children.length > 0;
    } catch (exc) {
      showError(exc, running ? "Cancel" : "Delete");
    }
  },
};

const shownValue = (v) => (Array.isArray(v) ? v.join("x") : JSON.stringify(v ?? null).replace(/^"|"$/g, ""));

/** "seed 7 → 8"-style changes from `before` to `after` (the prompt is the card's title). */
function changed(before, after) {
  return [...new Set([...Object.keys(before), ...Object.keys(after)])]
    .filter((k) => k !== "prompt" && JSON.stringify(before[k]) !== JSON.stringify(after[k]))
    .map((k) => `${k} ${shownValue(before[k])} → ${shownValue(after[k])}`);
}

function thumbnail(r) {
  if (r.app === "artwalks") return (r.previews || []).includes(0) ? jobUrl(r.app, r.job_id, "/previews/0") : null;
  return r.state === "done" ? jobUrl(r.app, r.job_id, "/keyframes") : null;
}

function summary(app, s, r) {
  const seed = `seed ${s.seed ?? "default"}`;
  const size = Array.isArray(s.size) ? `${s.size[0]}×${s.size[1]}` : "?";
  if (app === "conclvd") {
    const prompts = Object.keys(s.prompts || {}).length;
    return [`${s.frames ?? "?"} frames`, s.window && `windows of ${s.window}, overlap ${s.overlap ?? "default"}`,
      s.loop && "loop", prompts > 1 && `${prompts} prompts`, `${s.steps ?? "?"} steps`, `guidance ${s.guidance ?? "?"}`,
      `${size} px`, seed].filter(Boolean).join(" · ");
  }
  return [`${(r.paintings || []).length} paintings`, s.preset, `${s.keyframes} keyframes`, `${s.frames} frames`,
    `hold ${s.hold} s`, `${size} → ${s.upscale}`, `${s.fps} fps`, `${s.weighting}, ${s.easing} ${s.strength}`,
    seed].join(" · ");
}

/** A job's settings back in its form (and a walk's paintings fetched back from the job). */
export async function rerun(r) {
  clearError();
  if (r.app === "conclvd") {
    fillForm($("#text-form"), r.settings || {});
    setSchedule(r.settings || {});
    location.hash = "text";
    return;
  }
  fillForm($("#walk-form"), r.settings || {});
  location.hash = "walk";
  try {
    await loadPaintingsOf(r.job_id, r.paintings || []);
  } catch (exc) {
    showError(exc, "Could not fetch the job's paintings");
  }
}
