"""FILM in PyTorch: shapes, padding, batching, tiling, precision, the official-checkpoint converter.

Inference tests use the tiny config (random weights, or weights set by hand so that the network
performs a known translation); the converter test uses the full "Style" config.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import psnr, textured_frame
from inkwalk.errors import InkwalkError
from inkwalk.interpolate.film import (
    STYLE_CONFIG,
    TINY_CONFIG,
    FilmCheckpointError,
    FilmConfig,
    FilmInputError,
    FilmNet,
    convert_official_checkpoint,
    interpolate_pair,
    load_film,
    read_film,
    save_film,
    write_tiny_checkpoint,
)


@pytest.fixture(scope="module")
def tiny_net(tmp_path_factory) -> FilmNet:
    path = write_tiny_checkpoint(tmp_path_factory.mktemp("film") / "film.safetensors")
    return load_film(path=path)


def shift_net(shift: float) -> FilmNet:
    """A tiny FILM whose weights make it translate: flow = (+shift, 0) px, output = warped frame 1.

    Only the shared flow predictor's output bias is set (levels 3 and 2 share it, levels 1 and 0
    add nothing): the finest flow is ``((b * 2) + b) * 2 * 2 = 12 b``. The fusion copies the warped
    frame 1 through. So frame 1 = frame 0 moved right by `shift` gives frame 0 moved by ``t·shift``.
    """
    net = FilmNet(TINY_CONFIG)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.predict_flow.shared[-1].bias.copy_(torch.tensor([shift / 12.0, 0.0]))
        frame1_channels = 3 + TINY_CONFIG.feature_channels(0)  # after warped (image 0, features 0)
        for c in range(3):
            net.fusion.levels[0][1].weight[c, frame1_channels + c, 1, 1] = 1.0
            net.fusion.levels[0][2].weight[c, c, 1, 1] = 1.0
            net.fusion.output_conv.weight[c, c, 0, 0] = 1.0
    return net.eval()


# ----------------------------------------------------------------------------- inference

def test_output_shape_dtype_and_range(tiny_net):
    a, b = textured_frame(40, 56, seed=1), textured_frame(40, 56, shift=2, seed=1)
    out = interpolate_pair(tiny_net, a, b, [0.2, 0.5, 0.9])
    assert out.shape == (3, 40, 56, 3) and out.dtype == np.uint8
    assert out.std() > 1.0  # a picture, not a constant
    with torch.inference_mode():
        raw = tiny_net(torch.rand(2, 3, 16, 24), torch.rand(2, 3, 16, 24), torch.tensor([0.3, 0.7]))
    assert raw.shape == (2, 3, 16, 24) and raw.dtype == torch.float32 and torch.isfinite(raw).all()
    assert interpolate_pair(tiny_net, a, b, []).shape == (0, 40, 56, 3)
    # The network's float output is unbounded; frames are clipped to [0, 1] before uint8.
    for bias, level in ((2.0, 255), (-2.0, 0)):
        net = shift_net(0.0)
        net.fusion.output_conv.bias.data.fill_(bias)
        assert (interpolate_pair(net, a, b, [0.5]) == level).all()


def test_known_translation_at_any_time_and_exact_crop():
    """Sizes not divisible by 8 are padded and cropped back with no offset: the hand-set network
    reproduces the exact translated frame (uint8-equal away from the left/right borders)."""
    height, width = 37, 53  # pads to 40×56
    a, b = textured_frame(height, width, seed=3), textured_frame(height, width, shift=4, seed=3)
    times = [0.25, 0.5, 0.75]
    out = interpolate_pair(shift_net(4.0), a, b, times)
    assert out.shape == (3, height, width, 3)
    for frame, t in zip(out, times):
        expected = textured_frame(height, width, shift=4 * t, seed=3)
        assert np.array_equal(frame[:, 4:-4], expected[:, 4:-4]), t


def test_padding_matches_manual_pad_and_crop(tiny_net):
    height, width = 37, 53
    a, b = textured_frame(height, width, seed=4), textured_frame(height, width, shift=3, seed=4)
    out = interpolate_pair(tiny_net, a, b, [0.5])[0]
    # By hand: 40×56, i.e. 1 row on top, 2 at the bottom, 1 column left, 2 right, edges repeated.
    pad = [np.pad(f, ((1, 2), (1, 2), (0, 0)), mode="edge") for f in (a, b)]
    x0, x1 = (torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255 for f in pad)
    with torch.inference_mode():
        full = tiny_net(x0, x1, 0.5)[0].clamp(0, 1).permute(1, 2, 0).numpy()
    manual = np.rint(full[1:1 + height, 1:1 + width] * 255).astype(np.uint8)
    assert np.abs(out.astype(int) - manual).max() <= 1  # float summation order only


def test_batch_equals_loop(tiny_net):
    a, b = textured_frame(32, 48, seed=5), textured_frame(32, 48, shift=2, seed=5)
    times = [0.1, 0.4, 0.5, 0.8]
    batched = interpolate_pair(tiny_net, a, b, times, batch_size=4)
    looped = np.concatenate([interpolate_pair(tiny_net, a, b, [t]) for t in times])
    assert np.abs(batched.astype(int) - looped).max() <= 1
    assert not np.array_equal(batched[0], batched[3])  # time matters
    # Network level: a batch of different pairs and times equals one pair at a time.
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.rand(3, 3, 16, 16, generator=g), torch.rand(3, 3, 16, 16, generator=g)
    t = torch.tensor([0.2, 0.5, 0.7])
    with torch.inference_mode():
        together = tiny_net(x0, x1, t)
        alone = torch.cat([tiny_net(x0[i:i + 1], x1[i:i + 1], t[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_tiled_equals_untiled_within_tolerance(tiny_net):
    """Stated tolerance, in uint8 levels. Hand-set translating net, 4 px motion, 16 px overlap:
    max <= 8, mean < 0.2 (windows clamp samples at their own edges; the ramps weight that down;
    measured 8 / 0.06). Random tiny net: mean < 0.5, PSNR > 40 dB (its coarse levels see the whole
    window, so internal window edges change it a little everywhere; measured over 4 random
    seeds: mean 0.13-0.38, PSNR 41-52 dB). Wrong window placement or weights fail both by far."""
    height, width = 70, 101
    a, b = textured_frame(height, width, seed=6), textured_frame(height, width, shift=4, seed=6)
    net = shift_net(4.0)
    whole = interpolate_pair(net, a, b, [0.5])
    tiled = interpolate_pair(net, a, b, [0.5], tile=48, overlap=16)  # 2×3 windows
    diff = np.abs(tiled.astype(int) - whole)
    assert tiled.shape == whole.shape and diff.max() <= 8 and diff.mean() < 0.2
    whole = interpolate_pair(tiny_net, a, b, [0.5])
    tiled = interpolate_pair(tiny_net, a, b, [0.5], tile=48, overlap=16)
    assert np.abs(tiled.astype(int) - whole).mean() < 0.5 and psnr(tiled, whole) > 40


def test_out_of_memory_falls_back_to_smaller_tiles(tiny_net, monkeypatch):
    from inkwalk.interpolate.film import infer

    real, sides = infer._window, []

    def small_memory(model, x0, x1, t, batch_size):  # a device that only fits 40-pixel windows
        sides.append(max(x0.shape[-2:]))
        if sides[-1] > 40:
            raise torch.OutOfMemoryError("out of memory (simulated)")
        return real(model, x0, x1, t, batch_size)

    a, b = textured_frame(70, 101, seed=8), textured_frame(70, 101, shift=2, seed=8)
    expected = interpolate_pair(tiny_net, a, b, [0.5], tile=25)
    monkeypatch.setattr(infer, "_window", small_memory)
    monkeypatch.setattr(infer, "MIN_AUTO_TILE", 16)
    with pytest.warns(RuntimeWarning, match="fell back to 25-pixel tiles") as caught:
        assert np.array_equal(interpolate_pair(tiny_net, a, b, [0.5]), expected)  # 101 -> 50 -> 25
    assert len(caught) == 1  # once, with the size it settled on, not once per halving
    assert sides[:2] == [101, 50] and max(sides[2:]) == 25
    with pytest.raises(FilmInputError, match="out of cpu memory.*tile="):
        interpolate_pair(tiny_net, a, b, [0.5], tile=50)  # an explicit tile is respected
    monkeypatch.setattr(infer, "MIN_AUTO_TILE", 64)
    with pytest.raises(FilmInputError, match="out of cpu memory"):
        interpolate_pair(tiny_net, a, b, [0.5])  # 101 -> 64 still too big: give up


def test_bfloat16_autocast_close_to_float32(tiny_net):
    """bfloat16 keeps 8 bits of mantissa: within 3 levels of float32 (measured 1)."""
    a, b = textured_frame(32, 40, seed=7), textured_frame(32, 40, shift=2, seed=7)
    full = interpolate_pair(tiny_net, a, b, [0.5])
    half = interpolate_pair(tiny_net, a, b, [0.5], dtype="bf16")
    assert np.abs(half.astype(int) - full).max() <= 3
    import copy

    bf16_weights = copy.deepcopy(tiny_net).to(torch.bfloat16)  # a model cast by hand, no autocast
    assert np.abs(interpolate_pair(bf16_weights, a, b, [0.5]).astype(int) - full).max() <= 3


def test_bad_inputs_are_user_errors(tiny_net):
    a = textured_frame(32, 32)
    with pytest.raises(FilmInputError, match="one size"):
        interpolate_pair(tiny_net, a, textured_frame(32, 40), [0.5])
    with pytest.raises(FilmInputError, match=r"\[0, 1\]"):
        interpolate_pair(tiny_net, a, a, [1.5])
    with pytest.raises(FilmInputError, match="uint8"):
        interpolate_pair(tiny_net, a.astype(np.float32), a, [0.5])
    with pytest.raises(FilmInputError, match="tile"):
        interpolate_pair(tiny_net, a, a, [0.5], tile=16, overlap=16)
    assert issubclass(FilmInputError, InkwalkError) and issubclass(FilmCheckpointError, InkwalkError)


def test_matches_official_tensorflow_film_net():
    """tests/data/film_tf_reference.npz holds the official TF2 film_net (tiny config, random
    weights, official variable names) with its outputs, made by make_film_tf_reference.py.
    Converted to PyTorch, ours gives the same flows and image to float32 round-off (measured
    4e-6; the same check on the full Style config at 64×128, run once: 2e-5 on the image, 5e-5 on
    100-pixel flows)."""
    from pathlib import Path

    ref = np.load(Path(__file__).parent / "data" / "film_tf_reference.npz")
    variables = {k.removeprefix("var::"): ref[k] for k in ref.files if k.startswith("var::")}
    net = FilmNet(TINY_CONFIG).eval()
    net.load_state_dict(convert_official_checkpoint(variables, TINY_CONFIG))
    x0, x1 = (torch.from_numpy(ref[k]).permute(0, 3, 1, 2) for k in ("in::x0", "in::x1"))
    with torch.inference_mode():
        state = net.encode(x0, x1)
        image = net.decode(state, 0.5)
    for name, ours in (("forward_flow_pyramid", state.forward_flows), ("backward_flow_pyramid", state.backward_flows)):
        for i, flow in enumerate(ours):
            np.testing.assert_allclose(flow.permute(0, 2, 3, 1).numpy(), ref[f"out::{name}::{i}"], atol=1e-4)
    assert np.abs(ref["out::forward_flow_pyramid::0"]).max() > 5  # real motion, not a zero field
    np.testing.assert_allclose(image.permute(0, 2, 3, 1).numpy(), ref["out::image"], atol=1e-4)


def test_the_tensorflow_reference_records_what_made_it():
    """The reference names its TensorFlow, the frame-interpolation commit and the hash of the
    script that made it; an edited script means the file must be made again."""
    here = Path(__file__).parent
    ref = np.load(here / "data" / "film_tf_reference.npz")
    script = hashlib.sha256((here / "scripts" / "make_film_tf_reference.py").read_bytes()).hexdigest()
    assert str(ref["made_by::script_sha256"]) == script, "make_film_tf_reference.py changed: run it again"
    assert re.fullmatch(r"2\.\d+\.\d+", str(ref["made_by::tensorflow"]))
    assert re.fullmatch(r"[0-9a-f]{40}", str(ref["made_by::repository_commit"]))


# ----------------------------------------------------------------------------- files

def test_tiny_checkpoint_round_trip(tmp_path, tiny_net):
    path = write_tiny_checkpoint(tmp_path / "a" / "film.safetensors", seed=0)
    config, state = read_film(path)
    assert config == TINY_CONFIG
    for key, value in tiny_net.state_dict().items():
        assert torch.equal(state[key], value), key
    other = read_film(write_tiny_checkpoint(tmp_path / "b.safetensors", seed=1))[1]
    assert any(not torch.equal(other[k], state[k]) for k in state)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "alien.safetensors"))
    with pytest.raises(FilmCheckpointError, match="not an inkwalk FILM"):
        load_film(path=tmp_path / "alien.safetensors")


def test_load_film_from_models_dir(tiny_models):
    net = load_film(models_dir=tiny_models)
    assert net.config == TINY_CONFIG and not net.training
    assert interpolate_pair(net, textured_frame(16, 16), textured_frame(16, 16), [0.5]).shape == (1, 16, 16, 3)


# ----------------------------------------------------------------------------- converter

def official_variables(cfg: FilmConfig, fusion_offset: int = 0, rng=None) -> dict[str, np.ndarray]:
    """Variables named and shaped as the official TF2 film_net's (``var.name``, HWIO kernels),
    written from models/film_net/*.py: SubTreeExtractor, FlowEstimator, Fusion (Keras auto-names
    ``conv2d``, ``conv2d_1``, ... in creation order; `fusion_offset` shifts Keras' counter)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(name: str, k: int, cin: int, cout: int) -> None:
        shapes[f"{name}/kernel:0"] = (k, k, cin, cout)
        shapes[f"{name}/bias:0"] = (cout,)

    f = cfg.filters
    for i in range(cfg.sub_levels):
        conv(f"feat_net/sub_extractor/cfeat_conv_{2 * i}", 3, 3 if i == 0 else f << (i - 1), f << i)
        conv(f"feat_net/sub_extractor/cfeat_conv_{2 * i + 1}", 3, f << i, f << i)
    feat = [sum(f << j for j in range(min(i + 1, cfg.sub_levels))) for i in range(cfg.pyramid_levels)]
    for name, level, convs, filters in (
            [(f"flow_predictor_{i}", i, cfg.flow_convs[i], cfg.flow_filters[i]) for i in range(cfg.specialized_levels)]
            + [("flow_predictor_shared", cfg.specialized_levels, cfg.flow_convs[-1], cfg.flow_filters[-1])]):
        cin = 2 * feat[level]
        for j in range(convs):
            conv(f"predict_flow/{name}/conv_{j}", 3, cin if j == 0 else filters, filters)
        conv(f"predict_flow/{name}/conv_{convs}", 1, filters, filters // 2)
        conv(f"predict_flow/{name}/conv_{convs + 1}", 1, filters // 2, 2)
    pyr = [2 * (3 + feat[i]) + 4 for i in range(cfg.fusion_pyramid_levels)]
    top = cfg.fusion_pyramid_levels - 1
    n = fusion_offset
    for i in range(top):
        width = f << min(i, cfg.specialized_levels)
        below = pyr[top] if i == top - 1 else f << min(i + 1, cfg.specialized_levels)
        for k, cin, cout in ((2, below, width), (3, pyr[i] + width, width), (3, width, width)):
            conv("fusion/conv2d" + (f"_{n}" if n else ""), k, cin, cout)
            n += 1
    conv(f"fusion/conv2d_{n}", 1, f, 3)
    rng = rng or np.random.default_rng(0)
    return {name: rng.standard_normal(shape, dtype=np.float32) for name, shape in shapes.items()}


def test_converter_places_every_style_variable():
    variables = official_variables(STYLE_CONFIG)
    # Anchors from the official model's printed variables and layer widths.
    assert variables["feat_net/sub_extractor/cfeat_conv_6/kernel:0"].shape == (3, 3, 256, 512)
    assert [variables[f"fusion/conv2d_{3 * i + 1}/kernel:0"].shape[2] for i in range(4)] == [202, 522, 1162, 2442]
    assert variables["fusion/conv2d_9/kernel:0"].shape == (2, 2, 1930, 512)
    assert variables["predict_flow/flow_predictor_shared/conv_0/kernel:0"].shape == (3, 3, 1920, 256)

    state = convert_official_checkpoint(variables)
    with torch.device("meta"):
        model = FilmNet(STYLE_CONFIG)
    assert len(state) == len(variables) == len(model.state_dict())
    model.load_state_dict(state, strict=True, assign=True)  # every parameter filled, shapes right
    assert sum(p.numel() for p in model.parameters()) == sum(v.size for v in variables.values()) == 34_436_667
    pairs = {
        "feat_net/sub_extractor/cfeat_conv_3/kernel:0": "feat_net.convs.3.weight",
        "predict_flow/flow_predictor_1/conv_2/kernel:0": "predict_flow.predictors.1.2.weight",
        "predict_flow/flow_predictor_shared/conv_4/bias:0": "predict_flow.shared.4.bias",
        "fusion/conv2d_4/kernel:0": "fusion.levels.1.1.weight",
        "fusion/conv2d_9/kernel:0": "fusion.levels.3.0.weight",
        "fusion/conv2d_12/kernel:0": "fusion.output_conv.weight",
        "fusion/conv2d/bias:0": "fusion.levels.0.0.bias",
    }
    for name, key in pairs.items():
        expected = variables[name].transpose(3, 2, 0, 1) if variables[name].ndim == 4 else variables[name]
        assert np.array_equal(state[key].numpy(), expected), name


def test_converter_names_are_robust_and_mistakes_are_reported(tmp_path, capsys):
    cfg = TINY_CONFIG
    base = official_variables(cfg, rng=np.random.default_rng(1))
    reference = convert_official_checkpoint(base, cfg)
    # Shuffled order, a model scope above the layers, and Keras' conv2d counter not at 0.
    shifted = official_variables(cfg, fusion_offset=20, rng=np.random.default_rng(1))
    items = list(shifted.items())
    np.random.default_rng(2).shuffle(items)
    moved = convert_official_checkpoint({f"film_net/{k}": v for k, v in items}, cfg)
    assert moved.keys() == reference.keys() and all(torch.equal(moved[k], reference[k]) for k in reference)
    # From a file of variables, then through our file format into a working network.
    np.savez(tmp_path / "vars.npz", **base)
    state = convert_official_checkpoint(tmp_path / "vars.npz", cfg)
    net = load_film(path=save_film(tmp_path / "film.safetensors", state, cfg))
    assert torch.equal(net.fusion.output_conv.weight, reference["fusion.output_conv.weight"])
    from inkwalk.interpolate.film.__main__ import main

    assert main(["convert", str(tmp_path / "vars.npz"), str(tmp_path / "out.safetensors")]) == 1  # not Style
    err = capsys.readouterr().err
    assert err.startswith("error: the checkpoint does not match") and err.count("\n") == 1
    assert not (tmp_path / "out.safetensors").exists()

    missing = dict(base)
    del missing["predict_flow/flow_predictor_shared/conv_1/kernel:0"]
    with pytest.raises(FilmCheckpointError, match="predict_flow.shared.1.weight"):
        convert_official_checkpoint(missing, cfg)
    with pytest.raises(FilmCheckpointError, match="not FILM"):
        convert_official_checkpoint({**base, "optimizer/iter:0": np.zeros(())}, cfg)
    wrong = {**base, "feat_net/sub_extractor/cfeat_conv_0/kernel:0": np.zeros((3, 3, 3, 5), np.float32)}
    with pytest.raises(FilmCheckpointError, match="shape"):
        convert_official_checkpoint(wrong, cfg)
    with pytest.raises(FilmCheckpointError, match="architecture"):
        convert_official_checkpoint(base, STYLE_CONFIG)  # tiny variables do not fit Style
