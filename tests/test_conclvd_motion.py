"""ConCLVD motion module: attention patterns, identity at init, AnimateDiff initialisation."""

from __future__ import annotations

import pytest
import torch
from diffusers import MotionAdapter, UNet2DConditionModel

from inkwalk.conclvd.motion_module import ConCLVDMotionModule, SparseCausalAttention, VersatileAttention
from inkwalk.conclvd.unet import (MotionInitError, adapter_config_for, build_motion_unet, init_from_animatediff,
                                  motion_modules)

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
    y[FRAMES - 1] += 1.0
    assert _changed(module(x, num_frames=FRAMES), module(y, num_frames=FRAMES)) == [True] * FRAMES


def test_disabling_sparse_causal_removes_its_layers():
    module = ConCLVDMotionModule(DIM, num_attention_heads=2, norm_num_groups=4, sparse_causal=False)
    assert not any(".attn2." in k for k in module.state_dict())


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
            p.normal_()                                       # random everywhere, proj_out included
    return adapter


def _to_original_layout(state_dict: dict) -> dict:
    """The diffusers adapter's tensors under mm_sd_v15_v2 keys (two position tables per block)."""
    out = {}
    for key, value in state_dict.items():
        head, rest = key.split(".motion_modules.")
        index, tail = rest.split(".", 1)
        base = f"{head}.motion_modules.{index}.temporal_transformer"
        if tail.endswith("pos_embed.pe"):
            block = tail[: -len(".pos_embed.pe")]
            for a in (0, 1):
                out[f"{base}.{block}.attention_blocks.{a}.pos_encoder.pe"] = value.clone()
            continue
        tail = (tail.replace("attn1", "attention_blocks.0").replace("attn2", "attention_blocks.1")
                .replace("norm1", "norms.0").replace("norm2", "norms.1").replace("norm3", "ff_norm"))
        out[f"{base}.{tail}"] = value.clone()
    return out


@pytest.mark.parametrize("layout", ["diffusers", "original"])
def test_animatediff_initialisation_places_every_tensor(layout):
    unet2d = _tiny_unet()
    adapter = _adapter()
    unet = build_motion_unet(unet2d, dict(adapter.config))
    source = adapter.state_dict()
    if layout == "original":
        source = _to_original_layout(source)
        assert any(".temporal_transformer.transformer_blocks.0.attention_blocks.1.to_q" in k for k in source)
    report = init_from_animatediff(unet, source)
    assert report.complete and len(report.placed) == len(source), report.summary()
    ours = {f"{prefix}.{k}": v for prefix, modules in motion_modules(unet) for k, v in modules.state_dict().items()}
    for key, value in adapter.state_dict().items():
        torch.testing.assert_close(ours[key], value, atol=0, rtol=0)
    # Block 0 initialises Versatile attention, block 1 Sparse-Causal.
    module = unet.down_blocks[0].motion_modules[0].transformer_blocks[0]
    assert isinstance(module.attn1, VersatileAttention) and isinstance(module.attn2, SparseCausalAttention)


def test_animatediff_initialisation_reports_leftovers_and_missing():
    unet2d = _tiny_unet()
    adapter = _adapter()
    unet = build_motion_unet(unet2d, dict(adapter.config))
    source = dict(adapter.state_dict())
    source["down_blocks.0.motion_modules.0.extra.weight"] = torch.zeros(3)
    dropped = "up_blocks.0.motion_modules.0.proj_in.weight"
    source.pop(dropped)
    with pytest.raises(MotionInitError, match="1 left over.*1 missing"):
        init_from_animatediff(unet, source)
    report = init_from_animatediff(unet, source, strict=False)
    assert report.left_over == ["down_blocks.0.motion_modules.0.extra.weight"]
    assert report.missing == [dropped]
