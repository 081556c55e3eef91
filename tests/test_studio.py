"""The Studio in a real browser: Chromium (Debian's, /usr/bin/chromium) driven by Playwright.

One deployment per module of the CPU config's three apps (artwalks, conclvd, studio) with tiny
models and an API token, so every test also proves that the page carries the token: fetch
sends it as a header, <img> and <video> as the cookie. The tests run in order and share the
deployment and one signed-in page; the last one opens the Studio in a fresh browser without it.

Set INKWALK_STUDIO_SCREENSHOTS=DIR to keep screenshots of each step (docs/studio.md uses them).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
from pathlib import Path

import pytest
from helpers import free_port

httpx = pytest.importorskip("httpx")
sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.ray, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
TOKEN = "studio-test-token_42"
DONE = ("done", "failed", "cancelled")
STATE: dict = {}
# 2 paintings, m = 1 keyframe, n = 8 frames, hold 0.5 s at 8 fps: (m+1)(n+1) + 1 + 2*round(hold*fps) frames
WALK = {"keyframes": "1", "frames": "8", "hold": "0.5", "width": "128", "height": "128", "upscale": "x2",
        "fps": "8", "seed": "7", "weighting": "linear", "easing": "s-curve", "strength": "1.5"}
WALK_FRAMES = 2 * 9 + 1 + 2 * 4



@pytest.fixture(scope="module")
def studio(ray_session, tiny_models, tmp_path_factory):
    """Base URL of the three apps, deployed from the CPU config with a token and tiny models."""
    from ray import serve

    from services.apps import apps_from_config

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    common = {"store": str(tmp_path_factory.mktemp("results")), "models_dir": str(tiny_models), "api_token": TOKEN}
    built = apps_from_config(ROOT / "services" / "serve_config.cpu.yaml", overrides={
        "artwalks": {**common, "keyframer": "kandinsky", "defaults": {"preset": "offline", "steps": 2},
                     "limits": {"max_keyframes": 2, "max_frames_per_segment": 16}},
        "conclvd": {**common, "limits": {"max_video_frames": 8, "max_steps": 8, "max_size": 128}},
    })
    for name, (app, prefix) in built.items():
        serve.run(app, name=name, route_prefix=prefix)
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (.ci/run does it)")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _new_page(browser, errors: list):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.on("pageerror", lambda exc: errors.append(str(exc)))  # a script error fails the test
    return page


def _sign_in(page, token: str) -> None:
    page.locator("#token-input").fill(token)
    page.get_by_role("button", name="Use token").click()


@pytest.fixture(scope="module")
def page(browser, studio):
    """One signed-in Studio page shared by the tests in order (as one artist would use it)."""
    errors: list = []
    page = _new_page(browser, errors)
    page.goto(f"{studio}/studio/")
    _sign_in(page, TOKEN)
    page.locator("#walk-form").wait_for()
    yield page
    page.context.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def api(studio):
    with httpx.Client(base_url=studio, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        yield client


def _screenshot(page, name: str) -> None:
    """With INKWALK_STUDIO_SCREENSHOTS=DIR, the page as DIR/name.png (256 colours: small enough for docs)."""
    folder = os.environ.get("INKWALK_STUDIO_SCREENSHOTS")
    if folder:
        from PIL import Image

        Path(folder).mkdir(parents=True, exist_ok=True)
        shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
        shot.quantize(256, dither=Image.Dither.NONE).save(Path(folder) / f"{name}.png", optimize=True)


def _paintings(tmp_path: Path, k: int) -> list[Path]:
    from inkwalk.paintings import collection
    from inkwalk.video import save_image

    paths = []
    for i, image in enumerate(collection(k, size=(160, 128), seed=11)):
        paths.append(tmp_path / f"{'abc'[i]}.png")
        save_image(paths[-1], image)
    return paths


def _drop(page, path: Path) -> None:
    """Drag a file from the desktop onto the drop zone (a DragEvent carrying it, as the browser makes)."""
    page.evaluate("""([name, b64]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], name, {type: "image/png"}));
        const zone = document.getElementById("dropzone");
        for (const type of ["dragover", "drop"]) {
            zone.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true}));
        }
    }""", [path.name, base64.b64encode(path.read_bytes()).decode()])


def _order(page) -> list[str]:
    return page.locator("#paintings li").evaluate_all("items => items.map(li => li.dataset.name)")


def _watch_until_done(page, slot: str, timeout_s: float = 240) -> list[tuple[str, int]]:
    """(state, percent) pairs the page showed for its job, polled every 50 ms until the job ended."""
    seen = page.wait_for_function("""(slot) => {
        const job = document.querySelector(slot + ' .job');
        if (!job) return false;
        const state = job.querySelector('.state').textContent;
        const text = job.querySelector('.progress-text').textContent;
        const shown = (window.__shown ||= {});
        const key = state + '|' + text;
        (shown[slot] ||= []).includes(key) || shown[slot].push(key);
        return ['done', 'failed', 'cancelled'].includes(state) && shown[slot];
    }""", arg=slot, polling=50, timeout=timeout_s * 1000).json_value()
    out = []
    for item in seen:
        state, text = item.split("|", 1)
        match = re.search(r"(\d+)%", text)
        out.append((state, int(match.group(1)) if match else -1))
    return out


def _plays(page, slot: str) -> float:
    """The job's <video> loads (through the token cookie), has a duration and plays; its duration."""
    video = f"{slot} video"
    page.wait_for_function("(s) => document.querySelector(s)?.duration > 0", arg=video, timeout=60_000)
    duration = page.evaluate("(s) => document.querySelector(s).duration", video)
    page.evaluate("(s) => { const v = document.querySelector(s); v.muted = true; return v.play(); }", video)
    page.wait_for_function("(s) => document.querySelector(s).currentTime > 0", arg=video, timeout=30_000)
    return duration


def _loaded(page, selector: str) -> None:
    """Some image matching `selector` has loaded (the API answered it: token cookie included)."""
    page.wait_for_function("(s) => [...document.querySelectorAll(s)].some(i => i.naturalWidth > 0)", arg=selector,
                           timeout=30_000)


def test_inkwalk_serve_builds_every_app_of_the_packaged_config_with_its_options(tmp_path):
    import yaml

    from services.apps import apps_from_config
    from services.collection import DEFAULT_CONFIG
    from services.commands.serve import app_overrides

    overrides = app_overrides(yaml.safe_load(DEFAULT_CONFIG.read_text()), str(tmp_path), str(tmp_path))
    built = apps_from_config(DEFAULT_CONFIG, overrides)  # `inkwalk serve --store DIR --models DIR`
    assert {name: prefix for name, (_, prefix) in built.items()} == \
        {"artwalks": "/artwalks", "conclvd": "/conclvd", "studio": "/studio"}
    assert set(overrides) == {"artwalks", "conclvd"}


def test_a_walk_from_two_uploaded_paintings_renders_and_plays(page, api, tmp_path):
    a, b, c = _paintings(tmp_path, 3)
    page.locator("#walk-files").set_input_files([str(a), str(c)])
    _drop(page, b)  # drag and drop from the desktop
    assert _order(page) == ["a.png", "c.png", "b.png"]
    page.get_by_role("button", name="Remove c.png").click()
    page.get_by_role("button", name="Move b.png earlier").click()
    assert _order(page) == ["b.png", "a.png"]
    _loaded(page, "#paintings img")

    # a refused request is one readable line in the page, and nothing is rendered
    form = page.locator("#walk-form")
    form.locator("[name=frames]").fill("500")
    page.get_by_role("button", name="Render", exact=True).click()
    error = page.locator("#error-text")
    error.wait_for()
    assert re.fullmatch(r"Render refused: setting 'frames' = 500: must be an integer in 0\.\.16 \(limit max_frames_per_segment\)", error.inner_text())

    for name, value in WALK.items():
        field = form.locator(f"[name={name}]")
        if field.evaluate("f => f.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    page.get_by_role("button", name="Render", exact=True).click()
    shown = _watch_until_done(page, "#walk-job")
    assert shown[-1] == ("done", 100), shown
    assert any(state in ("queued", "running") and p < 100 for state, p in shown), shown  # it showed the job live
    assert page.locator("#error").is_hidden()
    job = page.locator("#walk-job .job").get_attribute("data-job")
    assert page.url.endswith(f"#artwalks/{job}")

    _loaded(page, "#walk-job img.preview")  # the walk's A, K_1, B as soon as they existed
    assert _plays(page, "#walk-job") > 0
    download = page.locator("#walk-job a.download")
    assert download.get_attribute("href").endswith(f"/artwalks/jobs/{job}/video")
    assert download.get_attribute("download").endswith(".mp4")
    _screenshot(page, "walk")

    record = api.get(f"/artwalks/jobs/{job}").json()
    assert record["paintings"] == ["b.png", "a.png"] and record["frames"] == WALK_FRAMES
    s = record["settings"]
    assert (s["seed"], s["keyframes"], s["frames"], s["size"], s["weighting"], s["strength"]) == \
        (7, 1, 8, [128, 128], "linear", 1.5)
    STATE["walk"] = job
    STATE["paintings"] = [b.read_bytes(), a.read_bytes()]


def test_inkwalk_info_tells_how_the_studio_video_was_made(api, tmp_path, capsys):
    from inkwalk.cli import main

    video = tmp_path / "walk.mp4"
    video.write_bytes(api.get(f"/artwalks/jobs/{STATE['walk']}/video").content)
    assert main(["info", str(video)]) == 0
    out = capsys.readouterr().out
    assert f"{WALK_FRAMES} frames" in out and f"job {STATE['walk']}" in out
    assert "seed: 7" in out and "weighting=linear" in out and "size=128x128" in out
    assert main(["info", "--json", str(video)]) == 0
    metadata = json.loads(capsys.readouterr().out)
    assert metadata["paintings"] == [hashlib.sha256(data).hexdigest() for data in STATE["paintings"]]
    assert metadata["models"]["keyframer"]["backend"] == "kandinsky"


def test_the_gallery_shows_the_job_after_a_reload_and_reruns_it_with_edits(page, api):
    job = STATE["walk"]
    page.reload()  # the token is remembered: no prompt again
    page.locator("#walk-job .job").wait_for()
    assert page.locator("#token").is_hidden()
    page.get_by_role("tab", name="Gallery").click()
    card = page.locator(f"#jobs li[data-job='{job}']")
    card.wait_for()
    assert card.locator(".title").inner_text() == "b.png → a.png"
    assert "seed 7" in card.locator(".summary").inner_text()
    _loaded(page, f"#jobs li[data-job='{job}'] .thumb img")

    card.get_by_role("button", name="Re-run with edits").click()
    page.locator("#walk").wait_for()
    form = page.locator("#walk-form")
    assert form.locator("[name=seed]").input_value() == "7" and form.locator("[name=frames]").input_value() == "8"
    page.wait_for_function("() => document.querySelectorAll('#paintings li').length === 2")
    assert _order(page) == ["b.png", "a.png"]  # fetched back from the job
    _loaded(page, "#paintings img")
    form.locator("[name=seed]").fill("8")
    form.locator("[name=frames]").fill("4")
    page.get_by_role("button", name="Render", exact=True).click()
    page.wait_for_function(f"() => location.hash.startsWith('#artwalks/') && !location.hash.endsWith('{job}')")
    rerun = page.evaluate("location.hash.split('/')[1]")
    assert _watch_until_done(page, "#walk-job")[-1] == ("done", 100)
    record = api.get(f"/artwalks/jobs/{rerun}").json()
    s = record["settings"]
    assert (s["seed"], s["frames"], s["weighting"]) == (8, 4, "linear")  # edited, and kept
    assert [api.get(f"/artwalks/jobs/{rerun}/paintings/{i}").content for i in range(2)] == STATE["paintings"]

    # delete removes the job and its results
    page.get_by_role("tab", name="Gallery").click()
    card = page.locator(f"#jobs li[data-job='{rerun}']")
    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Delete").click()
    card.wait_for(state="detached")
    assert api.get(f"/artwalks/jobs/{rerun}").status_code == 404
    assert page.locator(f"#jobs li[data-job='{job}']").is_visible()


def test_a_text_to_video_job_with_tiny_models(page, api):
    page.get_by_role("tab", name="Text to video").click()
    form = page.locator("#text-form")
    form.locator("[name=prompt]").fill("misty mountains over a river, ink wash")
    form.locator("[name=negative_prompt]").fill("people, text")
    for name, value in {"frames": "3", "steps": "2", "guidance": "7.5", "size": "64", "seed": "5"}.items():
        form.locator(f"[name={name}]").fill(value)
    page.get_by_role("button", name="Generate").click()
    shown = _watch_until_done(page, "#text-job")
    assert shown[-1] == ("done", 100), shown
    assert any(state in ("queued", "running") and p < 100 for state, p in shown), shown
    _loaded(page, "#text-job img.preview")  # the generated frames
    assert _plays(page, "#text-job") > 0
    _screenshot(page, "text-to-video")
    job = page.locator("#text-job .job").get_attribute("data-job")
    record = api.get(f"/conclvd/jobs/{job}").json()
    assert record["settings"] == {"prompt": "misty mountains over a river, ink wash", "negative_prompt": "people, text",
                                  "frames": 3, "window": None, "overlap": None, "loop": False, "prompts": None,
                                  "prompt_interpolation": "linear", "steps": 2, "guidance": 7.5, "size": [64, 64],
                                  "seed": 5}
    assert record["frames"] == 2 * 3 - 1
    page.get_by_role("tab", name="Gallery").click()
    card = page.locator(f"#jobs li[data-job='{job}']")
    card.wait_for()
    assert card.locator(".title").inner_text() == "“misty mountains over a river, ink wash”"
    assert page.locator("#jobs li").first.get_attribute("data-job") == job  # newest first, across both apps
    page.wait_for_function("() => [...document.querySelectorAll('#jobs .thumb img')].every(i => i.naturalWidth > 0)")
    _screenshot(page, "gallery")
    STATE["text"] = job


def test_a_page_on_another_port_cannot_use_the_studio_cookie_and_docs_stay_on_this_origin(page, api, studio,
                                                                                             tmp_path):
    """Issue 24: an auto-submitted form and a no-cors fetch from another port of the same host (same
    site, so the SameSite=Strict cookie goes along) create no job; /docs loads only its own files."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    target = f"{studio}/conclvd/jobs"
    pngs = [base64.b64encode(p.read_bytes()).decode() for p in _paintings(tmp_path, 2)]
    # no-cors may send multipart (a CORS-safelisted type): two paintings as Blobs, a walk job
    upload = ("const form = new FormData();"
              + "".join(f'form.append("paintings", new Blob([Uint8Array.from(atob("{b}"), c => c.charCodeAt(0))],'
                        f' {{type: "image/png"}}), "p{i}.png");' for i, b in enumerate(pngs))
              + f'form.append("settings", \'{json.dumps({"keyframes": 0, "frames": 2, "size": [64, 64]})}\');'
              + f'fetch("{studio}/artwalks/jobs", {{method: "POST", mode: "no-cors", credentials: "include", '
              + 'body: form})')
    attack = (f'<form id="f" method="POST" action="{target}" enctype="text/plain">'
              '<input name=\'{"prompt": "pwned", "x": "\' value=\'"}\'></form>'
              f'<script>{upload}.finally(() => fetch("{target}", {{method: "POST", mode: "no-cors", '
              'credentials: "include", body: JSON.stringify({prompt: "pwned"})}))'
              '.finally(() => document.getElementById("f").submit());</script>').encode()

    class Attacker(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(attack)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    before = [api.get(f"/{app}/jobs").json()["total"] for app in ("artwalks", "conclvd")]
    evil = page.context.new_page()
    try:
        with evil.expect_navigation(url=target):
            evil.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        assert [api.get(f"/{app}/jobs").json()["total"] for app in ("artwalks", "conclvd")] == before
        assert "cross-site request refused" in evil.content()
        elsewhere: list = []
        evil.on("request", lambda r: None if r.url.startswith(studio) else elsewhere.append(r.url))
        evil.goto(f"{studio}/artwalks/docs")  # signed in by the Studio's cookie
        evil.locator(".opblock").first.wait_for()
        assert evil.locator(".opblock").count() >= 5 and elsewhere == []
    finally:
        evil.close()
        server.shutdown()


def test_without_the_token_the_studio_refuses_to_work(browser, studio):
    job = STATE["walk"]
    for path in ["/artwalks/jobs", f"/artwalks/jobs/{job}/video", "/conclvd/jobs"]:
        r = httpx.get(f"{studio}{path}", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and "\n" not in r.json()["detail"], (path, r.text)
    page_files = httpx.get(f"{studio}/studio", follow_redirects=True)  # the page itself holds no data
    assert page_files.status_code == 200 and str(page_files.url).endswith("/studio/")
    assert "<title>inkwalk Studio</title>" in page_files.text

    errors: list = []
    page = _new_page(browser, errors)
    try:
        page.goto(f"{studio}/studio/#artwalks/{job}")  # a link to a job, opened by someone without the token
        page.locator("#token-form").wait_for()
        for hidden in ["#studio", "#tabs", "#walk-form"]:
            assert page.locator(hidden).is_hidden()
        assert "b.png" not in page.content()
        _screenshot(page, "token")
        _sign_in(page, "not-the-token")
        page.wait_for_function("() => document.querySelector('#token-why').textContent.includes('refused')")
        assert page.locator("#studio").is_hidden()
        _sign_in(page, TOKEN)
        title = page.locator("#walk-job .job-title")
        title.wait_for()
        page.wait_for_function("() => document.querySelector('#walk-job .job-title').textContent.includes('→')")
        assert title.inner_text() == "b.png → a.png"
        _loaded(page, "#walk-job img.preview")
        assert _plays(page, "#walk-job") > 0
    finally:
        page.context.close()
    assert not errors, errors
