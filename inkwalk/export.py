"""A finished mp4 in another form: a PNG frame sequence, WebM (VP9) or an animated GIF.

PyAV encodes WebM and Pillow writes PNG and GIF. Frames are decoded one chunk at a time, so
memory stays flat for PNG and WebM; a GIF is held whole by Pillow's writer (it compares frames),
so it is scaled to at most `GIF_WIDTH` pixels wide by default, as GIFs on the web are. Every
output appears whole or not at all (`inkwalk.atomic`). Output names may be templates filled
from the video's own metadata (`output_name`).
"""

from __future__ import annotations

import os
import re
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from inkwalk.errors import InkwalkError

EXPORT_FORMATS = ("png", "webm", "gif")
DEFAULT_TEMPLATE = {"png": "{stem}_frames", "webm": "{stem}.webm", "gif": "{stem}.gif"}
GIF_WIDTH = 480  # default width of an exported GIF, in pixels
WEBM_CRF = 32  # VP9 constant quality (0..63, lower is better); 31-33 is libvpx's advice for HD
TEMPLATE_FIELDS = ("stem", "app", "seed", "paintings", "prompt", "format")


def _slug(text: str, limit: int = 60) -> str:
    """Text safe in a file name: letters, digits, dot, dash and underscore."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:limit] or "untitled"


def output_name(template: str, video: str | os.PathLike, metadata: dict[str, Any], fmt: str) -> Path:
    """`template` filled from the video: ``{stem}`` (its file name without suffix), ``{app}``,
    ``{seed}``, ``{paintings}`` (the paintings' names joined by ``-``), ``{prompt}`` and
    ``{format}``; relative names land beside the video."""
    settings = metadata.get("settings") or {}
    names = metadata.get("painting_names") or []
    fields = {"stem": Path(video).stem, "app": metadata.get("app", "video"), "format": fmt,
              "seed": settings.get("seed", "noseed"), "prompt": _slug(str(metadata.get("prompt") or "noprompt")),
              "paintings": "-".join(_slug(Path(n).stem, 24) for n in names) or "paintings"}
    try:
        name = template.format(**{k: _slug(str(v)) for k, v in fields.items()})
    except (KeyError, IndexError, ValueError) as exc:
        raise InkwalkError(f"output name {template!r}: unknown or malformed field ({exc}); the fields are "
                           + ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)) from None
    path = Path(name)
    return path if path.is_absolute() else Path(video).parent / path


def check_export_output(path: Path, fmt: str) -> None:
    """WebM and GIF outputs end in their suffix; a PNG sequence is a new folder (never merged into
    an old one, whose stale frames would join the sequence)."""
    if fmt == "png":
        if path.exists():
            raise InkwalkError(f"{path} exists: a frame sequence goes into a new folder; remove it or choose another")
        return
    if path.suffix.lower() != f".{fmt}":
        raise InkwalkError(f"{path}: a {fmt.upper()} export must end in .{fmt}, not {path.suffix or 'nothing'!r}")
    if path.is_dir():
        raise InkwalkError(f"{path} is a folder: give a file name")


def _write_png_sequence(frames: Iterable[np.ndarray], folder: Path) -> int:
    from PIL import Image

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        count = 0
        for count, frame in enumerate(frames, 1):
            Image.fromarray(frame).save(tmp / f"frame_{count:06d}.png")
        os.rename(tmp, folder)
        return count
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_webm(frames: Iterable[np.ndarray], path: Path, fps: float, metadata: dict[str, Any]) -> int:
    import av

    from inkwalk.atomic import atomic_output
    from inkwalk.provenance import METADATA_KEY, encode_metadata

    count = 0
    with atomic_output(path) as tmp, av.open(str(tmp), mode="w", format="webm") as out:
        if metadata:
            out.metadata[METADATA_KEY] = encode_metadata(metadata)
        stream = None
        for frame in frames:
            if stream is None:
                stream = out.add_stream("libvpx-vp9", rate=Fraction(fps).limit_denominator(1001))
                h, w = frame.shape[:2]
                stream.width, stream.height, stream.pix_fmt = w + w % 2, h + h % 2, "yuv420p"
                stream.options = {"crf": str(WEBM_CRF), "b": "0", "row-mt": "1"}
            if frame.shape[0] % 2 or frame.shape[1] % 2:  # yuv420p: pad odd sides with the edge pixels
                frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            count += 1
        if stream is not None:
            out.mux(stream.encode())
    return count


def _write_gif(frames: Iterable[np.ndarray], path: Path, fps: float, width: int | None) -> int:
    from PIL import Image

    from inkwalk.atomic import atomic_output

    def pictures():
        for frame in frames:
            image = Image.fromarray(frame)
            if width and image.width > width:
                image = image.resize((width, max(1, round(image.height * width / image.width))), Image.LANCZOS)
            yield image

    images = pictures()
    first = next(images, None)
    if first is None:
        return 0
    count = 1

    def rest():
        nonlocal count
        for image in images:
            count += 1
            yield image

    with atomic_output(path) as tmp:
        first.save(tmp, format="GIF", save_all=True, append_images=rest(), loop=0,
                   duration=max(20, round(1000 / fps)))  # browsers slow anything under 20 ms down
    return count


def export_video(src: str | os.PathLike, dst: str | os.PathLike, fmt: str, gif_width: int | None = GIF_WIDTH) -> int:
    """Write the video `src` as `fmt` ("png": a folder of frames, "webm", "gif") to `dst`;
    returns the frame count. WebM keeps inkwalk's metadata; GIF delays are whole milliseconds."""
    from inkwalk.provenance import read_metadata
    from inkwalk.video import iter_frames, probe

    if fmt not in EXPORT_FORMATS:
        raise InkwalkError(f"unknown export format {fmt!r}; choose one of: {', '.join(EXPORT_FORMATS)}")
    info = probe(src)
    dst = Path(dst)
    check_export_output(dst, fmt)
    frames = iter_frames(src)
    if fmt == "png":
        return _write_png_sequence(frames, dst)
    if fmt == "webm":
        return _write_webm(frames, dst, info.fps or 24.0, read_metadata(src))
    return _write_gif(frames, dst, info.fps or 24.0, gif_width)
