"""ConCLVD motion module: attention patterns, norm modes, identity at init, AnimateDiff initialisation,
and equivalence to references inkwalk did not write (diffusers' `UNetMotionModel`, a re-creation of
AnimateDiff's original module)."""

from __future__ import annotations

import pytest
import torch
from animatediff_original import original_checkpoint, original_motion_modules
from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

from inkwalk.conclvd.motion_module import ConCLVDMotionModule, SparseCausalAttention, VersatileAttention
from inkwalk.conclvd.unet import (MotionInitError, adapter_config_for, build_motion_unet, init_from_animatediff,
                                  motion_modules, motion_state_dict)


FRAMES, TOKENS, DIM = 6, 4, 16


def _changed(a: torch.Tensor, b: torch.Tensor) -> list[bool]:
    """Per frame (dim 0 after grouping), whether the output changed."""
    return [not torch.allclose(x, y, atol=1e-6) for x, y in zip(a, b)]


def test_versatile_attention_reaches_every_frame():
    torch.manual_seed(0)
    attn = VersatileAttention(DIM, heads=2)
    x = torch.randn(TOKENS, FRAMES, DIM)                      # [(b h w), f, c]
    for k in (0, 3, FRAMES - 1):
        y = x.clone()
        y[:, k] += 1.0
        changed = _changed(attn(x).transpose(0, 1), attn(y).transpose(0, 1))
        assert changed == [True] * FRAMES, k


def _frames_changed(attn: SparseCausalAttention, k: int) -> list[bool]:
    x = torch.randn(2 * FRAMES, TOKENS, DIM)                  # [(b f), (h w), c], batch 2
    y = x.view(2, FRAMES, TOKENS, DIM).clone()
    y[:, k] += 1.0
    y = y.view(2 * FRAMES, TOKENS, DIM)
    a, b = attn(x, FRAMES).view(2, FRAMES, -1), attn(y, FRAMES).view(2, FRAMES, -1)
    return _changed(a[1], b[1])


def test_sparse_causal_attention_sees_only_the_previous_frame():
    torch.manual_seed(0)
    attn = SparseCausalAttention(DIM, heads=2)
    for k in range(FRAMES):
        changed = _frames_changed(attn, k)
        # frame k changes through its queries, frame k+1 through its keys/values; nothing else.
        expected = [i in (k, k + 1) for i in range(FRAMES)]
        assert changed == expected, (k, changed)


def test_sparse_causal_first_frame_keys_reach_every_frame():
    torch.manual_seed(0)
    attn = SparseCausalAttention(DIM, heads=2, first_frame_keys=True)
    assert _frames_changed(attn, 0) == [True] * FRAMES
    assert _frames_changed(attn, 2) == [i in (2, 3) for i in range(FRAMES)]


def test_motion_module_is_identity_at_init_and_mixes_frames_when_trained():
    torch.manual_seed(0)
    module = ConCLVDMotionModule(DIM, num_attention_heads=2, norm_num_groups=4)
    x = torch.randn(FRAMES, DIM, 3, 3)                        # (b f) c h w, b = 1
    assert torch.equal(module(x, num_frames=FRAMES), x)
    torch.nn.init.normal_(module.proj_out.weight, std=0.2)
    y = x.clone()
    y[FRAMES - 1] += torch.randn_like(y[FRAMES - 1])      # not a constant: per-frame GroupNorm removes those
    assert _changed(module(x, num_frames=FRAMES), module(y, num_frames=FRAMES)) == [True] * FRAMES


def test_disabling_sparse_causal_makes_block_one_versatile():
    """The ablation keeps AnimateDiff's structure: block 1 attends over all frames, same tensors."""
    ablation = ConCLVDMotionModule(DIM, num_attention_heads=2, norm_num_groups=4, sparse_causal=False)
    full = ConCLVDMotionModule(DIM, num_attention_heads=2, norm_num_groups=4)
    block = ablation.transformer_blocks[0]
    assert isinstance(block.attn2, VersatileAttention) and not isinstance(block.attn2, SparseCausalAttention)
    assert {k: v.shape for k, v in ablation.state_dict().items()} == {k: v.shape for k, v in full.state_dict().items()}


def _normalised(module: ConCLVDMotionModule, x: torch.Tensor, frames: int) -> torch.Tensor:
    """The motion module's GroupNorm output during a real forward, as `(b f) c h w`."""
    seen = []
    handle = module.norm.register_forward_hook(lambda _m, _i, out: seen.append(out))
    module(x, num_frames=frames)
    handle.remove()
    out = seen[0]
    return out.transpose(1, 2).flatten(0, 1) if out.ndim == 5 else out     # joint mode norms b c f h w


@pytest.mark.parametrize("mode", ["per-frame", "joint"])
def test_norm_mode_per_frame_normalises_each_frame_alone(mode):
    torch.manual_seed(0)
    module = ConCLVDMotionModule(DIM, num_attention_heads=2, norm_num_groups=4, norm_mode=mode)
    x = torch.randn(2 * FRAMES, DIM, 3, 3)                    # (b f) c h w, b = 2
    for k in (0, 3):
        y = x.view(2, FRAMES, DIM, 3, 3).clone()
        y[:, k] += 3.0 * torch.randn_like(y[:, k])            # frame k only changes
        a = _normalised(module, x, FRAMES).view(2, FRAMES, -1)
        b = _normalised(module, y.view(2 * FRAMES, DIM, 3, 3), FRAMES).view(2, FRAMES, -1)
        changed = _changed(a[1], b[1])
        # per frame: only frame k's statistics (and values) move; joint: every frame's statistics move
        assert changed == ([i == k for i in range(FRAMES)] if mode == "per-frame" else [True] * FRAMES), changed


def _tiny_unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=2, norm_num_groups=8)


def test_zero_initialised_motion_unet_equals_image_unet_frame_by_frame():
    unet2d = _tiny_unet()
    unet = build_motion_unet(unet2d, adapter_config_for(unet2d, num_heads=2))
    frames = 4
    sample = torch.randn(2, 4, frames, 16, 16)
    text = torch.randn(2, 77, 32)
    with torch.no_grad():
        video = unet(sample, 10, encoder_hidden_states=text.repeat_interleave(frames, 0)).sample
        for b in range(2):
            for f in range(frames):
                image = unet2d(sample[b:b + 1, :, f], 10, encoder_hidden_states=text[b:b + 1]).sample
                # Same float32 ops in a different batch layout: equal to rounding (stated tolerance 1e-5).
                torch.testing.assert_close(video[b:b + 1, :, f], image, atol=1e-5, rtol=1e-5)


def test_image_layers_frozen_motion_modules_trainable():
    unet2d = _tiny_unet()
    unet = build_motion_unet(unet2d, adapter_config_for(unet2d, num_heads=2))
    for name, p in unet.named_parameters():
        assert p.requires_grad == (".motion_modules." in name), name


def _adapter() -> MotionAdapter:
    torch.manual_seed(1)
    adapter = MotionAdapter(block_out_channels=(16, 32), motion_layers_per_block=1, motion_num_attention_heads=2,
                            motion_norm_num_groups=8, motion_max_seq_length=16)
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0.0, 0.3)                               # random everywhere, proj_out included
    return adapter


def test_joint_norm_ablation_equals_diffusers_unet_motion_model():
    """With Sparse-Causal attention off and diffusers' norm mode, our UNet holding a MotionAdapter's
    random weights computes what diffusers' own UNetMotionModel computes with that adapter."""
    unet2d = _tiny_unet()
    adapter = _adapter()
    reference = UNetMotionModel.from_unet2d(unet2d, adapter)
    ours = {mode: build_motion_unet(unet2d, dict(adapter.config), sparse_causal=False, norm_mode=mode)
            for mode in ("joint", "per-frame")}
    for unet in ours.values():
        init_from_animatediff(unet, adapter.state_dict())
    frames = 6
    sample = torch.randn(2, 4, frames, 16, 16)
    text = torch.randn(2, 77, 32).repeat_interleave(frames, 0)
    with torch.no_grad():
        expected = reference(sample, 10, encoder_hidden_states=text).sample
        joint = ours["joint"](sample, 10, encoder_hidden_states=text).sample
        per_frame = ours["per-frame"](sample, 10, encoder_hidden_states=text).sample
    diff = (joint - expected).abs().max().item()
    assert diff <= 1e-4, diff                                 # measured: 0.0 (same float32 ops)
    assert (per_frame - expected).abs().max().item() > 1e-3   # the per-frame default is another model


@pytest.mark.parametrize("persistent", [True, False], ids=["mm_sd_v15_v2", "no-position-tables"])
def test_original_animatediff_checkpoint_gives_the_original_modules_outputs(persistent):
    """Keys and tensors of an original-layout checkpoint (from a re-creation of AnimateDiff's module,
    not from our renaming) land where our modules compute the original module's output; a checkpoint
    saved without position tables (AnimateDiff's current code) gets them regenerated."""
    unet2d = _tiny_unet()
    config = adapter_config_for(unet2d, num_heads=2, max_seq_length=16)
    originals = original_motion_modules((16, 32), layers_per_block=1, heads=2, groups=8, max_len=16,
                                        persistent=persistent)
    checkpoint = original_checkpoint(originals)
    assert ("down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.1.pos_encoder.pe"
            in checkpoint) == persistent
    unet = build_motion_unet(unet2d, config, sparse_causal=False)
    report = init_from_animatediff(unet, checkpoint)
    assert len(report.placed) == len(checkpoint) and bool(report.regenerated) != persistent
    ours = {f"{prefix}.{j}": m for prefix, modules in motion_modules(unet) for j, m in enumerate(modules)}
    assert set(ours) == set(originals)
    frames = 5
    torch.manual_seed(2)
    with torch.no_grad():
        for prefix, original in originals.items():
            channels = original.temporal_transformer.proj_in.in_features
            x = torch.randn(2, channels, frames, 3, 3)                        # b c f h w
            expected = original(x)
            got = ours[prefix](x.transpose(1, 2).flatten(0, 1), num_frames=frames)
            got = got.view(2, frames, channels, 3, 3).transpose(1, 2)
            # float32 rounding of another op order (SDPA vs explicit softmax), relative to outputs of ~20
            assert (got - expected).abs().max().item() <= 1e-5 * expected.abs().max().item(), prefix
    # with Sparse-Causal attention on, block 1's tensors initialise it and every tensor is placed
    with_sc = build_motion_unet(unet2d, config)
    init_from_animatediff(with_sc, checkpoint)
    block = with_sc.down_blocks[0].motion_modules[0].transformer_blocks[0]
    assert isinstance(block.attn2, SparseCausalAttention)
    torch.testing.assert_close(block.attn2.to_q.weight, originals["down_blocks.0.motion_modules.0"]
                               .temporal_transformer.transformer_blocks[0].attention_blocks[1].to_q.weight)


def test_animatediff_initialisation_places_every_diffusers_tensor():
    unet2d = _tiny_unet()
    adapter = _adapter()
    unet = build_motion_unet(unet2d, dict(adapter.config))
    report = init_from_animatediff(unet, adapter.state_dict())
    assert report.complete and len(report.placed) == len(adapter.state_dict()), report.summary()
    ours = motion_state_dict(unet)
    for key, value in adapter.state_dict().items():
        torch.testing.assert_close(ours[key], value, atol=0, rtol=0)


@pytest.mark.parametrize("sparse_causal", [True, False])
def test_animatediff_initialisation_is_strict_and_names_the_keys(sparse_causal):
    unet2d = _tiny_unet()
    adapter = _adapter()
    unet = build_motion_unet(unet2d, dict(adapter.config), sparse_causal=sparse_causal)
    source = dict(adapter.state_dict())
    source["down_blocks.0.motion_modules.0.extra.weight"] = torch.zeros(3)
    dropped = "up_blocks.0.motion_modules.0.transformer_blocks.0.attn2.to_q.weight"
    source.pop(dropped)
    with pytest.raises(MotionInitError) as err:
        init_from_animatediff(unet, source)
    message = str(err.value)
    assert "\n" not in message
    assert f"1 missing ({dropped})" in message
    assert "1 unexpected (down_blocks.0.motion_modules.0.extra.weight)" in message
