"""`inkwalk export`: PNG frames, WebM and GIF decoded back by libraries we did not write (Pillow,
PyAV) and compared with the source frames; names from templates; refusals in one line."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image, ImageSequence

from inkwalk.provenance import read_metadata
from inkwalk.cli import main
from inkwalk.video import read_frames
from inkwalk.video_writer import write_video


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture
def video(tmp_path):
    y, x = np.mgrid[0:48, 0:64]
    frames = [np.stack([(x * 4 + 20 * t) % 256, (y * 5) % 256, np.full_like(x, 40 * t)], -1).astype(np.uint8)
              for t in range(5)]
    metadata = {"app": "artwalks", "settings": {"seed": 7}, "paintings": ["a" * 64, "b" * 64],
                "painting_names": ["dawn.jpg", "dusk river.png"]}
    path = write_video(tmp_path / "walk.mp4", frames, fps=10, metadata=metadata)
    return path, read_frames(path)


def test_png_sequence_is_every_frame_exactly(video, capsys):
    path, frames = video
    assert main(["export", str(path), "--format", "png"]) == 0
    folder = path.parent / "walk_frames"
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [f"frame_{i:06d}.png" for i in range(1, 6)]
    assert all(np.array_equal(np.asarray(Image.open(f).convert("RGB")), frame) for f, frame in zip(files, frames))
    assert main(["export", str(path), "--format", "png"]) == 1  # never merged into an old sequence
    assert "exists: a frame sequence goes into a new folder" in capsys.readouterr().err


def test_webm_is_vp9_with_the_frames_rate_and_metadata(video):
    path, frames = video
    assert main(["export", str(path), "--format", "webm", "-o", "{paintings}_seed{seed}.webm"]) == 0
    out = path.parent / "dawn-dusk-river_seed7.webm"
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name in ("vp9", "libvpx-vp9") and float(stream.average_rate) == 10
        got = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
    assert len(got) == 5 and psnr(got, frames) > 28
    assert read_metadata(out)["settings"]["seed"] == 7


def test_gif_has_every_frame_at_the_video_rate(video, tmp_path):
    path, frames = video
    assert main(["export", str(path), "--format", "gif", "-o", str(tmp_path / "out" / "{stem}-{app}.gif")]) == 0
    gif = Image.open(tmp_path / "out" / "walk-artwalks.gif")
    got = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]
    assert len(got) == 5 and gif.info["duration"] == 100 and gif.info["loop"] == 0
    assert psnr(np.stack(got), frames) > 20  # 256 colours a frame


def test_gif_is_scaled_to_the_gif_width(video, tmp_path):
    path, _ = video
    assert main(["export", str(path), "--format", "gif", "--gif-width", "32", "-o", str(tmp_path / "s.gif")]) == 0
    assert Image.open(tmp_path / "s.gif").size == (32, 24)


@pytest.mark.parametrize("argv, phrase", [
    (["--format", "gif", "-o", "x.mp4"], "a GIF export must end in .gif, not '.mp4'"),
    (["--format", "webm", "-o", "{colour}.webm"], "unknown or malformed field ('colour'); the fields are {stem}"),
    (["--format", "gif", "--gif-width", "-1"], "--gif-width -1: must be 0"),
])
def test_bad_exports_are_one_line(video, argv, phrase, capsys):
    path, _ = video
    assert main(["export", str(path), *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert phrase in err and "\n" not in err
