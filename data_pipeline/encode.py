"""Latent cache: an actor that encodes clips with the SD 1.5 VAE and captions with CLIP.

Used as ``ds.map_batches(ClipEncoder, compute=ActorPoolStrategy(...), num_gpus=...)``: each
actor loads the frozen models once and then encodes batch after batch. fp16 on GPU, fp32 on
CPU; the cache is stored as float16 either way. Latents are the mean of the VAE posterior
(deterministic, so a rerun writes identical bytes) times the VAE scaling factor, which is
what the diffusion UNet is trained on.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from data_pipeline.shards import ENCODE_FIELDS
from inkwalk.errors import InkwalkError

ENCODE_TYPES = {f.name: f for f in ENCODE_FIELDS}


class EncoderSetupError(InkwalkError):
    """The encoder could not load its models (the message says where it looked and how to fix it)."""


class ClipEncoder:
    """Encode the `frames` and `caption` columns of a batch into `latents` and `text_embeds`.

    Rows whose `reason` is set are rejects travelling along the stream; they pass through.
    """

    def __init__(self, models_dir: str | None = None, device: str | None = None, vae_batch: int = 16):
        import torch

        self.torch = torch
        try:
            self._load(models_dir, device)
        except InkwalkError as exc:  # an actor that dies in __init__ reaches the driver as text only;
            # ray_execution._user_error finds this class name in that text
            raise EncoderSetupError(str(exc)) from None
        self.vae_batch = vae_batch

    def _load(self, models_dir: str | None, device: str | None) -> None:
        import torch
        from diffusers import AutoencoderKL
        from transformers import CLIPTextModel, CLIPTokenizer

        from inkwalk.models import load_pretrained

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.vae = load_pretrained("sd15-vae", AutoencoderKL, models_dir=models_dir, torch_dtype=self.dtype)
        self.text_encoder = load_pretrained("sd15-text-encoder", CLIPTextModel, models_dir=models_dir,
                                            dtype=self.dtype)
        self.tokenizer = load_pretrained("sd15-tokenizer", CLIPTokenizer, models_dir=models_dir)
        self.vae.to(self.device).eval().requires_grad_(False)
        self.text_encoder.to(self.device).eval().requires_grad_(False)
        self.scaling = float(self.vae.config.scaling_factor)

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """``T×H×W×3`` uint8 -> float16 ``T×4×H/8×W/8`` scaled latents."""
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        x = x.permute(0, 3, 1, 2).to(self.dtype).div(127.5).sub(1.0)
        with torch.inference_mode():
            parts = [self.vae.encode(chunk).latent_dist.mean for chunk in x.split(self.vae_batch)]
        return (torch.cat(parts) * self.scaling).to(torch.float16).cpu().numpy()

    def encode_text(self, captions: list[str]) -> np.ndarray:
        """Captions -> float16 ``B×L×C`` CLIP last hidden states (L = tokenizer max length)."""
        torch = self.torch
        tokens = self.tokenizer(captions, padding="max_length", max_length=self.tokenizer.model_max_length,
                                truncation=True, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.text_encoder(tokens.input_ids.to(self.device))[0]
        return hidden.to(torch.float16).cpu().numpy()

    def __call__(self, table: pa.Table) -> pa.Table:
        reasons = table.column("reason").to_pylist()
        ok = [i for i, r in enumerate(reasons) if not r]
        n = table.num_rows
        latents: list[bytes | None] = [None] * n
        latents_shape: list[list[int] | None] = [None] * n
        embeds: list[bytes | None] = [None] * n
        embeds_shape: list[list[int] | None] = [None] * n
        if ok:
            captions, frames_col, shapes = (table.column(c).to_pylist() for c in ("caption", "frames", "shape"))
            text = self.encode_text([captions[i] for i in ok])
            for j, i in enumerate(ok):
                frames = np.frombuffer(frames_col[i], dtype=np.uint8).reshape(shapes[i])
                lat = self.encode_frames(frames)
                latents[i], latents_shape[i] = lat.tobytes(), list(lat.shape)
                embeds[i], embeds_shape[i] = text[j].tobytes(), list(text[j].shape)
        for name, values in (("latents", latents), ("latents_shape", latents_shape),
                             ("text_embeds", embeds), ("text_embeds_shape", embeds_shape)):
            table = table.append_column(ENCODE_TYPES[name], pa.array(values, ENCODE_TYPES[name].type))
        return table
