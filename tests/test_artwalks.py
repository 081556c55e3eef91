"""ArtWalks end to end: tiny Kandinsky keyframes, frame-count formula, reuse of walks, CLI."""

from __future__ import annotations


import numpy as np
import pytest

from inkwalk.artwalks import load_walk_models, prepare_painting
from inkwalk.keyframes import render_keyframes
from inkwalk.local_render import render_collection_in_process
from inkwalk.paintings import draw
from inkwalk.video import probe, read_frames, read_image
from inkwalk.walk_settings import WalkSettings, walk_frame_count


@pytest.fixture(scope="module")
def paper(tiny_models):
    """Paper preset on tiny random models, small enough for a CPU test; models loaded once."""
    settings = WalkSettings(preset="paper", keyframes=2, frames=2, size=(32, 32), steps=1, hold=2 / 24,
                                        upscale="x2")
    return settings, load_walk_models(settings, models_dir=tiny_models, device="cpu")


def _paintings():
    # different sizes and aspect ratios: the walk fits them all to one size
    return [draw("mountains", (64, 40), 0), draw("river", (40, 64), 1), draw("mountains", (48, 48), 2)]


def test_paper_walk_of_three_paintings_end_to_end_and_reused(paper, tiny_models, tmp_path):
    settings, models = paper
    kw = dict(cache_dir=tmp_path / "cache", models_dir=tiny_models, models=models)
    out = tmp_path / "walk.mp4"
    result = render_collection_in_process(_paintings(), out, settings, **kw)
    # (k-1)(m+1)(n+1) + 1 + k*round(hold*fps) = 2*3*3 + 1 + 3*2
    assert walk_frame_count(3, settings) == 25
    info = probe(out)
    assert result.frames == info.frames == 25
    assert (info.width, info.height) == (64, 64)  # x2 by Real-ESRGAN (tiny) from 32x32
    frames = read_frames(out)
    assert np.abs(frames[0].astype(int) - frames[2]).mean() < 2  # painting A held for 2 frames
    sheet = read_image(result.sheet)
    assert sheet.shape[0] > 1.5 * 160 and sheet.shape[1] > 3.5 * 160  # two rows of A, K1, K2, B
    pieces = 2 * 3 + 1  # one per step of each walk, and the last painting
    assert (result.chunks_rendered, result.chunks_reused) == (pieces, 0)

    # the same collection again: every chunk comes from the store, the video is the same
    again = render_collection_in_process(_paintings(), tmp_path / "again.mp4", settings, **kw)
    assert (again.chunks_rendered, again.chunks_reused) == (0, pieces) and again.keys == result.keys
    assert np.array_equal(frames, read_frames(tmp_path / "again.mp4"))
    # a new hold re-renders only the pieces that hold a painting (each walk's first, and the last)
    held = render_collection_in_process(_paintings(), tmp_path / "held.mp4", settings.with_changes(hold=0.0), **kw)
    assert (held.chunks_rendered, held.frames) == (3, 19)
    assert np.array_equal(read_frames(tmp_path / "held.mp4")[1:3], frames[3:5])


def test_an_interrupted_render_keeps_the_previous_video_and_its_chunks(tmp_path, monkeypatch):
    import inkwalk.local_render as local_render

    settings = WalkSettings(preset="offline", size=(32, 32), frames=2)
    out = tmp_path / "walk.mp4"
    render_collection_in_process(_paintings()[:2], out, settings, cache_dir=tmp_path / "c", sheet=False)
    before = out.read_bytes()
    calls = {"n": 0}
    real = local_render.upscale_frames

    def dies_on_second_piece(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(local_render, "upscale_frames", dies_on_second_piece)
    with pytest.raises(KeyboardInterrupt):
        render_collection_in_process(_paintings(), out, settings, cache_dir=tmp_path / "c", sheet=False)
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    monkeypatch.setattr(local_render, "upscale_frames", real)
    resumed = render_collection_in_process(_paintings(), out, settings, cache_dir=tmp_path / "c", sheet=False)
    assert resumed.chunks_reused == 2  # the first walk, and the piece finished before the interrupt


def test_keyframes_same_seed_identical_other_seed_different(paper):
    settings, models = paper
    a, b = (prepare_painting(p, settings) for p in _paintings()[:2])
    k1 = render_keyframes(a, b, settings, keyframer=models.keyframer)
    assert k1.shape == (2, 32, 32, 3) and k1.dtype == np.uint8
    assert np.array_equal(k1, render_keyframes(a, b, settings, keyframer=models.keyframer))
    k2 = render_keyframes(a, b, settings.with_changes(seed=1), keyframer=models.keyframer)
    assert np.abs(k1.astype(int) - k2).mean() > 1


def test_offline_collection_reuses_shared_walks_and_letterboxes(tmp_path):
    settings = WalkSettings(preset="offline", size=(64, 40), frames=3, fit="letterbox")
    p = [draw("mountains", (64, 64), 0), draw("river", (96, 40), 1), draw("mountains", (40, 96), 2),
         draw("river", (64, 48), 3)]
    first = render_collection_in_process(p[:3], tmp_path / "a.mp4", settings, cache_dir=tmp_path / "c", sheet=False)
    second = render_collection_in_process([p[0], p[1], p[3]], tmp_path / "b.mp4", settings, cache_dir=tmp_path / "c",
                                          sheet=False)
    assert (second.chunks_rendered, second.chunks_reused) == (2, 1)  # P1->P2 shared
    assert first.frames == probe(tmp_path / "a.mp4").frames == 2 * 1 * 4 + 1
    frame0 = read_frames(tmp_path / "a.mp4", [0])[0]
    assert frame0[:, :4].mean() < 20  # the square painting is letterboxed: black bars left and right


@pytest.mark.parametrize("case", ["missing", "one", "not-image"])
def test_walk_cli_bad_input_is_one_clear_line(tmp_path, capsys, case):
    from inkwalk.cli import main

    good = tmp_path / "a.png"
    from inkwalk.video import save_image

    save_image(good, draw("river", (32, 32), 0))
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    args = {"missing": [str(good), str(tmp_path / "nope.png")], "one": [str(good)],
            "not-image": [str(good), str(bad)]}[case]
    assert main(["walk", *args, "-o", str(tmp_path / "w.mp4"), "--preset", "offline"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert {"missing": "nope.png", "one": "at least 2 paintings", "not-image": "notes.png"}[case] in err


def test_paper_preset_without_weights_fails_fast_and_suggests_offline(tmp_path, capsys, monkeypatch):
    from inkwalk.cli import main
    from inkwalk.video import save_image

    monkeypatch.delenv("INKWALK_MODELS", raising=False)
    for name in ("a", "b"):
        save_image(tmp_path / f"{name}.png", draw("river", (32, 32), 0))
    out = tmp_path / "w.mp4"
    code = main(["walk", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", str(out), "--preset", "paper",
                 "--models", str(tmp_path / "empty"), "--store", str(tmp_path / "cache")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("inkwalk: error:")]
    assert code == 1 and len(err) == 1
    assert "kandinsky-2-2-prior" in err[0] and "--preset offline" in err[0]
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_a_looping_collection_walks_back_to_its_first_painting(tmp_path):
    from helpers import psnr

    settings = WalkSettings(preset="offline", size=(48, 32), frames=3, hold=0.25, fps=8, loop=True)
    p = [draw("mountains", (64, 48), 0), draw("river", (64, 48), 1), draw("mountains", (64, 48), 2)]
    result = render_collection_in_process(p, tmp_path / "loop.mp4", settings, cache_dir=tmp_path / "c", sheet=False)
    frames = read_frames(tmp_path / "loop.mp4")
    assert result.frames == len(frames) == walk_frame_count(3, settings) == 3 * 1 * 4 + 1 + 4 * 2  # k walks
    first, last = prepare_painting(p[0], settings), prepare_painting(p[2], settings)
    assert psnr(frames[0], first) > 35 and psnr(frames[-1], first) > 35  # starts and ends on P_1
    assert psnr(frames[-1], last) < psnr(frames[-1], first) - 10
    straight = render_collection_in_process(p, tmp_path / "line.mp4", settings.with_changes(loop=False),
                                            cache_dir=tmp_path / "c", sheet=False)
    assert straight.chunks_rendered == 1  # every walk shared with the loop: only P_3 held at the end is new


def test_walk_loop_option_on_the_cli(tmp_path):
    from inkwalk.cli import main
    from inkwalk.video import save_image

    paths = [save_image(tmp_path / f"p{i}.png", draw("river", (48, 32), i)) for i in range(2)]
    assert main(["walk", *map(str, paths), "-o", str(tmp_path / "w.mp4"), "--preset", "offline", "--size", "48x32",
                 "--frames", "2", "--loop", "--store", str(tmp_path / "c"), "--no-sheet"]) == 0
    assert probe(tmp_path / "w.mp4").frames == 2 * 1 * 3 + 1  # two walks: P_1 -> P_2 -> P_1
