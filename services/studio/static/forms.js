/* Form fields <-> settings, and the busy state of a submit button. */
import { clearError, oneLine } from "./dom.js";

const FIELDS = "input[name], select[name], textarea[name]";
export const labelOf = (input) => oneLine(input.closest("label")?.firstChild?.textContent || input.name);

/** Form fields -> settings: empty fields are left out (the server's default applies). */
export function formSettings(form) {
  const out = {};
  for (const input of form.querySelectorAll(FIELDS)) {
    if (input.disabled || input.closest("[data-not-settings], [hidden]")) continue;
    const raw = input.type === "checkbox" ? (input.checked ? "true" : "") : input.value.trim();
    if (raw === "") {
      if (input.validity.badInput) throw new Error(`${labelOf(input)} is not a number`);
      continue;
    }
    const type = input.dataset.type;
    const value = type === "int" || type === "float" || (type === "size" && /^\d+$/.test(raw)) ? Number(raw)
      : type === "bool" ? true : raw;
    if (type === "size" && !/^\d+(x\d+)?$/i.test(raw)) throw new Error(`${labelOf(input)}: write WIDTHxHEIGHT, e.g. 512x256`);
    if (type === "int" && !Number.isInteger(value)) throw new Error(`${labelOf(input)} must be a whole number`);
    if (type === "float" && !Number.isFinite(value)) throw new Error(`${labelOf(input)} is not a number`);
    out[input.name] = value;
  }
  return out;
}

/** Settings of a job -> its form (re-run with edits); `size` [w, h] fills width and height. */
export function fillForm(form, settings) {
  for (const input of form.querySelectorAll(FIELDS)) {
    if (input.closest("[data-not-settings]")) continue;
    let value = settings[input.name];
    if (input.name === "width" || input.name === "height") {
      value = Array.isArray(settings.size) ? settings.size[input.name === "width" ? 0 : 1] : undefined;
    } else if (input.name === "size" && Array.isArray(value)) {
      value = `${value[0]}x${value[1]}`;
    }
    if (input.type === "checkbox") input.checked = value === true;
    else input.value = value ?? "";
  }
  form.dispatchEvent(new Event("change")); // what follows the form (its defaults) catches up
}

export function randomSeed(event) {
  const form = document.getElementById(event.currentTarget.dataset.seedFor);
  form.elements.seed.value = Math.floor(Math.random() * 2 ** 31);
  form.dispatchEvent(new Event("input"));
}

/** Run `send` with `button` disabled and saying `busyText`. */
export async function submitting(button, busyText, send) {
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
