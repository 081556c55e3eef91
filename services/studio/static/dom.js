/* Small DOM helpers and the page's one error line. User text only ever goes into textContent. */

export const $ = (selector, root = document) => root.querySelector(selector);
export const oneLine = (text) => String(text).replace(/\s+/g, " ").trim();
export const percent = (progress) => `${Math.round(100 * (progress || 0))}%`;
export const when = (seconds) => new Date(seconds * 1000).toLocaleString();

export function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

export function iconButton(text, label, onClick, disabled = false) {
  const button = el("button", { type: "button", textContent: text, title: label, disabled });
  button.setAttribute("aria-label", label);
  button.addEventListener("click", onClick);
  return button;
}

/** One readable line at the top of the page; a refused token is the token prompt's business. */
export function showError(exc, what) {
  if (exc?.status === 401) return;
  $("#error-text").textContent = oneLine((what ? `${what}: ` : "") + (exc?.message || exc));
  $("#error").hidden = false;
}

export function clearError() {
  $("#error").hidden = true;
}

/** Show a job in its tab (the router follows the hash). */
export function openJob(app, id) {
  location.hash = `${app}/${id}`;
}
