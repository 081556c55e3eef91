"""PNG bytes to and from numpy images, in memory: contact-sheet rows in the store, previews over HTTP."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an H×W×3 uint8 image (store entries and HTTP responses)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """The H×W×3 uint8 RGB image of PNG (or any PIL-readable) bytes."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB")).copy()
