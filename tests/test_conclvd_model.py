"""ConCLVD bundle: frozen vs trainable, trainable-only checkpoints, training step inputs, `inkwalk t2v`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from inkwalk.conclvd import MotionInitError, load_conclvd, training_step
from inkwalk.conclvd.model import ConCLVDConfig


def test_frozen_parameters_do_not_require_grad(conclvd_tiny):
    model = conclvd_tiny
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".motion_modules." in n or n.startswith("noise_adapter.") for n in trainable)
    for part in (model.vae, model.text_encoder):
        assert not any(p.requires_grad for p in part.parameters())
    frozen_unet = [n for n, p in model.unet.named_parameters() if ".motion_modules." not in n]
    assert frozen_unet and not any(model.unet.get_parameter(n).requires_grad for n in frozen_unet)
    assert {id(p) for p in model.trainable_parameters()} == {id(p) for n, p in model.named_parameters() if n in trainable}
    assert model.init_report.complete


def test_trainable_checkpoint_round_trip(conclvd_tiny, tiny_models, tmp_path):
    model = conclvd_tiny
    path = model.save_trainable(tmp_path / "motion.safetensors")
    saved = load_file(str(path))
    assert set(saved) == set(model.trainable_state_dict())     # nothing frozen is written
    reloaded = load_conclvd(models_dir=tiny_models, motion_module=path)
    for (name, a), b in zip(model.trainable_state_dict().items(), reloaded.trainable_parameters()):
        assert torch.equal(a, b), name
    with torch.no_grad():
        for p in reloaded.trainable_parameters():
            p.add_(1.0)
    reloaded.load_trainable(path)
    assert all(torch.equal(a, b) for a, b in zip(model.trainable_parameters(), reloaded.trainable_parameters()))
    # A checkpoint from another structure is refused with a message, not half-loaded (the ablation
    # has the same tensors, so only the saved structure tells them apart).
    other = load_conclvd(models_dir=tiny_models, config=ConCLVDConfig(sparse_causal=False))
    with pytest.raises(MotionInitError, match="does not fit this model: it was trained with sparse_causal=True"):
        other.load_trainable(path)
    with pytest.raises(MotionInitError, match="norm_mode='per-frame' .this model: 'joint'"):
        load_conclvd(models_dir=tiny_models, motion_module=path, config={"norm_mode": "joint"})
    # only the fields asked for change: the rest come from the checkpoint
    assert load_conclvd(models_dir=tiny_models, motion_module=path,
                        config={"gradient_checkpointing": True}).config.sparse_causal


def test_training_step_from_frames_and_from_cached_latents_agree(conclvd_tiny):
    model = conclvd_tiny
    frames = torch.randint(0, 256, (1, 4, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        a = training_step(model, {"frames": frames, "caption": ["mountains"]}, caption_dropout=0.0,
                          generator=torch.Generator().manual_seed(3))
        gen = torch.Generator().manual_seed(3)
        latents = model.encode_frames(frames, generator=gen)
        b = training_step(model, {"latents": latents, "text_embeds": model.encode_text(["mountains"])},
                          caption_dropout=0.0, generator=gen)
    assert latents.shape == (1, 4, 4, 8, 8)
    assert torch.isfinite(a["loss"]) and torch.isfinite(b["loss"])
    # Same generator draws after encoding: identical noise, timestep and loss.
    torch.testing.assert_close(a["loss"], b["loss"])


def test_caption_dropout_uses_the_empty_caption(conclvd_tiny):
    model = conclvd_tiny
    latents = torch.randn(1, 4, 4, 8, 8)
    embeds = torch.randn(1, 77, 32)
    with torch.no_grad():
        dropped = training_step(model, {"latents": latents, "text_embeds": embeds}, caption_dropout=1.0,
                                generator=torch.Generator().manual_seed(0))
        empty = training_step(model, {"latents": latents, "text_embeds": model.encode_text([""])},
                              caption_dropout=0.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(dropped["loss"], empty["loss"])


def test_t2v_cli_frame_count_and_seed(conclvd_tiny, tiny_models, tmp_path):
    from inkwalk.cli import main
    from inkwalk.conclvd import generate_video
    from inkwalk.video import read_frames

    from helpers import psnr

    out = tmp_path / "t2v.mp4"
    rc = main(["t2v", "misty mountains", "-o", str(out), "--frames", "3", "--steps", "2", "--size", "64",
               "--seed", "7", "--models", str(tiny_models), "--device", "cpu"])
    assert rc == 0
    written = read_frames(out)
    assert written.shape == (2 * 3 - 1, 64, 64, 3)                      # N -> 2N - 1 by SOFP

    def generate(seed: int) -> np.ndarray:
        return generate_video(conclvd_tiny, "misty mountains", frames=3, steps=2, size=64, seed=seed)

    same, other = generate(7), generate(8)
    assert np.array_equal(same, generate(7))                            # bit-exact before encoding
    # The mp4 holds the seed-7 frames up to H.264 loss (x264 output is not bit-stable across runs;
    # tiny random models make noise-like frames, so the loss is large, but far below another seed's).
    near, far = psnr(written, same), psnr(written, other)
    assert near > far + 6, (near, far)


def test_t2v_cli_user_errors_are_one_line(conclvd_tiny, tiny_models, tmp_path, capsys):
    from inkwalk.cli import main

    rc = main(["t2v", "x", "-o", str(tmp_path / "x.mp4"), "--size", "60", "--models", str(tiny_models)])
    assert rc == 1 and "--size 60: must be a multiple of 8" in capsys.readouterr().err  # the limits, at once
    rc = main(["t2v", "x", "-o", str(tmp_path / "x.mp4"), "--size", "72", "--models", str(tiny_models)])
    assert rc == 1 and "72: must be a positive multiple of 16" in capsys.readouterr().err  # this model's own
    rc = main(["t2v", "x", "-o", str(tmp_path / "x.mp4"), "--motion-module", str(tmp_path / "none.safetensors"),
               "--models", str(tiny_models)])
    assert rc == 1 and "does not exist" in capsys.readouterr().err
    # the ablation switch reaches the model: a Sparse-Causal checkpoint does not load into the ablation
    trained = conclvd_tiny.save_trainable(tmp_path / "motion.safetensors")
    rc = main(["t2v", "x", "-o", str(tmp_path / "x.mp4"), "--motion-module", str(trained), "--no-sparse-causal",
               "--models", str(tiny_models)])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("inkwalk: error:")]
    assert rc == 1 and len(errors) == 1 and "trained with sparse_causal=True" in errors[0], errors


@pytest.mark.parametrize("tables", [True, False], ids=["mm_sd_v15_v2", "no-position-tables"])
def test_load_from_an_original_layout_checkpoint_file(tiny_models, tmp_path, tables):
    """A .ckpt in the original AnimateDiff layout (keys from a re-creation of the original module) loads
    strictly into the ablation and computes the original module's output; a damaged one is refused."""
    from animatediff_original import original_checkpoint, original_motion_modules

    from inkwalk.tiny_models import SD15_BLOCK_OUT_CHANNELS, SD15_LAYERS_PER_BLOCK

    originals = original_motion_modules(SD15_BLOCK_OUT_CHANNELS, SD15_LAYERS_PER_BLOCK, heads=8, groups=8,
                                        max_len=32, persistent=tables)
    checkpoint = original_checkpoint(originals)
    path = tmp_path / "mm_sd_v15_v2.ckpt"
    torch.save({"state_dict": checkpoint}, path)
    model = load_conclvd(models_dir=tiny_models, motion_module=path, config={"sparse_causal": False})
    assert model.init_report.complete and len(model.init_report.placed) == len(checkpoint)
    module, original = model.unet.up_blocks[1].motion_modules[2], originals["up_blocks.1.motion_modules.2"]
    x = torch.randn(1, 16, 4, 2, 2)                                   # b c f h w
    with torch.no_grad():
        got = module(x.transpose(1, 2).flatten(0, 1), num_frames=4).view(1, 4, 16, 2, 2).transpose(1, 2)
        expected = original(x)
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()
    # strict for the ablation too: a missing and an unexpected tensor are named in one line
    dropped = "mid_block.motion_modules.0.temporal_transformer.proj_in.weight"
    checkpoint.pop(dropped)
    checkpoint["down_blocks.0.motion_modules.0.temporal_transformer.extra"] = torch.zeros(2)
    torch.save(checkpoint, path)
    with pytest.raises(MotionInitError, match=r"1 missing .mid_block.motion_modules.0.proj_in.weight.; 1 unexpected "
                                              r".down_blocks.0.motion_modules.0.temporal_transformer.extra"):
        load_conclvd(models_dir=tiny_models, motion_module=path, config={"sparse_causal": False})
