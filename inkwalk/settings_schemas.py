"""The ConCLVD settings model and the one entry per app that validates a request's settings.

Each app has one settings model (`inkwalk.walk_settings.WalkSettings`, `ConCLVDSettingsModel`,
both `inkwalk.settings_model.SettingsModel`): the app's configured defaults merge under the
request's values and the model checks types, bounds and the configured `Limits` in one pass;
each refusal is one `RequestError` line.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, Mapping

from pydantic import Field, ValidationInfo, WithJsonSchema, field_validator, model_validator
from typing_extensions import Self

from inkwalk.limits import MAX_SEED, MAX_SIDE, MIN_SIDE, Labeler, Limits, RequestError, setting_label, shown_value
from inkwalk.settings_model import SettingsModel, context_of
from inkwalk.walk_settings import MAX_UPSCALE_FACTOR, SIZE_SCHEMA, WalkError, WalkSettings, parse_size


def _conclvd_size(value: Any) -> Any:
    """A ConCLVD frame size: as a walk's, plus a side given as digits (the CLI's ``--size 256``)."""
    return parse_size(int(value) if isinstance(value, str) and value.strip().isdigit() else value)


ConCLVDSide = Annotated[int, Field(ge=8, le=MAX_SIDE, multiple_of=8)]


class ConCLVDSettingsModel(SettingsModel):
    """Settings of a ConCLVD job: the keyword arguments of `inkwalk.conclvd.generate_video`."""

    limited_by: ClassVar[dict[str, str]] = {"frames": "max_video_frames", "steps": "max_steps",
                                            "negative_prompt": "max_prompt_chars"}
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
    # the names of inkwalk.conclvd.windows.WEIGHTINGS and inkwalk.conclvd.noise.NOISE_TYPES (torch-free here)
    weighting: Literal["pyramid", "flat"] = Field("pyramid", description="how overlapping windows' predictions "
                                                  "fuse: pyramid (a window's middle frames count most, FreeNoise) "
                                                  "or flat (all alike)")
    noise: Literal["shuffle_context", "random"] = Field("shuffle_context", description="initial noise: "
                                                        "shuffle_context (FreeNoise's rescheduling: later windows "
                                                        "reuse earlier noise frames, shuffled) or random (i.i.d.)")
    windowing: Literal["model", "motion"] = Field(
        "model", description='"model": each window is one model call (spread over replicas on a server); "motion": '
                             "FreeNoise's, one model call over all frames per step with windows inside the motion "
                             "modules (one process, memory grows with frames: the CLI's)")
    steps: int = Field(25, ge=1, le=1000, description="DDIM steps")
    guidance: float = Field(8.0, ge=0, le=30, description="classifier-free guidance scale")
    size: Annotated[tuple[ConCLVDSide, ConCLVDSide], WithJsonSchema(SIZE_SCHEMA)] = Field(
        (256, 256), description="frame size: WIDTHxHEIGHT, [width, height] or one side, multiples of 8")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="random seed: same seed, same video")

    _size = field_validator("size", mode="before")(_conclvd_size)

    @model_validator(mode="after")
    def _size_windows_and_schedule(self, info: ValidationInfo) -> Self:
        """The frame size within the configured limits; windows that fit the frames; a prompt schedule
        whose keys are frames of this video."""
        from inkwalk.conclvd.prompt_travel import schedule_problem
        from inkwalk.conclvd.windows import overlap_problem, resolve_windows, window_problem

        limits, label, _ = context_of(info)
        width, height = self.size
        if limits is not None:
            if max(self.size) > limits.max_size:
                raise RequestError(422, f"{label('size', self.size)}: each side must be at most {limits.max_size} "
                                        "(limit max_size)")
            if width * height > limits.max_output_pixels:
                raise RequestError(422, f"{label('size', self.size)}: {width}x{height} pixels per frame exceed the "
                                        f"limit of {limits.max_output_pixels} (limit max_output_pixels)")
        max_chars = limits.max_prompt_chars if limits is not None else 10_000
        window, overlap = resolve_windows(self.frames, self.window, self.overlap)
        for name, problem in (("window", window_problem(self.frames, window)),
                              ("overlap", overlap_problem(window, overlap)),
                              ("prompts", None if self.prompts is None else
                               schedule_problem(self.prompts, self.frames, max_chars))):
            if problem:
                raise RequestError(422, f"{label(name, getattr(self, name))}: {problem}")
        return self


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


def parse_walk_settings(user: Mapping[str, Any], defaults: Mapping[str, Any], limits: Limits, paintings: int,
                        label: Labeler = setting_label) -> WalkSettings:
    """The `WalkSettings` of a walk through `paintings` paintings, validated once, or a `RequestError`.

    `user` (the request's settings, or the CLI's options that were given) overrides `defaults`
    (the app's configured defaults, checked when the app was built), which override the preset's
    values. `label` names a value in messages (`option_labeler` for the CLI).
    """
    if not isinstance(user, Mapping):
        raise RequestError(422, f'settings must be a JSON object, e.g. {{"frames": 16, "hold": 1}}, '
                                f'got {shown_value(user)}')
    try:
        return WalkSettings.validated({**defaults, **user}, limits, label, paintings=paintings)
    except WalkError as exc:
        raise RequestError(422, str(exc)) from None


def parse_conclvd_settings(user: Mapping[str, Any], defaults: Mapping[str, Any], limits: Limits,
                           label: Labeler = setting_label) -> ConCLVDSettingsModel:
    """The settings of a ConCLVD job, validated once (`.model_dump()` gives `generate_video`'s keyword
    arguments), or a `RequestError` naming the first bad field and its allowed range."""
    if not isinstance(user, Mapping):
        raise RequestError(422, f"settings must be a JSON object, got {shown_value(user)}")
    return ConCLVDSettingsModel.validated({**defaults, **user}, limits, label)


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
