"""Frames too large for one network call, run as overlapping windows: the one tiling helper of inkwalk.

Two ways to put the windows' results back together, for two kinds of network:

- `run_cropped` (the Real-ESRGAN upscaler): every tile runs with `context` extra pixels on each
  side and only its core is kept. Exact when the context covers the network's receptive field.
- `run_blended` (FILM): windows share `overlap` pixels and are averaged with weights that ramp
  linearly across the overlap, so a network whose output depends on the whole window (FILM's
  flow pyramid) leaves no seam.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np


def tile_starts(length: int, tile: int) -> list[int]:
    """Start offsets of equal tiles covering `length`; the last one is pulled back to end flush.

    Equal tiles let every position of a frame batch run as one network call.
    """
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile))
    starts.append(length - tile)
    return starts


def run_cropped(run: Callable[[np.ndarray], np.ndarray], frames: np.ndarray, tile: int, context: int,
                scale: int, wrap: Callable[[list], Iterable] = iter) -> np.ndarray:
    """`run` (N×h×w×C -> N×(h·scale)×(w·scale)×C float) over N×H×W×C frames on `tile`-pixel tiles,
    each cut with `context` pixels around it (clipped at the frame's border), only its core kept.
    `wrap` wraps the list of tiles (e.g. a progress bar)."""
    n, h, w, _ = frames.shape
    s = scale
    out = None
    for y0, x0 in wrap([(y, x) for y in tile_starts(h, tile) for x in tile_starts(w, tile)]):
        y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
        cy0, cx0 = max(y0 - context, 0), max(x0 - context, 0)
        cy1, cx1 = min(y1 + context, h), min(x1 + context, w)
        part = run(np.ascontiguousarray(frames[:, cy0:cy1, cx0:cx1]))
        if out is None:
            out = np.empty((n, h * s, w * s, part.shape[-1]), np.float32)
        oy, ox = (y0 - cy0) * s, (x0 - cx0) * s
        out[:, y0 * s:y1 * s, x0 * s:x1 * s] = part[:, oy:oy + (y1 - y0) * s, ox:ox + (x1 - x0) * s]
    return out


def window_starts(total: int, tile: int, overlap: int) -> list[int]:
    """Window starts covering [0, total) with neighbours sharing at least `overlap` pixels."""
    if total <= tile:
        return [0]
    count = math.ceil((total - overlap) / (tile - overlap))
    return sorted({round(i * (total - tile) / (count - 1)) for i in range(count)})


def blend_ramp(start: int, length: int, total: int, overlap: int) -> np.ndarray:
    """1-D blending weight of a window: linear ramps over `overlap` on interior edges, else 1."""
    pos = np.arange(length, dtype=np.float32)
    weight = np.ones(length, np.float32)
    if start > 0:
        weight = np.minimum(weight, (pos + 1) / (overlap + 1))
    if start + length < total:
        weight = np.minimum(weight, (length - pos) / (overlap + 1))
    return weight


def run_blended(run: Callable[[int, int, int, int], np.ndarray], height: int, width: int, tile: int, overlap: int,
                wrap: Callable[[list], Iterable] = iter) -> np.ndarray:
    """`run(y, x, h, w)` (-> ...×h×w×C float) on windows of a height×width frame, blended into
    ...×height×width×C. `wrap` wraps the list of windows (e.g. a progress bar)."""
    windows = [(y, x, min(tile, height), min(tile, width))
               for y in window_starts(height, tile, overlap) for x in window_starts(width, tile, overlap)]
    out = None
    total = np.zeros((height, width, 1), np.float32)
    for y, x, h, w in wrap(windows):
        part = run(y, x, h, w)
        if out is None:
            out = np.zeros((*part.shape[:-3], height, width, part.shape[-1]), np.float32)
        weight = np.outer(blend_ramp(y, h, height, overlap), blend_ramp(x, w, width, overlap))[..., None]
        out[..., y:y + h, x:x + w, :] += part * weight
        total[y:y + h, x:x + w] += weight
    return out / total
