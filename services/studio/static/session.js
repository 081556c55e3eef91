/* What a reload must not lose: the forms' fields (sessionStorage, this tab only) and the walk's
 * paintings (the last submitted walk's, fetched back from its job). */

const FIELDS = "input[name], select[name], textarea[name]";
const PAINTINGS_KEY = "inkwalk_walk_job";
const formKey = (form) => `inkwalk_form_${form.id}`;

function save(form) {
  const values = {};
  for (const input of form.querySelectorAll(FIELDS)) {
    if (input.type !== "file") values[input.name] = input.type === "checkbox" ? input.checked : input.value;
  }
  sessionStorage.setItem(formKey(form), JSON.stringify(values));
}

/** Put back what the form held before a reload, then keep it up to date. */
export function keepForm(form) {
  let values = {};
  try { values = JSON.parse(sessionStorage.getItem(formKey(form)) || "{}"); } catch (_) { /* start empty */ }
  for (const input of form.querySelectorAll(FIELDS)) {
    if (!(input.name in values)) continue;
    if (input.type === "checkbox") input.checked = values[input.name] === true;
    else if (input.type !== "file") input.value = values[input.name];
  }
  for (const type of ["input", "change"]) form.addEventListener(type, () => save(form));
}

export const rememberWalkJob = (id) => sessionStorage.setItem(PAINTINGS_KEY, id);
export const lastWalkJob = () => sessionStorage.getItem(PAINTINGS_KEY);
