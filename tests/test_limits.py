"""The shared limits: settings schemas (property-based), image admission from the header alone."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from bad_inputs import png_header
from inkwalk.config_model import parse_config
from inkwalk.conclvd.windows import resolve_windows
from inkwalk.image_admission import ImageHeader, admit_image, decode_painting, image_header
from inkwalk.limits import MIN_SIDE, Limits, RequestError
from inkwalk.schedules import WEIGHTINGS
from inkwalk.settings_schemas import ConCLVDSettingsModel, parse_conclvd_settings, parse_walk_settings
from inkwalk.walk_settings import INTERPOLATORS, KEYFRAMERS, PRESETS, UPSCALERS, WalkSettings, walk_frame_count

LIMITS = Limits()

# ----------------------------------------------------------------------------- property-based settings

json_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
                | st.text(max_size=12))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
near_valid = st.one_of(
    st.integers(-3, 300), st.floats(-5, 2000, allow_nan=False), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([*PRESETS, *WEIGHTINGS, *KEYFRAMERS, *INTERPOLATORS, *UPSCALERS, "dis", "raft", "crop",
                     "letterbox", "none", "x2", "x0", "x9", "X1.5", "2560x1440", "99999x99999"]),
    st.builds(lambda w, h: f"{w}x{h}", st.integers(0, 20000), st.integers(0, 20000)),
    st.lists(st.integers(-10, 5000), min_size=1, max_size=3))


def _settings_dicts(names):
    keys = st.sampled_from([*names, "bogus", "Size"])
    return st.one_of(st.dictionaries(keys, near_valid | json_values, max_size=7), json_values)


def _assert_refusal(exc: RequestError, statuses=(413, 422)) -> None:
    text = str(exc)
    assert exc.status in statuses and text and "\n" not in text and len(text) < 1200


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_settings_dicts(list(WalkSettings.model_fields)), st.integers(-1, 40))
def test_any_walk_settings_parse_within_every_bound_or_refuse_in_one_line(user, paintings):
    try:
        ws = parse_walk_settings(user, {}, LIMITS, paintings)
    except RequestError as exc:
        _assert_refusal(exc)
        return
    assert isinstance(ws, WalkSettings)
    ints = ("keyframes", "frames", "seed", "steps", "batch")
    assert all(type(getattr(ws, k)) is int for k in ints)
    assert all(math.isfinite(getattr(ws, k)) for k in ("scale", "strength", "hold", "fps", "guidance"))
    assert 0 <= ws.keyframes <= LIMITS.max_keyframes and 0 <= ws.frames <= LIMITS.max_frames_per_segment
    assert 0 <= ws.hold <= LIMITS.max_hold_seconds and 1 <= ws.fps <= LIMITS.max_fps
    assert 1 <= ws.steps <= LIMITS.max_steps and 1 <= ws.batch <= LIMITS.max_batch
    for w, h in (ws.size, ws.output_size):
        assert min(w, h) >= MIN_SIDE and w * h <= LIMITS.max_output_pixels
    assert LIMITS.min_paintings <= paintings <= LIMITS.max_paintings
    assert walk_frame_count(paintings, ws) <= LIMITS.max_output_frames


@settings(max_examples=300, deadline=None)
@given(_settings_dicts(list(ConCLVDSettingsModel.model_fields)))
def test_any_conclvd_settings_parse_within_every_bound_or_refuse_in_one_line(user):
    try:
        s = parse_conclvd_settings(user, {}, LIMITS)
    except RequestError as exc:
        _assert_refusal(exc, (422,))
        return
    assert type(s.frames) is int and 2 <= s.frames <= LIMITS.max_video_frames
    assert type(s.steps) is int and 1 <= s.steps <= LIMITS.max_steps
    assert all(type(side) is int and 8 <= side <= LIMITS.max_size and side % 8 == 0 for side in s.size)
    window, overlap = resolve_windows(s.frames, s.window, s.overlap)
    assert 1 <= window <= s.frames and 0 <= overlap < window
    assert math.isfinite(s.guidance) and 0 <= s.guidance <= 30
    assert type(s.seed) is int and 0 <= s.seed < 2**32
    assert len(s.negative_prompt) <= LIMITS.max_prompt_chars


@pytest.mark.parametrize("user, phrase", [
    ({"size": "big"}, "setting 'size' = 'big': must be WIDTHxHEIGHT"),
    ({"size": None}, "setting 'size' = None"),
    ({"size": 64.5}, "setting 'size' = 64.5"),
    ({"fps": 1000}, "setting 'fps' = 1000: must be a number in 1..60"),
    ({"fps": float("inf")}, "setting 'fps' = inf"),
    ({"keyframes": True}, "must be an integer in 0..32"),
    ({"hold": 10, "fps": 60, "frames": 128, "keyframes": 32}, "the limit is 10000 frames per job"),
    ({"size": [4000, 4000]}, "exceeds the limit of 3686400 pixels"),
    ({"upscale": "x9"}, "setting 'upscale' = 'x9'"),
    ({"upscale": "x0.001"}, "setting 'upscale' = 'x0.001': the output size 1x1: each side must be 16..16384"),
    ({"upscale": "2x2"}, "setting 'upscale' = '2x2': the output size 2x2: each side must be 16..16384"),
    ({"colour": "red"}, "unknown setting 'colour'"),
])
def test_walk_refusals_name_the_field_and_the_allowed_range(user, phrase):
    with pytest.raises(RequestError, match=phrase.replace("(", r"\(").replace(".", r"\.")):
        parse_walk_settings(user, {}, LIMITS, 3)


def test_defaults_merge_under_the_request_and_the_preset():
    ws = parse_walk_settings({"frames": 3}, {"preset": "offline", "size": "64x48", "frames": 9}, LIMITS, 2)
    assert (ws.preset, ws.size, ws.frames, ws.upscale) == ("offline", (64, 48), 3, "none")
    conclvd = parse_conclvd_settings({"steps": 2}, {"steps": 30, "size": 64}, LIMITS)
    assert conclvd.model_dump() == {"negative_prompt": "", "frames": 8, "window": None, "overlap": None, "loop": False,
                                    "prompts": None, "prompt_interpolation": "linear", "weighting": "pyramid",
                                    "noise": "shuffle_context", "windowing": "model", "steps": 2, "guidance": 8.0,
                                    "size": (64, 64), "seed": 0}


@pytest.mark.parametrize("user, phrase", [
    ({"weighting": "sawtooth"}, "setting 'weighting' = 'sawtooth': must be one of: pyramid, flat"),
    ({"noise": "perlin"}, "setting 'noise' = 'perlin': must be one of: shuffle_context, random"),
    ({"windowing": "frames"}, "setting 'windowing' = 'frames': must be one of: model, motion"),
])
def test_conclvd_refusals_name_the_choices(user, phrase):
    with pytest.raises(RequestError, match=phrase):
        parse_conclvd_settings(user, {}, LIMITS)


def test_the_job_settings_offer_exactly_the_samplers_weightings_and_noises():
    from typing import get_args

    from inkwalk.conclvd.noise import NOISE_TYPES
    from inkwalk.conclvd.scroll import WINDOWINGS
    from inkwalk.conclvd.windows import WEIGHTINGS

    fields = ConCLVDSettingsModel.model_fields
    assert get_args(fields["weighting"].annotation) == WEIGHTINGS and fields["weighting"].default == WEIGHTINGS[0]
    assert get_args(fields["noise"].annotation) == NOISE_TYPES and fields["noise"].default == NOISE_TYPES[0]
    assert get_args(fields["windowing"].annotation) == WINDOWINGS and fields["windowing"].default == WINDOWINGS[0]


def test_schemas_are_openapi_ready_and_refuse_unknown_fields():
    for model in (WalkSettings, ConCLVDSettingsModel):
        schema = json.loads(json.dumps(model.model_json_schema()))
        assert schema["additionalProperties"] is False
        numbers = {k: v for k, v in schema["properties"].items() if v.get("type") in ("integer", "number")}
        assert numbers and all("maximum" in v for v in numbers.values())  # every number is bounded
    assert WalkSettings.model_json_schema()["properties"]["size"]["anyOf"]


def test_limits_from_config_refuse_unknown_or_nonsense_values():
    assert parse_config(Limits, {"max_fps": 30}, "limit").max_fps == 30
    for bad in ({"max_everything": 1}, {"max_fps": "fast"}, {"max_pixels": -1}, {"max_keyframes": 2.5},
                {"max_hold_seconds": float("nan")}):
        with pytest.raises(Exception, match="limit"):
            parse_config(Limits, bad, "limit")


# ----------------------------------------------------------------------------- images


def encoded(shape, fmt="PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full(shape, 90, np.uint8)).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def test_header_only_images_are_refused_before_any_decode():
    """No pixel data follows these headers: a decode would fail as 'truncated', so the limit's own
    message proves the refusal came from the header alone."""
    cases = [(png_header(50000, 50000), 413, "header claims more than"),
             (png_header(250000, 64), 422, "aspect ratio of 3906:1"),
             (png_header(8000, 6000), 413, "48000000 pixels; the limit is 40000000")]
    for data, status, phrase in cases:
        with pytest.raises(RequestError, match=phrase) as info:
            decode_painting("p.png", data, LIMITS)
        assert info.value.status == status
    assert image_header(png_header(250000, 64)) == ImageHeader("PNG", 250000, 64)


def test_enlargement_by_fitting_is_bounded():
    header = admit_image(encoded((40, 30, 3)), LIMITS, "small.png", size=(64, 64))
    assert header == ("PNG", 30, 40)
    with pytest.raises(RequestError, match="would enlarge it 24.0x; the limit is 16x") as info:
        admit_image(encoded((40, 30, 3)), LIMITS, "small.png", size=(720, 720))
    assert info.value.status == 422
    # letterbox fits the long side: the same image enlarges less
    admit_image(encoded((40, 300, 3)), LIMITS, "wide.png", size=(720, 720), fit="letterbox")


def test_exif_rotation_is_read_from_the_header():
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded((40, 60, 3), "JPEG", exif=exif)
    assert image_header(data) == ("JPEG", 40, 60)
    assert decode_painting("r.jpg", data, LIMITS).shape == (60, 40, 3)


@pytest.mark.parametrize("data, status, phrase", [
    (b"", 400, "empty"), (b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, 400, "truncated or corrupt"),
    (b"GIF89a" + b"\x00" * 30, 415, "not an image"), (b"hello", 415, "not an image"),
    (encoded((8, 8, 3), "GIF"), 415, "is GIF"), (encoded((64, 64, 3))[:70], 400, "truncated or corrupt"),
])
def test_every_decoder_failure_is_a_4xx(data, status, phrase):
    with pytest.raises(RequestError, match=phrase) as info:
        decode_painting("p", data, LIMITS)
    assert info.value.status == status and "\n" not in str(info.value)


def test_request_error_survives_pickling():
    import pickle

    again = pickle.loads(pickle.dumps(RequestError(413, "too\nbig")))
    assert (again.status, str(again)) == (413, "too big")
