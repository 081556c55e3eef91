"""Choosing an interpolator by name and running it over a clip or a video, streaming."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from inkwalk.errors import InkwalkError
from inkwalk.video import check_clip

METHODS = ("sofp", "flow-warp", "blend", "film")
DEFAULT_METHOD = "flow-warp"  # measured best on real video (docs/benchmarks.md)


class FilmInterpolator:
    """FILM (inkwalk.interpolate.film) behind the common `between` interface."""

    name = "film"

    def __init__(self, models_dir=None, device=None, path=None, tile: int | None = None, dtype=None):
        from inkwalk.flow.raft import default_device
        from inkwalk.interpolate import film

        self.tile, self.dtype = tile, dtype
        try:
            self.model = film.load_film(models_dir=models_dir, path=path, device=default_device(device))
        except InkwalkError as exc:
            raise InkwalkError(f"{exc} -- or interpolate without any weights: --method flow-warp") from None
        self._film = film

    def between(self, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float], **_) -> np.ndarray:
        return self._film.interpolate_pair(self.model, frame0, frame1, times, tile=self.tile, dtype=self.dtype)


def get_interpolator(method: str = DEFAULT_METHOD, flow: str = "dis", models_dir=None, device=None):
    """Build an interpolator by name; `flow` picks the flow backend of flow-warp and sofp."""
    if method == "blend":
        from inkwalk.interpolate.warp import Blend

        return Blend()
    if method in ("flow-warp", "sofp"):
        from inkwalk.flow import get_flow_backend

        backend = get_flow_backend(flow, models_dir=models_dir, device=device)
        if method == "sofp":
            from inkwalk.interpolate.sofp import SOFP

            return SOFP(backend)
        from inkwalk.interpolate.warp import FlowWarp

        return FlowWarp(backend)
    if method == "film":
        return FilmInterpolator(models_dir=models_dir, device=device)
    raise InkwalkError(f"unknown interpolation method {method!r}: choose one of {', '.join(METHODS)}")


def _passes(method: str, factor: int) -> list[list[float]]:
    """The time lists of each pass: one pass at i/factor, or repeated halving for sofp."""
    if int(factor) != factor or factor < 1:
        raise InkwalkError(f"factor must be an integer >= 1, got {factor!r}")
    factor = int(factor)
    if factor == 1:
        return []
    if method == "sofp":
        if factor & (factor - 1):
            raise InkwalkError(f"sofp inserts one frame per pair and repeats, so its factor must be a "
                               f"power of two (2, 4, 8, ...), got {factor}; use --method flow-warp for "
                               f"other factors")
        return [[0.5]] * (factor.bit_length() - 1)
    return [[i / factor for i in range(1, factor)]]


def output_frame_count(frames: int, factor: int) -> int:
    """``(N - 1)·factor + 1``: every pair gets ``factor - 1`` new frames."""
    return (frames - 1) * int(factor) + 1 if frames > 0 else 0


def _one_pass(frames: Iterable[np.ndarray], interp, times: list[float], last: np.ndarray | None) -> Iterator[np.ndarray]:
    kwargs = {"last": last} if getattr(interp, "name", "") == "sofp" else {}
    prev = None
    for frame in frames:
        if prev is not None:
            yield from interp.between(prev, frame, times, **kwargs)
        yield frame
        prev = frame


def interpolate_frames(frames: Iterable[np.ndarray], interp, method: str, factor: int = 2,
                       last: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Stream the interpolated clip: one frame in memory per pass beyond the current pair.

    `last` (the clip's last frame) is needed by sofp only; a pass never changes it.
    """
    stream: Iterable[np.ndarray] = frames
    for times in _passes(method, factor):
        stream = _one_pass(stream, interp, times, last)
    yield from stream


def interpolate_clip(frames: np.ndarray, method: str = DEFAULT_METHOD, flow: str = "dis", factor: int = 2,
                     models_dir=None, device=None, interpolator=None) -> np.ndarray:
    """Interpolate a ``T×H×W×3`` uint8 clip: ``T -> (T - 1)·factor + 1`` frames.

    `interpolator` reuses an already built one (e.g. loaded once per replica).
    """
    frames = check_clip(frames, min_frames=0)
    _passes(method, factor)  # validate before loading anything
    interp = interpolator or get_interpolator(method, flow=flow, models_dir=models_dir, device=device)
    if len(frames) < 2:
        return frames.copy()
    out = list(interpolate_frames(iter(frames), interp, method, factor, last=frames[-1]))
    return np.stack(out)


def interpolate_video(src: str | os.PathLike, dst: str | os.PathLike, method: str = DEFAULT_METHOD,
                      flow: str = "dis", factor: int = 2, fps: float | None = None, models_dir=None,
                      device=None, crf: int = 18, show_progress: bool = True,
                      metadata: dict | None = None) -> Path:
    """Interpolate a video file into an mp4, streaming (memory does not grow with its length).

    `fps` defaults to the source fps times `factor`, so the duration is kept and motion gets
    smoother; pass the source fps to get slow motion instead. `metadata`: what the mp4 records
    about how it was made (`inkwalk.chunks.command_metadata`).
    """
    from inkwalk import video
    from inkwalk.progress import progress
    from inkwalk.video_writer import VideoWriter

    passes = _passes(method, factor)
    info = video.probe(src)
    if info.frames < 2:
        raise InkwalkError(f"{src}: has {info.frames} frame(s); interpolation needs at least 2")
    if Path(src).resolve() == Path(dst).resolve():
        raise InkwalkError(f"output {dst} is the input video; choose another output path")
    out_fps = float(fps) if fps else info.fps * int(factor)
    if out_fps <= 0:
        raise InkwalkError(f"{src}: unknown frame rate; pass an output fps explicitly")
    interp = get_interpolator(method, flow=flow, models_dir=models_dir, device=device)
    last = video.read_frames(src, [info.frames - 1])[0] if method == "sofp" and passes else None
    bar = progress(video.iter_frames(src), total=info.frames, desc=f"interpolate ({method})", unit="frame",
                   disable=None if show_progress else True)
    with VideoWriter(dst, out_fps, crf=crf, metadata=metadata) as writer:
        writer.write_many(interpolate_frames(bar, interp, method, factor, last=last))
    return Path(dst)
