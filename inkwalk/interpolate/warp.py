"""Classical interpolation: cross-fade (`blend`) and bidirectional flow warping (`flow-warp`).

flow-warp, for a time ``t`` in (0, 1) between frames I0 and I1:
1. flows F01 and F10 in one batched call to the flow backend;
2. flows from the unknown frame back to both ends, by the linear-motion approximation of
   Super SloMo (Jiang et al. 2018): ``F_t0 = -(1-t) t F01 + t² F10`` and
   ``F_t1 = (1-t)² F01 - t (1-t) F10`` (exact for a uniform translation);
3. backward warping of I0 by F_t0 and I1 by F_t1 with `sharp` resampling: the mean of the
   bilinear and the bicubic sample. Bilinear resampling at a half-pixel offset averages two
   pixels, a blur that cost up to 1 dB on the real-video benchmark; bicubic alone keeps the
   detail but also the compression noise of the source, and lost to bilinear on the noisy
   clips; their mean is never more than 0.35 dB behind the better of the two on any clip
   (docs/sofp.md, "What each idea gained");
4. the time-weighted mix ``(1 - t) I0(t) + t I1(t)``.

The forward-backward occlusion weighting (Sundaram et al. 2010 / UnFlow) that flow-warp used
before is an option (`occlusions=True`): with DIS flow it flags flow noise more often than
real occlusions and lost 0.01-0.23 dB on every real clip, so it is off by default.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import cv2
import numpy as np

from inkwalk.errors import InkwalkError

from inkwalk.flow import FlowBackend

SAMPLINGS = ("sharp", "bilinear", "bicubic")


@lru_cache(maxsize=8)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    gx.setflags(write=False)
    gy.setflags(write=False)
    return gx, gy


def backward_warp(image: np.ndarray, flow: np.ndarray, sampling: str = "bilinear") -> np.ndarray:
    """``out(x) = image(x + flow(x))``, edges replicated; `flow` is ``2×H×W``.

    `sampling`: ``bilinear``, ``bicubic`` or ``sharp`` (the mean of both, see the module docstring).
    """
    gx, gy = _grid(flow.shape[1], flow.shape[2])
    mx, my = gx + flow[0], gy + flow[1]
    if sampling == "sharp":
        linear = cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        cubic = cv2.remap(image, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        if linear.dtype == np.float32:  # in place: cv2.addWeighted on float32 costs 3x both remaps
            linear += cubic
            linear *= np.float32(0.5)
            return linear
        return cv2.addWeighted(linear, 0.5, cubic, 0.5, 0.0)
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    mode = cv2.INTER_CUBIC if sampling == "bicubic" else cv2.INTER_LINEAR
    return cv2.remap(image, mx, my, mode, borderMode=cv2.BORDER_REPLICATE)


def occlusion(f01: np.ndarray, f10: np.ndarray) -> np.ndarray:
    """Float mask on frame 0's grid: 1 where its content is not visible in frame 1.

    Forward-backward consistency: the flow does not come back
    (``|F01 + F10(x + F01)|² > 0.01 (|F01|² + |F10(..)|²) + 0.5``) or leaves the picture.
    """
    h, w = f01.shape[1:]
    gx, gy = _grid(h, w)
    mx, my = gx + f01[0], gy + f01[1]
    bu = cv2.remap(f10[0], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    bv = cv2.remap(f10[1], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    u, v = f01[0], f01[1]
    err = np.square(u + bu) + np.square(v + bv)
    bound = 0.01 * (u * u + v * v + bu * bu + bv * bv) + 0.5
    outside = (mx < 0) | (mx > w - 1) | (my < 0) | (my > h - 1)
    return ((err > bound) | outside).astype(np.float32)


def intermediate_flows(f01: np.ndarray, f10: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Flows from time t to frames 0 and 1 (Super SloMo's linear approximation)."""
    f01, f10 = f01.astype(np.float32, copy=False), f10.astype(np.float32, copy=False)
    ft0 = f01 * np.float32(-(1.0 - t) * t)
    ft0 += f10 * np.float32(t * t)
    ft1 = f01 * np.float32((1.0 - t) ** 2)
    ft1 -= f10 * np.float32(t * (1.0 - t))
    return ft0, ft1


def check_pair(frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float]) -> list[float]:
    """Validate two same-size frames and times strictly inside (0, 1); the times as floats."""
    if frame0.shape != frame1.shape or frame0.ndim != 3 or frame0.shape[2] != 3:
        raise InkwalkError(f"two H×W×3 frames of one size are needed, got {frame0.shape} and {frame1.shape}")
    ts = [float(t) for t in times]
    if any(not 0.0 < t < 1.0 for t in ts):
        raise InkwalkError(f"interpolation times must lie strictly inside (0, 1), got {ts}")
    return ts


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Round and clip a float image to uint8."""
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


class Blend:
    """Cross-fade ``(1 - t) I0 + t I1``: the no-motion reference every method must beat."""

    name = "blend"

    def between(self, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float], **_) -> np.ndarray:
        ts = check_pair(frame0, frame1, times)
        a, b = frame0.astype(np.float32), frame1.astype(np.float32)
        return np.stack([to_uint8((1.0 - t) * a + t * b) for t in ts]) if ts else np.zeros((0, *frame0.shape), np.uint8)


class FlowWarp:
    """Bidirectional flow warping at any time t (see the module docstring).

    `sampling` and `occlusions` exist for the ablation in benchmarks/interpolation.py; the
    defaults are what measured best on real video.
    """

    name = "flow-warp"

    def __init__(self, backend: FlowBackend, sampling: str = "sharp", occlusions: bool = False):
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        self.backend, self.sampling, self.occlusions = backend, sampling, occlusions

    def bidirectional(self, frame0: np.ndarray, frame1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flows = self.backend.flow(np.stack([frame0, frame1]), np.stack([frame1, frame0]))
        return flows[0], flows[1]

    def between(self, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float], **_) -> np.ndarray:
        ts = check_pair(frame0, frame1, times)
        if not ts:
            return np.zeros((0, *frame0.shape), np.uint8)
        f01, f10 = self.bidirectional(frame0, frame1)
        occ = self.occlusion_masks(f01, f10)
        a, b = frame0.astype(np.float32), frame1.astype(np.float32)  # once per pair, not per time
        return np.stack([to_uint8(self.warp_at(a, b, f01, f10, t, occ)) for t in ts])

    def occlusion_masks(self, f01: np.ndarray, f10: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Both frames' occlusion masks when `occlusions` is on (once per pair), else None."""
        return (occlusion(f01, f10), occlusion(f10, f01)) if self.occlusions else None

    def warp_at(self, frame0: np.ndarray, frame1: np.ndarray, f01: np.ndarray, f10: np.ndarray, t: float,
                occ: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """The float32 frame at time t from both ends, their flows and `occlusion_masks`."""
        ft0, ft1 = intermediate_flows(f01, f10, t)
        i0 = backward_warp(frame0.astype(np.float32, copy=False), ft0, self.sampling)
        i1 = backward_warp(frame1.astype(np.float32, copy=False), ft1, self.sampling)
        if occ is None:
            return i0 + np.float32(t) * (i1 - i0)
        hidden_in_1 = backward_warp(occ[0], ft0)  # this I0 content has no match in I1
        hidden_in_0 = backward_warp(occ[1], ft1)  # this I1 content has no match in I0
        eps = 1e-3
        w0 = (1.0 - t) * ((1.0 - hidden_in_0) + eps)
        w1 = t * ((1.0 - hidden_in_1) + eps)
        alpha = (w1 / (w0 + w1))[..., None]
        return i0 + alpha * (i1 - i0)
