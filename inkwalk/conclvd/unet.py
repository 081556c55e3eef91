"""The motion UNet: frozen SD 1.5 image layers + our motion module after each of them.

Built as diffusers' `UNetMotionModel.from_unet2d(unet, adapter)` (which copies the image layers and
provides gradient checkpointing and SDPA for them), with every motion module then swapped for a
`ConCLVDMotionModule`. Motion weights come from an AnimateDiff motion adapter in either layout:
diffusers' `MotionAdapter` (`...attn1`, `...attn2`, one `pos_embed.pe` per block) or the original
AnimateDiff checkpoint (`...temporal_transformer...attention_blocks.{0,1}...`, one `pos_encoder.pe` per
attention block in `mm_sd_v15_v2`, none at all in checkpoints saved by AnimateDiff's current code,
whose tables are not persistent: those are regenerated). Block 0 initialises Versatile attention,
block 1 Sparse-Causal (or the second Versatile attention of the ablation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Mapping

import torch
from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel
from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers
from diffusers.models.embeddings import SinusoidalPositionalEmbedding
from diffusers.utils import logging as diffusers_logging
from torch import nn

from inkwalk.conclvd.motion_module import ConCLVDMotionModule
from inkwalk.errors import InkwalkError

POSITION_TABLE = ".pos_embed.pe"


class MotionInitError(InkwalkError):
    """A motion checkpoint that does not fit the motion UNet (wrong layout, shapes or keys)."""


@dataclass
class InitReport:
    """What initialising the motion modules from an AnimateDiff checkpoint did, tensor by tensor."""

    placed: dict[str, str] = field(default_factory=dict)       # source key -> motion UNet key
    unexpected: list[str] = field(default_factory=list)        # source keys with no place
    mismatched: list[str] = field(default_factory=list)        # "key: source shape vs ours"
    missing: list[str] = field(default_factory=list)           # our motion tensors not filled
    regenerated: list[str] = field(default_factory=list)       # position tables rebuilt (none in the source)

    @property
    def complete(self) -> bool:
        return not (self.unexpected or self.mismatched or self.missing)

    def summary(self) -> str:
        parts = [f"{len(self.placed)} tensors placed"]
        for name, keys in (("missing", self.missing), ("unexpected", self.unexpected),
                           ("wrong shape", self.mismatched), ("regenerated", self.regenerated)):
            if keys:
                shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
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


def swap_motion_modules(unet: UNetMotionModel, sparse_causal: bool = True, first_frame_keys: bool = False,
                        norm_mode: str = "per-frame") -> UNetMotionModel:
    """Replace every motion module of `unet` by a fresh (zero-output) `ConCLVDMotionModule` of the same
    size; image layers frozen, motion modules trainable."""
    for _, modules in motion_modules(unet):
        for j, stock in enumerate(modules):
            block = stock.transformer_blocks[0]
            modules[j] = ConCLVDMotionModule(
                stock.in_channels, num_attention_heads=stock.num_attention_heads,
                num_layers=len(stock.transformer_blocks), norm_num_groups=stock.norm.num_groups,
                max_seq_length=block.pos_embed.pe.shape[1], sparse_causal=sparse_causal,
                first_frame_keys=first_frame_keys, norm_mode=norm_mode,
            ).to(device=stock.norm.weight.device, dtype=stock.norm.weight.dtype)
    unet.requires_grad_(False)
    for _, modules in motion_modules(unet):
        modules.requires_grad_(True)
    return unet


def build_motion_unet(unet2d: UNet2DConditionModel, adapter_config: Mapping, sparse_causal: bool = True,
                      first_frame_keys: bool = False, norm_mode: str = "per-frame",
                      gradient_checkpointing: bool = False) -> UNetMotionModel:
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
    swap_motion_modules(unet, sparse_causal=sparse_causal, first_frame_keys=first_frame_keys, norm_mode=norm_mode)
    if gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    return unet


def motion_state_dict(unet: UNetMotionModel) -> dict[str, torch.Tensor]:
    """Every motion-module tensor of `unet` under its full key (diffusers' `MotionAdapter` layout)."""
    return {f"{prefix}.{key}": tensor for prefix, modules in motion_modules(unet)
            for key, tensor in modules.state_dict().items()}


def _to_diffusers_layout(state_dict: Mapping[str, torch.Tensor]) -> dict[str, list[tuple[str, torch.Tensor]]]:
    """Map each source tensor to its diffusers-layout key (several sources may share one target:
    the original layout's two `pos_encoder.pe` tables per block both map to `pos_embed.pe`)."""
    original = any(".temporal_transformer." in k for k in state_dict)
    targets: dict[str, list[tuple[str, torch.Tensor]]] = {}
    for key, tensor in state_dict.items():
        if original and ".pos_encoder.pe" in key:
            # diffusers' converter drops position tables: rename the block's table key instead
            base = key.split(".attention_blocks.")[0]
            target_key = next(iter(convert_animatediff_checkpoint_to_diffusers({base + POSITION_TABLE: None})))
        elif original:
            target_key = next(iter(convert_animatediff_checkpoint_to_diffusers({key: None})))
        else:
            target_key = key
        targets.setdefault(target_key, []).append((key, tensor))
    return targets


def init_from_animatediff(unet: UNetMotionModel, state_dict: Mapping[str, torch.Tensor]) -> InitReport:
    """Copy an AnimateDiff motion checkpoint (diffusers `MotionAdapter` state dict or original layout)
    into the motion modules, strictly: raises `MotionInitError` (one line naming the missing, unexpected
    and wrongly shaped tensors) unless every source tensor is placed and every motion tensor filled.

    A checkpoint with no position table at all (AnimateDiff's current code does not save them) gets
    each table rebuilt: they are fixed sinusoids, a function of length and width only.
    """
    ours: dict[str, torch.Tensor] = {}
    for prefix, modules in motion_modules(unet):
        for key, tensor in modules.state_dict(keep_vars=True).items():
            ours[f"{prefix}.{key}"] = tensor
    report = InitReport()
    filled: set[str] = set()
    targets = _to_diffusers_layout(state_dict)
    with torch.no_grad():
        for target, sources in targets.items():
            for source_key, tensor in sources:
                if target not in ours:
                    report.unexpected.append(source_key)
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
        if not any(t.endswith(POSITION_TABLE) for t in targets):
            for key, dest in ours.items():
                if key.endswith(POSITION_TABLE):
                    _, length, width = dest.shape
                    dest.copy_(SinusoidalPositionalEmbedding(width, max_seq_length=length).pe.to(dest))
                    filled.add(key)
                    report.regenerated.append(key)
    report.missing = sorted(set(ours) - filled)
    if not report.complete:
        raise MotionInitError(f"motion checkpoint does not fit the motion UNet: {report.summary()}. "
                              "Use an AnimateDiff SD 1.5 motion adapter (diffusers MotionAdapter or the original "
                              "mm_sd_v15 layout) of this UNet's structure")
    return report
