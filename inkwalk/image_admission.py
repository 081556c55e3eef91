"""Image admission: an upload's bytes, format and pixels are checked from its header before any decode.

Nothing here decodes pixels before the image's header has passed `check_image`; a refused image
is one `RequestError` (400 corrupt, 413 too large, 415 not an accepted type).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Iterator, NamedTuple

import numpy as np
from PIL import Image

from inkwalk.limits import IMAGE_FORMATS, Limits, RequestError

# `check_image` bounds pixels from the header before any decode, so Pillow's warning about
# large images is noise; its DecompressionBombError (twice that size) is still caught below.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageHeader(NamedTuple):
    """What an image's header says: its format and its displayed size (EXIF rotation applied)."""

    format: str
    width: int
    height: int


ImageSource = bytes | BinaryIO | str | os.PathLike


def _label_of(source: ImageSource, name: str | None) -> str:
    if name is not None:
        return name
    return str(source) if isinstance(source, (str, os.PathLike)) else "image"


def _open(source: ImageSource, name: str):
    """A lazily opened PIL image (header read, no pixels), or the 4xx of why it cannot be opened."""
    from PIL import UnidentifiedImageError

    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    try:
        return Image.open(source)
    except FileNotFoundError:
        raise RequestError(400, f"painting {name!r}: file not found") from None
    except IsADirectoryError:
        raise RequestError(400, f"painting {name!r} is a folder, not an image file") from None
    except UnidentifiedImageError:
        raise RequestError(415, f"painting {name!r} is not an image; accepted image types: "
                                f"{', '.join(sorted(IMAGE_FORMATS.values()))}") from None
    except Image.DecompressionBombError:
        # Pillow refuses headers claiming more than 2 * Image.MAX_IMAGE_PIXELS
        raise RequestError(413, f"painting {name!r}: its header claims more than "
                                f"{2 * Image.MAX_IMAGE_PIXELS} pixels; the limit is far lower: downscale it") from None
    except Exception as exc:  # every decoder failure is the file's fault, never a 500
        raise RequestError(400, f"painting {name!r} is truncated or corrupt ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _displayed_size(im) -> tuple[int, int]:
    """Width and height after EXIF rotation, from the header only (PNG's getexif would decode)."""
    w, h = im.size
    if "exif" in im.info or im.format == "TIFF":
        try:
            if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                return h, w
        except Exception:  # an unreadable EXIF block: the decoder ignores it too
            pass
    return w, h


def image_header(source: ImageSource, name: str | None = None) -> ImageHeader:
    """Format and displayed size of an image from its header, without decoding a pixel.

    `source`: the file's bytes, a binary file object or a path. Corrupt, truncated or unknown
    data and decompression bombs become `RequestError`s (400, 415, 413).
    """
    with _open(source, _label_of(source, name)) as im:
        w, h = _displayed_size(im)
        return ImageHeader(im.format or "?", int(w), int(h))


def upscale_factor(width: int, height: int, size: tuple[int, int], fit: str = "crop") -> float:
    """How much fitting a width x height image to `size` enlarges it (crop covers, letterbox fits)."""
    sx, sy = size[0] / width, size[1] / height
    return max(sx, sy) if fit == "crop" else min(sx, sy)


def check_image(header: ImageHeader, limits: Limits, name: str, size: tuple[int, int] | None = None,
                fit: str = "crop") -> None:
    """Refuse an image by its header: type (415), pixels (413), aspect ratio and, given the walk
    `size`, how much fitting would enlarge it (422)."""
    fmt, w, h = header
    if fmt not in IMAGE_FORMATS:
        raise RequestError(415, f"painting {name!r} is {fmt}; accepted image types: "
                                f"{', '.join(sorted(IMAGE_FORMATS.values()))}")
    if w < 1 or h < 1:
        raise RequestError(400, f"painting {name!r} is empty ({w}x{h} pixels)")
    if w * h > limits.max_pixels:
        raise RequestError(413, f"painting {name!r} is {w}x{h} = {w * h} pixels; the limit is "
                                f"{limits.max_pixels} pixels: downscale it")
    ratio = max(w, h) / min(w, h)
    if ratio > limits.max_aspect_ratio:
        raise RequestError(422, f"painting {name!r} is {w}x{h}, an aspect ratio of {ratio:.0f}:1; the limit "
                                f"is {limits.max_aspect_ratio:g}:1: crop it to the part you want")
    if size is not None:
        factor = upscale_factor(w, h, size, fit)
        if factor > limits.max_upscale:
            raise RequestError(422, f"painting {name!r} is {w}x{h}: fitting it to {size[0]}x{size[1]} ({fit}) "
                                    f"would enlarge it {factor:.1f}x; the limit is {limits.max_upscale:g}x: "
                                    f"use a larger image or a smaller size")


def check_upload_size(name: str, length: int, limits: Limits) -> None:
    """Refuse an empty painting (400) or one over `max_upload_bytes` (413), by its length in bytes."""
    if length == 0:
        raise RequestError(400, f"painting {name!r} is empty (0 bytes)")
    if length > limits.max_upload_bytes:
        raise RequestError(413, f"painting {name!r} is {length} bytes; the limit is "
                                f"{limits.max_upload_bytes} bytes per painting: downscale or recompress it")


def _check_bytes(source: ImageSource, limits: Limits, name: str) -> None:
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.exists():
            raise RequestError(400, f"painting {name!r}: file not found")
        if p.is_dir():
            raise RequestError(400, f"painting {name!r} is a folder, not an image file")
        check_upload_size(name, p.stat().st_size, limits)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        check_upload_size(name, len(source), limits)
    # a stream: the caller bounds what it reads (`check_upload_size` with its length)


@contextlib.contextmanager
def _admitted(source: ImageSource, limits: Limits, name: str | None, size: tuple[int, int] | None,
              fit: str) -> Iterator[Any]:
    """The image opened once, its header checked, no pixel decoded yet."""
    label = _label_of(source, name)
    _check_bytes(source, limits, label)
    with _open(source, label) as im:
        w, h = _displayed_size(im)
        check_image(ImageHeader(im.format or "?", int(w), int(h)), limits, label, size, fit)
        yield im


def admit_image(source: ImageSource, limits: Limits, name: str | None = None,
                size: tuple[int, int] | None = None, fit: str = "crop") -> ImageHeader:
    """File size, header and `check_image`: everything short of decoding. Returns the header.

    A file object is read from its current position and left wherever Pillow stopped.
    """
    with _admitted(source, limits, name, size, fit) as im:
        return ImageHeader(im.format, *_displayed_size(im))


def decode_painting(name: str, data: ImageSource, limits: Limits, size: tuple[int, int] | None = None,
                    fit: str = "crop") -> np.ndarray:
    """`admit_image`, then decode to ``H×W×3`` uint8 RGB (EXIF rotation, transparency over white).

    `size`/`fit`: the walk size the painting will be fitted to, to bound the enlargement.
    Every decoder failure is a `RequestError`: an image whose header passed and whose pixels
    still fail to decode is truncated or corrupt (400).
    """
    from inkwalk.video import image_to_rgb

    with _admitted(data, limits, name, size, fit) as im:
        try:
            return image_to_rgb(im)
        except MemoryError:
            raise RequestError(413, f"painting {name!r} is too large to decode in this process's memory") from None
        except Exception as exc:
            raise RequestError(400, f"painting {name!r} is truncated or corrupt ({_reason(exc)})") from None
