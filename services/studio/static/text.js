/* The Text-to-video tab: a prompt schedule (frame -> prompt rows), settings -> POST conclvd/jobs. */
import { api, APPS } from "./api.js";
import { $, el, iconButton, openJob, showError } from "./dom.js";
import { formSettings, submitting } from "./forms.js";

const ROWS_KEY = "inkwalk_prompt_rows";

/** Rows after the first (frame 0, the form's `prompt`): [{frame, prompt}]. */
function laterRows() {
  return [...document.querySelectorAll("#prompt-rows li.later")].map((row) => ({
    frame: $(".at input", row).value.trim(), prompt: $("textarea", row).value.trim(),
  }));
}

function addRow(frame = "", prompt = "", focus = true) {
  const row = el("li", { className: "prompt-row later" });
  const at = el("input", { type: "number", min: 1, step: 1, value: frame, required: true });
  const text = el("textarea", { rows: 2, value: prompt, placeholder: "autumn river, ink wash" });
  at.dataset.notSettings = "";
  text.dataset.notSettings = "";
  const label = el("label", { className: "text" }, "Prompt from this frame", text);
  const remove = iconButton("×", "Remove this prompt", () => {
    row.remove();
    saveRows();
    $("#add-prompt").focus();
  });
  row.append(el("label", { className: "at" }, "Frame", at), label, remove);
  $("#prompt-rows").append(row);
  if (focus) at.focus();
}

function saveRows() {
  sessionStorage.setItem(ROWS_KEY, JSON.stringify(laterRows()));
}

/** A job's prompt schedule back in the rows (re-run); `prompts` maps frame indices to prompts. */
export function setSchedule(settings) {
  for (const row of document.querySelectorAll("#prompt-rows li.later")) row.remove();
  const keys = Object.keys(settings.prompts || {}).sort((a, b) => Number(a) - Number(b));
  if (keys.length) $("#text-form").elements.prompt.value = settings.prompts[keys[0]];
  for (const key of keys.slice(1)) addRow(key, settings.prompts[key], false);
  saveRows();
}

/** `prompts` (a Map, rows in the order written) when the schedule has more than one row; frame 0 is the
 * first row. Range, order and empty prompts are the server's to check: its 422 names the row. */
function schedule(prompt) {
  const rows = laterRows();
  if (!rows.length) return {};
  const prompts = new Map([["0", prompt]]);
  for (const { frame, prompt: text } of rows) {
    if (!/^\d+$/.test(frame) || Number(frame) < 1) throw new Error("each later prompt needs a frame number ≥ 1");
    const key = String(Number(frame));
    if (prompts.has(key)) throw new Error(`two prompts at frame ${key}`); // JSON would keep only the last
    prompts.set(key, text);
  }
  return { prompts };
}

/** JSON.stringify, except that a Map is written as an object in its own order: a plain object puts
 * integer keys first, ascending, so an unordered schedule would reach the server sorted. */
function toJson(value) {
  const object = (entries) => `{${entries.map(([k, v]) => `${JSON.stringify(String(k))}:${toJson(v)}`).join(",")}}`;
  if (value instanceof Map) return object([...value]);
  if (Array.isArray(value)) return `[${value.map(toJson).join(",")}]`;
  if (value && typeof value === "object") return object(Object.entries(value).filter(([, v]) => v !== undefined));
  return JSON.stringify(value);
}

export function setUpSchedule() {
  $("#add-prompt").addEventListener("click", () => {
    addRow();
    saveRows();
  });
  $("#prompt-rows").addEventListener("input", saveRows);
  let rows = [];
  try { rows = JSON.parse(sessionStorage.getItem(ROWS_KEY) || "[]"); } catch (_) { /* none */ }
  for (const { frame, prompt } of rows) addRow(frame, prompt, false);
}

/** The clip as the form holds it now: {prompt, settings}; a mistake throws. */
export function textRequest() {
  const settings = formSettings($("#text-form"));
  const prompt = settings.prompt || ""; // empty: the server says so
  delete settings.prompt;
  return { prompt, settings: { ...settings, ...schedule(prompt) } };
}

/** POST a text-to-video job; its job id. */
export async function sendText(prompt, settings) {
  const response = await api(`${APPS.conclvd}/jobs`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: toJson({ prompt, settings }),
  });
  return (await response.json()).job_id;
}

export async function submitText(event) {
  event.preventDefault();
  let request;
  try {
    request = textRequest();
  } catch (exc) {
    showError(exc);
    return;
  }
  await submitting($("#text-render"), "Sending…", async () => {
    try {
      openJob("conclvd", await sendText(request.prompt, request.settings));
    } catch (exc) {
      showError(exc, "Generate refused");
    }
  });
}
