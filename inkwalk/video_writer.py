"""Streaming H.264 mp4 output: frames are encoded as they arrive, and the file appears whole or not at all."""

from __future__ import annotations

from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from inkwalk.atomic import atomic_output
from inkwalk.errors import InkwalkError
from inkwalk.video import PathLike, check_frame, check_output


class _Aborted(Exception):
    """A write that is dropped: what VideoWriter hands atomic_output so it keeps `path` as it was."""


class VideoWriter:
    """Streaming H.264 (yuv420p) mp4 writer: each frame is encoded as it arrives.

    The video is written to a hidden temporary file beside `path` and renamed over it by
    `close()`; leaving the `with` block by an exception (or calling `abort()`) deletes the
    temporary file instead, so an existing video at `path` survives any failed render.

    yuv420p needs even sizes; an odd width or height is padded by one replicated edge pixel,
    so no picture content is lost.
    """

    def __init__(self, path: PathLike, fps: float, crf: int = 18, preset: str = "medium",
                 metadata: dict[str, Any] | None = None):
        if not fps or not np.isfinite(fps) or fps <= 0:
            raise InkwalkError(f"fps must be a positive number, got {fps}")
        self.path = check_output(path, "video")
        self.fps = float(fps)
        self.crf = int(crf)
        self.preset = preset
        self.metadata = metadata  # how the video was made, for `inkwalk info` and `--from`
        self.frames_written = 0
        self._container = None
        self._stream = None
        self._output: ExitStack | None = None  # holds the atomic_output of the file being written
        self._size: tuple[int, int] | None = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _open(self, width: int, height: int) -> None:
        import av

        self._size = (width, height)
        self._output = ExitStack()
        tmp = self._output.enter_context(atomic_output(self.path))
        # faststart puts the index first: the file plays while it downloads over HTTP.
        self._container = av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"})
        if self.metadata:
            from inkwalk.provenance import METADATA_KEY, encode_metadata

            self._container.metadata[METADATA_KEY] = encode_metadata(self.metadata)
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream("libx264", rate=rate)
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": self.preset}
        self._stream = stream

    def write(self, frame: np.ndarray) -> None:
        frame = check_frame(frame)
        h, w = frame.shape[:2]
        if self._container is None:
            self._open(w, h)
        elif (w, h) != self._size:
            raise ValueError(f"frame size {w}×{h} differs from the video's {self._size[0]}×{self._size[1]}")
        if w % 2 or h % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        import av

        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1

    def write_many(self, frames: Iterable[np.ndarray]) -> None:
        for frame in frames:
            self.write(frame)

    def close(self) -> None:
        """Finish the video and move it to `path` (nothing is written if no frame was)."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
            output, self._output = self._output, None
            output.close()  # atomic_output renames the finished file onto `path`
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop what was written; `path` keeps whatever it held before."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # the file is deleted anyway
                pass
            self._container = None
        if self._output is not None:
            output, self._output = self._output, None
            # leaving atomic_output by an exception deletes the temporary file instead of renaming it
            output.__exit__(_Aborted, _Aborted(), None)


def write_video(path: PathLike, frames: Iterable[np.ndarray], fps: float, crf: int = 18,
                metadata: dict[str, Any] | None = None) -> Path:
    """Write an iterable of frames to an mp4, streaming, with inkwalk's `metadata`; returns the path."""
    with VideoWriter(path, fps, crf=crf, metadata=metadata) as writer:
        writer.write_many(frames)
    if writer.frames_written == 0:
        raise InkwalkError(f"no frames to write to {path}")
    return Path(path)
