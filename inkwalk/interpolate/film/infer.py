"""Running FILM on uint8 frames: any size (padding), any times (batched), low memory (tiling).

- **Padding**: the network needs H and W divisible by `FilmConfig.multiple` (64 for Style). As in
  the official ``eval/interpolator.py``, frames are padded evenly on both sides and the result is
  cropped back to the exact input size and position; unlike it, the padding repeats the edge
  pixels instead of adding black, so content moving towards a border is not blended with black
  (and a tile at the frame's edge sees the same padding as the whole frame).
- **Times**: features and flows are computed once per pair; each time only re-warps and fuses,
  `batch_size` times per batch.
- **Precision**: `dtype` float16/bfloat16 runs under ``torch.autocast`` (warping stays float32).
- **Tiling** (`tile` pixels, `overlap` pixels shared by neighbours, default ``tile // 4``): windows
  run independently and are blended with weights that ramp linearly across the overlap, so there
  are no seams. With ``tile=None`` the whole frame runs at once and, if the device runs out of
  memory, again in windows of half the size, and so on down to `MIN_AUTO_TILE` (with a
  RuntimeWarning naming the tile size it settled on). A window sees
  only its own content: motions larger than about the overlap near a window edge are not
  recovered as well as untiled; use the largest tile memory allows.
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from inkwalk.errors import InkwalkError
from inkwalk.interpolate.film.net import FilmNet
from inkwalk.progress import progress
from inkwalk.tiling import run_blended

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
           "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
MIN_AUTO_TILE = 256  # smallest window the out-of-memory fallback tries


class FilmInputError(InkwalkError):
    """Frames, times or options that FILM cannot work with."""


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``N×C×H×W`` evenly on both sides, repeating edges, up to multiples of `multiple`.

    Returns the padded tensor and the (top, left) offset of the original in it.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    top, left = pad_h // 2, pad_w // 2
    if not pad_h and not pad_w:
        return x, (0, 0)
    return F.pad(x, (left, pad_w - left, top, pad_h - top), mode="replicate"), (top, left)


def _resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        if dtype.lower() not in _DTYPES:
            raise FilmInputError(f"unknown FILM dtype {dtype!r}; use one of {sorted(_DTYPES)}")
        return _DTYPES[dtype.lower()]
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise FilmInputError(f"FILM runs in float32, float16 or bfloat16, not {dtype}")
    return dtype


def _check(frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float]) -> list[float]:
    for frame in (frame0, frame1):
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise FilmInputError("FILM needs uint8 H×W×3 RGB frames, got "
                                 f"{getattr(frame, 'dtype', type(frame))} {getattr(frame, 'shape', '')}")
    if frame0.shape != frame1.shape:
        raise FilmInputError(f"FILM needs two frames of one size, got {frame0.shape} and {frame1.shape}")
    ts = [float(t) for t in times]
    if any(not (0.0 <= t <= 1.0) for t in ts):
        raise FilmInputError(f"FILM times must lie in [0, 1], got {ts}")
    return ts


def _window(model: FilmNet, x0: torch.Tensor, x1: torch.Tensor, times: torch.Tensor, batch_size: int) -> torch.Tensor:
    """FILM on one 1×3×h×w window (any h, w) at every time: T×3×h×w float in [0, 1]."""
    height, width = x0.shape[-2:]
    p0, (top, left) = pad_to_multiple(x0, model.config.multiple)
    p1, _ = pad_to_multiple(x1, model.config.multiple)
    state = model.encode(p0, p1)
    out = [model.decode(state, times[i:i + batch_size]) for i in range(0, len(times), batch_size)]
    return torch.cat(out)[:, :, top:top + height, left:left + width].float().clamp_(0.0, 1.0)


def _blend_windows(model: FilmNet, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, tile: int | None,
                   overlap: int | None, batch_size: int) -> np.ndarray:
    """All times for the whole frame, in one window or blended tiles: T×H×W×3 float in [0, 1]."""
    height, width = x0.shape[-2:]
    if tile is None or (height <= tile and width <= tile):
        return _window(model, x0, x1, t, batch_size).permute(0, 2, 3, 1).cpu().numpy()
    overlap = tile // 4 if overlap is None else overlap
    if tile < 8 or not 0 <= overlap < tile:
        raise FilmInputError(f"FILM tiling needs tile >= 8 and 0 <= overlap < tile, got tile={tile}, "
                             f"overlap={overlap}")
    run = lambda y, x, h, w: _window(model, x0[..., y:y + h, x:x + w], x1[..., y:y + h, x:x + w], t,  # noqa: E731
                                     batch_size).permute(0, 2, 3, 1).cpu().numpy()
    return run_blended(run, height, width, tile, overlap,
                       wrap=lambda windows: progress(windows, desc="FILM tiles", unit="tile"))


def interpolate_pair(model: FilmNet, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float],
                     tile: int | None = None, device: str | torch.device | None = None,
                     dtype: torch.dtype | str | None = None, *, overlap: int | None = None,
                     batch_size: int = 8) -> np.ndarray:
    """Frames at `times` between two uint8 H×W×3 frames: ``len(times)×H×W×3`` uint8.

    `tile`: window side in pixels (None: the whole frame, falling back to halving tiles down to
    `MIN_AUTO_TILE` if the device runs out of memory); `overlap`: pixels shared by neighbouring
    windows (default ``tile // 4``); `device`: moves the model there (default: where it is);
    `dtype`: float16/bfloat16 autocast (None: float32); `batch_size`: times fused per batch.
    """
    ts = _check(frame0, frame1, times)
    height, width = frame0.shape[:2]
    if not ts:
        return np.zeros((0, height, width, 3), np.uint8)
    if batch_size < 1:
        raise FilmInputError(f"batch_size must be >= 1, got {batch_size}")
    if device is not None:
        model.to(device)
    param = next(model.parameters())
    dev = param.device
    run_dtype = _resolve_dtype(dtype)
    autocast = torch.autocast(dev.type, dtype=run_dtype) if run_dtype != torch.float32 else nullcontext()
    # Inputs in the weights' dtype, so a model converted with .half() also works without autocast.
    x0 = (torch.from_numpy(frame0).to(dev).permute(2, 0, 1)[None].float() / 255.0).to(param.dtype)
    x1 = (torch.from_numpy(frame1).to(dev).permute(2, 0, 1)[None].float() / 255.0).to(param.dtype)
    t = torch.tensor(ts, dtype=torch.float32, device=dev)
    auto = tile is None
    while True:
        try:
            with torch.inference_mode(), autocast:
                out = _blend_windows(model, x0, x1, t, tile, overlap, batch_size)
            break
        except torch.OutOfMemoryError as exc:
            side = tile or max(height, width)
            if not auto or side <= MIN_AUTO_TILE:
                raise FilmInputError(
                    f"FILM ran out of {dev.type} memory on {side}-pixel windows of a {width}×{height} frame; "
                    "pass a smaller tile=, a smaller batch_size=, or dtype='fp16'/'bf16'") from exc
            tile = max(MIN_AUTO_TILE, side // 2)
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    if auto and tile is not None:
        # the same text for every pair of a walk, so Python's warning filter shows it once
        warnings.warn(f"FILM ran out of {dev.type} memory on whole {width}×{height} frames and fell back to "
                      f"{tile}-pixel tiles (overlap {tile // 4 if overlap is None else overlap}); motions larger "
                      "than the overlap near tile edges are recovered less well. Pass tile= to choose the size.",
                      RuntimeWarning, stacklevel=2)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
