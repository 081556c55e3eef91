"""The settings of one ArtWalks render (WalkSettings), its presets, and the frame count they give.

Frame count of a collection of k paintings (see docs/artwalks.md):
``(k - 1)(m + 1)(n + 1) + 1 + k * round(hold * fps)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from inkwalk.errors import InkwalkError
from inkwalk.schedules import EASINGS, KEYFRAME_GRIDS
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


@dataclass(frozen=True)
class WalkSettings:
    """Everything that decides a walk's frames. `with_preset` fills backend defaults by name."""

    preset: str = "paper"
    keyframes: int = 5              # m: diffusion keyframes between two paintings
    frames: int = 24                # n: interpolated frames between two neighbouring frames
    weighting: str = "logit"        # logit | sinh | linear
    keyframe_grid: str = "interior"  # interior: t = i/(m+1) | release: t = i/m from 0 (the authors' release)
    scale: float = 15.0             # logit scale s
    easing: str = "s-curve"         # s-curve | release (the authors' release curve)
    strength: float = 1.0           # S-curve strength (0 = even spacing)
    hold: float = 0.0               # seconds each painting stays still
    fps: float = 24.0
    size: tuple[int, int] = (720, 720)   # (width, height) of the walk before upscaling
    upscale: str = "x2"             # "none", "xF" (factor) or "WxH" (exact)
    keyframer: str = "kandinsky"
    interpolator: str = "film"
    flow: str = "dis"
    upscaler: str = "realesrgan"
    seed: int = 0
    fit: str = "crop"               # crop | letterbox
    steps: int = 50                 # decoder denoising steps
    guidance: float = 4.0           # decoder classifier-free guidance
    batch: int = 4                  # keyframes / upscaled frames per model call

    @classmethod
    def with_preset(cls, preset: str = "paper", **overrides: Any) -> "WalkSettings":
        """Settings of a preset, with explicit overrides (None means "keep the preset's")."""
        if preset not in PRESETS:
            raise WalkError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
        settings = cls(preset=preset, **values)
        settings.validate()
        return settings

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "WalkSettings":
        """Settings from a JSON-like dict (``preset`` picks the defaults); bad values are WalkErrors."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise WalkError(f"unknown ArtWalks setting(s) {unknown}; known: {sorted(known)}")
        values = dict(values)
        if "size" in values:
            size = values["size"]
            try:
                values["size"] = (int(size), int(size)) if isinstance(size, int) else tuple(int(v) for v in size)
            except (TypeError, ValueError):
                raise WalkError(f"size must be [width, height], got {size!r}") from None
            if len(values["size"]) != 2:
                raise WalkError(f"size must be [width, height], got {size!r}")
        try:
            return cls.with_preset(values.pop("preset", "paper"), **values)
        except (TypeError, ValueError) as exc:
            raise WalkError(f"bad ArtWalks settings: {exc}") from None

    def validate(self) -> None:
        """Raise WalkError on a setting no walk can be rendered with."""
        checks = [
            (self.keyframes >= 0, f"keyframes must be >= 0, got {self.keyframes}"),
            (self.frames >= 0, f"frames per segment must be >= 0, got {self.frames}"),
            (self.hold >= 0, f"hold must be >= 0 seconds, got {self.hold}"),
            (self.fps > 0, f"fps must be positive, got {self.fps}"),
            (min(self.size) >= 16, f"size must be at least 16x16, got {self.size[0]}x{self.size[1]}"),
            (self.keyframer in KEYFRAMERS, f"unknown keyframer {self.keyframer!r}; choose one of: "
                                           f"{', '.join(KEYFRAMERS)}"),
            (self.interpolator in INTERPOLATORS, f"unknown interpolator {self.interpolator!r}; choose one "
                                                 f"of: {', '.join(INTERPOLATORS)}"),
            (self.upscaler in UPSCALERS, f"unknown upscaler {self.upscaler!r}; choose one of: "
                                         f"{', '.join(UPSCALERS)}"),
            (self.fit in ("crop", "letterbox"), f"fit must be crop or letterbox, got {self.fit!r}"),
            (self.easing in EASINGS, f"unknown easing {self.easing!r}; choose one of: {', '.join(EASINGS)}"),
            (self.keyframe_grid in KEYFRAME_GRIDS, f"unknown keyframe grid {self.keyframe_grid!r}; choose one of: "
                                                   f"{', '.join(KEYFRAME_GRIDS)}"),
            (self.keyframes == 0 or self.keyframer != "none",
             f"{self.keyframes} keyframes asked for but keyframer is 'none': use --keyframer kandinsky "
             "or --keyframes 0"),
            (self.steps >= 1, f"steps must be >= 1, got {self.steps}"),
            (self.batch >= 1, f"batch must be >= 1, got {self.batch}"),
        ]
        for ok, message in checks:
            if not ok:
                raise WalkError(message)
        if self.upscaler == "none" and self.output_size != tuple(self.size):
            raise WalkError(f"upscale {self.upscale!r} needs an upscaler: use --upscaler "
                            f"{' or '.join(UPSCALE_BACKENDS)}, "
                            "or --upscale none")

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
        d = {k: v for k, v in asdict(self).items() if k not in self.unused_fields()}
        for k in ("preset", "hold", "fps", "batch"):
            d.pop(k)
        d["output_size"] = list(self.output_size)
        return d

    def recorded(self) -> dict[str, Any]:
        """The settings a video records: those that did something (no upscaler when nothing was
        upscaled); the preset's values fill the rest back in (`with_preset`)."""
        unused = self.unused_fields() | ({"upscaler"} if self.output_size == tuple(self.size) else set())
        return {k: v for k, v in asdict(self).items() if k not in unused}


def walk_frame_count(paintings: int, settings: WalkSettings) -> int:
    """Frames in the video of a collection of `paintings` paintings (the documented formula)."""
    k, m, n = paintings, settings.keyframes, settings.frames
    return (k - 1) * (m + 1) * (n + 1) + 1 + k * settings.hold_frames
