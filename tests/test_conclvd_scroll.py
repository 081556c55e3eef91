"""Scrolls: windows, weights, noise and prompt travel against diffusers' FreeNoise; the windowed sampler
against the single-clip pipeline; Sparse-Causal attention inside a window against diffusers' Attention;
"motion" windowing against `AnimateDiffPipeline.enable_free_noise`."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
from diffusers import AnimateDiffPipeline, MotionAdapter
from diffusers.models.attention import FreeNoiseTransformerBlock
from diffusers.models.attention_processor import Attention

from inkwalk.conclvd.model import encode_prompts
from inkwalk.conclvd.motion_module import SparseCausalAttention
from inkwalk.conclvd.noise import initial_noise
from inkwalk.conclvd.pipeline import ConCLVDPipeline, conclvd_scheduler
from inkwalk.conclvd.prompt_travel import frame_embeddings, parse_schedule
from inkwalk.conclvd.scroll import (LocalWindowRunner, ScrollRequest, Window, plan_motion_windows, predict_window,
                                    sample_scroll)
from inkwalk.conclvd.windows import WindowPlan
from inkwalk.errors import InkwalkError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def reference(tiny_models):
    """diffusers' AnimateDiffPipeline on the tiny SD 1.5 and random motion adapter."""
    adapter = MotionAdapter.from_pretrained(tiny_models / "animatediff-motion-adapter")
    pipe = AnimateDiffPipeline.from_pretrained(tiny_models / "stable-diffusion-v1-5", motion_adapter=adapter,
                                               scheduler=conclvd_scheduler())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _freenoise_block(window: int, stride: int, weighting: str) -> FreeNoiseTransformerBlock:
    return FreeNoiseTransformerBlock(8, 1, 8, context_length=window, context_stride=stride,
                                     weighting_scheme=weighting)


@pytest.mark.parametrize("frames, window, overlap", [(16, 16, 4), (25, 16, 12), (40, 16, 4), (37, 8, 3), (9, 5, 0)])
@pytest.mark.parametrize("weighting", ["pyramid", "flat"])
def test_windows_and_weights_match_freenoise(frames, window, overlap, weighting):
    block = _freenoise_block(window, window - overlap, weighting)
    expected = block._get_frame_indices(frames)
    if expected[-1][1] != frames:       # FreeNoise's extra window flush with the end
        expected.append((frames - window, frames))
    plan = WindowPlan(frames, window, overlap, weighting=weighting)
    assert [(w[0], w[-1] + 1) for w in plan.indices()] == expected
    assert all(w == list(range(w[0], w[0] + window)) for w in plan.indices())
    raw = torch.tensor(block._get_frame_weights(window, weighting))
    total = torch.zeros(frames)
    for w in plan.indices():
        total[w] += raw
    for w, fused in zip(plan.indices(), plan.fusion_weights()):
        assert torch.allclose(fused, raw / total[w])


def test_loop_windows_wrap_and_cover_every_frame_alike():
    plan = WindowPlan(10, 4, 1, loop=True)
    assert plan.indices() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9], [9, 0, 1, 2]]
    coverage = torch.zeros(10)
    for w, weight in zip(plan.indices(), plan.fusion_weights()):
        coverage[w] += weight
    assert torch.allclose(coverage, torch.ones(10))


@pytest.mark.parametrize("frames, window, overlap", [(10, 20, 1), (10, 10, 10), (10, 4, -1), (10, 0, 0)])
def test_bad_window_layouts_are_one_line_errors(frames, window, overlap):
    with pytest.raises(InkwalkError) as err:
        WindowPlan(frames, window, overlap)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("frames, window, stride", [(40, 16, 12), (16, 16, 4), (33, 8, 5)])
def test_shuffle_context_noise_matches_freenoise(reference, frames, window, stride):
    reference.enable_free_noise(context_length=window, context_stride=stride, noise_type="shuffle_context")
    try:
        expected = reference._prepare_latents_free_noise(1, 4, frames, 64, 64, torch.float32, torch.device("cpu"),
                                                         torch.Generator().manual_seed(3))
    finally:
        reference.disable_free_noise()
    ours = initial_noise((1, 4, frames, 8, 8), window, stride, "shuffle_context", torch.Generator().manual_seed(3))
    assert torch.equal(ours, expected)
    assert not torch.equal(ours, initial_noise((1, 4, frames, 8, 8), window, stride, "random",
                                               torch.Generator().manual_seed(3))) or frames <= window


def test_prompt_travel_embeddings_match_freenoise(reference):
    schedule = parse_schedule("0:misty mountains|5:a river in autumn|9:snow on pines")
    frames = 12
    expected, _ = reference._encode_prompt_free_noise(schedule, frames, torch.device("cpu"), 1, False)
    ours = frame_embeddings(lambda p: encode_prompts(reference.tokenizer, reference.text_encoder, p, "cpu"),
                            schedule, frames)
    assert ours.shape == expected.shape == (frames, 77, reference.text_encoder.config.hidden_size)
    assert torch.allclose(ours, expected, atol=1e-6, rtol=0)     # batched CLIP: rounding only
    assert not torch.allclose(ours[2], ours[0], atol=1e-3)       # it does travel


def test_prompt_travel_loops_back_and_slerp_keeps_the_keys(reference):
    def encode(p):
        return encode_prompts(reference.tokenizer, reference.text_encoder, p, "cpu")

    schedule = {0: "misty mountains", 4: "a river"}
    looped = frame_embeddings(encode, schedule, 8, loop=True)
    keys = encode(["misty mountains", "a river"])
    assert torch.allclose(looped[6], 0.5 * keys[1] + 0.5 * keys[0], atol=1e-6)     # halfway back to frame 0
    held = frame_embeddings(encode, schedule, 8)
    assert torch.allclose(held[7], keys[1], atol=1e-6)
    curved = frame_embeddings(encode, schedule, 8, method="slerp")
    assert torch.allclose(curved[4], keys[1], atol=1e-5) and torch.allclose(curved[0], keys[0], atol=1e-5)
    norms = curved[2].norm(dim=-1), held[2].norm(dim=-1)
    assert (norms[0] >= norms[1] - 1e-4).all()      # slerp does not cut the corner lerp cuts


@pytest.mark.parametrize("text", ["{\"4\": \"a\", \"0\": \"b\"}", "0:a|0:b", "x:a", "0:", "0 spring"])
def test_bad_schedules_are_one_line_errors(text):
    with pytest.raises(InkwalkError) as err:
        parse_schedule(text)
    assert "\n" not in str(err.value)


def _scroll(model, prompt, frames, window, overlap, loop=False, steps=2, seed=4, negative="blurry", noise="random",
            windowing="model"):
    def encode(p):
        return encode_prompts(model.tokenizer, model.text_encoder, p, "cpu")

    request = ScrollRequest(plan=WindowPlan(frames, window, overlap, loop=loop),
                            embeds=frame_embeddings(encode, {0: prompt}, frames), negative=encode([negative])[0],
                            latent_size=(8, 8), steps=steps, noise=noise, windowing=windowing)
    return sample_scroll(request, conclvd_scheduler(), LocalWindowRunner(model.unet, 8.0),
                         torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("windowing", ["model", "motion"])
def test_one_window_over_all_frames_is_the_pipeline_bit_for_bit(conclvd_tiny, windowing):
    pipe = ConCLVDPipeline.from_model(conclvd_tiny)
    pipe.set_progress_bar_config(disable=True)
    expected = pipe("misty mountains", negative_prompt="blurry", num_frames=6, height=64, width=64,
                    num_inference_steps=2, guidance_scale=8.0, generator=torch.Generator().manual_seed(4),
                    output_type="latent").frames
    for noise in ("random", "shuffle_context"):      # shuffling starts past the first window
        assert torch.equal(_scroll(conclvd_tiny, "misty mountains", 6, 6, 2, noise=noise, windowing=windowing),
                           expected)


@pytest.fixture(scope="module")
def ablation(tiny_models):
    """ConCLVD in the joint-norm ablation (Sparse-Causal off): AnimateDiff's motion module on our code."""
    adapter = MotionAdapter.from_pretrained(tiny_models / "animatediff-motion-adapter")
    return ConCLVDPipeline.from_pretrained(tiny_models / "stable-diffusion-v1-5", motion_adapter=adapter,
                                           scheduler=conclvd_scheduler(), sparse_causal=False, norm_mode="joint")


@pytest.mark.parametrize("frames, window, overlap, weighting", [(20, 8, 2, "pyramid"), (22, 8, 2, "pyramid"),
                                                                (20, 8, 2, "flat")],
                         ids=["3-windows", "tail-window", "flat"])
def test_motion_windowing_is_diffusers_freenoise_in_the_joint_norm_ablation(reference, ablation, frames, window,
                                                                             overlap, weighting):
    """One UNet call a step, attentions windowed inside the motion modules = `enable_free_noise`, same seed.

    diffusers' extra window flush with the end (22 frames: starts 0, 6, 12 and 14) only fills the frames
    no other window holds and divides them by one scalar weight (`num_times_accumulated[:, -k:] +=
    weights[:, -k]`: with pyramid weights its last frames come out scaled by w_j / w_(L-k), 0.5 for the
    last frame here). Ours fuses the tail window over all its frames like every other window, as "model"
    windowing does; so for the tail layout diffusers is handed the plan's window list, and its own
    fusion arithmetic then runs over all four windows.
    """
    plan = WindowPlan(frames, window, overlap, weighting=weighting)
    assert len(plan.indices()) == (3 if frames == 20 else 4)

    def encode(p):
        return encode_prompts(ablation.tokenizer, ablation.text_encoder, p, "cpu")

    def ours(windowing):
        request = ScrollRequest(plan=plan, embeds=frame_embeddings(encode, {0: "misty mountains"}, frames),
                                negative=encode(["blurry"])[0], latent_size=(8, 8), steps=2, windowing=windowing)
        return sample_scroll(request, conclvd_scheduler(), LocalWindowRunner(ablation.unet, 8.0),
                             torch.Generator().manual_seed(5))

    starts_ends = [(w[0], w[-1] + 1) for w in plan.indices()]
    reference.enable_free_noise(context_length=window, context_stride=window - overlap, weighting_scheme=weighting,
                                noise_type="shuffle_context")
    try:
        with mock.patch.object(FreeNoiseTransformerBlock, "_get_frame_indices", lambda _self, _n: list(starts_ends)):
            expected = reference("misty mountains", negative_prompt="blurry", num_frames=frames, height=64, width=64,
                                 num_inference_steps=2, guidance_scale=8.0, generator=torch.Generator().manual_seed(5),
                                 output_type="latent").frames
    finally:
        reference.disable_free_noise()
    motion = ours("motion")
    assert (motion - expected).abs().max().item() <= 1e-4       # measured: 2.5e-5, 2.2e-5, 2.1e-5; |latents| ~10
    assert (ours("model") - expected).abs().max().item() > 1e-2  # the other windowing is another computation


def test_motion_windowing_makes_one_model_call_a_step_over_all_frames(conclvd_tiny):
    shapes = []
    hook = conclvd_tiny.unet.register_forward_pre_hook(lambda _m, args: shapes.append(tuple(args[0].shape[:3])))
    try:
        latents = _scroll(conclvd_tiny, "hills", 40, 8, 2, windowing="motion", steps=3)
    finally:
        hook.remove()
    assert shapes == [(2, 4, 40)] * 3               # guided, all 40 frames, past the module's 32 positions
    assert torch.isfinite(latents).all()
    modules = [m for m in conclvd_tiny.unet.modules() if hasattr(m, "frame_windows")]
    assert modules and all(m.frame_windows is None for m in modules)     # windows left with the call


def test_motion_windows_wrap_in_a_loop(conclvd_tiny):
    """A loop has no first frame: rolling the input by one stride rolls the prediction (the windows wrap,
    positions and Sparse-Causal predecessors restart in every window); without the loop it does not."""
    frames, window, overlap = 12, 4, 1
    torch.manual_seed(0)
    latents = torch.randn(1, 4, frames, 8, 8)
    text = encode_prompts(conclvd_tiny.tokenizer, conclvd_tiny.text_encoder, ["hills"], "cpu").expand(frames, -1, -1)

    def predict(x, loop):
        motion = plan_motion_windows(WindowPlan(frames, window, overlap, loop=loop))
        return predict_window(conclvd_tiny.unet, Window(list(range(frames)), x, text, motion), torch.tensor(500), 1.0)

    stride = window - overlap
    for loop in (True, False):
        rolled = predict(latents.roll(stride, dims=2), loop)
        same = torch.allclose(rolled, predict(latents, loop).roll(stride, dims=2), atol=1e-5)
        assert same is loop
    assert torch.isfinite(_scroll(conclvd_tiny, "hills", frames, window, overlap, loop=True, windowing="motion")).all()


def test_bad_windowing_is_one_line():
    with pytest.raises(InkwalkError, match="windowing 'frames': choose one of model, motion"):
        ScrollRequest(plan=WindowPlan(8, 4, 1), embeds=torch.zeros(8, 77, 8), negative=None, latent_size=(8, 8),
                      windowing="frames")


def test_windowed_sampling_progress_cancel_and_bounded_model_calls(conclvd_tiny):
    seen_frames, progress = [], []
    hook = conclvd_tiny.unet.register_forward_pre_hook(lambda _m, args: seen_frames.append(args[0].shape[:3]))

    class Cancelled(Exception):
        pass

    def report(done, total):
        progress.append((done, total))
        if len(progress) == 2:
            raise Cancelled

    def encode(p):
        return encode_prompts(conclvd_tiny.tokenizer, conclvd_tiny.text_encoder, p, "cpu")

    request = ScrollRequest(plan=WindowPlan(11, 4, 1, loop=True), embeds=encode(["hills"]).expand(11, -1, -1),
                            negative=encode([""])[0], latent_size=(8, 8), steps=5)
    try:
        with pytest.raises(Cancelled):
            sample_scroll(request, conclvd_scheduler(), LocalWindowRunner(conclvd_tiny.unet, 8.0),
                          torch.Generator().manual_seed(0), progress=report)
    finally:
        hook.remove()
    assert progress == [(4, 20), (8, 20)]                # 4 windows x 5 steps; stopped after step 2
    assert seen_frames == [(2, 4, 4)] * 8       # every UNet call: one guided window of 4 frames


def test_windowed_video_differs_from_one_window_and_loops_differ(conclvd_tiny):
    one = _scroll(conclvd_tiny, "hills", 8, 8, 0)
    windowed = _scroll(conclvd_tiny, "hills", 8, 4, 2)
    looped = _scroll(conclvd_tiny, "hills", 8, 4, 2, loop=True)
    assert one.shape == windowed.shape == looped.shape == (1, 4, 8, 8, 8)
    assert not torch.equal(one, windowed) and not torch.equal(windowed, looped)
    assert torch.isfinite(looped).all()


@pytest.mark.parametrize("first_frame_keys", [False, True])
def test_sparse_causal_inside_a_wrapped_window_matches_diffusers_attention(first_frame_keys):
    """Inside a window, frame i attends to the window's frame i-1 (the window's first frame to itself):
    in a loop window [8, 9, 0, 1] of a 10-frame video, frame 0 attends to frame 9."""
    torch.manual_seed(0)
    dim, tokens, frames = 16, 6, 10
    ours = SparseCausalAttention(dim, 2, first_frame_keys=first_frame_keys)
    attention = Attention(dim, heads=2, dim_head=dim // 2, out_bias=True)
    attention.load_state_dict(ours.state_dict())
    video = torch.randn(frames, tokens, dim)
    window = [8, 9, 0, 1]
    out = ours(video[window], num_frames=len(window))
    for position, frame in enumerate(window):
        keys = video[window[max(position - 1, 0)]]
        if first_frame_keys:
            keys = torch.cat([video[window[0]], keys])
        expected = attention(video[frame][None], encoder_hidden_states=keys[None])[0]
        assert torch.allclose(out[position], expected, atol=1e-5)


def test_t2v_cli_loop_prompt_travel_wide_frames_and_metadata(tiny_models, tmp_path, capsys):
    """A looping, prompt-travelling, wide scroll with flat weighting and random noise: 2N frames, and the mp4
    records (and `inkwalk info` shows) how to make it again."""
    from inkwalk.provenance import read_metadata
    from inkwalk.cli import main
    from inkwalk.video import read_frames

    out = tmp_path / "scroll.mp4"
    rc = main(["t2v", "hills", "-o", str(out), "--frames", "6", "--window", "4", "--overlap", "1", "--loop",
               "--prompts", "3:a river", "--size", "96x64", "--steps", "2", "--seed", "5", "--weighting", "flat",
               "--noise", "random", "--models", str(tiny_models), "--device", "cpu"])
    assert rc == 0
    assert read_frames(out).shape == (12, 64, 96, 3)                   # loop: SOFP also fills last -> first
    settings = read_metadata(out)["settings"]
    assert (settings["window"], settings["overlap"], settings["loop"], settings["seed"]) == (4, 1, True, 5)
    assert settings["prompts"] == {"0": "hills", "3": "a river"} and settings["size"] == [96, 64]
    assert (settings["weighting"], settings["noise"]) == ("flat", "random")
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "weighting=flat" in shown and "noise=random" in shown and "window=4" in shown, shown
    again = tmp_path / "again.mp4"                                      # re-made from what the video records
    assert main(["t2v", "--from", str(out), "-o", str(again), "--models", str(tiny_models), "--device", "cpu"]) == 0
    assert read_metadata(again)["settings"] == settings and read_frames(again).shape == (12, 64, 96, 3)


def test_t2v_cli_motion_windowing_is_recorded_and_remade(tiny_models, tmp_path):
    from inkwalk.cli import main
    from inkwalk.provenance import read_metadata
    from inkwalk.video import read_frames

    out, again = tmp_path / "motion.mp4", tmp_path / "again.mp4"
    common = ["--models", str(tiny_models), "--device", "cpu"]
    assert main(["t2v", "hills", "-o", str(out), "--frames", "40", "--window", "8", "--overlap", "2", "--windowing",
                 "motion", "--size", "64", "--steps", "2", "--no-sofp", *common]) == 0     # 40 > the module's 32
    assert read_metadata(out)["settings"]["windowing"] == "motion"
    assert main(["t2v", "--from", str(out), "-o", str(again), *common]) == 0
    assert read_metadata(again)["settings"] == read_metadata(out)["settings"]
    assert (read_frames(again) == read_frames(out)).all()


def test_video_frames_decode_lazily_slice_by_slice(conclvd_tiny):
    from inkwalk.conclvd.scroll_video import video_frames

    decoded = []
    hook = conclvd_tiny.vae.decoder.register_forward_pre_hook(lambda _m, args: decoded.append(args[0].shape[0]))
    latents = torch.randn(1, 4, 12, 8, 8)
    try:
        frames = video_frames(conclvd_tiny, latents, sofp=False, slice_frames=4)
        first = next(frames)
        assert decoded == [4]                    # one slice decoded for the first frame, not the video
        rest = list(frames)
    finally:
        hook.remove()
    assert first.shape == (64, 64, 3) and len(rest) == 11 and decoded == [4, 4, 4]


def test_a_window_longer_than_the_motion_modules_positions_is_one_line(conclvd_tiny):
    from inkwalk.conclvd.scroll_video import scroll_request

    positions = conclvd_tiny.unet.down_blocks[0].motion_modules[0].transformer_blocks[0].pos_embed.pe.shape[1]
    with pytest.raises(InkwalkError, match=f"window {positions + 1}: this motion module handles at most"):
        scroll_request(conclvd_tiny, "hills", frames=positions + 8, window=positions + 1, size=64)
