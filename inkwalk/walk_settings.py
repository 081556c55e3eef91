"""The settings of one ArtWalks render (WalkSettings), its presets, and the frame count they give.

Frame count of a collection of k paintings (see docs/artwalks.md), with ``w = k - 1`` walks, or
``w = k`` when it loops back to the first painting: ``w(m + 1)(n + 1) + 1 + (w + 1) * round(hold * fps)``
(``(k - 1)(m + 1)(n + 1) + 1 + k * round(hold * fps)`` without `loop`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, Mapping

from pydantic import Field, ValidationInfo, WithJsonSchema, field_validator, model_validator
from typing_extensions import Self

from inkwalk.errors import InkwalkError
from inkwalk.flow import FLOW_BACKENDS
from inkwalk.limits import MAX_SEED, MAX_SIDE, MIN_SIDE, Labeler, Limits, RequestError, setting_label
from inkwalk.schedules import EASINGS, KEYFRAME_GRIDS, MAX_STRENGTH, WEIGHTINGS
from inkwalk.settings_model import SettingsModel, context_of
from inkwalk.upscale import BACKENDS as UPSCALE_BACKENDS

PRESETS: dict[str, dict[str, Any]] = {
    # Kandinsky 2.2 keyframes + FILM + Real-ESRGAN, as in the paper (needs weights).
    "paper": dict(keyframes=5, frames=24, keyframer="kandinsky", interpolator="film",
                  upscaler="realesrgan", upscale="x2"),
    # No diffusion, flow-warp with OpenCV DIS, Lanczos: runs anywhere with no weights.
    "offline": dict(keyframes=0, frames=24, keyframer="none", interpolator="flow-warp",
                    upscaler="lanczos", upscale="none"),
    # The authors' released pacing (full_pipeline.sh with their own runs' S=5, I=10 s, F=10 s): sinh
    # weights on their keyframe grid, their easing, 10 s (300 frames at 30 fps) per segment, 10 s holds.
    "release": dict(keyframes=5, frames=299, keyframer="kandinsky", interpolator="film", upscaler="realesrgan",
                    upscale="x2", weighting="sinh", keyframe_grid="release", easing="release", fps=30.0,
                    hold=10.0),
}
KEYFRAMERS = ("kandinsky", "none")
INTERPOLATORS = ("film", "flow-warp", "blend")
UPSCALERS = (*UPSCALE_BACKENDS, "none")


class WalkError(InkwalkError):
    """Bad walk settings or inputs (too few paintings, impossible sizes, unknown backends)."""


def parse_size(value: Any) -> Any:
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


class WalkSettings(SettingsModel):
    """Everything that decides a walk's frames; fields left out take the `preset`'s value.

    `WalkSettings.validated(data, limits, label, paintings=k)` is the one check of a request (HTTP
    body, CLI options, Serve config defaults); constructing it directly checks everything but the limits.
    """

    allowed_text: ClassVar[dict[str, str]] = {
        "size": f"WIDTHxHEIGHT, [width, height] or one integer (square), each side {MIN_SIDE}..{MAX_SIDE}",
        "upscale": f"none, xF (a factor, 0 < F <= {MAX_UPSCALE_FACTOR:g}) or WIDTHxHEIGHT",
    }
    limited_by: ClassVar[dict[str, str]] = {
        "keyframes": "max_keyframes", "frames": "max_frames_per_segment", "hold": "max_hold_seconds",
        "fps": "max_fps", "steps": "max_steps", "batch": "max_batch"}

    preset: Literal[tuple(PRESETS)] = Field(
        "paper", description="paper: Kandinsky 2.2 keyframes + FILM + Real-ESRGAN (needs weights); offline: no "
                             "keyframes, flow-warp with DIS, no upscaling (no weights); release: the paper's models "
                             "at the authors' released pacing (30 fps, 10 s segments and holds)")
    keyframes: int = Field(5, ge=0, le=256, description="m: diffusion keyframes between two paintings")
    frames: int = Field(24, ge=0, le=1024, description="n: interpolated frames between neighbouring frames")
    weighting: Literal[WEIGHTINGS] = Field("logit", description="embedding weighting")
    keyframe_grid: Literal[KEYFRAME_GRIDS] = Field(
        "interior", description="keyframe times: interior t=i/(m+1), or release t=i/m from 0")
    scale: float = Field(15.0, gt=0, le=1000, description="logit weighting scale s")
    easing: Literal[EASINGS] = Field("s-curve", description="frame timing curve: s-curve, or the authors' release")
    strength: float = Field(1.0, ge=0, le=MAX_STRENGTH, description="S-curve easing strength, 0 = even spacing")
    hold: float = Field(0.0, ge=0, le=3600, description="seconds each painting stays still")
    fps: float = Field(24.0, ge=1, le=240, description="frames per second")
    size: Annotated[tuple[Side, Side], WithJsonSchema(SIZE_SCHEMA)] = Field(
        (720, 720), description="walk size before upscaling: WIDTHxHEIGHT, [width, height] or one side")
    upscale: str = Field("x2", pattern=UPSCALE_PATTERN,
                         description="output size: none, xF (a factor) or WIDTHxHEIGHT (exact)")
    keyframer: Literal[KEYFRAMERS] = Field("kandinsky", description="keyframe backend")
    interpolator: Literal[INTERPOLATORS] = Field("film", description="interpolation backend")
    flow: Literal[FLOW_BACKENDS] = Field("dis", description="optical flow of flow-warp")
    upscaler: Literal[UPSCALERS] = Field(
        "realesrgan", description="super-resolution backend (realesrgan-compact: realesr-animevideov3, fast on CPU)")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="keyframe seed")
    fit: Literal["crop", "letterbox"] = Field("crop", description="how paintings fit the size")
    steps: int = Field(50, ge=1, le=1000, description="decoder denoising steps")
    guidance: float = Field(4.0, ge=0, le=30, description="decoder classifier-free guidance")
    batch: int = Field(4, ge=1, le=256, description="keyframes / upscaled frames per model call")
    loop: bool = Field(False, description="walk from the last painting back to the first (k walks, not k-1): "
                                          "the video starts and ends on the first painting")

    @model_validator(mode="before")
    @classmethod
    def _preset_defaults(cls, data: Any) -> Any:
        """The preset's values under the given ones (an unknown preset is left for its type to refuse)."""
        preset = data.get("preset", "paper") if isinstance(data, Mapping) else None
        return {**PRESETS[preset], **data} if isinstance(preset, str) and preset in PRESETS else data

    _size = field_validator("size", mode="before")(parse_size)

    @field_validator("upscale", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("upscale")
    @classmethod
    def _factor_in_range(cls, value: str) -> str:
        if value.startswith("x") and not 0 < float(value[1:]) <= MAX_UPSCALE_FACTOR:
            raise ValueError("upscale factor out of range")
        if "x" in value[1:] and 0 in parse_size(value):  # found by the property test: '0x0' reached output_size
            raise ValueError("upscale size has a zero side")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """Settings no walk can be rendered with (a WalkError passes through pydantic as is)."""
        if self.keyframes and self.keyframer == "none":
            raise WalkError(f"{self.keyframes} keyframes asked for but keyframer is 'none': use --keyframer "
                            "kandinsky or --keyframes 0")
        if self.upscaler == "none" and self.output_size != tuple(self.size):
            raise WalkError(f"upscale {self.upscale!r} needs an upscaler: use --upscaler "
                            f"{' or '.join(UPSCALE_BACKENDS)}, or --upscale none")
        return self

    @model_validator(mode="after")
    def _job_within_limits(self, info: ValidationInfo) -> Self:
        """Pixels per frame and, given ``paintings`` in the context, the collection and its total frames."""
        limits, label, context = context_of(info)
        if limits is None:
            return self
        check_walk_sizes(tuple(self.size), self.output_size, limits, self.upscale, label)
        paintings = context.get("paintings")
        if paintings is None:
            return self
        check_paintings_count(paintings, limits)
        total = walk_frame_count(paintings, self)
        if total > limits.max_output_frames:
            raise RequestError(413, f"this walk would render {total} frames (w(m+1)(n+1)+1+(w+1)*round(hold*fps) "
                                    f"with w={walk_count(paintings, self)} walks, m={self.keyframes}, n={self.frames}, "
                                    f"hold={self.hold:g}, fps={self.fps:g}); the limit is {limits.max_output_frames} frames per job "
                                    f"(limit max_output_frames)")
        return self

    def with_changes(self, **changes: Any) -> "WalkSettings":
        """A copy with `changes`, validated again (unlike `model_copy`, which trusts them)."""
        return WalkSettings(**{**self.model_dump(), **changes})

    @property
    def hold_frames(self) -> int:
        """Extra copies of each painting: ``round(hold * fps)``."""
        return int(round(self.hold * self.fps))

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the video: `size` after the `upscale` rule."""
        from inkwalk.upscale import parse_size

        text = str(self.upscale).strip().lower()
        w, h = self.size
        if text in ("none", "", "x1"):
            return (w, h)
        if text.startswith("x"):
            try:
                factor = float(text[1:])
            except ValueError:
                factor = 0.0
            if factor <= 0:
                raise WalkError(f"upscale factor must look like x2 or x4, got {self.upscale!r}")
            return (int(round(w * factor)), int(round(h * factor)))
        return parse_size(text)

    def unused_fields(self) -> set[str]:
        """Settings that change nothing in this walk: no keyframes, no diffusion settings; no
        flow-warp, no flow."""
        unused = set()
        if self.keyframes == 0:
            unused |= {"weighting", "keyframe_grid", "scale", "keyframer", "seed", "steps", "guidance"}
        if self.interpolator != "flow-warp":
            unused.add("flow")
        return unused

    def cache_fields(self) -> dict[str, Any]:
        """The settings that change a walk's pixels (hold and fps only change the assembly)."""
        d = {k: v for k, v in self.model_dump().items() if k not in self.unused_fields()}
        for k in ("preset", "hold", "fps", "batch", "loop"):
            d.pop(k)
        d["output_size"] = list(self.output_size)
        return d

    def recorded(self) -> dict[str, Any]:
        """The settings a video records: those that did something (no upscaler when nothing was
        upscaled); the model fills the rest back in from the preset."""
        unused = self.unused_fields() | ({"upscaler"} if self.output_size == tuple(self.size) else set())
        return {k: v for k, v in self.model_dump().items() if k not in unused}


def walk_count(paintings: int, settings: WalkSettings) -> int:
    """Walks of a collection: ``k - 1``, or ``k`` when it loops back to the first painting."""
    return paintings - 1 + int(settings.loop)


def walk_frame_count(paintings: int, settings: WalkSettings) -> int:
    """Frames in the video of a collection of `paintings` paintings (the documented formula)."""
    w, m, n = walk_count(paintings, settings), settings.keyframes, settings.frames
    return w * (m + 1) * (n + 1) + 1 + (w + 1) * settings.hold_frames


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
