"""A re-creation of AnimateDiff's original motion module, the reference for inkwalk's key mapping.

Written for the tests from the structure of guoyww/AnimateDiff `animatediff/models/motion_module.py`
(`VanillaTemporalModule` -> `temporal_transformer` -> `transformer_blocks[k]` with
`attention_blocks[0, 1]` (each with a `pos_encoder.pe` table), `norms[0, 1]`, `ff`, `ff_norm`) and of
its UNet (`down_blocks.i.motion_modules.j`, `mid_block.motion_modules.0`, `up_blocks.i.motion_modules.j`),
independently of inkwalk's code: its state dict has the original checkpoint keys because its modules
have the original names, and its forward is the original's (GroupNorm per frame, positions added
inside each attention, plain softmax attention over frames). `persistent=False` makes the tables
non-persistent, as AnimateDiff's current code does, so its state dict has no `pos_encoder.pe`.
"""

from __future__ import annotations

import math

import torch
from diffusers.models.attention import FeedForward
from torch import nn


class PositionalEncoding(nn.Module):
    def __init__(self, dim: int, max_len: int, persistent: bool):
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32)[:, None]
        frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_len, dim)
        pe[0, :, 0::2] = torch.sin(position * frequency)
        pe[0, :, 1::2] = torch.cos(position * frequency)
        self.register_buffer("pe", pe, persistent=persistent)


class TemporalAttention(nn.Module):
    """AnimateDiff's `VersatileAttention` in "Temporal" mode: frames attend to frames, per position."""

    def __init__(self, dim: int, heads: int, max_len: int, persistent: bool):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])
        self.pos_encoder = PositionalEncoding(dim, max_len, persistent)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """`x`: `(b f) d c` (d spatial positions) -> same shape."""
        batch_frames, positions, dim = x.shape
        batch = batch_frames // frames
        x = x.view(batch, frames, positions, dim).transpose(1, 2).reshape(batch * positions, frames, dim)
        x = x + self.pos_encoder.pe[:, :frames]
        head = dim // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(-1, frames, self.heads, head).transpose(1, 2)

        q, k, v = split(self.to_q(x)), split(self.to_k(x)), split(self.to_v(x))
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head), dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(-1, frames, dim)
        out = self.to_out[1](self.to_out[0](out))
        return out.view(batch, positions, frames, dim).transpose(1, 2).reshape(batch_frames, positions, dim)


class TemporalTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, max_len: int, persistent: bool):
        super().__init__()
        self.attention_blocks = nn.ModuleList(TemporalAttention(dim, heads, max_len, persistent) for _ in range(2))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(2))
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms):
            x = attention(norm(x), frames) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer3DModel(nn.Module):
    def __init__(self, channels: int, heads: int, groups: int, max_len: int, persistent: bool):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList([TemporalTransformerBlock(channels, heads, max_len, persistent)])
        self.proj_out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x`: `b c f h w` -> same shape."""
        batch, channels, frames, height, width = x.shape
        x = x.transpose(1, 2).reshape(batch * frames, channels, height, width)   # b c f h w -> (b f) c h w
        residual = x
        h = self.norm(x).permute(0, 2, 3, 1).reshape(batch * frames, height * width, channels)
        h = self.proj_in(h)
        for block in self.transformer_blocks:
            h = block(h, frames)
        h = self.proj_out(h).view(batch * frames, height, width, channels).permute(0, 3, 1, 2)
        out = h + residual
        return out.view(batch, frames, channels, height, width).transpose(1, 2)


class VanillaTemporalModule(nn.Module):
    def __init__(self, channels: int, heads: int, groups: int, max_len: int, persistent: bool = True):
        super().__init__()
        self.temporal_transformer = TemporalTransformer3DModel(channels, heads, groups, max_len, persistent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal_transformer(x)


def original_motion_modules(block_out_channels: tuple[int, ...], layers_per_block: int, heads: int, groups: int,
                            max_len: int, mid_block: bool = True, persistent: bool = True,
                            seed: int = 0) -> dict[str, VanillaTemporalModule]:
    """Every motion module of an original AnimateDiff UNet by its checkpoint prefix, random weights.

    Down block i holds `layers_per_block` modules of width `block_out_channels[i]`; up block i (from
    the lowest resolution) holds `layers_per_block + 1` of the reversed widths; the mid block one.
    """
    torch.manual_seed(seed)
    places = [(f"down_blocks.{i}.motion_modules.{j}", c) for i, c in enumerate(block_out_channels)
              for j in range(layers_per_block)]
    if mid_block:
        places.append(("mid_block.motion_modules.0", block_out_channels[-1]))
    places += [(f"up_blocks.{i}.motion_modules.{j}", c) for i, c in enumerate(reversed(block_out_channels))
               for j in range(layers_per_block + 1)]
    modules = {}
    for prefix, channels in places:
        module = VanillaTemporalModule(channels, heads, groups, max_len, persistent)
        with torch.no_grad():
            for name, p in module.named_parameters():
                scale = 1.0 if "norm" in name and name.endswith("weight") else 0.0   # norm gains near 1
                p.copy_(scale + 0.3 * torch.randn_like(p))
        modules[prefix] = module
    return modules


def original_checkpoint(modules: dict[str, VanillaTemporalModule]) -> dict[str, torch.Tensor]:
    """The modules' tensors under their original checkpoint keys."""
    return {f"{prefix}.{key}": value for prefix, module in modules.items()
            for key, value in module.state_dict().items()}
