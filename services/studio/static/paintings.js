/* The walk's paintings, in walk order: add (choose or drop), reorder (drag or arrows), remove. */
import { api, jobUrl } from "./api.js";
import { $, el, iconButton, showError } from "./dom.js";

const isVideo = (file) => file.type === "video/mp4" || /\.(mp4|m4v|mov)$/i.test(file.name);
const DRAG_TYPE = "application/x-inkwalk-painting";
const MIME = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", webp: "image/webp", bmp: "image/bmp",
  tif: "image/tiff", tiff: "image/tiff" };
const ACCEPTED = "PNG, JPEG, WebP, BMP or TIFF";

export const paintings = []; // {file, url}, in walk order
let replacements = 0; // loads of a job's paintings so far: only the newest may replace the walk's

/** Whether a file's first bytes are one of the accepted image formats (its name may say anything). */
async function isImage(file) {
  const b = new Uint8Array(await file.slice(0, 12).arrayBuffer());
  const text = (from, to) => String.fromCharCode(...b.slice(from, to));
  return (b[0] === 0x89 && text(1, 4) === "PNG") || (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff)
    || (text(0, 4) === "RIFF" && text(8, 12) === "WEBP") || text(0, 2) === "BM"
    || text(0, 4) === "II*\0" || text(0, 4) === "MM\0*";
}

/** Add files at the end of the walk; one that is not an image is refused by name. The user's own
 * files win over a job's paintings still loading (a reload's restore): that load is dropped. */
async function addFiles(files) {
  replacements += 1;
  const refused = [];
  for (const file of Array.from(files)) {
    if (await isImage(file)) paintings.push({ file, url: URL.createObjectURL(file) });
    else refused.push(file.name);
  }
  drawPaintings();
  if (refused.length) showError(`${refused.join(", ")}: not ${refused.length > 1 ? "images" : "an image"} (${ACCEPTED}), left out`);
}

/** A job's paintings, fetched back from its own routes, replace the walk's (re-run, reload).
 *
 * `names` may be a function that fetches them. Loads can overlap (a reload's restore, then a click
 * on "Re-run with edits"): the newest one started wins and the others are dropped, so the walk
 * never holds two jobs' paintings at once. The walk is replaced in one step: a Render clicked
 * meanwhile never finds it empty or half-filled. */
export async function loadPaintingsOf(id, names) {
  const ticket = ++replacements;
  const list = typeof names === "function" ? await names() : names;
  const files = await Promise.all(list.map(async (name, i) => {
    const blob = await (await api(jobUrl("artwalks", id, `/paintings/${i}`))).blob();
    const fileName = name || `painting-${i + 1}.png`;
    return new File([blob], fileName, { type: MIME[fileName.split(".").pop().toLowerCase()] || "image/png" });
  }));
  if (ticket !== replacements) return;
  clearPaintings();
  for (const file of files) paintings.push({ file, url: URL.createObjectURL(file) }); // images the server took
  drawPaintings();
}

/** Move a painting; `arrow` ("earlier" or "later") keeps the keyboard on that painting's arrow. */
function movePainting(from, to, arrow = null) {
  if (to < 0 || to >= paintings.length || from === to) return;
  paintings.splice(to, 0, ...paintings.splice(from, 1));
  drawPaintings();
  if (arrow) {
    const tools = $("#paintings").children[to].querySelectorAll(".tools button");
    const [earlier, , later] = tools;
    const wanted = arrow === "earlier" ? earlier : later;
    (wanted.disabled ? (wanted === earlier ? later : earlier) : wanted).focus(); // at an end: the other arrow
  }
}

/** Remove a painting; focus goes to the next one's remove button (or "choose files" when none is left). */
function removePainting(index, keepFocus = false) {
  URL.revokeObjectURL(paintings[index].url);
  paintings.splice(index, 1);
  drawPaintings();
  if (keepFocus) {
    const next = $("#paintings").children[Math.min(index, paintings.length - 1)];
    (next ? next.querySelectorAll(".tools button")[1] : $("#choose-files")).focus();
  }
}

export function clearPaintings() {
  while (paintings.length) removePainting(paintings.length - 1);
}

function drawPaintings() {
  const list = $("#paintings");
  list.replaceChildren();
  paintings.forEach(({ file, url }, i) => {
    const name = file.name;
    const item = el("li", { draggable: true, title: name },
      el("img", { src: url, alt: name }),
      el("div", { className: "name", textContent: name }),
      el("div", { className: "tools" },
        iconButton("←", `Move ${name} earlier`, () => movePainting(i, i - 1, "earlier"), i === 0),
        iconButton("×", `Remove ${name}`, () => removePainting(i, true)),
        iconButton("→", `Move ${name} later`, () => movePainting(i, i + 1, "later"), i === paintings.length - 1)));
    item.dataset.name = name;
    item.addEventListener("dragstart", (e) => {
      e.dataTransfer.setData(DRAG_TYPE, String(i));
      e.dataTransfer.effectAllowed = "move";
      item.classList.add("dragging");
    });
    item.addEventListener("dragend", () => item.classList.remove("dragging"));
    item.addEventListener("dragover", (e) => {
      if (e.dataTransfer.types.includes(DRAG_TYPE)) e.preventDefault();
    });
    item.addEventListener("drop", (e) => {
      const from = e.dataTransfer.getData(DRAG_TYPE);
      if (from === "") return;
      e.preventDefault();
      e.stopPropagation();
      movePainting(Number(from), i);
    });
    list.append(item);
  });
}

function takeFiles(files, onVideo) {
  const list = Array.from(files);
  const video = list.find(isVideo);
  if (video) onVideo(video);
  addFiles(list.filter((f) => !isVideo(f)));
}

/** Images dropped or chosen join the walk; a video goes to `onVideo` (settings from a video). */
export function setUpDropzone(onVideo) {
  const zone = $("#dropzone");
  const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types).includes("Files");
  zone.addEventListener("dragover", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    zone.classList.remove("over");
    e.stopPropagation();
    takeFiles(e.dataTransfer.files, onVideo);
  });
  // a file dropped beside the zone must not make the browser leave the Studio to show it; a video
  // dropped anywhere fills the form that made it
  window.addEventListener("dragover", (e) => hasFiles(e) && e.preventDefault());
  window.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    const video = Array.from(e.dataTransfer.files).find(isVideo);
    if (video) onVideo(video);
  });
  $("#choose-files").addEventListener("click", () => $("#walk-files").click()); // a button: Tab, Enter, Space
  $("#walk-files").addEventListener("change", (e) => {
    takeFiles(e.target.files, onVideo);
    e.target.value = "";
  });
}
