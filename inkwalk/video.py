"""Video and image I/O at the edges of the system: decord to read, PIL for images (mp4s: video_writer).

Frames are uint8 RGB ``H×W×3`` numpy arrays; clips are ``T×H×W×3``. Every failure to read a
file becomes one `MediaError` that names the file and the reason, so no decoder traceback
reaches a user. Every output is written atomically: into a temporary file beside it, renamed
over the target only when complete, so a failed or interrupted write never replaces a good
file and leaves nothing behind.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inkwalk.errors import InkwalkError

PathLike = str | os.PathLike


class MediaError(InkwalkError):
    """A video or image that cannot be read (missing, empty, truncated, not media)."""

    def __init__(self, path: PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):
        # Ray ships exceptions between processes with pickle, which replays the constructor.
        return type(self), (self.path, self.reason)


@dataclass(frozen=True)
class VideoInfo:
    path: str
    frames: int
    fps: float
    width: int
    height: int
    codec: str
    duration_s: float


def _check_file(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaError(p, "file not found")
    if p.is_dir():
        raise MediaError(p, "is a directory, not a file")
    if p.stat().st_size == 0:
        raise MediaError(p, "file is empty (0 bytes)")
    return p


def _reader(path: PathLike, size: tuple[int, int] | None = None):
    """Open a decord VideoReader, turning every decoder failure into a MediaError."""
    p = _check_file(path)
    _stream_info(p)  # PyAV fails cleanly on non-video files, before decord logs C++ errors
    return _open_decord(p, size, num_threads=1)


def _open_decord(p: Path, size: tuple[int, int] | None, num_threads: int):
    import decord

    decord.logging.set_level(decord.logging.QUIET)
    kwargs = {}
    if size is not None:
        kwargs = {"width": int(size[0]), "height": int(size[1])}
    try:
        vr = decord.VideoReader(str(p), ctx=decord.cpu(0), num_threads=num_threads, **kwargs)
    except Exception as exc:  # decord raises DECORDError / RuntimeError with C++ traces
        raise MediaError(p, f"video is truncated or corrupt ({_first_line(exc)})") from None
    if len(vr) == 0:
        raise MediaError(p, "video has no frames")
    return vr


def _first_line(exc: BaseException) -> str:
    """The decoder's own words, without C++ source locations, timestamps or errno codes."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    line = re.sub(r"^(\[[^\]]*\]\s*)?(\S+\.(cc|c|h):\d+:\s*)?", "", lines[0])
    line = re.sub(r"\[Errno -?\d+\]\s*", "", line)
    return line[:200]


def _stream_info(path: Path) -> tuple[str, int, int]:
    """Codec name, width and height of the first video stream, via PyAV."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(path, "file has no video stream")
            if container.format.name == "image2" or container.format.name.endswith("_pipe"):
                raise MediaError(path, "is a still image, not a video")
            ctx = container.streams.video[0].codec_context
            return ctx.name or "unknown", int(ctx.width), int(ctx.height)
    except MediaError:
        raise
    except Exception as exc:
        raise MediaError(path, f"not a readable video ({_first_line(exc)})") from None


# decord 0.6 assumes tightly packed RGB rows and fails on some widths (16, 48, 72, ...) with
# this check; PyAV decodes those videos correctly.
_DECORD_STRIDE_BUG = "from_size == to_size"


def _decode_with_pyav(path: PathLike, indices: Sequence[int], size: tuple[int, int] | None) -> np.ndarray:
    import av

    wanted, last, found = set(indices), max(indices), {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                if size is not None:
                    frame = frame.reformat(width=int(size[0]), height=int(size[1]))
                found[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    missing = wanted - found.keys()
    if missing:
        raise MediaError(path, f"video is truncated: frame {min(missing)} cannot be decoded")
    return np.stack([found[i] for i in indices])


def _decode(vr, path: PathLike, indices: list[int], size: tuple[int, int] | None) -> np.ndarray:
    try:
        return vr.get_batch(indices).asnumpy()
    except Exception as exc:
        if _DECORD_STRIDE_BUG in str(exc):
            return _decode_with_pyav(path, indices, size)
        raise MediaError(path, f"video is truncated or corrupt near frame {indices[0]} "
                               f"({_first_line(exc)})") from None


def probe(path: PathLike) -> VideoInfo:
    """Frame count, fps, size, codec and duration of a video."""
    vr = _reader(path)
    p = Path(path)
    frames = len(vr)
    fps = float(vr.get_avg_fps() or 0.0)
    codec, width, height = _stream_info(p)
    duration = frames / fps if fps > 0 else 0.0
    return VideoInfo(str(p), frames, fps, width, height, codec, duration)


def read_frames(path: PathLike, indices: Sequence[int] | None = None,
                size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode the frames at `indices` (all frames if None) as ``T×H×W×3`` uint8.

    `size` is ``(width, height)`` and resizes during decoding, which is cheaper than after.
    """
    vr = _reader(path, size)
    n = len(vr)
    idx = list(range(n)) if indices is None else [int(i) for i in indices]
    bad = [i for i in idx if i < 0 or i >= n]
    if bad:
        raise MediaError(path, f"frame index {bad[0]} out of range: the video has {n} frames")
    if not idx:
        _, width, height = _stream_info(Path(path))
        width, height = size if size is not None else (width, height)
        return np.zeros((0, height, width, 3), dtype=np.uint8)
    return _decode(vr, path, idx, size)


def read_clip(path: PathLike, choose: Callable[[VideoInfo], Sequence[int]],
              size: Callable[[int, int], tuple[int, int]] | None = None,
              num_threads: int = 1) -> tuple[VideoInfo, list[int], np.ndarray]:
    """Probe a video and decode the frames `choose(info)` picks, opening the file once:
    (info, the chosen indices, frames ``T×H×W×3``).

    `size(width, height)` gives the ``(width, height)`` to resize to while decoding. Cheaper
    than `probe` + `read_frames` (which open the file with PyAV three times and decord twice):
    this is the per-clip path of the data pipeline. `num_threads` is decord's decoder threads.
    """
    p = _check_file(path)
    codec, width, height = _stream_info(p)
    wanted = size(width, height) if size is not None else None
    vr = _open_decord(p, wanted, num_threads)
    frames, fps = len(vr), float(vr.get_avg_fps() or 0.0)
    info = VideoInfo(str(p), frames, fps, width, height, codec, frames / fps if fps > 0 else 0.0)
    idx = [int(i) for i in choose(info)]
    bad = [i for i in idx if i < 0 or i >= frames]
    if bad or not idx:
        raise MediaError(path, f"frame index {bad[0]} out of range: the video has {frames} frames" if bad
                         else "no frame index chosen")
    return info, idx, _decode(vr, path, idx, wanted)


def iter_frames(path: PathLike, size: tuple[int, int] | None = None, chunk: int = 32) -> Iterator[np.ndarray]:
    """Yield frames one at a time, decoding `chunk` at once: memory stays flat for any length."""
    vr = _reader(path, size)
    n = len(vr)
    for start in range(0, n, chunk):
        yield from _decode(vr, path, list(range(start, min(start + chunk, n))), size)


def image_to_rgb(im: Image.Image) -> np.ndarray:
    """Decode an opened image as ``H×W×3`` uint8 RGB, EXIF orientation applied.

    Deep pixel formats are scaled, not clipped, and transparency is composited over white
    (`inkwalk.pixel_formats`).
    """
    from inkwalk.pixel_formats import to_rgb8

    return to_rgb8(ImageOps.exif_transpose(im))


def read_image(path: PathLike) -> np.ndarray:
    """Read any common image format as ``H×W×3`` uint8 RGB (see `image_to_rgb`).

    No size limit: inputs from users go through `inkwalk.image_admission.decode_painting` instead,
    which checks the header first.
    """
    p = _check_file(path)
    try:
        with Image.open(p) as im:
            return image_to_rgb(im)
    except UnidentifiedImageError:
        raise MediaError(p, "not a recognised image format") from None
    except Image.DecompressionBombError as exc:
        raise MediaError(p, f"image is too large to decode ({_first_line(exc)})") from None
    except Exception as exc:  # every decoder failure is the file's, never a traceback
        raise MediaError(p, f"image is truncated or corrupt ({_first_line(exc)})") from None


def format_fps(fps: float) -> str:
    """A frame rate as people write it: the nearest ratio with a denominator up to 1001, so a
    container's 29.9999 prints as 30 and NTSC's 30000/1001 as 29.97 (23.976, 59.94)."""
    from fractions import Fraction

    if not fps or not np.isfinite(fps):
        return "unknown"
    return f"{round(float(Fraction(fps).limit_denominator(1001)), 3):g}"


VIDEO_SUFFIXES = (".mp4",)  # what VideoWriter writes: H.264 in an MP4 container
IMAGE_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
                  ".tif": "TIFF", ".tiff": "TIFF"}


def check_output(path: PathLike, kind: str) -> Path:
    """An output path that can be written: the right extension for `kind` ("video" or "image"),
    not a folder, and a folder that exists (or can be made) and takes files. Costs well under a
    millisecond, so commands call it before any work."""
    from inkwalk.atomic import temporary_sibling

    p = Path(path)
    suffixes = VIDEO_SUFFIXES if kind == "video" else tuple(IMAGE_SUFFIXES)
    if p.suffix.lower() not in suffixes:
        what = "H.264 in an MP4 container" if kind == "video" else "an image"
        got = repr(p.suffix) if p.suffix else "no extension"
        raise InkwalkError(f"output {p} must end in {' or '.join(suffixes)} ({what}), not {got}")
    if p.is_dir():
        raise InkwalkError(f"output {p} is a folder: give a file name, e.g. {p / ('out' + suffixes[0])}")
    folder = p.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InkwalkError(f"output {p}: {folder} is not a folder")
    try:  # the only reliable test (root ignores permission bits; read-only mounts do not)
        probe = temporary_sibling(folder / "inkwalk-probe")
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise InkwalkError(f"output {p}: cannot write to folder {folder} ({_first_line(exc)})") from None
    return p


def save_image(path: PathLike, frame: np.ndarray, metadata: dict | None = None) -> Path:
    """Write one frame, atomically (PNG/JPEG/WebP/BMP/TIFF by extension); a PNG keeps inkwalk's
    `metadata` in a text chunk (`inkwalk.provenance`), the other formats have no such place."""
    from inkwalk.atomic import atomic_output

    p = check_output(path, "image")
    image = Image.fromarray(check_frame(frame))
    fmt = IMAGE_SUFFIXES[p.suffix.lower()]
    extra = {}
    if metadata and fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        from inkwalk.provenance import METADATA_KEY, encode_metadata

        extra["pnginfo"] = PngInfo()
        extra["pnginfo"].add_text(METADATA_KEY, encode_metadata(metadata))
    with atomic_output(p) as tmp:
        image.save(tmp, format=fmt, **extra)
    return p


def fit_image(frame: np.ndarray, size: tuple[int, int], mode: str = "crop") -> np.ndarray:
    """Fit a frame to exactly ``size=(width, height)``.

    `crop` scales to cover then centre-crops; `letterbox` scales to fit and pads with black.
    Only the part of the frame that is kept is resampled, straight to the target size, so
    memory is bounded by the target whatever the frame's shape (a 20000x16 strip cropped to
    720x720 never becomes a 900000x720 intermediate).
    """
    width, height = int(size[0]), int(size[1])
    if mode not in ("crop", "letterbox"):
        raise InkwalkError(f"fit mode must be 'crop' or 'letterbox', not {mode!r}")
    if width < 1 or height < 1:
        raise InkwalkError(f"fit size must be positive, got {width}x{height}")
    image = Image.fromarray(check_frame(frame))
    h, w = frame.shape[:2]
    if mode == "crop":
        scale = max(width / w, height / h)
        box_w, box_h = width / scale, height / scale  # the source region that fills the target
        left, top = (w - box_w) / 2, (h - box_h) / 2
        box = (left, top, left + box_w, top + box_h)
        return np.asarray(image.resize((width, height), Image.Resampling.LANCZOS, box=box))
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    resized = np.asarray(image.resize((new_w, new_h), Image.Resampling.LANCZOS))
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top:top + new_h, left:left + new_w] = resized
    return canvas


def check_frame(frame, what: str = "a frame") -> np.ndarray:
    """A non-empty uint8 ``H×W×3`` frame, or an InkwalkError naming what was wrong."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise InkwalkError(f"{what} must be a uint8 H×W×3 frame, got {frame.dtype} {frame.shape}")
    if min(frame.shape[:2]) < 1:
        raise InkwalkError(f"{what} is empty ({frame.shape})")
    return frame


def check_clip(frames, what: str = "a clip", min_frames: int = 1) -> np.ndarray:
    """A uint8 ``T×H×W×3`` clip of at least `min_frames` frames, or an InkwalkError."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) < min_frames:
        raise InkwalkError(f"{what} must be uint8 T×H×W×3 frames (at least {min_frames}), "
                           f"got {frames.dtype} {frames.shape}")
    return frames
