"""Video and image I/O: round trips, streaming memory, and typed errors for bad files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from inkwalk import video, video_writer
from inkwalk.cli import main
from helpers import moving_clip, psnr


def test_round_trip_frames_size_fps_psnr(tmp_path):
    clip = moving_clip(24, 96, 128)
    path = video_writer.write_video(tmp_path / "clip.mp4", clip, fps=12.5)
    info = video.probe(path)
    assert (info.frames, info.width, info.height, info.codec) == (24, 128, 96, "h264")
    assert info.fps == pytest.approx(12.5, rel=1e-3)
    back = video.read_frames(path)
    assert back.shape == clip.shape and back.dtype == np.uint8
    assert psnr(back, clip) > 35


def test_read_indices_and_resize_on_decode(tmp_path):
    clip = moving_clip(20, 64, 80)
    path = video_writer.write_video(tmp_path / "clip.mp4", clip, fps=10)
    picked = video.read_frames(path, [0, 4, 8, 12])
    assert psnr(picked, clip[[0, 4, 8, 12]]) > 35
    small = video.read_frames(path, [1, 2], size=(40, 32))
    assert small.shape == (2, 32, 40, 3)
    assert len(list(video.iter_frames(path, chunk=7))) == 20


def test_odd_sizes_are_padded_not_cropped(tmp_path):
    clip = moving_clip(5, 65, 67)
    path = video_writer.write_video(tmp_path / "odd.mp4", clip, fps=8)
    back = video.read_frames(path)
    assert back.shape == (5, 66, 68, 3)
    assert psnr(back[:, :65, :67], clip) > 35


MEMORY_BOUND_MB = 60


def test_streaming_write_memory_is_flat(tmp_path):
    """2,000 frames of 256×256 (393 MB raw) grow resident memory by less than MEMORY_BOUND_MB."""
    code = f"""
import numpy as np, psutil
from inkwalk.video_writer import VideoWriter
proc = psutil.Process()
base = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
with VideoWriter({str(tmp_path / 'long.mp4')!r}, fps=25, preset="ultrafast") as w:
    for i in range(2000):
        w.write(np.roll(base, i, axis=1))
        if i == 200:
            early = proc.memory_info().rss
    late = proc.memory_info().rss
print((late - early) / 2**20, w.frames_written)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    growth_mb, written = out.stdout.split()
    assert int(written) == 2000
    assert float(growth_mb) < MEMORY_BOUND_MB
    assert video.probe(tmp_path / "long.mp4").frames == 2000


def _bad_files(tmp_path):
    good = video_writer.write_video(tmp_path / "good.mp4", moving_clip(30, 64, 64), fps=10)
    data = good.read_bytes()
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 50)
    Image.fromarray(moving_clip(1, 32, 32)[0]).save(tmp_path / "still.png")
    return {
        "missing.mp4": "not found",
        "empty.mp4": "empty",
        "truncated.mp4": "truncated",
        "text.mp4": "not a readable video",
        "still.png": "still image",
    }


def test_bad_video_files_raise_typed_error_with_file_and_reason(tmp_path):
    for name, reason in _bad_files(tmp_path).items():
        path = tmp_path / name
        with pytest.raises(video.MediaError) as err:
            video.read_frames(path)
        assert err.value.path == str(path)
        assert reason in err.value.reason
        assert str(path) in str(err.value)


def test_out_of_range_index(tmp_path):
    path = video_writer.write_video(tmp_path / "c.mp4", moving_clip(4, 32, 32), fps=4)
    with pytest.raises(video.MediaError, match="out of range"):
        video.read_frames(path, [0, 9])


def test_read_image_exif_alpha_grey(tmp_path):
    rgb = moving_clip(1, 40, 60)[0]
    im = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    im.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    assert video.read_image(tmp_path / "rot.jpg").shape == (60, 40, 3)
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    assert (video.read_image(tmp_path / "clear.png") == 255).all()  # transparent -> white
    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.webp")
    grey = video.read_image(tmp_path / "grey.webp")
    assert grey.shape == (40, 60, 3) and (grey[..., 0] == grey[..., 2]).all()
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnonsense")
    with pytest.raises(video.MediaError, match="bad.png"):
        video.read_image(tmp_path / "bad.png")


def test_fit_image_crop_and_letterbox():
    frame = moving_clip(1, 100, 200)[0]
    assert video.fit_image(frame, (64, 64), "crop").shape == (64, 64, 3)
    boxed = video.fit_image(frame, (64, 64), "letterbox")
    assert boxed.shape == (64, 64, 3)
    assert boxed[:10].max() == 0 and boxed[32].max() > 0


def test_info_cli(tmp_path, capsys):
    path = video_writer.write_video(tmp_path / "c.mp4", moving_clip(6, 32, 48), fps=6)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "48×32, 6 frames, 6 fps" in out and "made by" not in out  # not an inkwalk video: nothing more
    assert main(["info", str(tmp_path / "nope.mp4")]) == 1
    assert "nope.mp4: file not found" in capsys.readouterr().err


def test_info_cli_tells_how_a_walk_was_made(tmp_path, capsys):
    import hashlib
    import json

    from inkwalk.local_render import render_collection_in_process
    from inkwalk.paintings import collection
    from inkwalk.walk_settings import WalkSettings

    paths = []
    for i, painting in enumerate(collection(2, size=(48, 32), seed=4)):
        paths.append(tmp_path / f"p{i}.png")
        video.save_image(paths[-1], painting)
    settings = WalkSettings(preset="offline", frames=2, size=(48, 32), seed=3, weighting="sinh")
    render_collection_in_process(paths, tmp_path / "walk.mp4", settings, cache_dir=tmp_path / "cache", sheet=False)
    assert main(["info", str(tmp_path / "walk.mp4")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "made by inkwalk 0.1.0 (artwalks)"
    assert lines[2].startswith("settings: ") and {"size=48x32", "preset=offline", "flow=dis"} <= set(lines[2].split())
    # no keyframes: the seed, weighting and the diffusion settings did nothing, and nothing was upscaled
    assert not {"seed", "weighting", "steps", "guidance", "keyframer", "upscaler"} & \
        {item.split("=")[0] for item in lines[2].split()[1:]} and not any(line.startswith("seed") for line in lines)
    digest = hashlib.sha256(paths[0].read_bytes()).hexdigest()
    assert lines[3] == f"paintings: 2 (name and sha256): p0.png ({digest[:12]}), p1.png (" + \
        hashlib.sha256(paths[1].read_bytes()).hexdigest()[:12] + ")"
    assert "  interpolator: flow-warp (flow dis)" in lines and "  upscaler: lanczos" in lines
    assert main(["info", "--json", str(tmp_path / "walk.mp4")]) == 0
    metadata = json.loads(capsys.readouterr().out)
    assert metadata["paintings"][0] == digest and metadata["painting_names"] == ["p0.png", "p1.png"]
    assert "seed" not in metadata["settings"] and metadata["app"] == "artwalks"


def test_interpolate_and_upscale_record_how_they_were_made(tmp_path, capsys):
    import hashlib

    from inkwalk.provenance import read_metadata

    src = video_writer.write_video(tmp_path / "c.mp4", moving_clip(3, 32, 48), fps=6)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    assert main(["interpolate", str(src), "-o", str(tmp_path / "i.mp4")]) == 0
    made = read_metadata(tmp_path / "i.mp4")
    assert made["app"] == "interpolate" and made["source"] == {"name": "c.mp4", "sha256": digest}
    assert made["settings"] == {"method": "flow-warp", "factor": 2, "fps": 12.0, "crf": 18, "flow": "dis"}
    assert main(["upscale", str(src), "-o", str(tmp_path / "u.mp4"), "--backend", "lanczos", "--size", "96x64"]) == 0
    made = read_metadata(tmp_path / "u.mp4")
    assert made["app"] == "upscale" and made["source"]["sha256"] == digest
    assert made["settings"]["backend"] == "lanczos" and made["settings"]["size"] == [96, 64]
    capsys.readouterr()
    assert main(["info", str(tmp_path / "u.mp4")]) == 0
    assert f"source: c.mp4 (sha256 {digest[:12]})" in capsys.readouterr().out
    still = tmp_path / "still.png"
    video.save_image(still, moving_clip(1, 32, 48)[0])
    assert main(["upscale", str(still), "-o", str(tmp_path / "big.png"), "--backend", "lanczos", "--size", "x2"]) == 0
    made = read_metadata(tmp_path / "big.png")
    assert made["app"] == "upscale" and made["source"]["name"] == "still.png" and made["settings"]["size"] == [96, 64]
    capsys.readouterr()
    assert main(["info", str(tmp_path / "big.png")]) == 0
    assert "source: still.png" in capsys.readouterr().out


@pytest.mark.parametrize("width", [16, 48, 72])
def test_widths_decord_cannot_unpack_still_read(tmp_path, width):
    """decord 0.6 fails on some row strides; those videos must still read (PyAV path)."""
    clip = moving_clip(4, 40, width)
    path = video_writer.write_video(tmp_path / "w.mp4", clip, fps=4)
    assert psnr(video.read_frames(path), clip) > 35
    assert video.read_frames(path, [3], size=(width + 8, 40)).shape == (1, 40, width + 8, 3)
    assert len(list(video.iter_frames(path))) == 4


def test_media_error_survives_pickling_between_processes():
    import pickle

    err = pickle.loads(pickle.dumps(video.MediaError("/x/y.mp4", "file not found")))
    assert (err.path, err.reason, str(err)) == ("/x/y.mp4", "file not found", "/x/y.mp4: file not found")


FIT_MEMORY_BOUND_MB = 48


def test_fitting_a_thin_strip_resamples_only_what_is_kept():
    """A 20000x16 strip cropped to 720x720: resizing the whole strip to cover first (the old way)
    peaks at ~4.5 GB (a 900000x720 image in Pillow and again in numpy); cropping first keeps the
    peak within a few target-sized frames. Peak RSS is measured in a child process, so Pillow's
    own allocations count too."""
    code = """
import resource, numpy as np
from inkwalk.video import fit_image
strip = np.random.default_rng(0).integers(0, 255, (16, 20000, 3), dtype=np.uint8)
fit_image(strip[:, :64], (720, 720), "crop")  # warm up Pillow's resampling code
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
crop, box = fit_image(strip, (720, 720), "crop"), fit_image(strip, (720, 720), "letterbox")
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
middle = strip[:, 9992:10008]  # the centred 16x16 source region the crop must show
print((after - before) / 1024, crop.shape, box.shape, float(np.abs(crop.mean((0, 1)) - middle.mean((0, 1))).max()))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(None, 1)
    growth_mb, rest = float(out[0]), out[1]
    assert growth_mb < FIT_MEMORY_BOUND_MB, growth_mb
    assert rest.count("(720, 720, 3)") == 2
    assert float(rest.split()[-1]) < 3.0  # the crop is the strip's centre, not some other part


def test_crop_fit_matches_resize_then_crop_on_ordinary_images():
    """Cropping first is the same picture as the obvious resize-to-cover-then-crop (Pillow)."""
    frame = moving_clip(1, 100, 200)[0]
    reference = np.asarray(Image.fromarray(frame).resize((128, 64), Image.Resampling.LANCZOS))[:, 32:96]
    assert psnr(video.fit_image(frame, (64, 64), "crop"), reference) > 40


def test_video_writer_never_replaces_a_good_video_with_a_failed_one(tmp_path):
    good = video_writer.write_video(tmp_path / "out.mp4", moving_clip(6, 32, 32), fps=6)
    before = good.read_bytes()
    with pytest.raises(RuntimeError, match="render failed"):
        with video_writer.VideoWriter(good, fps=6) as writer:
            writer.write_many(moving_clip(60, 64, 64))  # enough for x264 to hand packets to the muxer
            assert list(tmp_path.glob(".out.tmp-*.mp4"))  # the new video goes to a hidden sibling
            raise RuntimeError("render failed")
    assert good.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    video_writer.write_video(good, moving_clip(4, 48, 48), fps=6)  # a complete write replaces it
    assert video.probe(good).frames == 4 and sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_save_image_is_atomic_and_checks_the_extension(tmp_path, monkeypatch):
    path = video.save_image(tmp_path / "a.png", moving_clip(1, 16, 16)[0])
    before = path.read_bytes()

    def broken_save(self, *args, **kwargs):
        open(args[0], "wb").write(b"half")  # noqa: SIM115 - a writer that dies midway
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        video.save_image(path, moving_clip(1, 16, 16)[0])
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["a.png"]
    monkeypatch.undo()
    for bad in ("a.mp4", "a.gif", "noext"):
        with pytest.raises(video.InkwalkError, match="must end in .png"):
            video.save_image(tmp_path / bad, moving_clip(1, 16, 16)[0])


@pytest.mark.parametrize("name, phrase", [("v.gif", "must end in .mp4"), ("v.png", "must end in .mp4"),
                                          ("blocker/v.mp4", "is not a folder"), ("folder.mp4", "is a folder")])
def test_output_paths_are_checked_before_any_work(tmp_path, name, phrase):
    (tmp_path / "blocker").write_text("a file, not a folder")
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(video.InkwalkError, match=phrase):
        video.check_output(tmp_path / name, "video")
    with pytest.raises(video.InkwalkError, match="cannot write to folder"):
        video.check_output("/proc/inkwalk-test/v.mp4", "video")  # read-only even for root
    assert video.check_output(tmp_path / "new" / "deeper" / "v.mp4", "video") == tmp_path / "new/deeper/v.mp4"
