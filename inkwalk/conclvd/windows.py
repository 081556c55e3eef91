"""Windows of a scroll: which latent frames each model call sees, and how their outputs are fused.

A video of `frames` latent frames is covered by windows of `window` frames whose starts are
`window - overlap` apart (FreeNoise's `context_stride`). Without `loop` the starts are
FreeNoise's (`0, stride, ...` while a whole window fits) plus one window flush with the end
when they leave a tail. With `loop` the frame indices wrap: windows start every `stride`
frames until the start reaches `frames`, and the last ones continue into frame 0, so the video
has no first or last frame. Each window weights its frames (`pyramid`: the window's middle
counts most, FreeNoise's eq. 9; `flat`: all alike); a frame's fused prediction is the weighted
mean of the predictions of the windows that contain it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from inkwalk.errors import InkwalkError

WEIGHTINGS = ("pyramid", "flat")
DEFAULT_WINDOW = 16   # AnimateDiff motion modules are trained on 16 frames
DEFAULT_OVERLAP = 4


@dataclass(frozen=True)
class WindowPlan:
    """The windows of one video (frame index lists) and each window's normalised per-frame weights."""

    frames: int
    window: int
    overlap: int
    loop: bool = False
    weighting: str = "pyramid"

    def __post_init__(self) -> None:
        check_windows(self.frames, self.window, self.overlap)
        if self.weighting not in WEIGHTINGS:
            raise InkwalkError(f"weighting {self.weighting!r}: choose one of {', '.join(WEIGHTINGS)}")

    @property
    def stride(self) -> int:
        return self.window - self.overlap

    def indices(self) -> list[list[int]]:
        """The latent frame indices of every window, in order."""
        if self.loop:
            return [[(start + j) % self.frames for j in range(self.window)]
                    for start in range(0, self.frames, self.stride)]
        starts = list(range(0, self.frames - self.window + 1, self.stride))
        if starts[-1] + self.window < self.frames:
            starts.append(self.frames - self.window)
        return [list(range(start, start + self.window)) for start in starts]

    def fusion_weights(self) -> list[torch.Tensor]:
        """Per window, float32 weights (one per frame) that sum to exactly 1 over the windows of each frame.

        A frame covered by one window gets weight 1.0, so a single window reproduces its prediction
        bit for bit.
        """
        windows = self.indices()
        raw = torch.tensor(frame_weights(self.window, self.weighting), dtype=torch.float32)
        totals = torch.zeros(self.frames, dtype=torch.float32)
        for frames in windows:
            totals.index_add_(0, torch.tensor(frames), raw)
        return [raw / totals[torch.tensor(frames)] for frames in windows]


def resolve_windows(frames: int, window: int | None = None, overlap: int | None = None) -> tuple[int, int]:
    """Window and overlap with their defaults filled in: 16 frames (AnimateDiff's trained length, at
    most the video), overlapping by 4 (less than the window)."""
    window = min(DEFAULT_WINDOW, frames) if window is None else window
    overlap = min(DEFAULT_OVERLAP, max(window - 1, 0)) if overlap is None else overlap
    return window, overlap


def window_problem(frames: int, window: int) -> str | None:
    """Why `window` cannot cover a video of `frames` frames, or None."""
    if window < 1:
        return f"window {window}: need at least one frame per window"
    if window > frames:
        return f"window {window} is larger than the video's {frames} frames: use at most {frames}"
    return None


def overlap_problem(window: int, overlap: int) -> str | None:
    """Why neighbouring windows cannot share `overlap` frames, or None."""
    if not 0 <= overlap < window:
        return f"overlap {overlap}: must be at least 0 and smaller than the window ({window} frames)"
    return None


def check_windows(frames: int, window: int, overlap: int) -> None:
    """One-line errors for a window layout that cannot cover the video."""
    problem = window_problem(frames, window) or overlap_problem(window, overlap)
    if problem:
        raise InkwalkError(problem)


def frame_weights(length: int, weighting: str = "pyramid") -> list[float]:
    """A window's weight per frame: `pyramid` 1, 2, .., middle, .., 2, 1 (FreeNoise eq. 9) or `flat` ones."""
    if weighting == "flat":
        return [1.0] * length
    if weighting != "pyramid":
        raise InkwalkError(f"weighting {weighting!r}: choose one of {', '.join(WEIGHTINGS)}")
    rising = list(range(1, (length + 1) // 2 + 1))
    return [float(w) for w in rising + rising[::-1][length % 2:]]
