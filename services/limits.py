"""Request limits of the HTTP job API and the checks that turn a bad request into a 4xx.

Every check raises `RequestError(status, message)` whose message says what is wrong and how
to fix it; the ingress returns it as ``{"detail": message}``. Limits come from the Serve
config (`limits:` in an app's args), so an operator tunes them without touching code.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from inkwalk.errors import InkwalkError

IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "BMP": "bmp", "TIFF": "tiff"}


class RequestError(InkwalkError):
    """A request the API refuses; `status` is the HTTP code (400, 413, 415, 422)."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


@dataclass
class Limits:
    """What one request may ask for. Defaults suit the paper preset on a GPU cluster."""

    max_upload_bytes: int = 25 * 1024 * 1024  # per painting
    max_total_upload_bytes: int = 200 * 1024 * 1024
    max_pixels: int = 40_000_000  # per painting, width*height
    min_paintings: int = 2
    max_paintings: int = 32
    max_keyframes: int = 32  # ArtWalks m
    max_frames_per_segment: int = 128  # ArtWalks n
    max_hold_seconds: float = 10.0
    max_output_pixels: int = 2560 * 1440
    max_video_frames: int = 32  # ConCLVD frames before interpolation
    max_steps: int = 100  # ConCLVD DDIM steps
    max_size: int = 1024  # ConCLVD frame side
    max_prompt_chars: int = 500
    max_active_jobs: int = 8  # per ingress replica; more -> 503

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Limits":
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InkwalkError(f"unknown limit(s) {unknown} in the Serve config; known: {sorted(known)}")
        return cls(**data)


def decode_painting(name: str, data: bytes, limits: Limits) -> np.ndarray:
    """Check one uploaded painting (size, type, pixel count) and decode it to H×W×3 uint8."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if len(data) == 0:
        raise RequestError(400, f"painting {name!r} is empty (0 bytes)")
    if len(data) > limits.max_upload_bytes:
        raise RequestError(413, f"painting {name!r} is {len(data)} bytes; the limit is "
                                f"{limits.max_upload_bytes} bytes per painting: downscale or recompress it")
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format or "?"
            if fmt not in IMAGE_FORMATS:
                raise RequestError(415, f"painting {name!r} is {fmt}; accepted image types: "
                                        f"{', '.join(sorted(IMAGE_FORMATS.values()))}")
            w, h = im.size
            if w * h > limits.max_pixels:
                raise RequestError(413, f"painting {name!r} is {w}×{h} = {w * h} pixels; the limit is "
                                        f"{limits.max_pixels} pixels: downscale it")
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except UnidentifiedImageError:
        raise RequestError(415, f"painting {name!r} is not an image; accepted image types: "
                                f"{', '.join(sorted(IMAGE_FORMATS.values()))}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise RequestError(400, f"painting {name!r} is truncated or corrupt ({exc})") from None


def check_painting_file(name: str, store, rel: str, limits: Limits) -> None:
    """Check an uploaded painting in the store from its header alone: type, size, pixels, not empty.

    Nothing is decoded, so a small file that claims a huge picture costs nothing here.
    """
    from PIL import Image, UnidentifiedImageError

    size = store.size(rel)
    if not size:
        raise RequestError(400, f"painting {name!r} is empty (0 bytes)")
    try:
        with store.open_input(rel) as handle, Image.open(handle) as im:
            fmt, (w, h) = im.format or "?", im.size
    except UnidentifiedImageError:
        raise RequestError(415, f"painting {name!r} is not an image; accepted image types: "
                                f"{', '.join(sorted(IMAGE_FORMATS.values()))}") from None
    except Image.DecompressionBombError:
        raise RequestError(413, f"painting {name!r} claims more pixels than any painting needs "
                                f"(limit {limits.max_pixels}): downscale it") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise RequestError(400, f"painting {name!r} is truncated or corrupt ({exc})") from None
    if fmt not in IMAGE_FORMATS:
        raise RequestError(415, f"painting {name!r} is {fmt}; accepted image types: "
                                f"{', '.join(sorted(IMAGE_FORMATS.values()))}")
    if w * h > limits.max_pixels:
        raise RequestError(413, f"painting {name!r} is {w}×{h} = {w * h} pixels; the limit is "
                                f"{limits.max_pixels} pixels: downscale it")


def check_paintings_count(count: int, limits: Limits) -> None:
    if count < limits.min_paintings:
        raise RequestError(422, f"a walk needs at least {limits.min_paintings} paintings, got {count}: "
                                f"upload them as repeated 'paintings' form fields")
    if count > limits.max_paintings:
        raise RequestError(413, f"{count} paintings sent; the limit is {limits.max_paintings} per job: "
                                f"split the collection or render it with `inkwalk render`")


def check_total_upload(total: int, limits: Limits) -> None:
    if total > limits.max_total_upload_bytes:
        raise RequestError(413, f"the upload is {total} bytes in all; the limit is "
                                f"{limits.max_total_upload_bytes} bytes per job")


def _int_in(settings: dict, key: str, low: int, high: int) -> None:
    if key not in settings:
        return
    value = settings[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(422, f"setting {key!r} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise RequestError(422, f"setting {key!r} = {value} is out of range: allowed {low}..{high}")


def check_walk_settings(settings: dict, limits: Limits) -> None:
    """Frame counts and hold of an ArtWalks request, before WalkSettings checks the rest."""
    if not isinstance(settings, dict):
        raise RequestError(422, "settings must be a JSON object, e.g. {\"keyframes\": 4, \"frames\": 16}")
    _int_in(settings, "keyframes", 0, limits.max_keyframes)
    _int_in(settings, "frames", 0, limits.max_frames_per_segment)
    hold = settings.get("hold", 0)
    if not isinstance(hold, (int, float)) or isinstance(hold, bool) or not 0 <= hold <= limits.max_hold_seconds:
        raise RequestError(422, f"setting 'hold' must be a number of seconds in 0..{limits.max_hold_seconds}, "
                                f"got {hold!r}")


def check_walk_sizes(size: tuple[int, int], output_size: tuple[int, int], limits: Limits) -> None:
    """Walk size and output size (after `upscale`) within the pixel limit of a frame."""
    for name, (w, h) in (("size", size), ("output size (size after upscale)", output_size)):
        if w * h > limits.max_output_pixels:
            raise RequestError(422, f"{name} {w}×{h} exceeds the limit of {limits.max_output_pixels} "
                                    f"pixels per frame")


def check_prompt(prompt: str, limits: Limits) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise RequestError(422, "prompt is empty: describe the landscape to render")
    if len(prompt) > limits.max_prompt_chars:
        raise RequestError(422, f"prompt is {len(prompt)} characters; the limit is {limits.max_prompt_chars} "
                                f"(CLIP reads 77 tokens anyway): shorten it")


def check_conclvd_settings(settings: dict, limits: Limits) -> None:
    """Frame count, steps and size of a ConCLVD request."""
    if not isinstance(settings, dict):
        raise RequestError(422, "settings must be a JSON object, e.g. {\"frames\": 8, \"steps\": 25}")
    _int_in(settings, "frames", 2, limits.max_video_frames)
    _int_in(settings, "steps", 1, limits.max_steps)
    _int_in(settings, "seed", 0, 2**32 - 1)
    if "size" in settings:
        _int_in(settings, "size", 8, limits.max_size)
        if settings["size"] % 8:
            raise RequestError(422, f"setting 'size' must be a multiple of 8 (the VAE downsamples by 8), "
                                    f"got {settings['size']}")
    guidance = settings.get("guidance", 8.0)
    if not isinstance(guidance, (int, float)) or isinstance(guidance, bool) or not 0 <= guidance <= 30:
        raise RequestError(422, f"setting 'guidance' must be a number in 0..30, got {guidance!r}")
    if "negative_prompt" in settings and not isinstance(settings["negative_prompt"], str):
        raise RequestError(422, "setting 'negative_prompt' must be a string")
    check_prompt_length(settings.get("negative_prompt", ""), limits, "negative_prompt")


def check_prompt_length(text: str, limits: Limits, name: str) -> None:
    if len(text) > limits.max_prompt_chars:
        raise RequestError(422, f"{name} is {len(text)} characters; the limit is {limits.max_prompt_chars}")
