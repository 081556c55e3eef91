/* The queue: both apps' running jobs in one view, and jobs waiting in this page.
 *
 * The server runs what it is sent (a few jobs per replica, then 503). Waiting jobs live in this
 * page instead, so they can be reordered and cancelled: the page sends the next one when fewer
 * than SLOTS of the jobs it sent are still running. Leaving the page (a reload, closing the tab)
 * would lose the waiting ones, so the browser asks first while any are waiting. Batches
 * (several runs of one form) are shown side by side in a comparison grid as they finish.
 */
import { api, APPS, getJson, jobUrl } from "./api.js";
import { $, el, iconButton, openJob, percent, showError } from "./dom.js";
import { jobTitle, TERMINAL } from "./job-view.js";

const SLOTS = 1;
const TICK_MS = 1500;
const waiting = []; // {key, app, title, label, batch, send: () => Promise<job id>}
const sent = new Map(); // job id -> {app, batch, label}
const batches = []; // {title, runs: [{label, app, key, job, state}]}
let timer = null;
let drawnBatches = ""; // what the grid shows: redrawn only when a run changes (videos keep playing)
let nextKey = 1;

window.addEventListener("beforeunload", (event) => {
  if (waiting.length) event.preventDefault(); // the browser asks "leave the page?": waiting runs are only here
});

/** Queue runs of one form: [{app, title, label, send}], shown as a batch when there are several. */
export function enqueue(runs, title) {
  const batch = runs.length > 1 ? { title, runs: [] } : null;
  if (batch) batches.unshift(batch);
  for (const run of runs) {
    const item = { ...run, key: nextKey++, batch };
    waiting.push(item);
    batch?.runs.push({ label: run.label, app: run.app, key: item.key, job: null, state: "waiting" });
  }
  tick();
}

function runOf(item) {
  return item.batch?.runs.find((r) => r.key === item.key);
}

let ticking = null; // one tick at a time: two could send the same waiting job

/** Send what fits, follow what was sent, redraw (once more after any tick asked for meanwhile). */
function tick() {
  clearTimeout(timer);
  if (ticking) {
    ticking.again = true;
    return;
  }
  ticking = { again: false };
  step().finally(() => {
    const again = ticking.again;
    ticking = null;
    if (again) tick();
    else if (waiting.length || sent.size || !$("#queue").hidden) timer = setTimeout(tick, TICK_MS);
  });
}

async function step() {
  for (const [id, job] of sent) {
    try {
      const record = await getJson(jobUrl(job.app, id));
      if (job.run) Object.assign(job.run, { state: record.state, progress: record.progress });
      if (TERMINAL.includes(record.state)) sent.delete(id);
    } catch (exc) {
      if (exc.status === 404) sent.delete(id);
    }
  }
  while (sent.size < SLOTS && waiting.length) {
    const item = waiting[0];
    try {
      const id = await item.send();
      waiting.shift();
      const run = runOf(item);
      if (run) Object.assign(run, { job: id, state: "queued" });
      sent.set(id, { app: item.app, run });
    } catch (exc) {
      if (exc.status === 503) break; // the server is full: try again next tick
      waiting.shift();
      const run = runOf(item);
      if (run) run.state = "refused";
      showError(exc, `${item.label || item.title} refused`);
    }
  }
  await draw();
}

function move(index, by) {
  const to = index + by;
  if (to < 0 || to >= waiting.length) return;
  waiting.splice(to, 0, ...waiting.splice(index, 1));
  drawWaiting();
  const [earlier, later] = $("#queue-waiting").children[to].querySelectorAll("button");
  const wanted = by < 0 ? earlier : later;
  (wanted.disabled ? (wanted === earlier ? later : earlier) : wanted).focus(); // at an end: the other arrow
}

function drop(index) {
  const [item] = waiting.splice(index, 1);
  const run = runOf(item);
  if (run) run.state = "cancelled";
  drawWaiting();
  draw();
}

async function runningJobs() {
  const lists = await Promise.all(Object.keys(APPS).map(async (app) => {
    try {
      return (await getJson(`${APPS[app]}/jobs?limit=50`)).jobs;
    } catch (exc) {
      if (exc.status === 404) return [];
      throw exc;
    }
  }));
  return lists.flat().filter((r) => !TERMINAL.includes(r.state)).sort((a, b) => a.created_at - b.created_at);
}

async function draw() {
  if ($("#queue").hidden) return;
  let running = [];
  try {
    running = await runningJobs();
  } catch (exc) {
    showError(exc, "Queue");
  }
  $("#queue-running").replaceChildren(...running.map((r) => el("li", { className: "queue-item" },
    el("span", { className: "what", textContent: `${r.app === "artwalks" ? "Walk" : "Text to video"}: ${jobTitle(r)}` }),
    el("span", { className: "hint", textContent: `${r.state} ${percent(r.progress)}` }),
    iconButton("Open", `Open job ${r.job_id.slice(0, 8)}`, () => openJob(r.app, r.job_id)),
    iconButton("Cancel", `Cancel job ${r.job_id.slice(0, 8)}`, async () => {
      try { await api(jobUrl(r.app, r.job_id), { method: "DELETE" }); } catch (exc) { showError(exc, "Cancel"); }
      tick();
    }))));
  $("#queue-running-empty").hidden = running.length > 0;
  drawWaiting();
  const shown = JSON.stringify(batches.map((b) => b.runs.map((r) => [r.state, r.job, Math.round(100 * (r.progress || 0))])));
  if (shown !== drawnBatches) {
    drawnBatches = shown;
    $("#batches").replaceChildren(...batches.map(batchGrid));
  }
  $("#batches-empty").hidden = batches.length > 0;
}

let drawnWaiting = null; // the keys shown: a redraw that changes nothing must not take the keyboard's focus

function drawWaiting() {
  const keys = waiting.map((item) => item.key).join(",");
  if (keys === drawnWaiting) return;
  drawnWaiting = keys;
  $("#queue-waiting").replaceChildren(...waiting.map((item, i) => el("li", { className: "queue-item" },
    el("span", { className: "what", textContent: `${item.app === "artwalks" ? "Walk" : "Text to video"}: ${item.title}` }),
    el("span", { className: "hint", textContent: item.label || "" }),
    iconButton("↑", `Move ${item.label || item.title} earlier`, () => move(i, -1), i === 0),
    iconButton("↓", `Move ${item.label || item.title} later`, () => move(i, 1), i === waiting.length - 1),
    iconButton("×", `Remove ${item.label || item.title} from the queue`, () => drop(i)))));
  $("#queue-waiting-empty").hidden = waiting.length > 0;
}

/** One batch side by side: each run's label, state, and its video once done. */
function batchGrid(batch) {
  const cells = batch.runs.map((run) => {
    const cell = el("figure", { className: "compare-cell" });
    cell.dataset.state = run.state;
    if (run.state === "done") {
      const video = el("video", { src: jobUrl(run.app, run.job, "/video"), muted: true, loop: true, controls: true,
        playsInline: true, preload: "metadata" });
      cell.append(video);
    } else {
      cell.append(el("div", { className: "placeholder", textContent: run.state === "running"
        ? `running ${percent(run.progress)}` : run.state }));
    }
    cell.append(el("figcaption", { textContent: run.label }));
    return cell;
  });
  const play = el("button", { type: "button", textContent: "Play all together" });
  play.addEventListener("click", (e) => {
    for (const v of e.target.closest(".batch-view").querySelectorAll("video")) {
      v.currentTime = 0;
      v.play();
    }
  });
  return el("section", { className: "batch-view card" }, el("h3", { textContent: batch.title }),
    el("div", { className: "compare" }, ...cells), el("p", { className: "actions" }, play));
}

export const queue = { show: tick };
