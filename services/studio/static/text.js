/* The Text-to-video tab's form: prompt and settings -> POST conclvd/jobs. */
import { api, APPS } from "./api.js";
import { $, openJob, showError } from "./dom.js";
import { formSettings, submitting } from "./forms.js";

export async function submitText(event) {
  event.preventDefault();
  let settings;
  try {
    settings = formSettings($("#text-form"));
  } catch (exc) {
    showError(exc);
    return;
  }
  const prompt = settings.prompt || "";
  delete settings.prompt;
  if (!prompt) {
    showError("write a prompt: what should the landscape show?");
    return;
  }
  await submitting($("#text-render"), "Sending…", async () => {
    try {
      const response = await api(`${APPS.conclvd}/jobs`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ prompt, settings }),
      });
      openJob("conclvd", (await response.json()).job_id);
    } catch (exc) {
      showError(exc, "Generate refused");
    }
  });
}
