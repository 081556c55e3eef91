"""The motion UNet: frozen SD 1.5 image layers + our motion module after each of them.

Built as diffusers' `UNetMotionModel.from_unet2d(unet, adapter)` (which copies the image layers and
provides gradient checkpointing and SDPA for them), with every motion module then swapped for a
`ConCLVDMotionModule`. Motion weights come from an AnimateDiff motion adapter in either layout:
diffusers' `MotionAdapter` (`...attn1`, `...attn2`, one `pos_embed.pe` per block) or the original
`mm_sd_v15_v2` checkpoint (`...temporal_transformer...attention_blocks.{0,1}...`, one
`pos_encoder.pe` per attention block). Block 0 initialises Versatile attention, block 1 Sparse-Causal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Mapping

import torch
from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel
from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers
from diffusers.utils import logging as diffusers_logging
from torch import nn

from inkwalk.conclvd.motion_module import ConCLVDMotionModule
from inkwalk.errors import InkwalkError


class MotionInitError(InkwalkError):
    """A motion checkpoint that does not fit the motion UNet (wrong layout, shapes or keys)."""


@dataclass
class InitReport:
    """What initialising the motion modules from an AnimateDiff checkpoint did, tensor by tensor."""

    placed: dict[str, str] = field(default_factory=dict)       # source key -> motion UNet key
    left_over: list[str] = field(default_factory=list)         # source keys with no place
    mismatched: list[str] = field(default_factory=list)        # "key: source shape vs ours"
    missing: list[str] = field(default_factory=list)           # our motion tensors not filled

    @property
    def complete(self) -> bool:
        return not (self.left_over or self.mismatched or self.missing)

    def summary(self) -> str:
        parts = [f"{len(self.placed)} tensors placed"]
        for name, keys in (("left over", self.left_over), ("shape mismatch", self.mismatched),
                           ("missing", self.missing)):
            if keys:
                shown = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
                parts.append(f"{len(keys)} {name} ({shown})")
        return "; ".join(parts)


def motion_modules(unet: UNetMotionModel) -> Iterator[tuple[str, nn.ModuleList]]:
    """(prefix, module list) of every motion-module list in the UNet, e.g. `down_blocks.0.motion_modules`."""
    for i, block in enumerate(unet.down_blocks):
        yield f"down_blocks.{i}.motion_modules", block.motion_modules
    if hasattr(unet.mid_block, "motion_modules"):
        yield "mid_block.motion_modules", unet.mid_block.motion_modules
    for i, block in enumerate(unet.up_blocks):
        yield f"up_blocks.{i}.motion_modules", block.motion_modules


def adapter_config_for(unet: UNet2DConditionModel, num_heads: int = 8, max_seq_length: int = 32,
                       mid_block: bool = True) -> dict:
    """A `MotionAdapter` config that fits `unet` (used when the motion weights carry no config)."""
    return dict(block_out_channels=tuple(unet.config.block_out_channels),
                motion_layers_per_block=unet.config.layers_per_block,
                motion_num_attention_heads=num_heads, motion_norm_num_groups=unet.config.norm_num_groups,
                motion_max_seq_length=max_seq_length, use_motion_mid_block=mid_block)


def build_motion_unet(unet2d: UNet2DConditionModel, adapter_config: Mapping, sparse_causal: bool = True,
                      first_frame_keys: bool = False, gradient_checkpointing: bool = False) -> UNetMotionModel:
    """Inflate `unet2d` with our motion modules (zero-initialised output: starts as the image model).

    Image layers are frozen; only the motion modules require grad.
    """
    structure = MotionAdapter(**dict(adapter_config))
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # from_unet2d's `.to(dtype)` warns about an empty module list
    try:
        unet = UNetMotionModel.from_unet2d(unet2d, structure)
    finally:
        diffusers_logging.set_verbosity(verbosity)
    for _, modules in motion_modules(unet):
        for j, stock in enumerate(modules):
            modules[j] = ConCLVDMotionModule(
                stock.in_channels, num_attention_heads=stock.num_attention_heads,
                num_layers=len(stock.transformer_blocks), norm_num_groups=stock.norm.num_groups,
                max_seq_length=stock.transformer_blocks[0].pos_embed.pe.shape[1],
                sparse_causal=sparse_causal, first_frame_keys=first_frame_keys,
            ).to(device=stock.norm.weight.device, dtype=stock.norm.weight.dtype)
    unet.requires_grad_(False)
    for _, modules in motion_modules(unet):
        modules.requires_grad_(True)
    if gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    return unet


def _to_diffusers_layout(state_dict: Mapping[str, torch.Tensor]) -> dict[str, list[tuple[str, torch.Tensor]]]:
    """Map each source tensor to its diffusers-layout key (several sources may share one target:
    the original layout's two `pos_encoder.pe` tables per block both map to `pos_embed.pe`)."""
    original = any(".temporal_transformer." in k for k in state_dict)
    targets: dict[str, list[tuple[str, torch.Tensor]]] = {}
    for key, tensor in state_dict.items():
        if original and ".pos_encoder.pe" in key:
            base = key.split(".attention_blocks.")[0]
            target = convert_animatediff_checkpoint_to_diffusers({base + ".pos_embed.pe": None})
            target_key = next(iter(target))
        elif original:
            target_key = next(iter(convert_animatediff_checkpoint_to_diffusers({key: None})))
        else:
            target_key = key
        targets.setdefault(target_key, []).append((key, tensor))
    return targets


def init_from_animatediff(unet: UNetMotionModel, state_dict: Mapping[str, torch.Tensor],
                          strict: bool = True) -> InitReport:
    """Copy an AnimateDiff motion checkpoint (diffusers `MotionAdapter` state dict or original
    `mm_sd_v15_v2` layout) into the motion modules; report every tensor placed or left over.

    `strict` raises `MotionInitError` unless every source tensor is placed and every motion tensor
    filled (with `sparse_causal=False` the Sparse-Causal block-1 tensors are knowingly left over).
    """
    ours: dict[str, torch.Tensor] = {}
    for prefix, modules in motion_modules(unet):
        for key, tensor in modules.state_dict(keep_vars=True).items():
            ours[f"{prefix}.{key}"] = tensor
    report = InitReport()
    filled: set[str] = set()
    with torch.no_grad():
        for target, sources in _to_diffusers_layout(state_dict).items():
            for source_key, tensor in sources:
                if target not in ours:
                    report.left_over.append(source_key)
                    continue
                dest = ours[target]
                if tuple(dest.shape) != tuple(tensor.shape):
                    report.mismatched.append(f"{source_key}: {tuple(tensor.shape)} vs {tuple(dest.shape)}")
                    continue
                if target in filled:
                    # A second sinusoidal table for the same block: it must be the same table.
                    if not torch.allclose(dest.float(), tensor.to(dest.device).float(), atol=1e-4):
                        report.mismatched.append(f"{source_key}: differs from the block's other position table")
                        continue
                else:
                    dest.copy_(tensor.to(dtype=dest.dtype, device=dest.device))
                    filled.add(target)
                report.placed[source_key] = target
    report.missing = sorted(set(ours) - filled)
    if strict and not report.complete:
        raise MotionInitError(f"motion checkpoint does not fit the motion UNet: {report.summary()}. "
                              "Use an AnimateDiff SD 1.5 motion adapter (diffusers MotionAdapter or mm_sd_v15_v2)")
    return report
