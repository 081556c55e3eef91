"""ConCLVD text-to-video: prompt -> DDIM with classifier-free guidance -> N frames -> VAE decode in
slices -> SOFP interpolation `N -> 2N - 1` (paper Fig. 2, right; eq. 14)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from inkwalk.conclvd.model import NOISE_SCHEDULE, ConCLVD
from inkwalk.errors import InkwalkError
from inkwalk.progress import progress as progress_bar


def _check(model: ConCLVD, frames: int, steps: int, size: int) -> tuple[int, int]:
    """(latent size, sample size multiple) after checking the request fits the model."""
    positions = model.unet.down_blocks[0].motion_modules[0].transformer_blocks[0].pos_embed.pe.shape[1]
    if not 1 <= frames <= positions:
        raise InkwalkError(f"--frames {frames}: the motion module handles 1 to {positions} frames")
    if steps < 1:
        raise InkwalkError(f"--steps {steps}: need at least one denoising step")
    vae_scale = 2 ** (len(model.vae.config.block_out_channels) - 1)
    multiple = vae_scale * 2 ** (len(model.unet.config.block_out_channels) - 1)
    if size < multiple or size % multiple:
        raise InkwalkError(f"--size {size}: must be a positive multiple of {multiple} for this model (e.g. 256)")
    return size // vae_scale, multiple


@torch.no_grad()
def generate_video(model: ConCLVD, prompt: str, negative_prompt: str = "", frames: int = 8, steps: int = 25,
                   guidance: float = 8.0, size: int = 256, seed: int = 0, sofp: bool = True, flow: str = "dis",
                   progress: Callable[[int, int], None] | None = None, models_dir: str | Path | None = None,
                   show_progress: bool = False) -> np.ndarray:
    """A `T×size×size×3` uint8 clip for `prompt`: `frames` sampled frames, `2·frames − 1` with SOFP.

    Seeded: the same seed, model and settings give the same frames. `progress(step, total)` is
    called after each denoising step (for job status); `flow` picks SOFP's optical flow backend
    ("dis" weight-free, "raft" as in the paper, weights from `models_dir`).
    """
    from diffusers import DDIMScheduler

    latent_size, _ = _check(model, frames, steps, size)
    scheduler = DDIMScheduler(**NOISE_SCHEDULE, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    scheduler.set_timesteps(steps, device=model.device)
    generator = torch.Generator("cpu").manual_seed(int(seed))
    channels = model.unet.config.in_channels
    latents = torch.randn((1, frames, channels, latent_size, latent_size), generator=generator)
    latents = (latents * scheduler.init_noise_sigma).to(model.device)

    embeds = model.encode_text([negative_prompt, prompt])
    use_cfg = guidance > 1.0
    if not use_cfg:
        embeds = embeds[1:]
    autocast = (torch.autocast(model.device.type, dtype=model.dtype) if model.dtype != torch.float32
                else contextlib.nullcontext())
    timesteps = scheduler.timesteps
    with autocast:
        for i, t in enumerate(progress_bar(timesteps, total=len(timesteps), desc="denoising", unit="step",
                                           disable=None if show_progress else True)):
            model_input = torch.cat([latents] * len(embeds))
            model_input = scheduler.scale_model_input(model_input, t)
            noise = model.predict_noise(model_input, t, embeds).float()
            if use_cfg:
                uncond, cond = noise.chunk(2)
                noise = uncond + guidance * (cond - uncond)
            # DDIM steps frame-major latents the same as channel-major: it is elementwise.
            latents = scheduler.step(noise, t, latents).prev_sample
            if progress is not None:
                progress(i + 1, len(timesteps))
        clip = model.decode_latents(latents)[0]
    if sofp and frames > 1:
        from inkwalk.interpolate import interpolate_clip

        clip = interpolate_clip(clip, method="sofp", flow=flow, factor=2, models_dir=models_dir,
                                device=model.device)
    return clip
