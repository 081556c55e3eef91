"""The noise adapter `g` (paper 3.4.2): a small MLP that turns one frame's predicted noise into a
contrastive sample. The noise is average-pooled to a fixed grid first, so any resolution works."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NoiseAdapter(nn.Module):
    """`g`: predicted noise `B×N×C×h×w` -> embeddings `B×N×out_dim` (one per frame)."""

    def __init__(self, channels: int = 4, pool: int = 8, hidden: int = 512, out_dim: int = 128):
        super().__init__()
        self.pool = pool
        self.mlp = nn.Sequential(nn.Linear(channels * pool * pool, hidden), nn.SiLU(), nn.Linear(hidden, out_dim))

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        batch, frames = noise.shape[:2]
        pooled = F.adaptive_avg_pool2d(noise.flatten(0, 1), self.pool)
        return self.mlp(pooled.flatten(1)).view(batch, frames, -1)
