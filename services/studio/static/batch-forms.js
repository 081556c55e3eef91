/* "Queue the batch" in the Walk and Text-to-video forms: the form's runs, into the queue. */
import { batchSpec, variants } from "./batch.js";
import { showError } from "./dom.js";
import { enqueue } from "./queue.js";
import { sendText, textRequest } from "./text.js";
import { sendWalk, walkRequest } from "./walk.js";

export function queueBatch(event) {
  const form = event.currentTarget.closest("form");
  const spec = batchSpec(event.currentTarget.closest(".batch"));
  const varied = spec.vary === "setting" ? spec.setting : spec.vary === "sweep" ? "seed sweep" : "random seeds";
  try {
    if (form.id === "walk-form") {
      const { files, settings } = walkRequest();
      const title = files.map((f) => f.name).join(" → ");
      enqueue(variants(settings, spec).map(({ settings: s, label }) => ({
        app: "artwalks", title, label, send: () => sendWalk(files, s),
      })), `${title} · ${varied}`);
    } else {
      const { prompt, settings } = textRequest();
      enqueue(variants(settings, spec).map(({ settings: s, label }) => ({
        app: "conclvd", title: `“${prompt}”`, label, send: () => sendText(prompt, s),
      })), `“${prompt}” · ${varied}`);
    }
  } catch (exc) {
    showError(exc);
    return;
  }
  location.hash = "queue";
}
