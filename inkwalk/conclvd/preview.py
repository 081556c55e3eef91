"""A cheap look at latents while they are sampled: a fixed linear map of SD 1.5's 4 latent channels to RGB.

The map is the one ComfyUI's latent previews use for SD 1.5 (`latent_rgb_factors`, a least-squares
fit of decoded colours to latents): RGB = latents · F, then [-1, 1] -> [0, 255]. No VAE runs, so a
preview of any number of frames costs a matrix product at latent resolution (1/8 of each side).
"""

from __future__ import annotations

import numpy as np
import torch

LATENT_RGB = torch.tensor([[0.3512, 0.2297, 0.3227],
                           [0.3250, 0.4974, 0.2350],
                           [-0.2829, 0.1762, 0.2721],
                           [-0.2120, -0.2616, -0.7177]])


def latent_preview(latents: torch.Tensor, frames: int = 8) -> np.ndarray:
    """uint8 `h×(k·w)×3`: up to `frames` evenly spaced frames of `1×4×N×h×w` latents, side by side."""
    count = latents.shape[2]
    picks = torch.linspace(0, count - 1, min(frames, count)).round().long()
    chosen = latents[0, :, picks].float().permute(1, 2, 3, 0)           # k×h×w×4
    rgb = ((chosen @ LATENT_RGB + 1) * 127.5).clamp(0, 255).round().to(torch.uint8)
    return torch.cat(list(rgb), dim=1).numpy()
