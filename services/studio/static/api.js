/* The job API on this origin, its errors, and the API token (header for fetch, cookie for media). */
import { oneLine } from "./dom.js";

export const APPS = { artwalks: "../artwalks", conclvd: "../conclvd" };
const TOKEN_KEY = "inkwalk_token";
// Characters a cookie value can carry as is (RFC 6265 cookie-octet): the server compares the
// cookie byte for byte, so a token outside this set could only be sent as a header.
export const COOKIE_SAFE = /^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]+$/;

let token = localStorage.getItem(TOKEN_KEY) || "";
let unauthorized = () => {};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Called with a reason whenever the server answers 401 (the page asks for the token). */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

export const hasToken = () => Boolean(token);

export function setToken(value) {
  token = value;
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
  setCookie(value);
}

/** <img> and <video> requests carry the token as the `inkwalk_token` cookie. */
export function setCookie(value = token) {
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = value && COOKIE_SAFE.test(value)
    ? `inkwalk_token=${value}; path=/; SameSite=Strict${secure}`
    : `inkwalk_token=; path=/; SameSite=Strict; Max-Age=0${secure}`;
}

/** The API's one-line `detail` of a refused request (FastAPI's validation lists joined). */
async function detailOf(response) {
  let text = "";
  try { text = await response.text(); } catch (_) { /* no body */ }
  let detail = text;
  try { detail = JSON.parse(text).detail ?? text; } catch (_) { /* not JSON */ }
  if (Array.isArray(detail)) {
    detail = detail.map((d) => [(d.loc || []).filter((x) => x !== "body" && x !== "path").join("."), d.msg]
      .filter(Boolean).join(": ")).join("; ");
  } else if (typeof detail !== "string") {
    detail = JSON.stringify(detail);
  }
  return oneLine(detail) || `${response.status} ${response.statusText}`;
}

export async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (token) headers.set("Authorization", `Bearer ${token}`);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (exc) {
    throw new ApiError(0, `the server did not answer (${exc.message}): is inkwalk serve running?`);
  }
  if (response.status === 401) {
    unauthorized(token ? "The server refused that token: enter it again." : null);
    throw new ApiError(401, await detailOf(response));
  }
  if (!response.ok) throw new ApiError(response.status, await detailOf(response));
  return response;
}

export const getJson = async (path) => (await api(path)).json();

export const jobUrl = (app, id, suffix = "") => `${APPS[app]}/jobs/${id}${suffix}`;
