/* The Walk tab's form: paintings and settings -> POST artwalks/jobs. */
import { api, APPS } from "./api.js";
import { $, openJob, showError } from "./dom.js";
import { formSettings, submitting } from "./forms.js";
import { paintings } from "./paintings.js";
import { rememberWalkJob } from "./session.js";

/** The walk form's settings; width and height become `size` (both or neither). */
export function walkSettings() {
  const settings = formSettings($("#walk-form"));
  const { width, height } = settings;
  delete settings.width;
  delete settings.height;
  if ((width === undefined) !== (height === undefined)) throw new Error("give both width and height, or neither");
  if (width !== undefined) settings.size = [width, height];
  return settings;
}

/** The walk as the form and the paintings hold it now: {files, settings}; a mistake throws. */
export function walkRequest() {
  if (paintings.length < 2) throw new Error("add at least two paintings: a walk goes from each painting to the next");
  return { files: paintings.map(({ file }) => file), settings: walkSettings() };
}

/** POST a walk; its job id. */
export async function sendWalk(files, settings) {
  const body = new FormData();
  for (const file of files) body.append("paintings", file, file.name);
  body.append("settings", JSON.stringify(settings));
  const { job_id: id } = await (await api(`${APPS.artwalks}/jobs`, { method: "POST", body })).json();
  rememberWalkJob(id); // a reload fetches the paintings back from this job
  return id;
}

export async function submitWalk(event) {
  event.preventDefault();
  let request;
  try {
    request = walkRequest();
  } catch (exc) {
    showError(exc);
    return;
  }
  await submitting($("#walk-render"), "Uploading…", async () => {
    try {
      openJob("artwalks", await sendWalk(request.files, request.settings));
    } catch (exc) {
      showError(exc, "Render refused");
    }
  });
}
