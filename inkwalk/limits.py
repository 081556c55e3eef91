"""What one job may ask for, and the checks that refuse a bad request early and cheaply.

Shared by the CLI (`Limits.cli()`) and the HTTP apps (`Limits.from_dict(config)`), so both
refuse the same inputs with the same one-line messages. Every refusal is a `RequestError`
carrying an HTTP status: 400 (corrupt input), 413 (too large: uploads, pixels, a job's total
frames), 415 (not an accepted image type) or 422 (a setting out of its range or of the wrong
type). Nothing here decodes pixels before the image's header has passed `check_image`, and
nothing renders: every check costs microseconds to milliseconds.

Settings are validated in two layers: pydantic models (`WalkSettingsModel`,
`ConCLVDSettingsModel`: strict types, finite numbers, unknown fields refused, fixed outer
bounds; usable as OpenAPI schemas), then the configured `Limits` (tighter, per deployment).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Callable, ClassVar, Iterator, Literal, Mapping, NamedTuple

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator

from inkwalk.artwalks import (INTERPOLATORS, KEYFRAMERS, PRESETS, UPSCALERS, WalkError, WalkSettings,
                              walk_frame_count)
from inkwalk.errors import InkwalkError
from inkwalk.flow import FLOW_BACKENDS
from inkwalk.schedules import EASINGS, KEYFRAME_GRIDS, MAX_STRENGTH, WEIGHTINGS

IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "BMP": "bmp", "TIFF": "tiff"}
MIN_SIDE = 16          # smallest walk frame side
MAX_SIDE = 16384       # outer bound of any frame side; `Limits.max_output_pixels` is the real one
MAX_SEED = 2**32 - 1
MAX_SHOWN = 60         # characters of a bad value echoed in a message

# `check_image` bounds pixels from the header before any decode, so Pillow's warning about
# large images is noise; its DecompressionBombError (twice that size) is still caught below.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class RequestError(InkwalkError):
    """A request the limits refuse; `status` is its HTTP code (400, 413, 415 or 422).

    The message is one line that names what is wrong (the field or the file) and what is
    allowed; the CLI prints it as is, the HTTP apps answer ``{"detail": message}``.
    """

    def __init__(self, status: int, message: str):
        self.status = int(status)
        super().__init__(" ".join(str(message).split()))

    def __reduce__(self):
        # Ray ships exceptions between processes with pickle, which replays the constructor.
        return type(self), (self.status, str(self))


@dataclass
class Limits:
    """What one request may ask for. Defaults suit the HTTP apps on a GPU cluster; `cli()` a workstation."""

    # uploaded / input images
    max_upload_bytes: int = 25 * 1024 * 1024  # per painting (file size)
    max_total_upload_bytes: int = 200 * 1024 * 1024
    max_pixels: int = 40_000_000  # per painting, width*height, read from the header
    max_aspect_ratio: float = 32.0  # long side / short side of a painting
    max_upscale: float = 16.0  # how much fitting a painting to the walk size may enlarge it
    min_paintings: int = 2
    max_paintings: int = 32
    # ArtWalks
    max_keyframes: int = 32  # m
    max_frames_per_segment: int = 128  # n
    max_hold_seconds: float = 10.0
    max_fps: float = 60.0
    max_output_pixels: int = 2560 * 1440  # per frame, walk size and output size (after upscale)
    max_output_frames: int = 10_000  # per job: (k-1)(m+1)(n+1) + 1 + k*round(hold*fps)
    max_batch: int = 16  # frames per model call
    # ConCLVD
    max_video_frames: int = 64  # N latent frames, before interpolation (windows of 16 keep memory flat)
    max_steps: int = 100  # denoising steps (ConCLVD DDIM, Kandinsky decoder)
    max_size: int = 1024  # frame side
    max_prompt_chars: int = 500
    # service
    max_active_jobs: int = 8  # per ingress replica; more -> 503

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Limits":
        """Limits from a config mapping (`limits:` of a Serve app); unknown keys and bad values are errors."""
        data = dict(data or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InkwalkError(f"unknown limit(s) {unknown} in the Serve config; known: {sorted(known)}")
        for key, value in data.items():
            integer = known[key].type == "int"
            ok = (isinstance(value, int) if integer else isinstance(value, (int, float))) \
                and not isinstance(value, bool) and math.isfinite(value) and value >= 0
            if not ok:
                raise InkwalkError(f"limit {key} must be a non-negative {'integer' if integer else 'number'}, "
                                   f"got {value!r}")
        return cls(**data)

    @classmethod
    def cli(cls) -> "Limits":
        """Workstation limits for the `inkwalk` command: larger than the HTTP defaults, never absurd.

        Each bound keeps one run within a machine's memory and a human's patience: 8K frames,
        about 2.3 hours of 24 fps video, 120-megapixel paintings.
        """
        return cls(max_upload_bytes=1024**3, max_pixels=120_000_000, max_upscale=64.0, max_paintings=256,
                   max_keyframes=64, max_frames_per_segment=512, max_hold_seconds=600.0, max_fps=240.0,
                   max_output_pixels=7680 * 4320, max_output_frames=200_000, max_batch=64, max_steps=1000,
                   max_size=2048, max_prompt_chars=2000, max_video_frames=1024)


# ----------------------------------------------------------------------------- messages

Labeler = Callable[[str, Any], str]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "..."


def _num(x: float) -> str:
    """A bound as people write it: 4294967295, 0.5, 60 (never 4.29497e+09 or 60.0)."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def setting_label(name: str, value: Any) -> str:
    """How the HTTP apps name a value: ``setting 'fps' = 1000``."""
    return f"setting {name!r} = {_shown(value)}"


def option_labeler(options: Mapping[str, str]) -> Labeler:
    """How the CLI names a value: ``--fps 1000`` (`options` maps setting name -> option string)."""

    def label(name: str, value: Any) -> str:
        if name not in options:
            return setting_label(name, value)
        shown = "x".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
        return f"{options[name]} {shown[:MAX_SHOWN]}"

    return label


def check_number(name: str, value: Any, low: float, high: float, *, integer: bool = False,
                 low_open: bool = False, label: Labeler = setting_label) -> None:
    """Refuse (422) a value that is not a finite number (an integer if `integer`) in ``low..high``."""
    kind = "an integer" if integer else "a number"
    span = f"> {_num(low)} and <= {_num(high)}" if low_open else f"in {_num(low)}..{_num(high)}"
    number = isinstance(value, int) if integer else isinstance(value, (int, float))
    if (not number or isinstance(value, bool) or not math.isfinite(value)
            or not (low < value if low_open else low <= value) or value > high):
        raise RequestError(422, f"{label(name, value)}: must be {kind} {span}")


# ----------------------------------------------------------------------------- settings schemas


def _parse_size(value: Any) -> Any:
    """``1280x720``, ``[1280, 720]`` or ``720`` (square) -> ``(1280, 720)``; anything else is left
    for the tuple type to refuse."""
    if isinstance(value, str) and re.fullmatch(r"\d{1,6}[xX]\d{1,6}", value.strip()):
        w, h = value.strip().lower().split("x")
        return int(w), int(h)
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if isinstance(value, list):
        return tuple(value)
    return value


Side = Annotated[int, Field(ge=MIN_SIDE, le=MAX_SIDE)]
SIZE_SCHEMA = {"anyOf": [
    {"type": "string", "pattern": r"^\d+x\d+$", "description": "WIDTHxHEIGHT"},
    {"type": "array", "items": {"type": "integer", "minimum": MIN_SIDE, "maximum": MAX_SIDE},
     "minItems": 2, "maxItems": 2, "description": "[width, height]"},
    {"type": "integer", "minimum": MIN_SIDE, "maximum": MAX_SIDE, "description": "square side"}]}
UPSCALE_PATTERN = r"^(none|x\d{1,2}(\.\d{1,4})?|\d{1,5}x\d{1,5})$"
MAX_UPSCALE_FACTOR = 8.0


class _Strict(BaseModel):
    # strict: no "24" for 24, no 64.5 for an int, no true for 1; finite numbers only
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)
    # what a field accepts, in words, where its type and bounds alone do not say it well
    allowed_text: ClassVar[dict[str, str]] = {}


class WalkSettingsModel(_Strict):
    """Settings of an ArtWalks job (`inkwalk.artwalks.WalkSettings`); fields left out take the preset's value."""

    allowed_text: ClassVar[dict[str, str]] = {
        "size": f"WIDTHxHEIGHT, [width, height] or one integer (square), each side {MIN_SIDE}..{MAX_SIDE}",
        "upscale": f"none, xF (a factor, 0 < F <= {MAX_UPSCALE_FACTOR:g}) or WIDTHxHEIGHT",
    }
    preset: Literal[tuple(PRESETS)] = Field("paper", description="paper (needs weights) or offline")
    keyframes: int = Field(5, ge=0, le=256, description="m: diffusion keyframes between two paintings")
    frames: int = Field(24, ge=0, le=1024, description="n: interpolated frames between neighbouring frames")
    weighting: Literal[WEIGHTINGS] = Field("logit", description="embedding weighting")
    keyframe_grid: Literal[KEYFRAME_GRIDS] = Field("interior", description="keyframe times: i/(m+1) or the release's")
    scale: float = Field(15.0, gt=0, le=1000, description="logit weighting scale s")
    easing: Literal[EASINGS] = Field("s-curve", description="frame timing curve")
    strength: float = Field(1.0, ge=0, le=MAX_STRENGTH, description="S-curve easing strength, 0 = even")
    hold: float = Field(0.0, ge=0, le=3600, description="seconds each painting stays still")
    fps: float = Field(24.0, ge=1, le=240, description="frames per second")
    size: Annotated[tuple[Side, Side], WithJsonSchema(SIZE_SCHEMA)] = Field(
        (720, 720), description="walk size before upscaling: WIDTHxHEIGHT, [width, height] or one side")
    upscale: str = Field("x2", pattern=UPSCALE_PATTERN, description="output size: none, xF or WIDTHxHEIGHT")
    keyframer: Literal[KEYFRAMERS] = Field("kandinsky", description="keyframe backend")
    interpolator: Literal[INTERPOLATORS] = Field("film", description="interpolation backend")
    flow: Literal[FLOW_BACKENDS] = Field("dis", description="optical flow of flow-warp")
    upscaler: Literal[UPSCALERS] = Field("realesrgan", description="super-resolution backend")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="keyframe seed")
    fit: Literal["crop", "letterbox"] = Field("crop", description="how paintings fit the size")
    steps: int = Field(50, ge=1, le=1000, description="decoder denoising steps")
    guidance: float = Field(4.0, ge=0, le=30, description="decoder classifier-free guidance")
    batch: int = Field(4, ge=1, le=256, description="frames per model call")

    _size = field_validator("size", mode="before")(_parse_size)

    @field_validator("upscale", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("upscale")
    @classmethod
    def _factor_in_range(cls, value: str) -> str:
        if value.startswith("x") and not 0 < float(value[1:]) <= MAX_UPSCALE_FACTOR:
            raise ValueError("upscale factor out of range")
        return value


def _conclvd_size(value: Any) -> Any:
    """A ConCLVD frame size: as a walk's, plus a side given as digits (the CLI's ``--size 256``)."""
    return _parse_size(int(value) if isinstance(value, str) and value.strip().isdigit() else value)


ConCLVDSide = Annotated[int, Field(ge=8, le=MAX_SIDE, multiple_of=8)]


class ConCLVDSettingsModel(_Strict):
    """Settings of a ConCLVD job: the keyword arguments of `inkwalk.conclvd.generate_video`."""

    allowed_text: ClassVar[dict[str, str]] = {
        "size": f"a multiple of 8 in 8..{MAX_SIDE} per side: WIDTHxHEIGHT, [width, height] or one integer (square)",
        "window": "an integer in 1..1024 (latent frames per model call) or null (16, at most frames)",
        "overlap": "an integer in 0..1023 (frames shared by neighbouring windows) or null (4, less than window)",
        "prompts": 'an object mapping frame indices to prompts, e.g. {"0": "spring mountains", "48": "autumn river"}',
        "loop": "true or false",
    }
    negative_prompt: str = Field("", max_length=10_000, description="what to steer away from")
    frames: int = Field(8, ge=2, le=1024, description="N, latent frames sampled by diffusion (2N-1 after SOFP, 2N "
                                                      "when looping)")
    window: int | None = Field(None, ge=1, le=1024, description="frames per window (default 16, at most frames)")
    overlap: int | None = Field(None, ge=0, le=1023, description="frames neighbouring windows share (default 4)")
    loop: bool = Field(False, description="windows wrap around: the video plays seamlessly on repeat")
    prompts: dict[str, str] | None = Field(None, description="prompt travel: frame index -> prompt (frame 0 "
                                                             "defaults to the job's prompt)")
    prompt_interpolation: Literal["linear", "slerp"] = Field("linear", description="how prompt travel blends "
                                                                                   "neighbouring prompts")
    steps: int = Field(25, ge=1, le=1000, description="DDIM steps")
    guidance: float = Field(8.0, ge=0, le=30, description="classifier-free guidance scale")
    size: Annotated[tuple[ConCLVDSide, ConCLVDSide], WithJsonSchema(SIZE_SCHEMA)] = Field(
        (256, 256), description="frame size: WIDTHxHEIGHT, [width, height] or one side, multiples of 8")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="random seed: same seed, same video")

    _size = field_validator("size", mode="before")(_conclvd_size)


def _bounds(model: type[BaseModel], name: str) -> dict[str, float]:
    out = {}
    for meta in model.model_fields[name].metadata:
        for key in ("ge", "gt", "le", "lt", "multiple_of", "max_length"):
            if getattr(meta, key, None) is not None:
                out[key] = getattr(meta, key)
    return out


def _allowed(model: type[BaseModel], name: str, high: float | None = None) -> str:
    """What `name` accepts, in words, with the tighter `high` of the configured limits."""
    if name in model.allowed_text:
        return model.allowed_text[name]
    field = model.model_fields[name]
    choices = getattr(field.annotation, "__args__", None)
    if getattr(field.annotation, "__origin__", None) is Literal:
        return "one of: " + ", ".join(map(str, choices))
    b = _bounds(model, name)
    if field.annotation is str:
        return f"a string of at most {high if high is not None else b.get('max_length', '?')} characters"
    top = min(b["le"], high) if high is not None else b["le"]
    kind = "an integer" if field.annotation is int else "a number"
    if "multiple_of" in b:
        kind = f"a multiple of {_num(b['multiple_of'])}"
    if "gt" in b:
        return f"{kind} > {_num(b['gt'])} and <= {_num(top)}"
    return f"{kind} in {_num(b['ge'])}..{_num(top)}"


def _validated(model: type[BaseModel], data: Any, label: Labeler, highs: Mapping[str, float],
               what: str) -> BaseModel:
    """`model` validated from `data`, or a 422 naming the first bad field and what it accepts."""
    if not isinstance(data, Mapping):
        raise RequestError(422, f"{what} must be a JSON object of settings, got {_shown(data)}")
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        name = str(error["loc"][0]) if error["loc"] else "?"
        if error["type"] == "extra_forbidden" or name not in model.model_fields:
            raise RequestError(422, f"unknown {what} {name!r}; known: "
                                    f"{', '.join(model.model_fields)}") from None
        raise RequestError(422, f"{label(name, data.get(name))}: must be "
                                f"{_allowed(model, name, highs.get(name))}") from None


def _within(name: str, value: float, high: float, limit: str, model: type[BaseModel], label: Labeler) -> None:
    if value > high:
        raise RequestError(422, f"{label(name, value)}: must be {_allowed(model, name, high)} "
                                f"(limit {limit})")


def parse_frame_size(text: Any, limits: Limits, name: str = "size", label: Labeler = setting_label
                     ) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` -> ``(width, height)``, each side 1..MAX_SIDE and at most `max_output_pixels`."""
    match = re.fullmatch(r"(\d{1,6})[xX](\d{1,6})", text.strip()) if isinstance(text, str) else None
    w, h = (int(match[1]), int(match[2])) if match else (0, 0)
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise RequestError(422, f"{label(name, text)}: must be WIDTHxHEIGHT, each side 1..{MAX_SIDE}")
    if w * h > limits.max_output_pixels:
        raise RequestError(422, f"{label(name, text)}: {w}x{h} = {w * h} pixels per frame exceeds the limit of "
                                f"{limits.max_output_pixels} pixels (limit max_output_pixels)")
    return w, h


def check_paintings_count(count: int, limits: Limits) -> None:
    if count < limits.min_paintings:
        raise RequestError(422, f"a walk needs at least {limits.min_paintings} paintings, got {count}: "
                                f"give two or more images, in walk order")
    if count > limits.max_paintings:
        raise RequestError(413, f"{count} paintings given; the limit is {limits.max_paintings} per job: "
                                f"split the collection")


def check_walk_sizes(size: tuple[int, int], output_size: tuple[int, int], limits: Limits, upscale: str = "",
                     label: Labeler = setting_label) -> None:
    """Walk size and output size (after `upscale`) within the pixel limit of a frame."""
    for name, value, (w, h) in (("size", tuple(size), size), ("upscale", upscale, output_size)):
        if w * h > limits.max_output_pixels:
            what = "" if name == "size" else "the output size "
            raise RequestError(422, f"{label(name, value)}: {what}{w}x{h} = {w * h} pixels per frame exceeds the "
                                    f"limit of {limits.max_output_pixels} pixels (limit max_output_pixels)")


WALK_LIMITS = {"keyframes": "max_keyframes", "frames": "max_frames_per_segment", "hold": "max_hold_seconds",
               "fps": "max_fps", "steps": "max_steps", "batch": "max_batch"}


def parse_walk_settings(user: Mapping[str, Any], defaults: Mapping[str, Any], limits: Limits, paintings: int,
                        label: Labeler = setting_label) -> WalkSettings:
    """The `WalkSettings` of a walk through `paintings` paintings, or a `RequestError`.

    `user` (the request's settings, or the CLI's options that were given) overrides `defaults`
    (the app's configured defaults), which override the preset's values. Both are validated
    by `WalkSettingsModel`; the merged settings by `limits`, including the job's total frames
    (413) and pixels per frame (422). `label` names a value in messages (`option_labeler` for
    the CLI).
    """
    highs = {name: getattr(limits, key) for name, key in WALK_LIMITS.items()}
    given = {}
    for source, what in ((defaults, "default setting"), (user, "setting")):
        model = _validated(WalkSettingsModel, source, label, highs, what)
        given.update(model.model_dump(exclude_unset=True))
    check_paintings_count(paintings, limits)
    try:
        settings = WalkSettings.with_preset(given.pop("preset", "paper"), **given)
    except WalkError as exc:
        raise RequestError(422, str(exc)) from None
    for name, key in WALK_LIMITS.items():
        _within(name, getattr(settings, name), getattr(limits, key), key, WalkSettingsModel, label)
    check_walk_sizes(tuple(settings.size), settings.output_size, limits, settings.upscale, label)
    total = walk_frame_count(paintings, settings)
    if total > limits.max_output_frames:
        raise RequestError(413, f"this walk would render {total} frames ((k-1)(m+1)(n+1)+1+k*round(hold*fps) "
                                f"with k={paintings}, m={settings.keyframes}, n={settings.frames}, "
                                f"hold={settings.hold:g}, fps={settings.fps:g}); the limit is "
                                f"{limits.max_output_frames} frames per job (limit max_output_frames)")
    return settings


CONCLVD_LIMITS = {"frames": "max_video_frames", "steps": "max_steps", "negative_prompt": "max_prompt_chars"}


def parse_conclvd_settings(user: Mapping[str, Any], defaults: Mapping[str, Any], limits: Limits,
                           label: Labeler = setting_label) -> ConCLVDSettingsModel:
    """The settings of a ConCLVD job (`.model_dump()` gives `generate_video`'s keyword arguments), or a
    `RequestError` naming the first bad field and its allowed range."""
    from inkwalk.conclvd.prompt_travel import schedule_problem
    from inkwalk.conclvd.windows import overlap_problem, resolve_windows, window_problem

    highs = {name: getattr(limits, key) for name, key in CONCLVD_LIMITS.items()}
    defaults_model = _validated(ConCLVDSettingsModel, defaults, label, highs, "default setting")
    user_model = _validated(ConCLVDSettingsModel, user, label, highs, "setting")
    settings = ConCLVDSettingsModel.model_validate({**defaults_model.model_dump(exclude_unset=True),
                                                    **user_model.model_dump(exclude_unset=True)})
    for name, key in CONCLVD_LIMITS.items():
        value = getattr(settings, name)
        if name != "negative_prompt":
            _within(name, value, getattr(limits, key), key, ConCLVDSettingsModel, label)
        elif len(value) > limits.max_prompt_chars:
            raise RequestError(422, f"{label(name, value)}: is {len(value)} characters; the limit is "
                                    f"{limits.max_prompt_chars} (limit max_prompt_chars)")
    width, height = settings.size
    if max(settings.size) > limits.max_size:
        raise RequestError(422, f"{label('size', settings.size)}: each side must be at most {limits.max_size} "
                                "(limit max_size)")
    if width * height > limits.max_output_pixels:
        raise RequestError(422, f"{label('size', settings.size)}: {width}x{height} pixels per frame exceed the "
                                f"limit of {limits.max_output_pixels} (limit max_output_pixels)")
    window, overlap = resolve_windows(settings.frames, settings.window, settings.overlap)
    for name, problem in (("window", window_problem(settings.frames, window)),
                          ("overlap", overlap_problem(window, overlap)),
                          ("prompts", None if settings.prompts is None else
                           schedule_problem(settings.prompts, settings.frames, limits.max_prompt_chars))):
        if problem:
            raise RequestError(422, f"{label(name, getattr(settings, name))}: {problem}")
    return settings


def check_prompt(prompt: Any, limits: Limits) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise RequestError(422, "prompt is empty: describe the landscape to render")
    check_prompt_length(prompt, limits, "prompt")


def check_prompt_length(text: str, limits: Limits, name: str) -> None:
    if len(text) > limits.max_prompt_chars:
        raise RequestError(422, f"{name} is {len(text)} characters; the limit is {limits.max_prompt_chars} "
                                f"(CLIP reads 77 tokens anyway): shorten it")


# legacy entry points of the HTTP ingress (services.limits): the same checks on a user dict


def check_walk_settings(settings: Any, limits: Limits) -> None:
    """Refuse (422) walk settings that break the schema or the limits, for the smallest collection."""
    parse_walk_settings(settings, {}, limits, limits.min_paintings)


def check_conclvd_settings(settings: Any, limits: Limits) -> None:
    """Refuse (422) ConCLVD settings that break the schema or the limits."""
    parse_conclvd_settings(settings, {}, limits)


def check_total_upload(total: int, limits: Limits) -> None:
    if total > limits.max_total_upload_bytes:
        raise RequestError(413, f"the upload is {total} bytes in all; the limit is "
                                f"{limits.max_total_upload_bytes} bytes per job")


# ----------------------------------------------------------------------------- images


class ImageHeader(NamedTuple):
    """What an image's header says: its format and its displayed size (EXIF rotation applied)."""

    format: str
    width: int
    height: int


ImageSource = bytes | BinaryIO | str | os.PathLike


def _label_of(source: ImageSource, name: str | None) -> str:
    if name is not None:
        return name
    return str(source) if isinstance(source, (str, os.PathLike)) else "image"


def _open(source: ImageSource, name: str):
    """A lazily opened PIL image (header read, no pixels), or the 4xx of why it cannot be opened."""
    from PIL import UnidentifiedImageError

    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    try:
        return Image.open(source)
    except FileNotFoundError:
        raise RequestError(400, f"painting {name!r}: file not found") from None
    except IsADirectoryError:
        raise RequestError(400, f"painting {name!r} is a folder, not an image file") from None
    except UnidentifiedImageError:
        raise RequestError(415, f"painting {name!r} is not an image; accepted image types: "
                                f"{', '.join(sorted(IMAGE_FORMATS.values()))}") from None
    except Image.DecompressionBombError:
        # Pillow refuses headers claiming more than 2 * Image.MAX_IMAGE_PIXELS
        raise RequestError(413, f"painting {name!r}: its header claims more than "
                                f"{2 * Image.MAX_IMAGE_PIXELS} pixels; the limit is far lower: downscale it") from None
    except Exception as exc:  # every decoder failure is the file's fault, never a 500
        raise RequestError(400, f"painting {name!r} is truncated or corrupt ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _displayed_size(im) -> tuple[int, int]:
    """Width and height after EXIF rotation, from the header only (PNG's getexif would decode)."""
    w, h = im.size
    if "exif" in im.info or im.format == "TIFF":
        try:
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                return h, w
        except Exception:  # an unreadable EXIF block: the decoder ignores it too
            pass
    return w, h


def image_header(source: ImageSource, name: str | None = None) -> ImageHeader:
    """Format and displayed size of an image from its header, without decoding a pixel.

    `source`: the file's bytes, a binary file object or a path. Corrupt, truncated or unknown
    data and decompression bombs become `RequestError`s (400, 415, 413).
    """
    with _open(source, _label_of(source, name)) as im:
        w, h = _displayed_size(im)
        return ImageHeader(im.format or "?", int(w), int(h))


def upscale_factor(width: int, height: int, size: tuple[int, int], fit: str = "crop") -> float:
    """How much fitting a width x height image to `size` enlarges it (crop covers, letterbox fits)."""
    sx, sy = size[0] / width, size[1] / height
    return max(sx, sy) if fit == "crop" else min(sx, sy)


def check_image(header: ImageHeader, limits: Limits, name: str, size: tuple[int, int] | None = None,
                fit: str = "crop") -> None:
    """Refuse an image by its header: type (415), pixels (413), aspect ratio and, given the walk
    `size`, how much fitting would enlarge it (422)."""
    fmt, w, h = header
    if fmt not in IMAGE_FORMATS:
        raise RequestError(415, f"painting {name!r} is {fmt}; accepted image types: "
                                f"{', '.join(sorted(IMAGE_FORMATS.values()))}")
    if w < 1 or h < 1:
        raise RequestError(400, f"painting {name!r} is empty ({w}x{h} pixels)")
    if w * h > limits.max_pixels:
        raise RequestError(413, f"painting {name!r} is {w}x{h} = {w * h} pixels; the limit is "
                                f"{limits.max_pixels} pixels: downscale it")
    ratio = max(w, h) / min(w, h)
    if ratio > limits.max_aspect_ratio:
        raise RequestError(422, f"painting {name!r} is {w}x{h}, an aspect ratio of {ratio:.0f}:1; the limit "
                                f"is {limits.max_aspect_ratio:g}:1: crop it to the part you want")
    if size is not None:
        factor = upscale_factor(w, h, size, fit)
        if factor > limits.max_upscale:
            raise RequestError(422, f"painting {name!r} is {w}x{h}: fitting it to {size[0]}x{size[1]} ({fit}) "
                                    f"would enlarge it {factor:.1f}x; the limit is {limits.max_upscale:g}x: "
                                    f"use a larger image or a smaller size")


def check_upload_size(name: str, length: int, limits: Limits) -> None:
    """Refuse an empty painting (400) or one over `max_upload_bytes` (413), by its length in bytes."""
    if length == 0:
        raise RequestError(400, f"painting {name!r} is empty (0 bytes)")
    if length > limits.max_upload_bytes:
        raise RequestError(413, f"painting {name!r} is {length} bytes; the limit is "
                                f"{limits.max_upload_bytes} bytes per painting: downscale or recompress it")


def _check_bytes(source: ImageSource, limits: Limits, name: str) -> None:
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.exists():
            raise RequestError(400, f"painting {name!r}: file not found")
        if p.is_dir():
            raise RequestError(400, f"painting {name!r} is a folder, not an image file")
        check_upload_size(name, p.stat().st_size, limits)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        check_upload_size(name, len(source), limits)
    # a stream: the caller bounds what it reads (`check_upload_size` with its length)


@contextlib.contextmanager
def _admitted(source: ImageSource, limits: Limits, name: str | None, size: tuple[int, int] | None,
              fit: str) -> Iterator[Any]:
    """The image opened once, its header checked, no pixel decoded yet."""
    label = _label_of(source, name)
    _check_bytes(source, limits, label)
    with _open(source, label) as im:
        w, h = _displayed_size(im)
        check_image(ImageHeader(im.format or "?", int(w), int(h)), limits, label, size, fit)
        yield im


def admit_image(source: ImageSource, limits: Limits, name: str | None = None,
                size: tuple[int, int] | None = None, fit: str = "crop") -> ImageHeader:
    """File size, header and `check_image`: everything short of decoding. Returns the header.

    A file object is read from its current position and left wherever Pillow stopped.
    """
    with _admitted(source, limits, name, size, fit) as im:
        return ImageHeader(im.format, *_displayed_size(im))


def decode_painting(name: str, data: ImageSource, limits: Limits, size: tuple[int, int] | None = None,
                    fit: str = "crop") -> np.ndarray:
    """`admit_image`, then decode to ``H×W×3`` uint8 RGB (EXIF rotation, transparency over white).

    `size`/`fit`: the walk size the painting will be fitted to, to bound the enlargement.
    Every decoder failure is a `RequestError`: an image whose header passed and whose pixels
    still fail to decode is truncated or corrupt (400).
    """
    from inkwalk.video import image_to_rgb

    with _admitted(data, limits, name, size, fit) as im:
        try:
            return image_to_rgb(im)
        except MemoryError:
            raise RequestError(413, f"painting {name!r} is too large to decode in this process's memory") from None
        except Exception as exc:
            raise RequestError(400, f"painting {name!r} is truncated or corrupt ({_reason(exc)})") from None
