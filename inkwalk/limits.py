"""What one job may ask for (`Limits`), and the one-line refusals every check raises (`RequestError`).

Shared by the CLI (`Limits.cli()`) and the HTTP apps (the `limits:` of their Serve args), so both
refuse the same inputs with the same one-line messages. Every refusal is a `RequestError`
carrying an HTTP status: 400 (corrupt input), 413 (too large: uploads, pixels, a job's total
frames), 415 (not an accepted image type) or 422 (a setting out of its range or of the wrong
type). Settings are checked in inkwalk.settings_schemas, images in inkwalk.image_admission;
nothing renders: every check costs microseconds to milliseconds.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Callable, Mapping

from pydantic import Field

from inkwalk.config_model import ConfigModel
from inkwalk.errors import InkwalkError

Count = Annotated[int, Field(ge=0, strict=True)]  # no 2.5, no "3", no true
Amount = Annotated[float, Field(ge=0)]
IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "BMP": "bmp", "TIFF": "tiff"}
MIN_SIDE = 16          # smallest walk frame side
MAX_SIDE = 16384       # outer bound of any frame side; `Limits.max_output_pixels` is the real one
MAX_SEED = 2**32 - 1
MAX_SHOWN = 60         # characters of a bad value echoed in a message


class RequestError(InkwalkError):
    """A request the limits refuse; `status` is its HTTP code (400, 413, 415 or 422).

    The message is one line that names what is wrong (the field or the file) and what is
    allowed; the CLI prints it as is, the HTTP apps answer ``{"detail": message}``.
    """

    def __init__(self, status: int, message: str):
        self.status = int(status)
        super().__init__(" ".join(str(message).split()))

    def __reduce__(self):
        # Ray ships exceptions between processes with pickle, which replays the constructor.
        return type(self), (self.status, str(self))


class Limits(ConfigModel):
    """What one request may ask for. Defaults suit the HTTP apps on a GPU cluster; `cli()` a workstation."""

    # uploaded / input images
    max_upload_bytes: Count = 25 * 1024 * 1024  # per painting (file size)
    max_total_upload_bytes: Count = 200 * 1024 * 1024
    max_pixels: Count = 40_000_000  # per painting, width*height, read from the header
    max_aspect_ratio: Amount = 32.0  # long side / short side of a painting
    max_upscale: Amount = 16.0  # how much fitting a painting to the walk size may enlarge it
    min_paintings: Count = 2
    max_paintings: Count = 32
    # ArtWalks
    max_keyframes: Count = 32  # m
    max_frames_per_segment: Count = 128  # n
    max_hold_seconds: Amount = 10.0
    max_fps: Amount = 60.0
    max_output_pixels: Count = 2560 * 1440  # per frame, walk size and output size (after upscale)
    max_output_frames: Count = 10_000  # per job: (k-1)(m+1)(n+1) + 1 + k*round(hold*fps)
    max_batch: Count = 16  # frames per model call
    # ConCLVD
    max_video_frames: Count = 64  # N latent frames, before interpolation (windows of 16 keep memory flat)
    max_steps: Count = 100  # denoising steps (ConCLVD DDIM, Kandinsky decoder)
    max_size: Count = 1024  # frame side
    max_prompt_chars: Count = 500
    # service
    max_active_jobs: Count = 8  # per ingress replica; more -> 503

    @classmethod
    def cli(cls) -> "Limits":
        """Workstation limits for the `inkwalk` command: larger than the HTTP defaults, never absurd.

        Each bound keeps one run within a machine's memory and a human's patience: 8K frames,
        about 2.3 hours of 24 fps video, 120-megapixel paintings.
        """
        return cls(max_upload_bytes=1024**3, max_pixels=120_000_000, max_upscale=64.0, max_paintings=256,
                   max_keyframes=64, max_frames_per_segment=512, max_hold_seconds=600.0, max_fps=240.0,
                   max_output_pixels=7680 * 4320, max_output_frames=200_000, max_batch=64, max_steps=1000,
                   max_size=2048, max_prompt_chars=2000, max_video_frames=1024)


# ----------------------------------------------------------------------------- messages

Labeler = Callable[[str, Any], str]


def shown_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "..."


def number_text(x: float) -> str:
    """A bound as people write it: 4294967295, 0.5, 60 (never 4.29497e+09 or 60.0)."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def setting_label(name: str, value: Any) -> str:
    """How the HTTP apps name a value: ``setting 'fps' = 1000``."""
    return f"setting {name!r} = {shown_value(value)}"


def option_labeler(options: Mapping[str, str]) -> Labeler:
    """How the CLI names a value: ``--fps 1000`` (`options` maps setting name -> option string)."""

    def label(name: str, value: Any) -> str:
        if name not in options:
            return setting_label(name, value)
        shown = "x".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
        return f"{options[name]} {shown[:MAX_SHOWN]}"

    return label


def check_number(name: str, value: Any, low: float, high: float, *, integer: bool = False,
                 low_open: bool = False, label: Labeler = setting_label) -> None:
    """Refuse (422) a value that is not a finite number (an integer if `integer`) in ``low..high``."""
    kind = "an integer" if integer else "a number"
    span = f"> {number_text(low)} and <= {number_text(high)}" if low_open else f"in {number_text(low)}..{number_text(high)}"
    number = isinstance(value, int) if integer else isinstance(value, (int, float))
    if (not number or isinstance(value, bool) or not math.isfinite(value)
            or not (low < value if low_open else low <= value) or value > high):
        raise RequestError(422, f"{label(name, value)}: must be {kind} {span}")
