"""Scrolls: ConCLVD videos of any length, denoised window by window (DESIGN.md, "The window is the unit of work").

Two windowings (`ScrollRequest.windowing`):

- "model" (default): a window is one whole UNet call, the unit of distributed work.
- "motion" (FreeNoise's, diffusers' `AnimateDiffPipeline.enable_free_noise`): one UNet call per step
  over all N frames in this process; the image layers see every frame once and only the motion
  modules' attentions run per window of the same plan (`motion_module.FrameWindows`), fused inside
  each block. Fewer image-layer passes (no overlap recomputed), but memory grows with N and nothing
  is spread over replicas.

The coordinator holds the latents of all N frames and the scheduler. Each "model" step it cuts
the (scaled) latents into the plan's windows, hands every window's latents and per-frame text
embeddings to a *window runner*, fuses the runner's noise predictions with the plan's weights and
takes one scheduler step over the whole video. The runner is the only thing that calls the
UNet, so one model call holds one window, whatever N. `LocalWindowRunner` calls the UNet in this
process (CLI, tests); the Serve runner (services/) sends the same windows to ConCLVD replicas,
and both give the same latents bit for bit because the arithmetic around the UNet is the same.
A "motion" step hands the runner one call over all frames carrying the plan's `FrameWindows`.

Sparse-Causal attention inside a window: frame i attends to frame i - 1 of the same window and the
window's first frame to itself (with `first_frame_keys`, every frame also to the window's first
frame). The video's frame 0 is no anchor past the first window: its keys would be activations of
another window's model call, which never cross the network. Overlapping windows give every
frame but the video's first (in a loop: every frame) a window in which its predecessor is present.
"motion" windowing keeps the same meaning: the predecessor within the motion-module window.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np
import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from inkwalk.conclvd.motion_module import ConCLVDMotionModule, FrameWindows
from inkwalk.conclvd.noise import initial_noise
from inkwalk.conclvd.unet import motion_modules
from inkwalk.conclvd.windows import WindowPlan
from inkwalk.errors import InkwalkError

WINDOWINGS = ("model", "motion")


@dataclass(frozen=True)
class Window:
    """One model call: a window's frame indices, its scaled latents `1×C×L×h×w` and its text
    embeddings `(2)L×77×D` (negative frames first when guided, as the UNet batch is laid out).
    `embeds` is None when the runner's workers hold the text themselves (Serve replicas).
    `motion`: windows the motion modules apply inside this call ("motion" windowing), else None."""

    frames: list[int]
    latents: torch.Tensor
    embeds: torch.Tensor | None
    motion: FrameWindows | None = None


class WindowRunner(Protocol):
    """Noise predictions (guidance applied, float32, `1×C×L×h×w`) for the windows of one step, in order."""

    def __call__(self, windows: Sequence[Window], timestep: torch.Tensor) -> list[torch.Tensor]: ...


@contextlib.contextmanager
def motion_windows(unet: torch.nn.Module, windows: FrameWindows | None) -> Iterator[None]:
    """Every ConCLVD motion module of `unet` attends within `windows` while the block runs (None: no change).

    The windows are state on the shared modules, so a model runs one such call at a time (the CLI's
    single process; Serve replicas never take this path)."""
    if windows is None:
        yield
        return
    modules = [m for _, ms in motion_modules(unet) for m in ms if isinstance(m, ConCLVDMotionModule)]
    if not modules:
        raise InkwalkError("motion windowing needs ConCLVD motion modules in the UNet")
    for module in modules:
        module.frame_windows = windows
    try:
        yield
    finally:
        for module in modules:
            module.frame_windows = None


def plan_motion_windows(plan: WindowPlan) -> FrameWindows:
    """The plan's windows and fusion weights as the motion modules apply them."""
    return FrameWindows(plan.frames, [torch.tensor(w) for w in plan.indices()], plan.fusion_weights())


def predict_window(unet: torch.nn.Module, window: Window, timestep: torch.Tensor, guidance: float) -> torch.Tensor:
    """The UNet's noise prediction for one window with classifier-free guidance when `guidance > 1`.

    Exactly `ConCLVDPipeline`'s arithmetic, so one window over all frames reproduces it bit for bit.
    """
    guided = guidance > 1.0
    device = next(unet.parameters()).device
    latents, embeds = window.latents.to(device), window.embeds.to(device)
    model_input = torch.cat([latents] * 2) if guided else latents
    autocast = (torch.autocast(device.type, dtype=unet.dtype) if unet.dtype != torch.float32
                else contextlib.nullcontext())
    inside = window.motion.to(device) if window.motion is not None else None
    with torch.no_grad(), autocast, motion_windows(unet, inside):
        noise = unet(model_input, timestep, encoder_hidden_states=embeds).sample.float()
    if guided:
        uncond, cond = noise.chunk(2)
        noise = uncond + guidance * (cond - uncond)
    return noise.cpu()


class LocalWindowRunner:
    """Runs every window in this process, one after another."""

    def __init__(self, unet: torch.nn.Module, guidance: float):
        self.unet = unet
        self.guidance = guidance

    def __call__(self, windows: Sequence[Window], timestep: torch.Tensor) -> list[torch.Tensor]:
        return [predict_window(self.unet, w, timestep, self.guidance) for w in windows]


@dataclass(frozen=True)
class ScrollRequest:
    """What the coordinator samples: plan, per-frame embeddings, latent size, steps and noise."""

    plan: WindowPlan
    embeds: torch.Tensor | None       # N×77×D, one per frame (prompt travel); None: the runner holds them
    negative: torch.Tensor | None     # 77×D, the one negative prompt; None: no guidance
    latent_size: tuple[int, int]      # h, w
    steps: int = 25
    noise: str = "shuffle_context"
    eta: float = 0.0
    channels: int = 4
    windowing: str = "model"          # WINDOWINGS: "model" (windows are model calls) or "motion" (FreeNoise's)

    def __post_init__(self) -> None:
        if self.windowing not in WINDOWINGS:
            raise InkwalkError(f"windowing {self.windowing!r}: choose one of {', '.join(WINDOWINGS)}")
        if self.windowing == "motion" and self.embeds is None:
            raise InkwalkError("motion windowing runs in one process and needs the text embeddings there")


def window_embeds(embeds: torch.Tensor, negative: torch.Tensor | None, frames: Sequence[int]) -> torch.Tensor:
    """A window's per-frame embeddings, the negative one repeated first when guided."""
    cond = embeds[torch.tensor(frames)]
    if negative is None:
        return cond
    return torch.cat([negative.expand(len(frames), *negative.shape), cond])


def sample_scroll(request: ScrollRequest, scheduler: SchedulerMixin, runner: WindowRunner,
                  generator: torch.Generator | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  on_latents: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Denoised latents `1×C×N×h×w` (float32, CPU).

    `progress(done, total)` counts windows × steps and runs after every step; an exception it
    raises stops sampling before the next step (a cancelled job). `on_latents(step, latents)`
    sees the latents after every step (previews).
    """
    plan = request.plan
    if request.embeds is not None and request.embeds.shape[0] != plan.frames:
        raise InkwalkError(f"{request.embeds.shape[0]} frame embeddings for {plan.frames} frames")
    windows, weights = plan.indices(), plan.fusion_weights()
    motion = plan_motion_windows(plan) if request.windowing == "motion" else None
    every = list(range(plan.frames))
    # "motion": one call over all frames sends the same text every step, cut once
    whole_text = window_embeds(request.embeds, request.negative, every) if motion else None
    shape = (1, request.channels, plan.frames, *request.latent_size)
    latents = initial_noise(shape, plan.window, plan.stride, request.noise, generator)
    scheduler.set_timesteps(request.steps, device="cpu")
    latents = latents * scheduler.init_noise_sigma
    step_kwargs = {k: v for k, v in (("eta", request.eta), ("generator", generator))
                   if k in inspect.signature(scheduler.step).parameters}
    total = len(windows) * len(scheduler.timesteps)
    for i, t in enumerate(scheduler.timesteps):
        scaled = scheduler.scale_model_input(latents, t)
        if motion:
            fused = runner([Window(every, scaled, whole_text, motion)], t)[0]
        else:
            # a window's embeddings are cut when sent, never all at once (2·window·77·768 floats each)
            batch = [Window(frames, scaled[:, :, torch.tensor(frames)],
                            None if request.embeds is None else window_embeds(request.embeds, request.negative, frames))
                     for frames in windows]
            fused = torch.zeros_like(latents)
            for frames, weight, noise in zip(windows, weights, runner(batch, t)):
                fused[:, :, torch.tensor(frames)] += noise * weight.view(1, 1, -1, 1, 1)
        latents = scheduler.step(fused, t, latents, **step_kwargs).prev_sample
        if on_latents is not None:
            on_latents(i, latents)
        if progress is not None:
            progress((i + 1) * len(windows), total)
    return latents


def decode_slices(vae: torch.nn.Module, latents: torch.Tensor, frames: int,
                  chunk: int = 4) -> Iterator[np.ndarray]:
    """uint8 frames `T×H×W×3` of scaled latents `1×C×N×h×w`, `frames` at a time (never the whole video),
    decoded `chunk` frames per VAE call."""
    device = next(vae.parameters()).device
    for start in range(0, latents.shape[2], frames):
        flat = latents[0, :, start:start + frames].transpose(0, 1) / vae.config.scaling_factor
        images = []
        for i in range(0, flat.shape[0], chunk):
            with torch.no_grad():
                image = vae.decode(flat[i:i + chunk].to(device, vae.dtype)).sample
            images.append(((image.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu())
        yield torch.cat(images).numpy()
