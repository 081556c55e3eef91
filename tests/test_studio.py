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
from helpers import served_apps

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
    common = {"store": str(tmp_path_factory.mktemp("results")), "models_dir": str(tiny_models), "api_token": TOKEN}
    with served_apps(ROOT / "services" / "serve_config.cpu.yaml", overrides={
        "artwalks": {**common, "keyframer": "kandinsky", "defaults": {"preset": "offline", "steps": 2, "frames": 12},
                     "limits": {"max_keyframes": 2, "max_frames_per_segment": 16}},
        "conclvd": {**common, "limits": {"max_video_frames": 8, "max_steps": 32, "max_size": 128},
                    "deployment_options": {"ConCLVDGenerator": {"num_replicas": 2}}},  # a scroll's windows on both
    }) as port:
        yield f"http://127.0.0.1:{port}"


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
    pending: dict = {}  # requests sent and not yet answered: what a stuck step waits on
    page.on("request", lambda r: pending.__setitem__(id(r), r))
    for event in ("requestfinished", "requestfailed"):
        page.on(event, lambda r: pending.pop(id(r), None))
    page.pending = pending
    return page


def _submitted(page, app: str, previous: str | None = None) -> str:
    """The new job's id once the page opened it after a Render; if it never does, why (the error line,
    the button, the requests still waiting) rather than a bare timeout."""
    try:
        page.wait_for_function("([app, previous]) => location.hash.startsWith(`#${app}/`) && "
                               "location.hash.split('/')[1] !== previous", arg=[app, previous])
    except sync_api.TimeoutError:
        error = page.locator("#error-text").inner_text() if page.locator("#error").is_visible() else None
        buttons = page.locator("button[type=submit]").all_inner_texts()
        waiting = [f"{r.method} {r.url}" for r in page.pending.values()]
        pytest.fail(f"no {app} job opened after Render: page {page.url}, error line {error!r}, submit buttons "
                    f"{buttons}, requests waiting {waiting}")
    return page.evaluate("location.hash.split('/')[1]")


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
        page.evaluate("scrollTo(0, 0)")  # from the top: the tabs belong in the picture
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


def _drop(page, path: Path, mime: str = "image/png", target: str = "dropzone") -> None:
    """Drag a file from the desktop onto the drop zone (a DragEvent carrying it, as the browser makes)."""
    page.evaluate("""([name, b64, mime, target]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], name, {type: mime}));
        const zone = document.getElementById(target);
        for (const type of ["dragover", "drop"]) {
            zone.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true}));
        }
    }""", [path.name, base64.b64encode(path.read_bytes()).decode(), mime, target])


def _order(page, count: int | None = None) -> list[str]:
    """The paintings' names in walk order (once there are `count` of them: files are read before they show)."""
    if count is not None:
        page.wait_for_function("(n) => document.querySelectorAll('#paintings li').length === n", arg=count)
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
        (window.__texts ||= []).includes(text) || window.__texts.push(text);
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


def _focused(page) -> str:
    """What the keyboard is on: the focused element's aria-label, else its text, else its tag."""
    return page.evaluate("() => { const e = document.activeElement; "
                         "return e.getAttribute('aria-label') || e.textContent.trim() || e.tagName; }")


def test_a_keyboard_user_adds_orders_and_removes_paintings(page, tmp_path):
    a, b, c = _paintings(tmp_path, 3)
    page.get_by_role("tab", name="Walk").focus()
    for _ in range(10):  # Tab from the tabs reaches "choose files"
        page.keyboard.press("Tab")
        if _focused(page) == "choose files":
            break
    assert _focused(page) == "choose files"
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), outline  # the focus is visible
    # Playwright intercepts file choosers only once a listener exists: set it up before the first key
    page.on("filechooser", lambda _: None)
    page.evaluate("0")
    for key in ("Enter", "Space"):  # a button: Enter and Space both open the file chooser
        with page.expect_file_chooser() as chooser:
            page.keyboard.press(key)
        chooser.value.set_files([str(a), str(b)] if key == "Enter" else [str(c)])
        _order(page, 2 if key == "Enter" else 3)
    assert _order(page) == ["a.png", "b.png", "c.png"]

    page.get_by_role("button", name="Move a.png later").focus()
    page.keyboard.press("Enter")
    assert _order(page) == ["b.png", "a.png", "c.png"]
    assert _focused(page) == "Move a.png later"  # the keyboard stays on the moved painting
    page.keyboard.press("Enter")
    assert _order(page) == ["b.png", "c.png", "a.png"]
    assert _focused(page) == "Move a.png earlier"  # last now: its other arrow
    page.keyboard.press("Space")
    assert _order(page) == ["b.png", "a.png", "c.png"] and _focused(page) == "Move a.png earlier"

    page.get_by_role("button", name="Remove a.png").focus()
    page.keyboard.press("Enter")
    assert _order(page) == ["b.png", "c.png"] and _focused(page) == "Remove c.png"
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    assert _order(page) == [] and _focused(page) == "choose files"


def test_the_forms_show_the_servers_real_defaults_and_backends(page, api):
    from inkwalk.walk_settings import PRESETS

    form = page.locator("#walk-form")
    frames = form.locator("[name=frames]")
    page.wait_for_function("() => document.querySelector('#walk-form [name=frames]').placeholder !== 'default'")
    # the app's defaults (preset offline, steps 2, frames 12) over the preset's own values, as a job would get them
    assert frames.get_attribute("placeholder") == "12"
    assert form.locator("[name=preset] option[value='']").inner_text() == "offline (default)"
    assert form.locator("[name=width]").get_attribute("placeholder") == "720"
    assert form.locator("[name=weighting] option[value='']").inner_text() == "logit (default)"
    assert frames.get_attribute("max") == "16"  # the app's limit max_frames_per_segment
    # the app's defaults were validated against its own limits when it was built: no warning to show
    assert not page.locator("#walk-defaults-note").is_visible()
    # backends: the one this app runs is shown, not choosable; fit offers both
    interpolator = form.locator("[name=interpolator]")
    assert interpolator.is_disabled() and interpolator.inner_text().strip() == "flow-warp (default)"
    assert form.locator("[name=upscaler]").inner_text().strip() == "lanczos (default)"
    assert form.locator("[name=fit] option").all_inner_texts() == ["crop (default)", "crop", "letterbox"]
    form.locator("[name=preset]").select_option("paper")  # another preset, its own defaults
    assert form.locator("[name=upscale]").get_attribute("placeholder") == PRESETS["paper"]["upscale"]
    form.locator("[name=preset]").select_option("")
    text = page.locator("#text-form")
    assert text.locator("[name=steps]").get_attribute("placeholder") == "4"  # serve_config.cpu.yaml's default
    assert text.locator("[name=frames]").get_attribute("max") == "8"
    assert api.get("/conclvd/settings").json()["settings"]["steps"] == 4


def test_a_walk_from_two_uploaded_paintings_renders_and_plays(page, api, tmp_path):
    a, b, c = _paintings(tmp_path, 3)
    page.locator("#walk-files").set_input_files([str(a), str(c)])
    _order(page, 2)
    _drop(page, b)  # drag and drop from the desktop
    assert _order(page, 3) == ["a.png", "c.png", "b.png"]
    # a text file named .png is refused by the page, by name, and the walk is unchanged
    notes = tmp_path / "notes.png"
    notes.write_text("not a painting")
    page.locator("#walk-files").set_input_files([str(notes)])
    page.locator("#error-text").wait_for()
    assert page.locator("#error-text").inner_text().startswith("notes.png: not an image")
    assert _order(page) == ["a.png", "c.png", "b.png"]
    page.get_by_role("button", name="Dismiss").click()
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
    _submitted(page, "artwalks")
    shown = _watch_until_done(page, "#walk-job")
    assert shown[-1] == ("done", 100), shown
    assert any(state in ("queued", "running") and p < 100 for state, p in shown), shown  # it showed the job live
    assert page.locator("#error").is_hidden()
    job = page.locator("#walk-job .job").get_attribute("data-job")
    assert page.url.endswith(f"#artwalks/{job}")

    assert any(f"frame {WALK_FRAMES} of {WALK_FRAMES}" in t for t in page.evaluate("window.__texts"))
    _loaded(page, "#walk-job img.preview")  # the walk's A, K_1, B as soon as they existed
    assert _plays(page, "#walk-job") > 0
    download = page.locator("#walk-job a.download")
    assert download.get_attribute("href").endswith(f"/artwalks/jobs/{job}/video")
    assert download.get_attribute("download") == "walk-b_a-seed7.mp4"  # what made it, not the job id
    assert "walk-b_a-seed7.mp4" in api.get(f"/artwalks/jobs/{job}/video").headers["content-disposition"]
    _screenshot(page, "walk")

    record = api.get(f"/artwalks/jobs/{job}").json()
    assert record["paintings"] == ["b.png", "a.png"] and record["frames"] == WALK_FRAMES
    s = record["settings"]
    assert (s["seed"], s["keyframes"], s["frames"], s["size"], s["weighting"], s["strength"]) == \
        (7, 1, 8, [128, 128], "linear", 1.5)
    STATE["walk"] = job
    STATE["paintings"] = [b.read_bytes(), a.read_bytes()]


def test_the_newest_in_between_frame_is_a_frame_of_the_walk(api, tmp_path):
    import numpy as np
    from PIL import Image

    from inkwalk.video import read_frames

    job = STATE["walk"]
    assert api.get(f"/artwalks/jobs/{job}/frames").json() == {"done": WALK_FRAMES, "total": WALK_FRAMES}
    latest = api.get(f"/artwalks/jobs/{job}/frames/latest")
    assert latest.status_code == 200 and latest.headers["content-type"] == "image/png"
    video = tmp_path / "walk.mp4"
    video.write_bytes(api.get(f"/artwalks/jobs/{job}/video").content)
    held = 1 + 4  # the last piece: the last painting, held round(hold * fps) more frames
    expected = read_frames(video, [WALK_FRAMES - held])[0]  # decoded independently, from the joined video
    frame = np.asarray(Image.open(io.BytesIO(latest.content)).convert("RGB"))
    assert frame.shape == expected.shape == (256, 256, 3)
    assert np.abs(frame.astype(int) - expected.astype(int)).max() <= 2


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


def test_paintings_added_while_a_reload_restores_the_last_walks_win(page, tmp_path):
    """A reload fetches the last walk's paintings back; files the user adds meanwhile must not be
    replaced when that fetch lands (nor a re-run's paintings: the newest load wins)."""
    held: list = []
    pattern = "**/artwalks/jobs/*/paintings/*"
    page.route(pattern, lambda route: held.append(route))  # the restore's painting downloads wait until released
    page.reload()
    for _ in range(600):
        if len(held) == 2:
            break
        page.wait_for_timeout(50)
    assert len(held) == 2, held
    c = _paintings(tmp_path, 3)[2]
    page.locator("#walk-files").set_input_files([str(c)])
    assert _order(page, 1) == ["c.png"]
    for route in held:
        route.continue_()
    page.unroute(pattern)
    page.wait_for_function("() => performance.getEntriesByType('resource')"
                           ".filter(e => e.name.includes('/paintings/') && e.responseEnd > 0).length >= 2")
    page.wait_for_timeout(1000)  # the restore's blobs read: it would have replaced the walk by now
    assert _order(page) == ["c.png"]


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
    assert _order(page, 2) == ["b.png", "a.png"]  # fetched back from the job
    _loaded(page, "#paintings img")
    form.locator("[name=seed]").fill("8")
    form.locator("[name=frames]").fill("4")
    page.set_viewport_size({"width": 390, "height": 800})  # a phone: the job shows below the form
    page.get_by_role("button", name="Render", exact=True).click()
    rerun = _submitted(page, "artwalks", job)
    page.locator(f"#walk-job .job[data-job='{rerun}']").wait_for()
    assert page.evaluate("() => { const r = document.querySelector('#walk-job').getBoundingClientRect(); "
                         "return r.top >= 0 && r.top < innerHeight; }")  # scrolled to the job
    page.set_viewport_size({"width": 1280, "height": 900})

    page.reload()  # mid-render: the form, the paintings and the job all come back
    page.locator(f"#walk-job .job[data-job='{rerun}']").wait_for()
    assert form.locator("[name=seed]").input_value() == "8" and form.locator("[name=frames]").input_value() == "4"
    assert form.locator("[name=weighting]").input_value() == "linear"
    assert _order(page, 2) == ["b.png", "a.png"]
    assert _watch_until_done(page, "#walk-job")[-1] == ("done", 100)
    record = api.get(f"/artwalks/jobs/{rerun}").json()
    s = record["settings"]
    assert (s["seed"], s["frames"], s["weighting"]) == (8, 4, "linear")  # edited, and kept
    assert [api.get(f"/artwalks/jobs/{rerun}/paintings/{i}").content for i in range(2)] == STATE["paintings"]

    # the re-run's card says what changed; each job shows once
    page.get_by_role("tab", name="Gallery").click()
    card = page.locator(f"#jobs li[data-job='{rerun}']")
    card.locator(".differs").wait_for()
    differs = card.locator(".differs").inner_text()
    assert "frames 8 → 4" in differs and "seed 7 → 8" in differs, differs
    ids = page.locator("#jobs li").evaluate_all("cards => cards.map(c => c.dataset.job)")
    assert len(ids) == len(set(ids)) == 2

    # delete removes the job and its results
    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Delete").click()
    card.wait_for(state="detached")
    assert api.get(f"/artwalks/jobs/{rerun}").status_code == 404
    assert page.locator(f"#jobs li[data-job='{job}']").is_visible()


def test_a_batch_is_queued_reordered_and_compared(page, api):
    page.get_by_role("tab", name="Walk").click()
    assert _order(page, 2) == ["b.png", "a.png"]
    form = page.locator("#walk-form")
    form.locator("[name=seed]").fill("20")
    form.locator("[name=frames]").fill("2")
    batch = form.locator(".batch")
    batch.locator("summary").click()
    batch.locator(".vary").select_option("sweep")
    batch.locator(".runs").fill("3")
    batch.get_by_role("button", name="Queue the batch").click()
    page.wait_for_function("() => location.hash === '#queue'")
    # one is sent at once, two wait in the page: the last moves first, by keyboard
    page.get_by_role("button", name="Move seed 22 earlier").focus()
    page.keyboard.press("Enter")
    page.wait_for_function("() => [...document.querySelectorAll('#queue-waiting .what + .hint')]"
                           ".map(e => e.textContent).join() === 'seed 22,seed 21'")
    assert _focused(page) == "Move seed 22 later"  # first now: the keyboard stays on it
    leaving = "() => { const e = new Event('beforeunload', {cancelable: true}); dispatchEvent(e); return e.defaultPrevented; }"
    assert page.evaluate(leaving)  # runs wait in this page only: leaving it asks first
    page.wait_for_function("() => [...document.querySelectorAll('#batches video')].length === 3 && "
                           "[...document.querySelectorAll('#batches video')].every(v => v.duration > 0)",
                           timeout=240_000)
    assert page.locator("#batches figcaption").all_inner_texts() == ["seed 20", "seed 21", "seed 22"]
    assert not page.evaluate(leaving)  # all sent: nothing to lose
    _screenshot(page, "queue")
    jobs = [j for j in api.get("/artwalks/jobs?limit=10").json()["jobs"] if j["settings"]["frames"] == 2]
    assert [j["settings"]["seed"] for j in sorted(jobs, key=lambda j: j["created_at"])] == [20, 22, 21]
    assert all(j["state"] == "done" and j["paintings"] == ["b.png", "a.png"] for j in jobs)
    for j in jobs:
        api.delete(f"/artwalks/jobs/{j['job_id']}")


def test_a_text_to_video_job_with_tiny_models(page, api):
    page.get_by_role("tab", name="Text to video").click()
    form = page.locator("#text-form")
    form.locator("[name=prompt]").fill("misty mountains over a river, ink wash")
    form.locator("[name=negative_prompt]").fill("people, text")
    for name, value in {"frames": "3", "steps": "2", "guidance": "7.5", "size": "64", "seed": "5"}.items():
        form.locator(f"[name={name}]").fill(value)
    page.get_by_role("button", name="Generate").click()
    _submitted(page, "conclvd")
    shown = _watch_until_done(page, "#text-job")
    assert shown[-1] == ("done", 100), shown
    assert any(state in ("queued", "running") and p < 100 for state, p in shown), shown
    _loaded(page, "#text-job img.preview")  # the generated frames
    assert _plays(page, "#text-job") > 0
    job = page.locator("#text-job .job").get_attribute("data-job")
    record = api.get(f"/conclvd/jobs/{job}").json()
    assert record["settings"] == {"prompt": "misty mountains over a river, ink wash", "negative_prompt": "people, text",
                                  "frames": 3, "window": None, "overlap": None, "loop": False, "prompts": None,
                                  "prompt_interpolation": "linear", "weighting": "pyramid", "noise": "shuffle_context",
                                  "windowing": "model", "steps": 2, "guidance": 7.5, "size": [64, 64], "seed": 5}
    assert record["frames"] == 2 * 3 - 1
    page.get_by_role("tab", name="Gallery").click()
    card = page.locator(f"#jobs li[data-job='{job}']")
    card.wait_for()
    assert card.locator(".title").inner_text() == "“misty mountains over a river, ink wash”"
    assert page.locator("#jobs li").first.get_attribute("data-job") == job  # newest first, across both apps
    page.wait_for_function("() => [...document.querySelectorAll('#jobs .thumb img')].every(i => i.naturalWidth > 0)")
    _screenshot(page, "gallery")
    STATE["text"] = job


# a scroll: 8 latent frames in looping windows of 4 overlapping by 1 (3 windows a step), wide frames; enough
# steps that the page sees the windows count move and the latent preview change while it samples
SCROLL = {"frames": "8", "window": "4", "overlap": "1", "steps": "24", "guidance": "7", "size": "64x32", "seed": "3"}


def _schedule_rows(page, rows: list[tuple[str, str]]) -> None:
    """The prompt-schedule editor's later rows (frame, prompt), typed in this order."""
    while page.locator("#prompt-rows li.later").count():
        page.locator("#prompt-rows li.later").first.get_by_role("button", name="Remove this prompt").click()
    for frame, prompt in rows:
        page.get_by_role("button", name="Add a prompt at a later frame").click()
        page.keyboard.type(frame)  # the new row's frame has the focus
        page.locator("#prompt-rows li.later").last.locator("textarea").fill(prompt)


def _refusal(page) -> str:
    """The page's one error line after Generate, dismissed."""
    page.get_by_role("button", name="Generate").click()
    page.locator("#error").wait_for(state="visible")
    text = page.locator("#error-text").inner_text()
    page.get_by_role("button", name="Dismiss").click()
    return text


def test_the_prompt_schedule_editor_shows_the_servers_refusal_in_one_line(page, api):
    page.get_by_role("tab", name="Text to video").click()
    form = page.locator("#text-form")
    for name, value in SCROLL.items():
        form.locator(f"[name={name}]").fill(value)
    before = api.get("/conclvd/jobs").json()["total"]
    cases = [("spring mountains", [("12", "autumn river")], "frame 12 is out of range: the video has 8 frames"),
             ("spring mountains", [("6", "autumn river"), ("3", "winter")], "frame 3 comes after frame 6"),
             ("spring mountains", [("5", "")], "frame 5 needs a non-empty prompt"),
             ("", [], "prompt is empty")]
    for prompt, rows, reason in cases:
        form.locator("[name=prompt]").fill(prompt)
        _schedule_rows(page, rows)
        shown = _refusal(page)
        # the server's own 422 line, as the page sent it (rows in the order typed, not sorted)
        settings = {**{k: int(v) if v.isdigit() else float(v) if k == "guidance" else v for k, v in SCROLL.items()},
                    **({"prompts": {"0": prompt, **dict(rows)}} if rows else {})}
        answer = api.post("/conclvd/jobs", json={"prompt": prompt, "settings": settings})
        assert answer.status_code == 422 and reason in answer.json()["detail"], answer.text
        assert shown == f"Generate refused: {answer.json()['detail']}"
    assert api.get("/conclvd/jobs").json()["total"] == before  # nothing was queued


def test_a_scroll_renders_in_the_text_to_video_tab(page, api, tmp_path, capsys):
    """The real scroll server: prompt schedule, window, overlap, loop, wide size and the advanced settings go
    out; the windows count moves with the replicas named, the latent preview changes while it samples, and
    the video it offers records how it was made."""
    from inkwalk.cli import main

    page.get_by_role("tab", name="Text to video").click()
    form = page.locator("#text-form")
    form.locator("[name=prompt]").fill("spring mountains")
    form.locator("[name=negative_prompt]").fill("")
    _schedule_rows(page, [("5", "autumn river")])
    for name, value in SCROLL.items():
        form.locator(f"[name={name}]").fill(value)
    form.locator("[name=loop]").check()
    form.locator("summary", has_text="Advanced").click()
    form.locator("[name=weighting]").select_option("flat")
    form.locator("[name=noise]").select_option("random")
    page.evaluate("""() => {
        window.__texts = []; window.__shown = {}; window.__previews = [];
        document.addEventListener("load", (event) => {  // every latent preview the page showed, by its pixels
            const img = event.target;
            if (!(img instanceof HTMLImageElement) || !img.matches("#text-job .latest")) return;
            const canvas = Object.assign(document.createElement("canvas"), {width: img.naturalWidth,
                                                                            height: img.naturalHeight});
            canvas.getContext("2d").drawImage(img, 0, 0);
            const pixels = canvas.toDataURL();
            if (!window.__previews.includes(pixels)) window.__previews.push(pixels);
        }, true);
    }""")
    shown_before = page.locator("#text-job .job").get_attribute("data-job") if page.locator("#text-job .job").count() \
        else None
    page.get_by_role("button", name="Generate").click()
    _submitted(page, "conclvd", shown_before)
    page.wait_for_function("(old) => document.querySelector('#text-job .job')?.dataset.job !== old", arg=shown_before)
    shown = _watch_until_done(page, "#text-job")
    assert shown[-1] == ("done", 100), shown
    job = page.locator("#text-job .job").get_attribute("data-job")
    record = api.get(f"/conclvd/jobs/{job}").json()
    assert record["settings"] == {"prompt": "spring mountains", "negative_prompt": "", "frames": 8, "window": 4,
                                  "overlap": 1, "loop": True, "prompts": {"0": "spring mountains", "5": "autumn river"},
                                  "prompt_interpolation": "linear", "weighting": "flat", "noise": "random",
                                  "windowing": "model", "steps": 24, "guidance": 7.0, "size": [64, 32], "seed": 3}
    windows = record["windows"]
    assert windows["done"] == windows["total"] == 3 * 24 and len(windows["replicas"]) == 2, windows
    assert record["frames"] == 2 * 8  # a loop: SOFP also fills the last -> first pair

    texts = page.evaluate("window.__texts")
    counts = [tuple(map(int, m.groups())) for t in texts if (m := re.search(r"windows (\d+) of (\d+)", t))]
    assert len({done for done, total in counts if done < total}) >= 2, texts  # it moved while sampling
    assert any(all(r in t for r in windows["replicas"]) and "on replicas" in t for t in texts), texts
    assert len(page.evaluate("window.__previews")) >= 2  # the latent preview changed as steps finished
    bar, card = (page.locator(f"#text-job {s}").bounding_box()["width"] for s in ("progress", ".job"))
    assert bar > card / 3  # the long counter line wraps under the bar, never squeezes it
    assert _plays(page, "#text-job") > 0

    download = page.locator("#text-job .download")
    assert download.is_visible() and download.get_attribute("download") == "landscape-spring-mountains-seed3.mp4"
    video = tmp_path / "scroll.mp4"
    video.write_bytes(api.get(download.evaluate("(a) => a.href")).content)
    assert main(["info", "--json", str(video)]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["prompt"] == "spring mountains" and made["job_id"] == job
    assert {k: made["settings"][k] for k in ("window", "overlap", "loop", "prompts", "seed", "weighting", "noise")} \
        == {"window": 4, "overlap": 1, "loop": True, "prompts": {"0": "spring mountains", "5": "autumn river"},
            "seed": 3, "weighting": "flat", "noise": "random"}
    assert main(["info", str(video)]) == 0
    out = capsys.readouterr().out
    assert "16 frames" in out and "seed: 3" in out and "64×32" in out
    assert all(f in out for f in ("window=4", "overlap=1", "loop=True", "weighting=flat", "noise=random")), out
    _screenshot(page, "scroll")

    form.evaluate("f => f.reset()")  # an empty form, then the scroll's settings back in it from its card
    _schedule_rows(page, [])
    page.get_by_role("tab", name="Gallery").click()
    card = page.locator(f"#jobs li[data-job='{job}']")
    assert card.locator(".summary").inner_text() == ("8 frames · windows of 4, overlap 1 · loop · 2 prompts · "
                                                     "24 steps · guidance 7 · 64×32 px · seed 3")
    card.get_by_role("button", name="Re-run with edits").click()
    page.wait_for_function("() => location.hash === '#text'")
    assert [form.locator(f"[name={n}]").input_value() for n in ("window", "overlap", "size", "weighting", "noise")] \
        == ["4", "1", "64x32", "flat", "random"] and form.locator("[name=loop]").is_checked()
    rows = page.locator("#prompt-rows li.later")
    assert rows.count() == 1 and (rows.locator(".at input").input_value(), rows.locator("textarea").input_value()) \
        == ("5", "autumn river")


def test_cancel_says_cancelled_and_the_bar_never_jumps_back(page, api, tmp_path):
    paths = _paintings(tmp_path, 3)
    files = [("paintings", (p.name, p.read_bytes(), "image/png")) for p in paths]
    settings = {"keyframes": 2, "frames": 16, "size": [256, 256], "upscale": "x4", "fps": 8, "hold": 2}
    job = api.post("/artwalks/jobs", files=files, data={"settings": json.dumps(settings)}).json()["job_id"]
    page.goto(page.url.split("#")[0] + f"#artwalks/{job}")
    view = page.locator(f"#walk-job .job[data-job='{job}']")
    view.wait_for()
    page.wait_for_function("() => document.querySelector('#walk-job progress').value > 0")
    page.evaluate("window.__shown = {}")  # what this job's view shows from now on
    view.get_by_role("button", name="Cancel").click()
    shown = _watch_until_done(page, "#walk-job")
    assert shown[-1][0] == "cancelled", shown
    percents = [p for _, p in shown if p >= 0]
    assert percents == sorted(percents), shown  # the bar only moves forward
    assert view.locator(".job-error").inner_text() == "cancelled"
    record = api.get(f"/artwalks/jobs/{job}").json()
    assert record["state"] == "cancelled" and "DELETE" not in (record["error"] or "")


def test_a_dropped_video_fills_the_form_that_made_it(page, api, tmp_path):
    from inkwalk.provenance import read_metadata

    walk, text = tmp_path / "my walk.mp4", tmp_path / "clip.mp4"
    walk.write_bytes(api.get(f"/artwalks/jobs/{STATE['walk']}/video").content)
    text.write_bytes(api.get(f"/conclvd/jobs/{STATE['text']}/video").content)
    # the page's reading of the mp4 tag = PyAV's (ffmpeg's mp4 demuxer)
    parsed = page.evaluate("""async (b64) => {
        const { videoMetadata } = await import("./from-video.js");
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        return videoMetadata(new File([bytes], "w.mp4", {type: "video/mp4"}));
    }""", base64.b64encode(walk.read_bytes()).decode())
    assert parsed == json.loads(json.dumps(read_metadata(walk)))

    page.get_by_role("tab", name="Walk").click()
    page.locator("#walk-form").evaluate("f => f.reset()")
    _drop(page, walk, "video/mp4", target="walk-form")  # anywhere on the page, not only the drop zone
    form = page.locator("#walk-form")
    page.wait_for_function("() => document.querySelector('#walk-form [name=seed]').value === '7'")
    assert form.locator("[name=frames]").input_value() == "8" and form.locator("[name=weighting]").input_value() == "linear"
    assert (form.locator("[name=width]").input_value(), form.locator("[name=upscale]").input_value()) == ("128", "x2")
    assert _order(page, 2) == ["b.png", "a.png"]  # its job still has the paintings

    _drop(page, text, "video/mp4")
    page.wait_for_function("() => location.hash === '#text'")
    form = page.locator("#text-form")
    assert form.locator("[name=prompt]").input_value() == "misty mountains over a river, ink wash"
    assert (form.locator("[name=seed]").input_value(), form.locator("[name=frames]").input_value()) == ("5", "3")

    notes = tmp_path / "holiday.mp4"
    notes.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(64))
    _drop(page, notes, "video/mp4")
    page.locator("#error-text").wait_for()
    assert page.locator("#error-text").inner_text().startswith("holiday.mp4 carries no inkwalk settings")
    page.get_by_role("button", name="Dismiss").click()


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
