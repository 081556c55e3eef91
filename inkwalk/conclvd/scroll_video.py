"""A ConCLVD video of any length: windowed sampling -> decoding slice by slice -> SOFP -> encoded chunks.

`generate_video` returns the frames (short clips, tests, Serve's single-replica path);
`render_video` streams them into H.264 chunks joined by stream copy (inkwalk/chunks.py), so a long
video never sits as pixels in one process: one decoded slice (a window of frames) and one chunk
at a time. With `loop`, SOFP also interpolates the last -> first pair: 2N frames instead of 2N - 1.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import torch

from inkwalk.conclvd.model import ConCLVD, encode_prompts
from inkwalk.conclvd.pipeline import ConCLVDPipeline, conclvd_scheduler
from inkwalk.conclvd.prompt_travel import frame_embeddings, full_schedule
from inkwalk.conclvd.scroll import LocalWindowRunner, ScrollRequest, WindowRunner, decode_slices, sample_scroll
from inkwalk.conclvd.windows import WindowPlan, resolve_windows
from inkwalk.errors import InkwalkError


def frame_size(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """(width, height) of a square side or a (width, height) pair."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def scroll_text(model: ConCLVD, prompt: str, negative_prompt: str = "", frames: int = 8, guidance: float = 8.0,
                loop: bool = False, prompts: Mapping | None = None, prompt_interpolation: str = "linear",
                **_: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-frame text embeddings `N×77×D` of the prompt schedule, and the negative one (None unguided)."""
    def encode(texts: list[str]) -> torch.Tensor:
        with torch.no_grad():
            return encode_prompts(model.tokenizer, model.text_encoder, texts, model.device).float().cpu()

    embeds = frame_embeddings(encode, full_schedule(prompt, prompts), frames, loop=loop, method=prompt_interpolation)
    return embeds, (encode([negative_prompt])[0] if guidance > 1.0 else None)


def scroll_request(model: ConCLVD, prompt: str, frames: int = 8, steps: int = 25,
                   size: int | tuple[int, int] = 256, window: int | None = None, overlap: int | None = None,
                   loop: bool = False, weighting: str = "pyramid", noise: str = "shuffle_context",
                   windowing: str = "model", with_text: bool = True, **settings: Any) -> ScrollRequest:
    """The sampling request of a job's settings, checked against the model; the text is encoded here
    unless `with_text` is False (then the runner's workers encode it). `windowing`: "model" (windows are
    model calls) or "motion" (one call over all frames, windows inside the motion modules)."""
    width, height = frame_size(size)
    plan = scroll_plan(frames, window, overlap, loop, weighting)
    window = plan.window
    pipe = ConCLVDPipeline.from_model(model)
    positions = model.unet.down_blocks[0].motion_modules[0].transformer_blocks[0].pos_embed.pe.shape[1]
    if window > positions:
        raise InkwalkError(f"window {window}: this motion module handles at most {positions} frames per window; "
                           "longer videos take more windows, not longer ones")
    pipe.check_inputs([prompt], window, height, width, steps, ())
    embeds, negative = (scroll_text(model, prompt, frames=frames, loop=loop, **settings) if with_text
                        else (None, None))
    scale = pipe.vae_scale_factor
    return ScrollRequest(plan=plan, embeds=embeds, negative=negative, latent_size=(height // scale, width // scale),
                         steps=steps, noise=noise, channels=model.unet.config.in_channels,
                         windowing=windowing)


def scroll_plan(frames: int, window: int | None = None, overlap: int | None = None, loop: bool = False,
                weighting: str = "pyramid") -> WindowPlan:
    """The windows of a job's settings, defaults filled in: the one place both the in-process and the
    Serve coordinator get them from."""
    window, overlap = resolve_windows(frames, window, overlap)
    return WindowPlan(frames, window, overlap, loop=loop, weighting=weighting)


def scroll_latents(model: ConCLVD, prompt: str, seed: int = 0, guidance: float = 8.0,
                   runner: WindowRunner | None = None, progress: Callable[[int, int], None] | None = None,
                   on_latents: Callable[[int, torch.Tensor], None] | None = None, **settings: Any) -> torch.Tensor:
    """Denoised latents `1×4×N×h×w` of a job; windows run on `runner` (default: this process)."""
    request = scroll_request(model, prompt, guidance=guidance, **settings)
    runner = runner or LocalWindowRunner(model.unet, guidance)
    generator = torch.Generator("cpu").manual_seed(int(seed))
    return sample_scroll(request, conclvd_scheduler(), runner, generator, progress=progress, on_latents=on_latents)


def video_frames(model: ConCLVD, latents: torch.Tensor, loop: bool = False, sofp: bool = True, flow: str = "dis",
                 models_dir: str | Path | None = None, slice_frames: int = 16) -> Iterator[np.ndarray]:
    """The video's uint8 frames, decoded `slice_frames` latent frames at a time, SOFP-doubled when `sofp`."""
    frames = itertools.chain.from_iterable(decode_slices(model.vae, latents, slice_frames))
    count = latents.shape[2]
    if not sofp or count < 2:
        yield from frames
        return
    from inkwalk.interpolate import get_interpolator
    from inkwalk.interpolate.pipeline import interpolate_frames

    interpolator = get_interpolator("sofp", flow=flow, models_dir=models_dir, device=model.device)
    last = next(decode_slices(model.vae, latents[:, :, -1:], 1))[0]
    if loop:
        first = next(decode_slices(model.vae, latents[:, :, :1], 1))[0]
        frames = itertools.chain(frames, [first])
    doubled = interpolate_frames(frames, interpolator, "sofp", 2, last=last)
    # a loop's last -> first pair is interpolated too; its closing frame is frame 0 again, not repeated
    yield from itertools.islice(doubled, 2 * count if loop else None)


def generate_video(model: ConCLVD, prompt: str, negative_prompt: str = "", frames: int = 8, steps: int = 25,
                   guidance: float = 8.0, size: int | tuple[int, int] = 256, seed: int = 0, window: int | None = None,
                   overlap: int | None = None, loop: bool = False, prompts: Mapping | None = None,
                   prompt_interpolation: str = "linear", weighting: str = "pyramid", noise: str = "shuffle_context",
                   windowing: str = "model", sofp: bool = True, flow: str = "dis",
                   progress: Callable[[int, int], None] | None = None,
                   models_dir: str | Path | None = None, show_progress: bool = False,
                   runner: WindowRunner | None = None) -> np.ndarray:
    """A `T×H×W×3` uint8 clip for `prompt`: N sampled frames, `2N − 1` with SOFP (`2N` looping).

    Seeded: the initial noise is drawn on the CPU from `seed`, so the same seed, model and settings
    give the same frames on any device. `progress(done, total)` counts windows × steps; an
    exception it raises stops sampling before the next step and propagates (how a job is
    cancelled). `flow` picks SOFP's optical flow backend ("dis" weight-free, "raft" as in the paper).
    """
    report = progress or _bar(show_progress)
    latents = scroll_latents(model, prompt, seed=seed, guidance=guidance, runner=runner, progress=report,
                             negative_prompt=negative_prompt, frames=frames, steps=steps, size=size, window=window,
                             overlap=overlap, loop=loop, prompts=prompts, prompt_interpolation=prompt_interpolation,
                             weighting=weighting, noise=noise, windowing=windowing)
    return np.stack(list(video_frames(model, latents, loop, sofp, flow, models_dir)))


def render_video(model: ConCLVD, prompt: str, out: str | Path, fps: float, settings: Mapping[str, Any],
                 metadata: Mapping[str, Any] | None = None, sofp: bool = True, flow: str = "dis",
                 models_dir: str | Path | None = None, show_progress: bool = False,
                 runner: WindowRunner | None = None) -> int:
    """Sample, decode by slices, SOFP, encode chunk by chunk and join into `out` (mp4); returns its frames.

    The mp4's metadata records the settings (window, overlap, loop, prompt schedule, seed) with
    `metadata`, so `inkwalk info` shows how to make the video again.
    """
    from inkwalk.chunks import encode_chunk_to_store, join_chunks
    from inkwalk.store import Store

    latents = scroll_latents(model, prompt, runner=runner, progress=_bar(show_progress), **settings)
    window = resolve_windows(settings.get("frames", 8), settings.get("window"), settings.get("overlap"))[0]
    frames = video_frames(model, latents, settings.get("loop", False), sofp, flow, models_dir, slice_frames=window)
    made = dict(metadata or {})
    record = {**made, "prompt": prompt, "settings": {**made.get("settings", {}), **scroll_metadata(prompt, settings)}}
    with tempfile.TemporaryDirectory(prefix="inkwalk-scroll-") as tmp:
        store = Store(tmp)
        chunks = []
        for i, chunk in enumerate(_batches(frames, 2 * window)):
            chunks.append(f"chunk-{i:05d}.mp4")
            encode_chunk_to_store(chunk, store, chunks[-1], fps)
        return join_chunks(store, chunks, out, record)


def scroll_metadata(prompt: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a video records, with the resolved windows and the full prompt schedule."""
    frames = settings.get("frames", 8)
    window, overlap = resolve_windows(frames, settings.get("window"), settings.get("overlap"))
    return {**settings, "window": window, "overlap": overlap, "loop": bool(settings.get("loop", False)),
            "prompts": {str(k): v for k, v in full_schedule(prompt, settings.get("prompts")).items()}}


def _batches(frames: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    iterator = iter(frames)
    while batch := list(itertools.islice(iterator, size)):
        yield np.stack(batch)


def _bar(show: bool) -> Callable[[int, int], None] | None:
    """A terminal progress bar over windows × steps, or None when hidden."""
    if not show or os.environ.get("INKWALK_NO_PROGRESS") == "1":
        return None
    from inkwalk.progress import progress as bar_over

    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = bar_over(None, total=total, desc="denoising", unit="window")
        state["bar"].update(done - state["bar"].n)
        if done == total:
            state["bar"].close()

    return update

