"""Every pixel format Pillow opens, as 8-bit RGB: high bit depths scaled, transparency composited.

Pillow's own ``convert("RGB")`` clips integer and float images to 0..255, so a 16-bit greyscale
scan turns white. Here the deep modes are scaled by the range their values are stored in:

- ``I;16``, ``I;16L``, ``I;16B``, ``I;16N`` (16-bit, any byte order): ``v * 255 / 65535``.
- ``I`` (32-bit signed): negatives are black; values up to 65535 are read as 16-bit (how Pillow
  opens many 16-bit files), larger ones as 31-bit: ``v * 255 / (2**31 - 1)``.
- ``F`` (32-bit float): ``[0, 1]`` when every value lies there (the float convention), else
  ``0..255``; out-of-range values are clipped.

Every other mode (1, L, P, RGB, CMYK, YCbCr, LAB, HSV, ...) is converted by Pillow, whose
conversions are exact for 8-bit data. Transparent pixels (RGBA, LA, PA, P or L with a
transparent colour) are composited over `BACKGROUND`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

BACKGROUND = (255, 255, 255)  # what shows through transparent pixels: white, like paper
_SIXTEEN_BIT = 65535
_THIRTY_ONE_BIT = 2**31 - 1


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    """A greyscale array scaled to 0..1, as H×W×3 uint8 (rounded to the nearest level)."""
    levels = np.rint(np.clip(grey, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.repeat(levels[..., None], 3, axis=2)


def _deep_to_unit(im: Image.Image) -> np.ndarray:
    """The values of an ``I;16*``, ``I`` or ``F`` image scaled to 0..1, by the rules above."""
    values = np.asarray(im)
    if im.mode.startswith("I;16"):
        return values.astype(np.float64) / _SIXTEEN_BIT
    if im.mode == "I":
        top = _SIXTEEN_BIT if values.size == 0 or values.max() <= _SIXTEEN_BIT else _THIRTY_ONE_BIT
        return values.astype(np.float64) / top
    values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    in_unit_range = values.size == 0 or (values.min() >= 0.0 and values.max() <= 1.0)
    return values if in_unit_range else values / 255.0


def _has_transparency(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "RGBa", "LA", "PA") or "transparency" in im.info


def to_rgb8(im: Image.Image) -> np.ndarray:
    """An opened image's pixels as ``H×W×3`` uint8 RGB (no EXIF rotation: see `inkwalk.video`)."""
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        return _grey_to_rgb(_deep_to_unit(im))
    if _has_transparency(im):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        im = Image.alpha_composite(background, rgba)
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
