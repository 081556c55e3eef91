"""ConCLVD text-to-video as a diffusers pipeline (one clip, one model call per step).

`ConCLVDPipeline` is a `DiffusionPipeline`: prompt -> classifier-free-guided sampling with any
compatible diffusers scheduler (DDIM with AnimateDiff's linear betas by default, 25 steps, guidance
8) -> N frames decoded in slices, as uint8. It saves and loads like any diffusers pipeline and is
built the way `AnimateDiffPipeline` is: from an SD 1.5 folder plus a `MotionAdapter`.
Videos of any length are sampled window by window (scroll.py), which for one window over all
frames is this pipeline bit for bit; `scroll_video.generate_video` is the CLI's and Serve's call.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from diffusers import (AutoencoderKL, DDIMScheduler, DiffusionPipeline, MotionAdapter, UNet2DConditionModel,
                       UNetMotionModel)
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPTextModel, CLIPTokenizer

from inkwalk.conclvd.model import NOISE_SCHEDULE, ConCLVD, encode_prompts
from inkwalk.conclvd.motion_module import ConCLVDMotionModule
from inkwalk.conclvd.unet import (MotionInitError, build_motion_unet, init_from_animatediff, motion_modules,
                                  motion_state_dict, swap_motion_modules)
from inkwalk.errors import InkwalkError


def conclvd_scheduler() -> DDIMScheduler:
    """DDIM over the linear betas ConCLVD and AnimateDiff train with (not SD's scaled_linear)."""
    return DDIMScheduler(**NOISE_SCHEDULE, clip_sample=False, set_alpha_to_one=False, steps_offset=1)


@dataclass
class ConCLVDPipelineOutput(BaseOutput):
    """`frames`: uint8 `B×T×H×W×3` (output_type "np"), or the latents `B×4×T×h×w` ("latent")."""

    frames: np.ndarray | torch.Tensor


class ConCLVDPipeline(DiffusionPipeline):
    """Frozen SD 1.5 + ConCLVD motion modules, sampled with classifier-free guidance.

    `unet` is either an SD 1.5 `UNet2DConditionModel`, inflated here with ConCLVD motion modules
    initialised from `motion_adapter` (as `AnimateDiffPipeline` does with its own), or a
    `UNetMotionModel` (a saved ConCLVD pipeline's, whose motion tensors are moved into ConCLVD
    modules). `sparse_causal`, `first_frame_keys` and `norm_mode` are the `ConCLVDConfig` switches;
    they are saved in `model_index.json`. The adapter is not kept: its weights live in the UNet.
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"
    _optional_components = ["motion_adapter", "scheduler"]  # scheduler: None -> `conclvd_scheduler()`
    _callback_tensor_inputs = ["latents", "prompt_embeds"]

    def __init__(self, vae: AutoencoderKL, text_encoder: CLIPTextModel, tokenizer: CLIPTokenizer,
                 unet: UNet2DConditionModel | UNetMotionModel, motion_adapter: MotionAdapter | None = None,
                 scheduler: SchedulerMixin | None = None, sparse_causal: bool = True, first_frame_keys: bool = False,
                 norm_mode: str = "per-frame"):
        super().__init__()
        switches = dict(sparse_causal=sparse_causal, first_frame_keys=first_frame_keys, norm_mode=norm_mode)
        if isinstance(unet, UNet2DConditionModel):
            if motion_adapter is None:
                raise MotionInitError("an SD 1.5 image UNet needs a motion_adapter (an AnimateDiff MotionAdapter) "
                                      "to initialise the ConCLVD motion modules")
            adapter_config = {k: v for k, v in motion_adapter.config.items() if not k.startswith("_")}
            unet = build_motion_unet(unet, adapter_config, **switches)
            init_from_animatediff(unet, motion_adapter.state_dict())
        else:
            modules = [m for _, ms in motion_modules(unet) for m in ms]
            if not all(isinstance(m, ConCLVDMotionModule) for m in modules):
                weights = motion_state_dict(unet)
                init_from_animatediff(swap_motion_modules(unet, **switches), weights)
            else:
                found = {k: getattr(modules[0], k) for k in switches}
                if found != switches:
                    raise MotionInitError(f"the UNet's motion modules are {found}, not {switches}")
        self.register_modules(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                              motion_adapter=None, scheduler=scheduler or conclvd_scheduler())
        self.register_to_config(**switches)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    @classmethod
    def from_model(cls, model: ConCLVD, scheduler: SchedulerMixin | None = None) -> "ConCLVDPipeline":
        """The pipeline over a loaded `ConCLVD` bundle's modules (shared, not copied)."""
        config = model.config
        return cls(vae=model.vae, text_encoder=model.text_encoder, tokenizer=model.tokenizer, unet=model.unet,
                   scheduler=scheduler, sparse_causal=config.sparse_causal,
                   first_frame_keys=config.first_frame_keys, norm_mode=config.norm_mode)

    def size_multiple(self) -> int:
        """Frame sizes must be multiples of this: the VAE's and the UNet's downsampling together."""
        return self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    def check_inputs(self, prompts: Sequence[Any], num_frames: int, height: int, width: int, steps: int,
                     tensor_inputs: Sequence[str]) -> None:
        """User mistakes become one-line `InkwalkError`s."""
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise InkwalkError("prompt must be a string or a list of strings")
        positions = self.unet.down_blocks[0].motion_modules[0].transformer_blocks[0].pos_embed.pe.shape[1]
        if not 1 <= num_frames <= positions:
            raise InkwalkError(f"frames {num_frames}: the motion module handles 1 to {positions} frames")
        if steps < 1:
            raise InkwalkError(f"steps {steps}: need at least one denoising step")
        multiple = self.size_multiple()
        for name, value in (("height", height), ("width", width)):
            if value < multiple or value % multiple:
                raise InkwalkError(f"{name} {value}: must be a positive multiple of {multiple} for this model "
                                   "(e.g. 256)")
        unknown = sorted(set(tensor_inputs) - set(self._callback_tensor_inputs))
        if unknown:
            raise InkwalkError(f"callback tensor inputs {unknown} are not offered; choose from "
                               f"{self._callback_tensor_inputs}")

    def _step_kwargs(self, generator: torch.Generator | None, eta: float) -> dict[str, Any]:
        """`eta` and `generator` for schedulers whose `step` takes them (DDIM, ancestral samplers)."""
        accepted = inspect.signature(self.scheduler.step).parameters
        return {k: v for k, v in (("eta", eta), ("generator", generator)) if k in accepted}

    def decode(self, latents: torch.Tensor, chunk: int = 4) -> np.ndarray:
        """Scaled latents `B×4×T×h×w` -> uint8 frames `B×T×H×W×3`, decoded `chunk` frames at a time."""
        batch, _, count = latents.shape[:3]
        flat = latents.transpose(1, 2).flatten(0, 1) / self.vae.config.scaling_factor
        images = []
        for i in range(0, flat.shape[0], chunk):
            image = self.vae.decode(flat[i:i + chunk].to(self.vae.dtype)).sample
            images.append(((image.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu())
        return torch.cat(images).view(batch, count, *images[0].shape[1:]).numpy()

    @torch.no_grad()
    def __call__(self, prompt: str | list[str], negative_prompt: str | list[str] | None = None, num_frames: int = 8,
                 height: int | None = None, width: int | None = None, num_inference_steps: int = 25,
                 guidance_scale: float = 8.0, eta: float = 0.0, generator: torch.Generator | None = None,
                 latents: torch.Tensor | None = None, output_type: str = "np", return_dict: bool = True,
                 callback_on_step_end: Callable[..., dict] | None = None,
                 callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
                 decode_chunk_size: int = 4) -> ConCLVDPipelineOutput | tuple:
        """Sample `num_frames` frames per prompt.

        `callback_on_step_end(pipe, step, timestep, tensors)` runs after every denoising step with the
        named tensors and may return replacements (diffusers' convention); an exception it raises
        stops sampling at once and propagates. `generator` seeds the initial noise (drawn as
        `B×4×T×h×w`, like `AnimateDiffPipeline`). `output_type`: "np" (uint8 frames) or "latent".
        """
        if output_type not in ("np", "latent"):
            raise InkwalkError(f"output_type {output_type!r}: choose 'np' (uint8 frames) or 'latent'")
        default_size = self.unet.config.sample_size * self.vae_scale_factor
        height, width = height or default_size, width or default_size
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        self.check_inputs(prompts, num_frames, height, width, num_inference_steps, callback_on_step_end_tensor_inputs)
        negatives = negative_prompt if isinstance(negative_prompt, list) else [negative_prompt or ""] * len(prompts)
        if len(negatives) != len(prompts):
            raise InkwalkError(f"{len(negatives)} negative prompts for {len(prompts)} prompts")
        device = self._execution_device
        use_cfg = guidance_scale > 1.0
        prompt_embeds = encode_prompts(self.tokenizer, self.text_encoder, prompts, device)
        if use_cfg:
            prompt_embeds = torch.cat([encode_prompts(self.tokenizer, self.text_encoder, negatives, device),
                                       prompt_embeds])

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        shape = (len(prompts), self.unet.config.in_channels, num_frames, height // self.vae_scale_factor,
                 width // self.vae_scale_factor)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
        elif tuple(latents.shape) != shape:
            raise InkwalkError(f"latents of shape {tuple(latents.shape)}; this request needs {shape}")
        latents = latents.to(device, torch.float32) * self.scheduler.init_noise_sigma
        step_kwargs = self._step_kwargs(generator, eta)
        autocast = (torch.autocast(device.type, dtype=self.unet.dtype) if self.unet.dtype != torch.float32
                    else contextlib.nullcontext())
        with self.progress_bar(total=len(timesteps)) as bar, autocast:
            for i, t in enumerate(timesteps):
                model_input = torch.cat([latents] * 2) if use_cfg else latents
                model_input = self.scheduler.scale_model_input(model_input, t)
                noise = self.unet(model_input, t,
                                  encoder_hidden_states=prompt_embeds.repeat_interleave(num_frames, dim=0)).sample
                noise = noise.float()
                if use_cfg:
                    uncond, cond = noise.chunk(2)
                    noise = uncond + guidance_scale * (cond - uncond)
                latents = self.scheduler.step(noise, t, latents, **step_kwargs).prev_sample
                if callback_on_step_end is not None:
                    tensors = {"latents": latents, "prompt_embeds": prompt_embeds}
                    out = callback_on_step_end(self, i, t, {k: tensors[k] for k in callback_on_step_end_tensor_inputs})
                    latents = out.pop("latents", latents)
                    prompt_embeds = out.pop("prompt_embeds", prompt_embeds)
                bar.update()
            frames = latents if output_type == "latent" else self.decode(latents, decode_chunk_size)
        self.maybe_free_model_hooks()
        return ConCLVDPipelineOutput(frames=frames) if return_dict else (frames,)

