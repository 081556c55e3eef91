/* Settings from a video: an inkwalk mp4 dropped on the Studio fills the form with what made it.
 *
 * inkwalk writes its JSON metadata into the mp4's `©cmt` tag (inkwalk/chunks.py, `inkwalk info`):
 * an ilst item whose `data` box holds the text after 8 bytes of type and locale. The tag lives in
 * the moov box, at the start or the end of the file, so only those ends are read.
 */
import { getJson, jobUrl } from "./api.js";
import { $, clearError, showError } from "./dom.js";
import { fillForm } from "./forms.js";
import { loadPaintingsOf } from "./paintings.js";
import { setSchedule } from "./text.js";

const ENDS = 8 * 1024 * 1024;
const TAG = [0xa9, 0x63, 0x6d, 0x74]; // "©cmt"

function commentIn(bytes) {
  for (let i = bytes.length - 24; i >= 0; i--) {
    if (bytes[i] !== TAG[0] || bytes[i + 1] !== TAG[1] || bytes[i + 2] !== TAG[2] || bytes[i + 3] !== TAG[3]) continue;
    const view = new DataView(bytes.buffer, bytes.byteOffset + i + 4);
    const size = view.getUint32(0);
    if (String.fromCharCode(...bytes.slice(i + 8, i + 12)) !== "data" || size < 16) continue;
    return new TextDecoder().decode(bytes.slice(i + 20, i + 4 + size));
  }
  return null;
}

/** The inkwalk metadata of an mp4 file, or an Error naming the file. */
export async function videoMetadata(file) {
  const ends = file.size <= 2 * ENDS ? [file] : [file.slice(file.size - ENDS), file.slice(0, ENDS)];
  for (const part of ends) {
    const text = commentIn(new Uint8Array(await part.arrayBuffer()));
    if (text === null) continue;
    try {
      const data = JSON.parse(text);
      if (data && typeof data === "object" && data.settings) return data;
    } catch (_) { /* a comment, not ours */ }
  }
  throw new Error(`${file.name} carries no inkwalk settings (only videos made by inkwalk do)`);
}

/** Fill the form that made `file` (and a walk's paintings, when its job is still on the server). */
export async function applyVideo(file) {
  clearError();
  let meta;
  try {
    meta = await videoMetadata(file);
  } catch (exc) {
    showError(exc);
    return;
  }
  if (meta.app === "conclvd") {
    fillForm($("#text-form"), { ...meta.settings, prompt: meta.prompt });
    setSchedule(meta.settings);
    location.hash = "text";
    return;
  }
  fillForm($("#walk-form"), meta.settings);
  location.hash = "walk";
  if (!meta.job_id) return;
  try { // the paintings themselves are not in the video: its job may still have them
    const record = await getJson(jobUrl("artwalks", meta.job_id));
    await loadPaintingsOf(meta.job_id, record.paintings || []);
  } catch (exc) {
    if (exc.status !== 404) showError(exc, `The paintings of ${file.name}`);
  }
}
