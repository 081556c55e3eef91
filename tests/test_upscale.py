"""Upscaling: tiles stitch seam-free, sizes are exact, both backends, CLI."""

from __future__ import annotations

import numpy as np
import pytest

from inkwalk.tiling import tile_starts
from inkwalk.upscale import LanczosUpscaler, get_upscaler


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """Two random 37x45 frames: odd sizes, edges everywhere."""
    return np.random.default_rng(0).integers(0, 256, (2, 37, 45, 3), dtype=np.uint8)


def test_tile_starts_cover_every_pixel_with_equal_tiles():
    for length, tile in [(45, 16), (16, 16), (10, 16), (100, 33)]:
        starts = tile_starts(length, tile)
        covered = np.zeros(length, bool)
        for s in starts:
            covered[s:s + tile] = True
            assert s + min(tile, length) <= length
        assert covered.all()


def _loud(upscaler):
    """Re-draw the tiny RRDB's random weights at unit gain, so its output is a real picture.

    Real-ESRGAN initialises its residual blocks at 0.1x scale, which leaves a random tiny net
    printing an almost black frame that any tiling would "match".
    """
    import torch

    gen = torch.Generator().manual_seed(0)
    convs = [m for m in upscaler.descriptor.model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for m in convs:
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (1.0 / fan_in) ** 0.5)
            m.bias.fill_(0.0)
        convs[-1].bias.fill_(0.5)
    return upscaler


def test_realesrgan_tiled_equals_untiled(tiny_models, frames):
    # _loud re-draws the weights in memory, which only the PyTorch path sees
    whole = _loud(get_upscaler("realesrgan", models_dir=tiny_models, device="cpu", tile=512, runtime="torch"))
    a = whole.upscale_native(frames)
    assert a.shape == (2, 37 * 4, 45 * 4, 3)
    assert a.std() > 0.05 and ((a > 0) & (a < 1)).mean() > 0.5  # a real picture, not a clamped constant
    tiled = _loud(get_upscaler("realesrgan", models_dir=tiny_models, device="cpu", tile=16, overlap=24,
                               batch_size=1, runtime="torch"))
    assert np.abs(a - tiled.upscale_native(frames)).max() <= 1 / 255
    # without context around the tiles the seams are visible: the overlap is what makes it exact
    seamy = _loud(get_upscaler("realesrgan", models_dir=tiny_models, device="cpu", tile=16, overlap=0,
                               runtime="torch"))
    assert np.abs(a - seamy.upscale_native(frames)).max() > 1 / 255


def test_realesrgan_exact_target_size_for_odd_inputs(tiny_models, frames):
    up = get_upscaler("realesrgan", models_dir=tiny_models, device="cpu", tile=32)
    out = up.upscale(frames, (101, 77))
    assert out.shape == (2, 77, 101, 3) and out.dtype == np.uint8
    assert up.upscale(frames[0], (90, 74)).shape == (74, 90, 3)


def test_lanczos_backend_needs_no_weights_and_keeps_a_smooth_picture():
    y, x = np.mgrid[0:31, 0:47]
    frame = np.stack([x * 5, y * 8, (x + y) * 3], -1).astype(np.uint8)
    out = LanczosUpscaler().upscale(frame, (141, 93))
    assert out.shape == (93, 141, 3)
    # a linear ramp stays a ramp: corners keep their colours
    assert np.abs(out[0, 0].astype(int) - frame[0, 0]).max() <= 3
    assert np.abs(out[-1, -1].astype(int) - frame[-1, -1]).max() <= 3


def test_unknown_backend_and_missing_weights_are_clear(tmp_path):
    from inkwalk.errors import InkwalkError

    with pytest.raises(InkwalkError, match="unknown upscaler"):
        get_upscaler("bicubic")
    for backend, model in (("realesrgan", "realesrgan-x4plus"), ("realesrgan-compact", "realesr-animevideov3")):
        with pytest.raises(InkwalkError) as err:
            get_upscaler(backend, models_dir=tmp_path)
        assert f"model '{model}' not found" in str(err.value) and f"inkwalk models fetch {model}" in str(err.value)


def test_compact_backend_runs_the_compact_model(tiny_models, frames):
    up = get_upscaler("realesrgan-compact", models_dir=tiny_models, device="cpu", runtime="torch")
    assert up.name == "realesrgan-compact" and up.descriptor.architecture.id == "Compact" and up.tile == 512
    assert up.upscale(frames, (90, 74)).shape == (2, 74, 90, 3)
    # SRVGGNetCompact's receptive field (1 pixel per 3x3 conv, 4 convs here) fits in the overlap: tiles are exact
    whole = _loud(up).upscale_native(frames)
    tiled = _loud(get_upscaler("realesrgan-compact", models_dir=tiny_models, device="cpu", tile=16, overlap=4,
                                 runtime="torch"))
    assert np.abs(tiled.upscale_native(frames) - whole).max() <= 1e-5
    seamy = _loud(get_upscaler("realesrgan-compact", models_dir=tiny_models, device="cpu", tile=16, overlap=2,
                                 runtime="torch"))
    assert np.abs(seamy.upscale_native(frames) - whole).max() > 1 / 255


def test_cli_backends_are_the_library_backends():
    from inkwalk.cli import build_parser
    from inkwalk.upscale import BACKENDS

    upscale = build_parser()._subparsers._group_actions[0].choices["upscale"]
    backend = next(a for a in upscale._actions if a.dest == "backend")
    assert tuple(backend.choices) == BACKENDS and backend.default == "realesrgan"


def test_cli_upscale_image(tmp_path, tiny_models):
    from inkwalk.cli import main
    from inkwalk.video import read_image, save_image

    src = tmp_path / "in.png"
    save_image(src, np.random.default_rng(1).integers(0, 256, (21, 33, 3), dtype=np.uint8))
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.png"), "--models", str(tiny_models),
                 "--device", "cpu"]) == 0
    assert read_image(tmp_path / "out.png").shape == (84, 132, 3)
    assert main(["upscale", str(src), "-o", str(tmp_path / "l.png"), "--backend", "lanczos",
                 "--size", "50x30", "--fit", "stretch"]) == 0
    assert read_image(tmp_path / "l.png").shape == (30, 50, 3)


def test_fit_decides_how_an_aspect_change_is_reached():
    from inkwalk.upscale import LanczosUpscaler, changes_aspect, upscale_fit

    frame = np.zeros((20, 40, 3), np.uint8)
    frame[:, 10:30] = 200  # a bright centre, dark sides
    up = LanczosUpscaler()
    stretched, cropped, boxed = (upscale_fit(up, frame, (80, 80), fit) for fit in ("stretch", "crop", "letterbox"))
    assert stretched.shape == cropped.shape == boxed.shape == (80, 80, 3)
    assert cropped[:, 5:75].mean() > 190  # the centre 20x20 fills the frame
    assert boxed[:15].max() == 0 and boxed[25:55].mean() > 50  # black bars above and below the whole frame
    assert not changes_aspect((1000, 563), (1920, 1080)) and changes_aspect((33, 21), (50, 30))


def test_each_distinct_frame_is_upscaled_once(tiny_models):
    from inkwalk.distinct_frames import distinct_frames

    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 256, (2, 12, 16, 3), dtype=np.uint8)
    frames = np.stack([a, a, b, a, b, b])
    first, inverse = distinct_frames(frames)
    assert first.tolist() == [0, 2] and inverse.tolist() == [0, 0, 1, 0, 1, 1]
    assert (frames[first][inverse] == frames).all()
    up = get_upscaler("realesrgan-compact", models_dir=tiny_models, device="cpu")
    out = up.upscale(frames, (64, 48))
    assert up.frames_upscaled == 2 and out.shape == (6, 48, 64, 3)
    assert (out[1] == out[0]).all() and (out[3] == out[0]).all() and (out[5] == out[2]).all()
    assert (out[2] == up.upscale(b, (64, 48))).all()  # repeating changes nothing


def test_a_walk_upscales_each_distinct_frame_once(tiny_models, tmp_path):
    """Held paintings are upscaled once and repeated: the in-process walk runs the network on exactly
    the pieces' distinct frames (the Ray paths send the same pieces to the Upscaler deployment)."""
    from inkwalk.artwalks import WalkModels
    from inkwalk.local_render import render_collection_in_process
    from inkwalk.walk_settings import WalkSettings, walk_frame_count
    from inkwalk.interpolate import get_interpolator
    from inkwalk.paintings import collection
    from inkwalk.segments import plan_pieces

    settings = WalkSettings(preset="offline", size=(32, 24), upscale="x2", upscaler="realesrgan-compact",
                                        frames=3, hold=0.5, fps=8)
    up = get_upscaler("realesrgan-compact", models_dir=tiny_models, device="cpu")
    models = WalkModels(None, get_interpolator("flow-warp", flow="dis"), up)
    result = render_collection_in_process(collection(3, (32, 24), 0), tmp_path / "w.mp4", settings,
                                          cache_dir=tmp_path / "c", models=models, sheet=False)
    distinct = sum(p.distinct for p in plan_pieces(3, settings))
    assert result.frames == walk_frame_count(3, settings) > distinct
    assert up.frames_upscaled == distinct
