"""Settings of a request, validated in two layers, each refusal one `RequestError` line.

First pydantic models (`WalkSettingsModel`, `ConCLVDSettingsModel`: strict types, finite numbers,
unknown fields refused, fixed outer bounds; usable as OpenAPI schemas), then the configured
`Limits` (tighter, per deployment).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator

from inkwalk.flow import FLOW_BACKENDS
from inkwalk.limits import (MAX_SEED, MAX_SIDE, MIN_SIDE, Labeler, Limits, RequestError, number_text, setting_label,
                            shown_value)
from inkwalk.schedules import EASINGS, KEYFRAME_GRIDS, MAX_STRENGTH, WEIGHTINGS
from inkwalk.walk_settings import (INTERPOLATORS, KEYFRAMERS, PRESETS, UPSCALERS, WalkError, WalkSettings,
                                   walk_frame_count)


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
    """Settings of an ArtWalks job (`inkwalk.walk_settings.WalkSettings`); fields left out take the preset's value."""

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
        kind = f"a multiple of {number_text(b['multiple_of'])}"
    if "gt" in b:
        return f"{kind} > {number_text(b['gt'])} and <= {number_text(top)}"
    return f"{kind} in {number_text(b['ge'])}..{number_text(top)}"


def _validated(model: type[BaseModel], data: Any, label: Labeler, highs: Mapping[str, float],
               what: str) -> BaseModel:
    """`model` validated from `data`, or a 422 naming the first bad field and what it accepts."""
    if not isinstance(data, Mapping):
        raise RequestError(422, f"{what} must be a JSON object of settings, got {shown_value(data)}")
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
    """``WIDTHxHEIGHT`` -> ``(width, height)``, each side MIN_SIDE..MAX_SIDE and at most `max_output_pixels`."""
    match = re.fullmatch(r"(\d{1,6})[xX](\d{1,6})", text.strip()) if isinstance(text, str) else None
    w, h = (int(match[1]), int(match[2])) if match else (0, 0)
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise RequestError(422, f"{label(name, text)}: must be WIDTHxHEIGHT, each side {MIN_SIDE}..{MAX_SIDE}")
    if w * h > limits.max_output_pixels:
        raise RequestError(422, f"{label(name, text)}: {w}x{h} = {w * h} pixels per frame exceeds the limit of "
                                f"{limits.max_output_pixels} pixels (limit max_output_pixels)")
    return w, h


def parse_output_size(text: str, source: tuple[int, int], limits: Limits, name: str = "size",
                      label: Labeler = setting_label) -> tuple[int, int]:
    """An output size written like `walk --upscale`: ``xF`` (a factor of the `source` size,
    0 < F <= MAX_UPSCALE_FACTOR) or ``WIDTHxHEIGHT``; the resulting size is what is bounded."""
    factor_text = text.strip().lower() if isinstance(text, str) else ""
    if not factor_text.startswith("x"):
        return parse_frame_size(text, limits, name, label)
    try:
        factor = float(factor_text[1:])
    except ValueError:
        factor = float("nan")
    if not 0 < factor <= MAX_UPSCALE_FACTOR:
        raise RequestError(422, f"{label(name, text)}: must be xF (a factor, 0 < F <= {MAX_UPSCALE_FACTOR:g}) "
                                f"or WIDTHxHEIGHT")
    w, h = round(source[0] * factor), round(source[1] * factor)
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise RequestError(422, f"{label(name, text)}: the output size {w}x{h}: each side must be "
                                f"{MIN_SIDE}..{MAX_SIDE} pixels")
    return parse_frame_size(f"{w}x{h}", limits, name, lambda _name, _value: label(name, text))


def check_paintings_count(count: int, limits: Limits) -> None:
    if count < limits.min_paintings:
        raise RequestError(422, f"a walk needs at least {limits.min_paintings} paintings, got {count}: "
                                f"give two or more images, in walk order")
    if count > limits.max_paintings:
        raise RequestError(413, f"{count} paintings given; the limit is {limits.max_paintings} per job: "
                                f"split the collection")


def check_walk_sizes(size: tuple[int, int], output_size: tuple[int, int], limits: Limits, upscale: str = "",
                     label: Labeler = setting_label) -> None:
    """Walk size and output size (after `upscale`): each side in MIN_SIDE..MAX_SIDE and within the
    pixel limit of a frame. The resulting size is checked, not the text: ``x0.001`` rounds to 0x0."""
    for name, value, (w, h) in (("size", tuple(size), size), ("upscale", upscale, output_size)):
        if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
            what = "" if name == "size" else "the output size "
            raise RequestError(422, f"{label(name, value)}: {what}{w}x{h}: each side must be "
                                    f"{MIN_SIDE}..{MAX_SIDE} pixels")
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


def check_total_upload(total: int, limits: Limits) -> None:
    if total > limits.max_total_upload_bytes:
        raise RequestError(413, f"the upload is {total} bytes in all; the limit is "
                                f"{limits.max_total_upload_bytes} bytes per job")
