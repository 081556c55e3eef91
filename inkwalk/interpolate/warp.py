"""Classical interpolation: cross-fade (`blend`) and bidirectional flow warping (`flow-warp`).

flow-warp, for a time ``t`` in (0, 1) between frames I0 and I1:
1. flows F01 and F10 in one batched call to the flow backend;
2. flows from the unknown frame back to both ends, by the linear-motion approximation of
   Super SloMo (Jiang et al. 2018): ``F_t0 = -(1-t) t F01 + t² F10`` and
   ``F_t1 = (1-t)² F01 - t (1-t) F10`` (exact for a uniform translation);
3. backward warping of I0 by F_t0 and I1 by F_t1 (``cv2.remap``, bilinear);
4. occlusion from forward-backward consistency (Sundaram et al. 2010 / UnFlow): a pixel of I0
   whose flow does not come back (``|F01 + F10(x + F01)|² > 0.01 (|F01|² + |F10(..)|²) + 0.5``)
   or leaves the picture is not visible in I1, and vice versa; each warped sample is weighted by
   its time weight (``1 - t`` or ``t``) times the visibility of its content in the other frame.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import cv2
import numpy as np

from inkwalk.errors import InkwalkError

from inkwalk.flow import FlowBackend


@lru_cache(maxsize=8)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    gx.setflags(write=False)
    gy.setflags(write=False)
    return gx, gy


def backward_warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``out(x) = image(x + flow(x))``, bilinear, edges replicated; `flow` is ``2×H×W``."""
    gx, gy = _grid(flow.shape[1], flow.shape[2])
    return cv2.remap(image, gx + flow[0], gy + flow[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def occlusion(f01: np.ndarray, f10: np.ndarray) -> np.ndarray:
    """Float mask on frame 0's grid: 1 where its content is not visible in frame 1."""
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
    ft0 = -(1.0 - t) * t * f01 + t * t * f10
    ft1 = (1.0 - t) ** 2 * f01 - t * (1.0 - t) * f10
    return ft0.astype(np.float32), ft1.astype(np.float32)


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
    """Bidirectional, occlusion-aware flow warping at any time t (see the module docstring)."""

    name = "flow-warp"

    def __init__(self, backend: FlowBackend):
        self.backend = backend

    def bidirectional(self, frame0: np.ndarray, frame1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flows = self.backend.flow(np.stack([frame0, frame1]), np.stack([frame1, frame0]))
        return flows[0], flows[1]

    def between(self, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float], **_) -> np.ndarray:
        ts = check_pair(frame0, frame1, times)
        if not ts:
            return np.zeros((0, *frame0.shape), np.uint8)
        f01, f10 = self.bidirectional(frame0, frame1)
        occ0, occ1 = occlusion(f01, f10), occlusion(f10, f01)
        return np.stack([to_uint8(self.warp_at(frame0, frame1, f01, f10, t, occ0, occ1)) for t in ts])

    @staticmethod
    def warp_at(frame0: np.ndarray, frame1: np.ndarray, f01: np.ndarray, f10: np.ndarray, t: float,
                occ0: np.ndarray | None = None, occ1: np.ndarray | None = None) -> np.ndarray:
        """The float32 frame at time t from both ends and their flows."""
        occ0 = occlusion(f01, f10) if occ0 is None else occ0
        occ1 = occlusion(f10, f01) if occ1 is None else occ1
        ft0, ft1 = intermediate_flows(f01, f10, t)
        i0 = backward_warp(frame0.astype(np.float32), ft0)
        i1 = backward_warp(frame1.astype(np.float32), ft1)
        hidden_in_1 = backward_warp(occ0, ft0)  # this I0 content has no match in I1
        hidden_in_0 = backward_warp(occ1, ft1)  # this I1 content has no match in I0
        eps = 1e-3
        w0 = (1.0 - t) * ((1.0 - hidden_in_0) + eps)
        w1 = t * ((1.0 - hidden_in_1) + eps)
        alpha = (w1 / (w0 + w1))[..., None]
        return i0 + alpha * (i1 - i0)

