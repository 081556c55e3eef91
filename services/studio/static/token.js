/* The token prompt: shown when the server wants a token it was not given (or refused). */
import { COOKIE_SAFE, onUnauthorized, setToken } from "./api.js";
import { $, showError } from "./dom.js";

/** Wire the prompt: `stopAll` halts polling while it shows, `signedIn` starts the Studio. */
export function setUpToken({ stopAll, signedIn }) {
  onUnauthorized((why) => {
    stopAll();
    $("#studio").hidden = true;
    $("#tabs").hidden = true;
    $("#token").hidden = false;
    if (why) $("#token-why").textContent = why;
    $("#token-input").focus();
  });
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("#token-input").value.trim();
    if (!value) return;
    setToken(value);
    $("#token-input").value = "";
    if (!COOKIE_SAFE.test(value)) {
      showError("this token has characters a cookie cannot carry (spaces, quotes, commas, semicolons or "
        + "backslashes): videos and images will not load; use a URL-safe token");
    }
    signedIn();
  });
  $("#forget-token").addEventListener("click", () => {
    setToken("");
    location.reload();
  });
}
