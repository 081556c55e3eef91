"""ConCLVD's motion module: Versatile attention, then Sparse-Causal attention, then feed-forward.

One module sits after each image layer of the SD 1.5 UNet (it replaces each of diffusers'
`AnimateDiffTransformer3D` in a `UNetMotionModel`, and takes the same call signature). Parameter
names follow diffusers' AnimateDiff layout (`norm`, `proj_in`, `transformer_blocks.k.{norm1, attn1,
norm2, attn2, norm3, ff, pos_embed}`, `proj_out`) so an AnimateDiff motion adapter initialises it
tensor for tensor: attention block 0 (`attn1`) is Versatile, block 1 (`attn2`) is Sparse-Causal.

- GroupNorm of the input, `norm_mode` "per-frame" (default: AnimateDiff's original module and the
  ConCLVD release normalise each frame on its own, `b c f h w -> (b f) c h w`) or "joint" (diffusers'
  `AnimateDiffTransformer3D`: one set of statistics over all frames of a video).
- Versatile attention (paper eq. 7): tokens `[(b h w), f, c]`, every frame attends to every frame
  at the same spatial position, sinusoidal frame positions added to its input.
- Sparse-Causal attention (paper eq. 8): tokens `[(b f), (h w), c]`, the spatial tokens of frame
  `i` attend to the spatial tokens of frame `i - 1` only (`M_ij = 1 iff j = i - 1`); frame 0
  attends to itself. `first_frame_keys=True` also gives every frame the keys of frame 0 (the
  authors' release and Tune-A-Video). The same frame positions are added to its input, as
  AnimateDiff's block 1 was trained with them. `sparse_causal=False` (the paper's ablation
  "w/o SC-Attn") makes block 1 a second Versatile attention: AnimateDiff's motion module, which is
  also what the authors' released config runs.
- Pre-norms and residuals around each part; `proj_out` is zero-initialised, so a fresh module is
  the identity and the UNet starts as the image model applied frame by frame.

Windows inside the module (FreeNoise's, `frame_windows`): when a scroll is sampled with
`windowing="motion"` the UNet sees all N frames at once and each block runs its two attentions per
window of frames (positions 0..L-1 again in every window, Sparse-Causal's predecessor the previous
frame *within the window*, the window's first frame attending to itself), then fuses the windows'
outputs per frame with the plan's weights and runs the feed-forward over the fused frames. The
GroupNorm, `proj_in` and `proj_out` stay whole-video, so "joint" statistics span all N frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.embeddings import SinusoidalPositionalEmbedding
from torch import nn

from inkwalk.errors import InkwalkError

NORM_MODES = ("per-frame", "joint")


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    batch, length, dim = x.shape
    return x.view(batch, length, heads, dim // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)


class _Attention(nn.Module):
    """Multi-head projections shared by both attentions (key names as diffusers' `Attention`)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim))

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        h = self.heads
        out = F.scaled_dot_product_attention(_split_heads(q, h), _split_heads(k, h), _split_heads(v, h))
        return self.to_out(_merge_heads(out))


class VersatileAttention(_Attention):
    """Full attention over the frames at one spatial position: input `[(b h w), f, c]`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._attend(self.to_q(x), self.to_k(x), self.to_v(x))


class SparseCausalAttention(_Attention):
    """Frame `i`'s spatial tokens attend to frame `i - 1`'s (frame 0 to itself): input `[(b f), (h w), c]`."""

    def __init__(self, dim: int, heads: int, first_frame_keys: bool = False):
        super().__init__(dim, heads)
        self.first_frame_keys = first_frame_keys

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        batch_frames, tokens, dim = x.shape
        batch = batch_frames // num_frames
        q = self.to_q(x)
        k = self.to_k(x).view(batch, num_frames, tokens, dim)
        v = self.to_v(x).view(batch, num_frames, tokens, dim)
        previous = (torch.arange(num_frames, device=x.device) - 1).clamp(min=0)
        keys, values = k[:, previous], v[:, previous]
        if self.first_frame_keys:
            first = torch.zeros_like(previous)
            keys = torch.cat([k[:, first], keys], dim=2)
            values = torch.cat([v[:, first], values], dim=2)
        keys = keys.reshape(batch_frames, -1, dim)
        values = values.reshape(batch_frames, -1, dim)
        return self._attend(q, keys, values)


@dataclass(frozen=True)
class FrameWindows:
    """Windows of a video's frames for the attentions inside a motion module, and each window's per-frame
    fusion weights (summing to 1 per frame over the windows that hold it)."""

    video_frames: int
    indices: Sequence[torch.Tensor]   # int64, one per window
    weights: Sequence[torch.Tensor]   # float32, as long as the window's indices

    def to(self, device: torch.device) -> "FrameWindows":
        return FrameWindows(self.video_frames, [i.to(device) for i in self.indices],
                            [w.to(device) for w in self.weights])


class MotionTransformerBlock(nn.Module):
    """Versatile attention, Sparse-Causal attention (a second Versatile one when disabled), feed-forward;
    pre-norm residuals."""

    def __init__(self, dim: int, heads: int, max_seq_length: int = 32, sparse_causal: bool = True,
                 first_frame_keys: bool = False):
        super().__init__()
        if first_frame_keys and not sparse_causal:
            raise ValueError("first_frame_keys applies to Sparse-Causal attention, which is disabled")
        self.pos_embed = SinusoidalPositionalEmbedding(dim, max_seq_length=max_seq_length)
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = VersatileAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = (SparseCausalAttention(dim, heads, first_frame_keys=first_frame_keys) if sparse_causal
                      else VersatileAttention(dim, heads))
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, activation_fn="geglu")

    def forward(self, x: torch.Tensor, batch: int, num_frames: int, windows: FrameWindows | None = None) -> torch.Tensor:
        """`x` is `[(b h w), f, c]`; returns the same shape. With `windows`, the attentions run per window
        and their outputs are fused before the feed-forward (FreeNoise)."""
        x = self._attend(x, batch, num_frames) if windows is None else self._attend_windows(x, batch, windows)
        return x + self.ff(self.norm3(x))

    def _attend(self, x: torch.Tensor, batch: int, num_frames: int) -> torch.Tensor:
        """Both attentions with their residuals, over all `num_frames` frames of `x`."""
        if num_frames > self.pos_embed.pe.shape[1]:
            raise ValueError(f"{num_frames} frames exceed the motion module's {self.pos_embed.pe.shape[1]} positions")
        x = x + self.attn1(self.pos_embed(self.norm1(x)))
        y = self.pos_embed(self.norm2(x))
        if isinstance(self.attn2, SparseCausalAttention):
            positions, frames, dim = x.shape
            tokens = positions // batch
            y = y.view(batch, tokens, frames, dim).transpose(1, 2).reshape(batch * frames, tokens, dim)
            y = self.attn2(y, num_frames)
            y = y.view(batch, frames, tokens, dim).transpose(1, 2).reshape(positions, frames, dim)
        else:
            y = self.attn2(y)
        return x + y

    def _attend_windows(self, x: torch.Tensor, batch: int, windows: FrameWindows) -> torch.Tensor:
        """The attentions per window, fused per frame with the windows' weights."""
        fused = torch.zeros_like(x)
        for frames, weight in zip(windows.indices, windows.weights):
            part = self._attend(x.index_select(1, frames), batch, len(frames))
            fused.index_add_(1, frames, part * weight.to(part.dtype).view(1, -1, 1))
        return fused


class ConCLVDMotionModule(nn.Module):
    """Drop-in replacement for diffusers' `AnimateDiffTransformer3D`: `(b f) c h w` in and out."""

    def __init__(self, in_channels: int, num_attention_heads: int = 8, num_layers: int = 1,
                 norm_num_groups: int = 32, max_seq_length: int = 32, sparse_causal: bool = True,
                 first_frame_keys: bool = False, norm_mode: str = "per-frame"):
        super().__init__()
        if norm_mode not in NORM_MODES:
            raise InkwalkError(f"unknown motion-module norm mode {norm_mode!r}; choose one of {', '.join(NORM_MODES)}")
        self.norm_mode = norm_mode
        self.sparse_causal = sparse_causal
        self.first_frame_keys = first_frame_keys
        self.in_channels = in_channels
        self.num_attention_heads = num_attention_heads
        self.norm = nn.GroupNorm(num_groups=norm_num_groups, num_channels=in_channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(in_channels, in_channels)
        self.transformer_blocks = nn.ModuleList(
            MotionTransformerBlock(in_channels, num_attention_heads, max_seq_length, sparse_causal, first_frame_keys)
            for _ in range(num_layers)
        )
        self.proj_out = nn.Linear(in_channels, in_channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)
        # Set by diffusers' `enable_gradient_checkpointing`, with `_gradient_checkpointing_func`.
        self.gradient_checkpointing = False
        # Set while a scroll samples with `windowing="motion"` (`inkwalk.conclvd.scroll.motion_windows`).
        self.frame_windows: FrameWindows | None = None

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: Any = None, timestep: Any = None,
                class_labels: Any = None, num_frames: int = 1, cross_attention_kwargs: Any = None) -> torch.Tensor:
        """Same positional signature as `AnimateDiffTransformer3D` (diffusers' mid block calls it
        positionally); only `hidden_states` and `num_frames` are used: motion modules see no text."""
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(self._forward, hidden_states, num_frames)
        return self._forward(hidden_states, num_frames)

    def _forward(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        batch_frames, channels, height, width = hidden_states.shape
        batch = batch_frames // num_frames
        residual = hidden_states
        if self.norm_mode == "per-frame":
            x = self.norm(hidden_states).view(batch, num_frames, channels, height, width)
        else:
            video = hidden_states.view(batch, num_frames, channels, height, width).transpose(1, 2)
            x = self.norm(video).transpose(1, 2)
        x = x.permute(0, 3, 4, 1, 2).reshape(batch * height * width, num_frames, channels)
        x = self.proj_in(x)
        windows = self.frame_windows
        if windows is not None and windows.video_frames != num_frames:
            raise ValueError(f"frame windows of {windows.video_frames} frames for a call of {num_frames}")
        for block in self.transformer_blocks:
            x = block(x, batch, num_frames, windows)
        x = self.proj_out(x)
        x = x.view(batch, height, width, num_frames, channels).permute(0, 3, 4, 1, 2)
        return x.reshape(batch_frames, channels, height, width) + residual
