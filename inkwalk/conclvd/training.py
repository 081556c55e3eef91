"""One ConCLVD training step as a plain PyTorch function (the Ray Train loop calls it).

Frames (or cached latents + text embeddings) in; DDPM-noised latents at one random timestep per
video (linear betas 0.00085 -> 0.012); the motion UNet predicts the noise; the loss is eq. 13.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

import torch
from diffusers import DDPMScheduler

from inkwalk.conclvd.loss import conclvd_loss
from inkwalk.conclvd.model import NOISE_SCHEDULE, ConCLVD
from inkwalk.errors import InkwalkError


@lru_cache(maxsize=1)
def _scheduler() -> DDPMScheduler:
    return DDPMScheduler(**NOISE_SCHEDULE)


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    where = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=where).to(device)


def training_step(model: ConCLVD | torch.nn.Module, batch: Mapping[str, Any], *, caption_dropout: float = 0.1,
                  lambda_diff: float = 1.0, lambda_con: float = 0.07, tau: float = 0.07, margin: int = 4,
                  generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Losses `{loss, loss_diff, loss_con}` for one batch; the caller backprops `loss`.

    `batch` is `{"frames": uint8 B×T×H×W×3, "caption": list[str]}` or
    `{"latents": B×T×4×h×w, "text_embeds": B×77×C}`. `model` may be wrapped (e.g. DDP): its
    `forward` runs the trainable part, `.module` the frozen encoders. Each caption is replaced by
    the empty one with probability `caption_dropout` (classifier-free guidance).
    """
    core: ConCLVD = getattr(model, "module", model)
    device = core.device
    if "latents" in batch and "text_embeds" in batch:
        latents = torch.as_tensor(batch["latents"]).to(device, torch.float32)
        text_embeds = torch.as_tensor(batch["text_embeds"]).to(device, torch.float32)
        drop = _rand((latents.shape[0],), generator, device) < caption_dropout
        if drop.any():
            empty = core.encode_text([""]).to(text_embeds)
            text_embeds = torch.where(drop[:, None, None], empty, text_embeds)
    elif "frames" in batch and "caption" in batch:
        latents = core.encode_frames(batch["frames"], generator=generator).float()
        captions = [batch["caption"]] if isinstance(batch["caption"], str) else list(batch["caption"])
        drop = _rand((len(captions),), generator, device) < caption_dropout
        captions = ["" if d else c for c, d in zip(captions, drop.tolist())]
        text_embeds = core.encode_text(captions).float()
    else:
        raise InkwalkError(f"training batch has keys {sorted(batch)}: it needs 'frames' + 'caption' "
                           "or 'latents' + 'text_embeds'")
    if latents.ndim != 5:
        raise InkwalkError(f"latents must be B×T×4×h×w, got shape {tuple(latents.shape)}")

    scheduler = _scheduler()
    where = generator.device if generator is not None else device
    noise = torch.randn(latents.shape, generator=generator, device=where).to(device)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],),
                              generator=generator, device=where).to(device)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    noise_pred, embeddings = model(noisy, timesteps, text_embeds)
    return conclvd_loss(noise, noise_pred, embeddings, lambda_diff=lambda_diff, lambda_con=lambda_con,
                        tau=tau, margin=margin)
