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

export async function submitWalk(event) {
  event.preventDefault();
  if (paintings.length < 2) {
    showError("add at least two paintings: a walk goes from each painting to the next");
    return;
  }
  let settings;
  try {
    settings = walkSettings();
  } catch (exc) {
    showError(exc);
    return;
  }
  const body = new FormData();
  for (const { file } of paintings) body.append("paintings", file, file.name);
  body.append("settings", JSON.stringify(settings));
  await submitting($("#walk-render"), "Uploading…", async () => {
    try {
      const { job_id: id } = await (await api(`${APPS.artwalks}/jobs`, { method: "POST", body })).json();
      rememberWalkJob(id); // a reload fetches the paintings back from this job
      openJob("artwalks", id);
    } catch (exc) {
      showError(exc, "Render refused");
    }
  });
}
