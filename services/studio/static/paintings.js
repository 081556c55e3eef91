/* The walk's paintings, in walk order: add (choose or drop), reorder (drag or arrows), remove. */
import { $, el, iconButton, showError } from "./dom.js";

const DRAG_TYPE = "application/x-inkwalk-painting";
const IMAGE_NAME = /\.(png|jpe?g|webp|bmp|tiff?)$/i;

export const paintings = []; // {file, url}, in walk order

export function addFiles(files) {
  for (const file of files) {
    if (!file.type.startsWith("image/") && !IMAGE_NAME.test(file.name)) {
      showError(`${file.name} is not an image (PNG, JPEG, WebP, BMP or TIFF)`);
      continue;
    }
    paintings.push({ file, url: URL.createObjectURL(file) });
  }
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

export function setUpDropzone() {
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
    addFiles(e.dataTransfer.files);
  });
  // a file dropped beside the zone must not make the browser leave the Studio to show it
  window.addEventListener("dragover", (e) => hasFiles(e) && e.preventDefault());
  window.addEventListener("drop", (e) => hasFiles(e) && e.preventDefault());
  $("#choose-files").addEventListener("click", () => $("#walk-files").click()); // a button: Tab, Enter, Space
  $("#walk-files").addEventListener("change", (e) => {
    addFiles(e.target.files);
    e.target.value = "";
  });
}
