/* inkwalk Studio: a page over the job API (docs/studio.md, docs/serving.md "Job API").
 *
 * No framework and no build step: ES modules served as they are. Everything the page shows
 * comes from the two job apps on this origin; user text (file names, prompts, errors) only
 * ever goes into textContent. Progress is polled (GET jobs/{id}); the API token, when the
 * server wants one, is sent as a Bearer header by fetch and as a cookie by <img> and <video>.
 */
import { api, APPS, getJson, hasToken, jobUrl, setCookie } from "./api.js";
import { loadDefaults } from "./defaults.js";
import { applyVideo } from "./from-video.js";
import { $, clearError, showError } from "./dom.js";
import { randomSeed } from "./forms.js";
import { gallery } from "./gallery.js";
import { JobView } from "./job-view.js";
import { queueBatch } from "./batch-forms.js";
import { queue } from "./queue.js";
import { loadPaintingsOf, paintings, setUpDropzone } from "./paintings.js";
import { keepForm, lastWalkJob } from "./session.js";
import { setUpSchedule, submitText } from "./text.js";
import { setUpToken } from "./token.js";
import { submitWalk } from "./walk.js";

const TABS = ["walk", "text", "queue", "gallery"];
const views = {
  walk: new JobView($("#walk-job"), "artwalks"),
  text: new JobView($("#text-job"), "conclvd"),
};

function stopAll() {
  views.walk.stop();
  views.text.stop();
  gallery.stop();
}

function selectTab(name) {
  for (const tab of TABS) {
    $(`#tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    document.getElementById(tab).hidden = tab !== name;
  }
  if (name === "gallery") gallery.reload();
  else gallery.stop();
  if (name === "queue") queue.show();
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

/** After a reload: the paintings of the last walk this tab submitted, from the job's own routes. */
async function restorePaintings() {
  const id = lastWalkJob();
  if (!id || paintings.length) return;
  try {
    await loadPaintingsOf(id, async () => (await getJson(jobUrl("artwalks", id))).paintings || []);
  } catch (exc) {
    if (exc.status !== 404) showError(exc, "Could not fetch the last walk's paintings"); // 404: deleted since
  }
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
  $("#forget-token").hidden = !hasToken();
  route();
  loadDefaults();
  restorePaintings();
}

function main() {
  setCookie(); // <img> and <video> requests carry it
  setUpToken({ stopAll, signedIn: start });
  for (const tab of TABS) $(`#tab-${tab}`).addEventListener("click", () => { location.hash = tab; });
  window.addEventListener("hashchange", route);
  $("#error-close").addEventListener("click", clearError);
  $("#walk-form").addEventListener("submit", submitWalk);
  $("#text-form").addEventListener("submit", submitText);
  $("#gallery-refresh").addEventListener("click", () => gallery.reload());
  $("#gallery-more").addEventListener("click", () => gallery.more());
  for (const dice of document.querySelectorAll(".dice")) dice.addEventListener("click", randomSeed);
  setUpDropzone(applyVideo);
  keepForm($("#walk-form"));
  keepForm($("#text-form"));
  setUpSchedule();
  for (const button of document.querySelectorAll(".queue-batch")) button.addEventListener("click", queueBatch);
  start();
}

main();
