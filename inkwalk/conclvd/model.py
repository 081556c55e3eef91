"""The ConCLVD bundle: frozen SD 1.5 (UNet image layers, VAE, CLIP text encoder, tokenizer) +
trainable motion modules + noise adapter, and how it loads and saves.

Only the trainable tensors are ever saved (`save_trainable`, safetensors with the structure in its
metadata); SD 1.5 always comes from the registry (`inkwalk.models`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from inkwalk.conclvd.motion_module import NORM_MODES
from inkwalk.conclvd.noise_adapter import NoiseAdapter
from inkwalk.conclvd.unet import (InitReport, MotionInitError, adapter_config_for, build_motion_unet,
                                  init_from_animatediff)
from inkwalk.errors import InkwalkError

# Linear betas as AnimateDiff and the paper (not SD's scaled_linear), for training and sampling alike.
NOISE_SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="linear")
TRAINABLE_FORMAT = "inkwalk-conclvd-trainable"


@dataclass
class ConCLVDConfig:
    """Switches of the model that change its structure (saved with the trainable weights)."""

    sparse_causal: bool = True            # False: the paper's ablation (block 1 Versatile, as AnimateDiff)
    first_frame_keys: bool = False        # Sparse-Causal keys also from frame 0 (authors' release)
    norm_mode: str = "per-frame"          # GroupNorm per frame (AnimateDiff, release) | joint (diffusers)
    gradient_checkpointing: bool = False  # recompute activations in backward (training memory)
    adapter_pool: int = 8                 # noise adapter: predicted noise pooled to pool×pool
    adapter_hidden: int = 512
    adapter_dim: int = 128

    def __post_init__(self) -> None:
        if self.norm_mode not in NORM_MODES:
            raise InkwalkError(f"unknown norm mode {self.norm_mode!r}; choose one of {', '.join(NORM_MODES)}")
        if self.first_frame_keys and not self.sparse_causal:
            raise InkwalkError("first_frame_keys changes Sparse-Causal attention, which sparse_causal=False disables")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ConCLVDConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def structure(self) -> dict[str, Any]:
        """The fields that change the trained weights' meaning (all but gradient checkpointing)."""
        return {k: v for k, v in asdict(self).items() if k != "gradient_checkpointing"}


@torch.no_grad()
def encode_prompts(tokenizer: Any, text_encoder: nn.Module, prompts: list[str],
                   device: torch.device | str) -> torch.Tensor:
    """CLIP text embeddings `B×77×C` of `prompts`, padded to the tokenizer's full length (as SD 1.5 does)."""
    ids = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    return text_encoder(ids.to(device))[0]


class ConCLVD(nn.Module):
    """Frozen SD 1.5 + trainable motion UNet modules + noise adapter.

    `forward` is the trainable part of a training step (so DDP wrappers sync its gradients);
    latents are `B×T×4×h×w` everywhere in this API.
    """

    def __init__(self, tokenizer: Any, text_encoder: nn.Module, vae: nn.Module, unet: nn.Module,
                 noise_adapter: NoiseAdapter, config: ConCLVDConfig, adapter_config: Mapping[str, Any]):
        super().__init__()
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder.requires_grad_(False).eval()
        self.vae = vae.requires_grad_(False).eval()
        self.unet = unet
        self.noise_adapter = noise_adapter
        self.config = config
        self.adapter_config = dict(adapter_config)
        self.init_report: InitReport | None = None

    @property
    def device(self) -> torch.device:
        return self.unet.conv_in.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the frozen layers (trainable ones stay float32)."""
        return self.unet.conv_in.weight.dtype

    def train(self, mode: bool = True) -> "ConCLVD":
        """Frozen VAE and text encoder stay in eval mode."""
        super().train(mode)
        self.text_encoder.eval()
        self.vae.eval()
        return self

    def forward(self, noisy_latents: torch.Tensor, timesteps: torch.Tensor,
                text_embeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted noise `B×T×4×h×w`, noise-adapter embeddings `B×T×D`)."""
        noise_pred = self.predict_noise(noisy_latents, timesteps, text_embeds)
        return noise_pred, self.noise_adapter(noise_pred.float())

    def predict_noise(self, latents: torch.Tensor, timesteps: torch.Tensor | int,
                      text_embeds: torch.Tensor) -> torch.Tensor:
        """ε̂ for `latents` `B×T×4×h×w`; text embeddings are repeated per frame (STACK.md pitfall 11)."""
        frames = latents.shape[1]
        sample = latents.transpose(1, 2).to(self.dtype)
        states = text_embeds.to(self.dtype).repeat_interleave(frames, dim=0)
        out = self.unet(sample, timesteps, encoder_hidden_states=states).sample
        return out.transpose(1, 2)

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """CLIP text embeddings `B×77×C` (the UNet's cross-attention input)."""
        return encode_prompts(self.tokenizer, self.text_encoder, prompts, self.device)

    @torch.no_grad()
    def encode_frames(self, frames: torch.Tensor | np.ndarray, generator: torch.Generator | None = None,
                      chunk: int = 8) -> torch.Tensor:
        """uint8 frames `B×T×H×W×3` -> scaled VAE latents `B×T×4×h×w` (sampled, in slices of `chunk`)."""
        frames = torch.as_tensor(frames)
        batch, count = frames.shape[:2]
        x = frames.flatten(0, 1).permute(0, 3, 1, 2)
        latents = []
        for i in range(0, x.shape[0], chunk):
            pixels = x[i:i + chunk].to(self.device, self.vae.dtype) / 127.5 - 1.0
            dist = self.vae.encode(pixels).latent_dist
            noise = torch.randn(dist.mean.shape, generator=generator, device=generator.device if generator else None)
            latents.append(dist.mean + dist.std * noise.to(dist.mean))
        scaled = torch.cat(latents) * self.vae.config.scaling_factor
        return scaled.view(batch, count, *scaled.shape[1:])

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The motion modules' and the noise adapter's parameters (what the optimiser updates)."""
        return [p for p in self.parameters() if p.requires_grad]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {name: p for name, p in self.named_parameters() if p.requires_grad}

    def save_trainable(self, path: str | Path) -> Path:
        """Write only the trainable tensors as safetensors, with the structure in the metadata."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.trainable_state_dict().items()}
        metadata = {"format": TRAINABLE_FORMAT, "config": json.dumps(asdict(self.config)),
                    "adapter_config": json.dumps(_jsonable(self.adapter_config))}
        save_file(tensors, str(path), metadata=metadata)
        return path

    def load_trainable(self, path: str | Path) -> None:
        """Load tensors written by `save_trainable`; every tensor must match by name and shape, and the
        structure they were trained with (sparse_causal, norm_mode, ...) must be this model's."""
        tensors, metadata = read_trainable(path)
        saved = saved_config(metadata).structure()
        differ = [f"{k}={v!r} (this model: {getattr(self.config, k)!r})" for k, v in saved.items()
                  if getattr(self.config, k) != v]
        if differ:
            raise MotionInitError(f"{path} does not fit this model: it was trained with {', '.join(differ)}")
        ours = self.trainable_state_dict()
        missing, extra = sorted(set(ours) - set(tensors)), sorted(set(tensors) - set(ours))
        wrong = [f"{k}: {tuple(tensors[k].shape)} vs {tuple(v.shape)}" for k, v in ours.items()
                 if k in tensors and tensors[k].shape != v.shape]
        if missing or extra or wrong:
            raise MotionInitError(
                f"{path} does not fit this model: {len(missing)} missing, {len(extra)} unexpected, "
                f"{len(wrong)} wrong shape ({', '.join((missing + extra + wrong)[:4])}). It was saved from a "
                "model with another structure (motion adapter or ConCLVD config)")
        with torch.no_grad():
            for k, v in ours.items():
                v.copy_(tensors[k].to(v))


def _jsonable(config: Mapping[str, Any]) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items() if not k.startswith("_")}


def saved_config(metadata: Mapping[str, str]) -> ConCLVDConfig:
    """The config a `save_trainable` file was written with (files from before the norm mode existed
    were trained with diffusers' joint norm)."""
    return ConCLVDConfig.from_dict({"norm_mode": "joint", **json.loads(metadata["config"])})


def read_trainable(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a `save_trainable` file; anything else raises `MotionInitError`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise MotionInitError(f"motion module file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises several types for a file that is not safetensors
        raise MotionInitError(f"{path} is not a safetensors file ({type(exc).__name__}: {exc})") from exc
    if metadata.get("format") != TRAINABLE_FORMAT:
        raise MotionInitError(f"{path} is not a ConCLVD trainable checkpoint (written by save_trainable)")
    return tensors, metadata


def _read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A weights file as (tensors, safetensors metadata): .safetensors, or a torch .ckpt/.pt/.pth."""
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, (f.metadata() or {})
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file: say which and why
        raise MotionInitError(f"cannot read motion module weights {path}: {type(exc).__name__}: {exc}") from exc
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    return dict(loaded), {}


def _original_adapter_config(unet2d: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> dict:
    """The adapter structure of an original-layout AnimateDiff checkpoint, from its tensors.

    Without position tables (AnimateDiff's current code does not save them) the length is
    diffusers' default, 32 frames; the tables are regenerated on loading.
    """
    if not any(".temporal_transformer." in k for k in state_dict):
        raise MotionInitError("motion checkpoint is neither a ConCLVD trainable file nor an AnimateDiff motion "
                              "module (no '.temporal_transformer.' keys)")
    pe = next((v for k, v in state_dict.items() if k.endswith("pos_encoder.pe")), None)
    return adapter_config_for(unet2d, max_seq_length=pe.shape[1] if pe is not None else 32,
                              mid_block=any(k.startswith("mid_block.") for k in state_dict))


def _resolve_config(asked: ConCLVDConfig | Mapping[str, Any] | None, saved: ConCLVDConfig | None) -> ConCLVDConfig:
    """`asked` (every field, or a mapping of only some) over the config of a trainable checkpoint
    (`saved`, which `load_trainable` then holds the model to) or the defaults."""
    asked = asdict(asked) if isinstance(asked, ConCLVDConfig) else dict(asked or {})
    unknown = sorted(set(asked) - {f.name for f in fields(ConCLVDConfig)})
    if unknown:
        raise InkwalkError(f"unknown ConCLVD setting(s) {unknown}")
    return ConCLVDConfig(**{**asdict(saved or ConCLVDConfig()), **asked})


def load_conclvd(models_dir: str | Path | None = None, motion_module: str | Path | None = None,
                 device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                 config: ConCLVDConfig | Mapping[str, Any] | None = None) -> ConCLVD:
    """Load SD 1.5 from the registry and the motion modules from `motion_module`, always strictly.

    `motion_module`: None -> the registry's `animatediff-motion-adapter`; a folder -> a diffusers
    `MotionAdapter`; a file -> a `save_trainable` checkpoint (motion modules + noise adapter) or an
    original AnimateDiff checkpoint (`mm_sd_v15_v2`, or one saved without position tables).
    `config`: a `ConCLVDConfig`, or a mapping of only the fields to set; a trainable checkpoint brings
    its own structure (sparse_causal, norm_mode, ...), which `config` may not contradict (MotionInitError).
    `dtype` applies to the frozen layers only.
    """
    from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from inkwalk.models import load_pretrained

    tokenizer = load_pretrained("sd15-tokenizer", CLIPTokenizer, models_dir=models_dir)
    text_encoder = load_pretrained("sd15-text-encoder", CLIPTextModel, models_dir=models_dir)
    vae = load_pretrained("sd15-vae", AutoencoderKL, models_dir=models_dir)
    unet2d = load_pretrained("sd15-unet", UNet2DConditionModel, models_dir=models_dir)

    trainable: dict[str, torch.Tensor] | None = None
    saved: ConCLVDConfig | None = None
    source = Path(motion_module) if motion_module is not None else None
    if source is None or source.is_dir():
        adapter = load_pretrained("animatediff-motion-adapter", MotionAdapter, path=source, models_dir=models_dir)
        adapter_config, weights = dict(adapter.config), adapter.state_dict()
    elif source.is_file():
        weights, metadata = _read_state_dict(source)
        if metadata.get("format") == TRAINABLE_FORMAT:
            trainable, weights = weights, None
            adapter_config = json.loads(metadata["adapter_config"])
            saved = saved_config(metadata)
        else:
            adapter_config = _original_adapter_config(unet2d, weights)
    else:
        raise MotionInitError(f"motion module {source} does not exist: give a save_trainable .safetensors file, "
                              "an mm_sd_v15_v2 checkpoint or a diffusers MotionAdapter folder")
    config = _resolve_config(config, saved)
    adapter_config = {k: v for k, v in adapter_config.items() if not k.startswith("_")}
    unet = build_motion_unet(unet2d, adapter_config, sparse_causal=config.sparse_causal,
                             first_frame_keys=config.first_frame_keys, norm_mode=config.norm_mode,
                             gradient_checkpointing=config.gradient_checkpointing)
    model = ConCLVD(tokenizer, text_encoder, vae, unet,
                    NoiseAdapter(unet.config.out_channels, config.adapter_pool, config.adapter_hidden,
                                 config.adapter_dim), config, adapter_config)
    if weights is not None:
        model.init_report = init_from_animatediff(unet, weights)
    if trainable is not None:
        model.load_trainable(source)
    if dtype is not None:
        for module in (text_encoder, vae, unet):
            module.to(dtype)
        for p in model.trainable_parameters():
            p.data = p.data.float()
    return model.to(device) if device is not None else model
