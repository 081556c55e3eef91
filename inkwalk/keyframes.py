"""Kandinsky 2.2 keyframes between two paintings: mixed CLIP image embeddings, decoded from one seed.

``L_i = (1 - w_i) e_A + w_i e_B`` (weights from `inkwalk.schedules.embedding_weights`), decoded
as one batch from the same starting noise for every keyframe, so neighbours stay close and a
walk is reproducible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from inkwalk.walk_settings import WalkSettings


def _device_dtype(device: str | None):
    import torch

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.float32
    return dev, dtype


class KandinskyKeyframer:
    """Kandinsky 2.2 prior (its CLIP image encoder only) + decoder, loaded once."""

    def __init__(self, prior, decoder, device):
        self.prior = prior
        self.decoder = decoder
        self.device = device

    @classmethod
    def load(cls, models_dir: str | Path | None = None, device: str | None = None) -> "KandinskyKeyframer":
        """Load both pipelines from the model registry; fp16/bf16 on GPU, fp32 on CPU."""
        from diffusers import KandinskyV22Pipeline, KandinskyV22PriorPipeline

        from inkwalk.models import load_pretrained

        dev, dtype = _device_dtype(device)
        # only the prior's CLIP image encoder (and its image processor) is needed: skip the
        # prior transformer and the text encoder, most of the prior's weights
        prior = load_pretrained("kandinsky-2-2-prior", KandinskyV22PriorPipeline, models_dir=models_dir,
                                dtype=dtype, prior=None, text_encoder=None, tokenizer=None, scheduler=None)
        decoder = load_pretrained("kandinsky-2-2-decoder", KandinskyV22Pipeline, models_dir=models_dir,
                                  dtype=dtype)
        for pipe in (prior, decoder):
            pipe.to(dev)
            pipe.set_progress_bar_config(disable=True)
        return cls(prior, decoder, dev)

    def embed(self, images: Sequence[np.ndarray]):
        """CLIP image embeddings (N×D tensor) of uint8 frames, the prior's own preprocessing."""
        import torch

        enc = self.prior.image_encoder
        pixels = self.prior.image_processor(images=[np.array(i) for i in images], return_tensors="pt").pixel_values
        with torch.inference_mode():
            return enc(pixels.to(self.device, enc.dtype)).image_embeds

    def decode(self, embeds, size: tuple[int, int], seed: int, steps: int, guidance: float,
               batch: int) -> np.ndarray:
        """Keyframes (m×H'×W'×3 uint8) from m image embeddings, all from the same start noise."""
        import torch

        dec = self.decoder
        w, h = size
        negative = self.prior.get_zero_embed(1, device=self.device).to(embeds.dtype)
        out = []
        for start in range(0, len(embeds), batch):
            part = embeds[start:start + batch]
            b = len(part)
            # one generator per image, all with the same seed: every keyframe starts from the
            # same noise and gets the same sampler noise, whatever the batch size
            generators = [torch.Generator("cpu").manual_seed(int(seed)) for _ in range(b)]
            images = dec(image_embeds=part, negative_image_embeds=negative.repeat(b, 1), height=h, width=w,
                         num_inference_steps=steps, guidance_scale=guidance, generator=generators,
                         output_type="np").images
            out.append(np.clip(np.rint(np.asarray(images, np.float32) * 255.0), 0, 255).astype(np.uint8))
        return np.concatenate(out)


def render_keyframes(a: np.ndarray, b: np.ndarray, settings: WalkSettings,
                     models_dir: str | Path | None = None,
                     keyframer: KandinskyKeyframer | None = None) -> np.ndarray:
    """The m keyframes between paintings a and b (fitted to `settings.size`), m×H×W×3 uint8."""
    from inkwalk.schedules import embedding_weights
    from inkwalk.video import fit_image

    m = settings.keyframes
    w, h = settings.size
    if m == 0:
        return np.zeros((0, h, w, 3), np.uint8)
    if keyframer is None:
        keyframer = KandinskyKeyframer.load(models_dir=models_dir)
    import torch

    e = keyframer.embed([a, b])
    weights = torch.as_tensor(embedding_weights(m, settings.weighting, settings.scale, settings.keyframe_grid),
                              dtype=e.dtype, device=e.device)[:, None]
    mixed = (1 - weights) * e[0:1] + weights * e[1:2]
    frames = keyframer.decode(mixed, (w, h), settings.seed, settings.steps, settings.guidance, settings.batch)
    # the decoder rounds sizes up to its latent grid: bring each keyframe to the walk size
    return np.stack([f if f.shape[:2] == (h, w) else fit_image(f, (w, h), "crop") for f in frames])
