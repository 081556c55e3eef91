"""What the Studio's forms are filled from (`GET {app}/settings`) and how downloads are named: no Ray, no browser."""

from email.message import EmailMessage

from inkwalk.limits import Limits
from inkwalk.settings_schemas import parse_walk_settings
from inkwalk.walk_settings import PRESETS
from services.output_names import content_disposition, output_stem
from services.settings_form import conclvd_form, walk_form
from services.store import JobRecord

SERVED = {"keyframer": "none", "interpolator": "flow-warp", "flow": "dis", "upscaler": "lanczos"}


def test_each_preset_shows_what_a_request_naming_only_it_gets_and_why_it_would_be_refused():
    limits = Limits(max_frames_per_segment=30, max_keyframes=0)
    defaults = {"preset": "offline", "size": [256, 256], "frames": 12}
    form = walk_form(defaults, limits, SERVED)
    assert form["preset"] == "offline" and set(form["presets"]) == set(PRESETS)
    offline = form["presets"]["offline"]
    # the same settings the job would get, parsed by the limits' own path
    expected = parse_walk_settings({"preset": "offline", **SERVED}, defaults, limits, 2)
    assert offline["refused"] is None
    assert offline["settings"]["frames"] == expected.frames == 12 and offline["settings"]["size"] == [256, 256]
    # a preset the served backends cannot run at all: no settings, and the reason
    release = form["presets"]["release"]
    assert release["settings"] is None and "keyframer is 'none'" in release["refused"]
    paper = walk_form(defaults, limits, {**SERVED, "keyframer": "kandinsky"})["presets"]["paper"]
    assert paper["settings"]["keyframes"] == PRESETS["paper"]["keyframes"] and "(limit max_keyframes)" in paper["refused"]
    assert form["choices"]["interpolator"] == ["flow-warp"]  # the served backend only
    assert form["choices"]["fit"] == ["crop", "letterbox"]
    assert form["limits"]["frames"] == 30


def test_conclvd_defaults_that_break_a_limit_are_shown_with_the_reason():
    form = conclvd_form({"frames": 8, "steps": 40}, Limits(max_steps=20))
    assert form["settings"]["steps"] == 40 and "(limit max_steps)" in form["refused"]
    assert conclvd_form({"frames": 8}, Limits())["refused"] is None


def test_a_download_is_named_by_its_paintings_or_prompt_and_seed():
    walk = JobRecord(job_id="a" * 32, app="artwalks", settings={"seed": 7},
                     inputs=[{"name": "Spring Hills.png"}, {"name": "秋 river.jpg"}])
    clip = JobRecord(job_id="b" * 32, app="conclvd", settings={"seed": 5, "prompt": "Misty mountains, over a river!"})
    assert output_stem(walk) == "walk-spring-hills_秋-river-seed7"
    assert output_stem(clip) == "landscape-misty-mountains-over-a-river-seed5"
    value = content_disposition("walk-秋-seed7.mp4")
    assert value.isascii() and 'filename="walk-_-seed7.mp4"' in value  # an ASCII fallback for old clients
    exact = EmailMessage()  # the standard library's RFC 2231 reading of the exact name, on its own
    exact["Content-Disposition"] = "inline; " + value.split("; ")[-1]
    assert exact.get_filename() == "walk-秋-seed7.mp4"
