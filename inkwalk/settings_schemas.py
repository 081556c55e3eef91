"""The ConCLVD settings model and the one entry per app that validates a request's settings.

Each app has one settings model (`inkwalk.walk_settings.WalkSettings`, `ConCLVDSettingsModel`,
both `inkwalk.settings_model.SettingsModel`): the app's configured defaults merge under the
request's values and the model checks types, bounds and the configured `Limits` in one pass;
each refusal is one `RequestError` line.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Mapping

from pydantic import Field, ValidationInfo, model_validator
from typing_extensions import Self

from inkwalk.limits import MAX_SEED, MAX_SIDE, MIN_SIDE, Labeler, Limits, RequestError, setting_label, shown_value
from inkwalk.settings_model import SettingsModel, context_of
from inkwalk.walk_settings import MAX_UPSCALE_FACTOR, WalkError, WalkSettings


class ConCLVDSettingsModel(SettingsModel):
    """Settings of a ConCLVD job: the keyword arguments of `inkwalk.conclvd.generate_video`."""

    limited_by: ClassVar[dict[str, str]] = {"frames": "max_video_frames", "steps": "max_steps", "size": "max_size",
                                            "negative_prompt": "max_prompt_chars"}

    negative_prompt: str = Field("", max_length=10_000, description="what to steer away from")
    frames: int = Field(8, ge=2, le=256, description="N, frames sampled by diffusion (2N-1 after SOFP)")
    steps: int = Field(25, ge=1, le=1000, description="DDIM steps")
    guidance: float = Field(8.0, ge=0, le=30, description="classifier-free guidance scale")
    size: int = Field(256, ge=8, le=MAX_SIDE, multiple_of=8, description="square frame side, a multiple of 8")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="random seed: same seed, same video")

    @model_validator(mode="after")
    def _pixels_within_limits(self, info: ValidationInfo) -> Self:
        limits, label, _ = context_of(info)
        if limits is not None and self.size ** 2 > limits.max_output_pixels:
            raise RequestError(422, f"{label('size', self.size)}: {self.size}x{self.size} pixels per frame exceed "
                                    f"the limit of {limits.max_output_pixels} (limit max_output_pixels)")
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
