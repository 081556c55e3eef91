/* The server's real defaults and choices in the forms (GET {app}/settings), not the word "default". */
import { APPS, getJson } from "./api.js";
import { $, el, showError } from "./dom.js";

const FIELDS = "input[name], select[name], textarea[name]";
const shown = (value) => (Array.isArray(value) ? value.join("x") : String(value));
const forms = {}; // app -> {form, info}

async function formInfo(app) {
  try {
    return await getJson(`${APPS[app]}/settings`);
  } catch (exc) {
    if (exc.status === 404) return null; // an older server, or this app is not served: keep the plain form
    throw exc;
  }
}

/** Each empty field says the value it takes: placeholders, and the empty option of a select. */
function showDefaults(form, settings) {
  for (const input of form.querySelectorAll(FIELDS)) {
    let value = settings[input.name];
    if (input.name === "width" || input.name === "height") value = settings.size?.[input.name === "width" ? 0 : 1];
    if (value === undefined || value === null || value === "" || input.type === "checkbox") continue;
    if (input.tagName === "SELECT") {
      const empty = input.querySelector('option[value=""]');
      if (empty) empty.textContent = `${shown(value)} (default)`;
    } else {
      input.placeholder = shown(value);
    }
  }
}

/** Selects marked data-choices list what the server offers; one choice only: shown, not choosable. */
function fillChoices(form, choices) {
  for (const select of form.querySelectorAll("select[data-choices]")) {
    const values = choices[select.name];
    if (!values) continue;
    const current = select.value;
    const options = values.length > 1 ? values.map((v) => el("option", { value: v, textContent: v })) : [];
    select.replaceChildren(el("option", { value: "", textContent: "default" }), ...options);
    select.value = values.includes(current) ? current : "";
    select.disabled = values.length < 2;
    select.title = values.length < 2 ? "the only one this server runs" : "";
  }
}

function setMax(form, limits) {
  for (const [name, high] of Object.entries(limits || {})) {
    const input = form.querySelector(`input[name="${name}"][type=number]`);
    if (input && typeof high === "number") input.max = String(high);
  }
}

/** Fields a newer server offers (data-optional="name") show only where this one knows the setting. */
function showOptional(form, settings) {
  for (const node of form.querySelectorAll("[data-optional]")) node.hidden = !(node.dataset.optional in settings);
}

/** The walk form follows its preset: each preset has its own defaults. */
function showWalkDefaults() {
  const { form, info } = forms.artwalks;
  const preset = form.elements.preset.value || info.preset;
  const entry = info.presets[preset] || {};
  if (entry.settings) showDefaults(form, entry.settings);
  note($("#walk-defaults-note"), entry.refused && `this server refuses the ${preset} preset's defaults as they `
    + `are (${entry.refused}): set that field in the form`);
}

function note(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

/** Fill both forms from the server; the page keeps working (plain placeholders) if it cannot. */
export async function loadDefaults() {
  try {
    const [walk, text] = await Promise.all([formInfo("artwalks"), formInfo("conclvd")]);
    if (walk) {
      const form = $("#walk-form");
      if (!forms.artwalks) form.addEventListener("change", showWalkDefaults); // the preset, or a re-run's
      forms.artwalks = { form, info: walk };
      fillChoices(form, { ...walk.choices, preset: Object.keys(walk.presets) });
      setMax(form, walk.limits);
      showWalkDefaults();
      showOptional(form, walk.presets[walk.preset]?.settings || {});
    }
    if (text) {
      const form = $("#text-form");
      forms.conclvd = { form, info: text };
      fillChoices(form, text.choices);
      setMax(form, text.limits);
      showDefaults(form, text.settings);
      showOptional(form, text.settings);
      note($("#text-defaults-note"), text.refused && `this server refuses its own defaults as they are `
        + `(${text.refused}): set that field in the form`);
    }
  } catch (exc) {
    showError(exc, "The server's defaults");
  }
}
