"""Clip sampling and decoding: pure functions, no Ray, so the pipeline and a plain loop share them.

A *clip* is ``frames`` frames taken from one video at ``start + stride * k`` (k = 0..frames-1),
decoded with decord at exactly those indices, resized so the short side is ``size`` and
centre-cropped to ``size × size``. Its id hashes the source and the sampling settings, so a
rerun finds the same clip under the same id (that is what makes the pipeline resumable).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlparse

import numpy as np

# Reasons a clip is rejected: short, stable names that the summary counts by.
REASON_MISSING_FILE = "missing-file"
REASON_EMPTY_FILE = "empty-file"
REASON_UNREADABLE = "unreadable"
REASON_CORRUPT = "corrupt"
REASON_TOO_SHORT = "too-short"
REASON_TIMEOUT = "timeout"


@dataclass(frozen=True)
class ClipSpec:
    """What to cut from one video: the `clip`-th of `clips_per_video` clips."""

    video: str
    caption: str
    clip: int = 0
    clips_per_video: int = 1
    frames: int = 8
    stride: int = 4
    size: int = 256
    seed: int = 0

    @property
    def clip_id(self) -> str:
        return clip_id(self)


class ClipRejected(Exception):
    """A clip that cannot be made; `reason` is one of the REASON_* names."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def clip_id(spec: ClipSpec) -> str:
    """Stable id of a clip: the same video and sampling settings always give the same id."""
    key = json.dumps([spec.video, spec.clip, spec.clips_per_video, spec.frames, spec.stride,
                      spec.size, spec.seed], separators=(",", ":"))
    return hashlib.sha1(key.encode()).hexdigest()[:20]


def clip_start(num_frames: int, spec: ClipSpec) -> int:
    """Deterministic first index of a clip.

    The valid starts ``0..num_frames - span`` are split into `clips_per_video` equal ranges and
    clip k draws its start uniformly inside range k, from a generator seeded by the seed, the
    video and k: several clips of one video spread over it, and a fixed seed repeats exactly.
    """
    span = (spec.frames - 1) * spec.stride + 1
    n_starts = num_frames - span + 1
    if n_starts <= 0:
        raise ClipRejected(REASON_TOO_SHORT, f"{num_frames} frames, a clip of {spec.frames} frames at "
                                             f"stride {spec.stride} needs {span}")
    lo = spec.clip * n_starts // spec.clips_per_video
    hi = (spec.clip + 1) * n_starts // spec.clips_per_video
    if hi <= lo:
        raise ClipRejected(REASON_TOO_SHORT, f"{num_frames} frames leave only {n_starts} distinct starts "
                                             f"for {spec.clips_per_video} clips of span {span}")
    video_key = int(hashlib.sha1(spec.video.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng([spec.seed, video_key, spec.clip])
    return int(rng.integers(lo, hi))


def sample_indices(num_frames: int, spec: ClipSpec) -> np.ndarray:
    """Frame indices ``start + stride * k`` for k = 0..frames-1."""
    start = clip_start(num_frames, spec)
    return start + spec.stride * np.arange(spec.frames, dtype=np.int64)


def resize_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) that makes the short side `short_side`, keeping the aspect ratio."""
    scale = short_side / min(width, height)
    return max(short_side, round(width * scale)), max(short_side, round(height * scale))


def center_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """Centre ``size × size`` crop of ``T×H×W×3`` frames (short side already `size`)."""
    h, w = frames.shape[1:3]
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(frames[:, top:top + size, left:left + size])


def call_with_timeout(fn: Callable[[], Any], timeout: float | None) -> Any:
    """Run `fn` in a daemon thread and give up after `timeout` seconds.

    A decoder stuck on a pathological file cannot be interrupted from Python; the thread is
    abandoned (it dies with the worker) and the clip is rejected, so the run goes on.
    """
    if not timeout:
        return fn()
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread below
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="clip-decode")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise ClipRejected(REASON_TIMEOUT, f"decoding took longer than {timeout:g} s")
    if "error" in result:
        raise result["error"]
    return result["value"]


def check_source(path: str) -> None:
    """Classify a local file that cannot be a video before any decoder sees it."""
    if not os.path.exists(path):
        raise ClipRejected(REASON_MISSING_FILE, "file not found")
    if os.path.isdir(path):
        raise ClipRejected(REASON_UNREADABLE, "is a directory, not a file")
    if os.path.getsize(path) == 0:
        raise ClipRejected(REASON_EMPTY_FILE, "file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise ClipRejected(REASON_UNREADABLE, "permission denied")


def is_remote(uri: str) -> bool:
    """True for URIs that need a pyarrow filesystem (s3://, gs://, hdfs://, ...), not local paths."""
    scheme = urlparse(uri).scheme
    return len(scheme) > 1 and scheme != "file"


def local_path(uri: str) -> str:
    """Local filesystem path of a plain path or file:// URI."""
    return urlparse(uri).path if uri.startswith("file://") else uri


def decode_clip(path: str, spec: ClipSpec, threads: int = 1) -> tuple[np.ndarray, np.ndarray, float]:
    """Decode one clip of a local file: (frames ``T×size×size×3`` uint8, indices, fps).

    One open of the file (`inkwalk.video.read_clip`); `threads` is decord's decoder threads.
    """
    from inkwalk.video import MediaError, read_clip

    check_source(path)
    try:
        info, indices, frames = read_clip(path, lambda info: sample_indices(info.frames, spec),
                                          size=lambda w, h: resize_size(w, h, spec.size), num_threads=threads)
    except MediaError as exc:
        raise ClipRejected(REASON_CORRUPT, exc.reason) from None
    return center_crop(frames, spec.size), np.asarray(indices, np.int64), info.fps


def make_clip(spec: ClipSpec, timeout: float | None = 60.0, threads: int = 1) -> dict[str, Any]:
    """One clip as a row: frames, indices and metadata; raises ClipRejected with a reason.

    Remote URIs are copied to a temporary local file first (decord reads local files only).
    """
    if not is_remote(spec.video):
        frames, indices, fps = call_with_timeout(lambda: decode_clip(local_path(spec.video), spec, threads), timeout)
    else:
        frames, indices, fps = call_with_timeout(lambda: _decode_remote(spec, threads), timeout)
    return {"clip_id": spec.clip_id, "video": spec.video, "caption": spec.caption,
            "indices": indices, "fps": fps, "frames": frames}


def _decode_remote(spec: ClipSpec, threads: int) -> tuple[np.ndarray, np.ndarray, float]:
    import tempfile

    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(spec.video)
        info = fs.get_file_info(path)
    except Exception as exc:  # unknown scheme, no credentials, unreachable host
        raise ClipRejected(REASON_UNREADABLE, f"cannot open {spec.video}: {exc}") from None
    if info.type == pafs.FileType.NotFound:
        raise ClipRejected(REASON_MISSING_FILE, "file not found")
    suffix = os.path.splitext(path)[1]
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        with fs.open_input_stream(path) as src:
            while chunk := src.read(1 << 22):
                tmp.write(chunk)
        tmp.flush()
        return decode_clip(tmp.name, spec, threads)
