"""Sparse optical flow projection (SOFP), ConCLVD section 3.5, eq. 14.

For neighbouring frames I_t, I_{t+1} of a clip whose last frame is I_T, per pixel::

    D_t = ‖V(t→T)‖ cos θ / ‖V(t→t+1)‖ = (V(t→T) · V(t→t+1)) / ‖V(t→t+1)‖²

the long-range motion projected on the local one, in units of the local step. The paper does
not say how D_t builds the inserted frame; our reading (docs/sofp.md) uses it as a per-pixel
trust in the local motion: ``c = clip(D_t, 0, 1)``. Where the motion to the end of the clip
carries on at least one local step in the same direction (D_t >= 1) the local flow is real
motion and the pixel is flow-warped; where the long-range motion contradicts it (D_t <= 0:
jitter, flicker, an occlusion the flow mistook for motion) the pixel is cross-faded, which
cannot invent structure; in between, a mix. Zero local motion gives D_t = 0 (the epsilon in
the denominator), where warping and blending agree anyway. D_t is only used where V(t→T) is
itself measurable (I_T warped back along it matches I_t in grey); elsewhere the pixel is flow-warped.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from inkwalk.errors import InkwalkError

from inkwalk.flow import FlowBackend
from inkwalk.interpolate.warp import FlowWarp, backward_warp, check_pair, intermediate_flows, to_uint8

EPS = 1e-2  # px²: local motion under 0.1 px counts as none, so D_t stays finite
LONG_RANGE_MIN_SIDE = 64  # V(t→T) is computed at half size when that keeps at least this many px
MATCH_TOLERANCE = 3.0  # |grey| difference (of 255) under which V(t→T) is trusted (docs/sofp.md)


def projection_ratio(v_to_last: np.ndarray, v_local: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Eq. 14, ``D_t = (V(t→T) · V(t→t+1)) / (‖V(t→t+1)‖² + eps)`` for ``[N×]2×H×W`` flows."""
    v_to_last = np.asarray(v_to_last, dtype=np.float32)
    v_local = np.asarray(v_local, dtype=np.float32)
    axis = v_local.ndim - 3
    dot = (v_to_last * v_local).sum(axis)
    return dot / (np.square(v_local).sum(axis) + np.float32(eps))


class SOFP:
    """Flow-warp gated per pixel by the SOFP projection ratio D_t (see module docstring).

    `between(frame0, frame1, times, last=...)`: `last` is the clip's last frame (I_T); when it
    is omitted, or is `frame1` itself, V(t→T) = V(t→t+1) and no extra flow is computed.
    """

    name = "sofp"

    def __init__(self, backend: FlowBackend):
        self.backend = backend
        self.warp = FlowWarp(backend)

    def flow_to_last(self, frame0: np.ndarray, last: np.ndarray) -> np.ndarray:
        """V(t→T) at half resolution, brought back to full size and pixel units.

        D_t only gates warping against cross-fading, so the coarse long-range motion is
        enough, and the extra flow per pair costs a quarter of a full-size one.
        """
        h, w = frame0.shape[:2]
        if min(h, w) < 2 * LONG_RANGE_MIN_SIDE:
            return self.backend.flow(frame0, last)[0]
        size = (w // 2, h // 2)
        small = self.backend.flow(cv2.resize(frame0, size, interpolation=cv2.INTER_AREA),
                                  cv2.resize(last, size, interpolation=cv2.INTER_AREA))[0]
        u = cv2.resize(small[0], (w, h), interpolation=cv2.INTER_LINEAR) * (w / size[0])
        v = cv2.resize(small[1], (w, h), interpolation=cv2.INTER_LINEAR) * (h / size[1])
        return np.stack([u, v])

    @staticmethod
    def long_range_matches(frame0: np.ndarray, last: np.ndarray, v_to_last: np.ndarray) -> np.ndarray:
        """Pixels where V(t→T) is measurable: I_T brought back along it matches I_t.

        Far-apart frames often have no reliable flow (content left the picture, changed, or
        the search locked onto a repeated pattern); there D_t says nothing and the pixel keeps
        its local flow-warp.
        """
        grey_last = cv2.cvtColor(last, cv2.COLOR_RGB2GRAY).astype(np.float32)
        grey0 = cv2.cvtColor(frame0, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return np.abs(backward_warp(grey_last, v_to_last) - grey0) < MATCH_TOLERANCE

    def between(self, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float],
                last: np.ndarray | None = None) -> np.ndarray:
        ts = check_pair(frame0, frame1, times)
        if not ts:
            return np.zeros((0, *frame0.shape), np.uint8)
        to_last = last is not None and last is not frame1 and not np.array_equal(last, frame1)
        if last is not None and last.shape != frame0.shape:
            raise InkwalkError(f"the last frame has shape {last.shape}, the pair {frame0.shape}")
        f01, f10 = self.warp.bidirectional(frame0, frame1)
        if to_last:
            v_to_last = self.flow_to_last(frame0, last)
            trust = np.clip(projection_ratio(v_to_last, f01), 0.0, 1.0).astype(np.float32)
            trust = np.where(self.long_range_matches(frame0, last, v_to_last), trust, np.float32(1.0))
        else:
            trust = np.clip(projection_ratio(f01, f01), 0.0, 1.0).astype(np.float32)
        a, b = frame0.astype(np.float32), frame1.astype(np.float32)
        out = []
        for t in ts:
            warped = self.warp.warp_at(a, b, f01, f10, t)
            ft0, _ = intermediate_flows(f01, f10, t)
            c = backward_warp(trust, ft0)[..., None]  # trust of the I0 content landing here
            out.append(to_uint8(c * warped + (1.0 - c) * ((1.0 - t) * a + t * b)))
        return np.stack(out)
