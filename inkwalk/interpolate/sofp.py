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
the denominator), where warping and blending agree anyway.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from inkwalk.flow import FlowBackend
from inkwalk.interpolate.warp import FlowWarp, _check_pair, backward_warp, occlusion, intermediate_flows, to_uint8

EPS = 1e-2  # px²: local motion under 0.1 px counts as none, so D_t stays finite


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

    def between(self, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float],
                last: np.ndarray | None = None) -> np.ndarray:
        ts = _check_pair(frame0, frame1, times)
        if not ts:
            return np.zeros((0, *frame0.shape), np.uint8)
        to_last = last is not None and last is not frame1 and not np.array_equal(last, frame1)
        if last is not None and last.shape != frame0.shape:
            raise ValueError(f"the last frame has shape {last.shape}, the pair {frame0.shape}")
        sources, targets = [frame0, frame1], [frame1, frame0]
        if to_last:
            sources.append(frame0)
            targets.append(last)
        flows = self.backend.flow(np.stack(sources), np.stack(targets))
        f01, f10 = flows[0], flows[1]
        d = projection_ratio(flows[2] if to_last else f01, f01)
        trust = np.clip(d, 0.0, 1.0).astype(np.float32)
        occ0, occ1 = occlusion(f01, f10), occlusion(f10, f01)
        a, b = frame0.astype(np.float32), frame1.astype(np.float32)
        out = []
        for t in ts:
            warped = FlowWarp.warp_at(frame0, frame1, f01, f10, t, occ0, occ1)
            ft0, _ = intermediate_flows(f01, f10, t)
            c = backward_warp(trust, ft0)[..., None]  # trust of the I0 content landing here
            out.append(to_uint8(c * warped + (1.0 - c) * ((1.0 - t) * a + t * b)))
        return np.stack(out)
