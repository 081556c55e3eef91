"""A scroll on the cluster: the job's coordinator samples, ConCLVD replicas run the windows.

The coordinator is the job's task (it holds the N latent frames, kilobytes each, and the
scheduler, never a pixel). Each denoising step `inkwalk.conclvd.scroll.sample_scroll` hands the
step's windows to `ServeWindowRunner`, which sends every window's latents to the ConCLVDGenerator
deployment at once (Serve spreads them over the replicas), gathers the noise predictions and lets
the sampler fuse them. A window whose call fails for any reason but a user error (a replica or
node died) is retried for that step with the render's retry policy; the job status counts the
retried windows. Then the video's last frame is decoded once (SOFP's long-range target I_T, the
same for every slice, as in process) and the latents are cut into slices of one window; each slice
is decoded on a generator replica, SOFP-doubled on an Interpolator and encoded into a chunk on an
Encoder (frames go replica to replica through the object store), and the chunks are joined by
stream copy.

Only "model" windowing is served: "motion" windowing (FreeNoise's) holds every frame in one model
call, so it cannot be spread over replicas and its memory grows with the video; the CLI runs it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Mapping, Sequence

import torch

from inkwalk.conclvd.pipeline import conclvd_scheduler
from inkwalk.conclvd.preview import latent_preview
from inkwalk.conclvd.scroll import ScrollRequest, Window, sample_scroll, video_slices
from inkwalk.conclvd.scroll_video import scroll_plan
from inkwalk.conclvd.windows import resolve_windows
from inkwalk.errors import InkwalkError
from inkwalk.limits import Labeler, RequestError, setting_label
from inkwalk.png import encode_png
from inkwalk.store import Store
from services.conclvd_generator import WINDOWS_PER_REPLICA
from services.render import Handles, Progress, RenderOptions, _Responses, _SharedResponses, call_with_retries

TEXT_KEYS = ("negative_prompt", "frames", "guidance", "loop", "prompts", "prompt_interpolation")
SERVED_WINDOWING = "model"


def check_served_windowing(settings: Mapping[str, Any], label: Labeler = setting_label) -> None:
    """A one-line 422 for a windowing this server does not run (every scroll's windows go to replicas)."""
    windowing = settings.get("windowing", SERVED_WINDOWING)
    if windowing != SERVED_WINDOWING:
        raise RequestError(422, f"{label('windowing', windowing)}: runs the whole video in one process, so this "
                                f"server does not offer it (its windows run on replicas: \"{SERVED_WINDOWING}\"); "
                                f"render it with the CLI: inkwalk t2v PROMPT --windowing {windowing}")


class Cancelled(InkwalkError):
    """The job went away while its windows were sampled."""


class ServeWindowRunner:
    """A step's windows on ConCLVDGenerator replicas, side by side; called from the sampling thread."""

    def __init__(self, generator: Any, text: dict, guidance: float, opts: RenderOptions,
                 loop: asyncio.AbstractEventLoop, responses: _Responses,
                 on_window: Callable[[dict], None] = lambda who: None,
                 on_retry: Callable[[int], None] = lambda index: None):
        """`on_window(who)` hears of every window that came back (who: the replica's `predict` answer);
        `on_retry(index)` of every window sent again after a failure. Both run on `loop`."""
        self.generator, self.text, self.guidance, self.opts = generator, text, guidance, opts
        self.loop, self.responses, self.on_window, self.on_retry = loop, responses, on_window, on_retry

    def inflight(self) -> int:
        """Window calls this step keeps in flight: as many as the running replicas take at once, so a
        window never waits in Serve's router (whose polling for a free replica costs the caller and the
        replicas CPU), at most `render.windows_inflight`; that bound when the replicas are unknown."""
        try:
            from ray import serve

            states = serve.status().applications[self.generator.app_name].deployments[
                self.generator.deployment_name].replica_states
            running = states.get("RUNNING", 0)
        except Exception:  # not a Serve handle, or the controller did not answer: the configured bound
            return self.opts.windows_inflight
        return max(1, min(self.opts.windows_inflight, WINDOWS_PER_REPLICA * running))

    def __call__(self, windows: Sequence[Window], timestep: torch.Tensor) -> list[torch.Tensor]:
        gate = asyncio.Semaphore(self.inflight())  # per step: replicas come and go with the autoscaler
        calls = [asyncio.run_coroutine_threadsafe(self._one(i, w, timestep, gate), self.loop)
                 for i, w in enumerate(windows)]
        return [call.result() for call in calls]

    async def _one(self, index: int, window: Window, timestep: torch.Tensor, gate: asyncio.Semaphore) -> torch.Tensor:
        failed = 0

        async def attempt(failures: int) -> torch.Tensor:
            nonlocal failed
            if failures > failed:  # not a full queue waited out: the window's last call failed
                failed = failures
                self.on_retry(index)
            response = self.responses.track(self.generator.predict.remote(
                window.latents, window.frames, self.text, timestep, self.guidance))
            try:
                noise, who = await response
            finally:
                self.responses.done(response)
            self.on_window(who)
            return noise

        async with gate:
            return await call_with_retries(f"window {index} (frames {window.frames[0]}..{window.frames[-1]})",
                                           attempt, self.opts)


def scroll_chunks(key: str, frames: int, size: int) -> list[str]:
    """Store paths of a scroll's chunks, one per slice of `size` latent frames."""
    return [f"chunks/{key[:2]}/{key}-{i:05d}.mp4" for i in range(len(video_slices(frames, size)))]


async def render_scroll(h: Handles, store: Store, prompt: str, settings: dict[str, Any], key: str, video: str,
                        preview: str, fps: float, metadata: dict[str, Any], opts: RenderOptions = RenderOptions(),
                        on_progress: Progress = lambda s, p: None,
                        on_windows: Callable[[dict], None] = lambda w: None) -> int:
    """Sample the scroll over the replicas, then decode, SOFP and encode it slice by slice; the video's frames.

    `preview` (a store path) holds a latent preview PNG, rewritten after every step; `on_windows`
    gets `{"done", "total", "replicas", "retried"}` as windows come back or are sent again. A scroll
    whose chunks are all in the store is not sampled again.
    """
    frames, loop = settings["frames"], bool(settings.get("loop", False))
    window, overlap = resolve_windows(frames, settings.get("window"), settings.get("overlap"))
    chunks = scroll_chunks(key, frames, window)
    responses = _Responses()
    try:
        if not all(await asyncio.to_thread(store.exist, chunks)):
            latents = await _sample(h, store, prompt, settings, preview, opts, responses, on_progress, on_windows)
            on_progress("encode", 0.8)
            await _encode(h, latents, chunks, window, loop, fps, opts, responses)
        on_progress("encode", 0.95)
        return await call_with_retries(
            "writing the video", lambda _: responses.track(h.encoder.join.remote(chunks, video, metadata)), opts)
    except BaseException:
        responses.cancel_all()
        raise


async def _sample(h: Handles, store: Store, prompt: str, settings: dict[str, Any], preview: str,
                  opts: RenderOptions, responses: _Responses, on_progress: Progress,
                  on_windows: Callable[[dict], None]) -> torch.Tensor:
    shape = await call_with_retries("checking the job against the model",
                                    lambda _: responses.track(h.generator.prepare.remote(prompt, settings)), opts)
    plan = scroll_plan(settings["frames"], settings.get("window"), settings.get("overlap"),
                       bool(settings.get("loop", False)), settings.get("weighting", "pyramid"))
    request = ScrollRequest(plan=plan, embeds=None, negative=None, latent_size=tuple(shape["latent_size"]),
                            steps=settings["steps"], noise=settings.get("noise", "shuffle_context"),
                            channels=shape["channels"])
    text = {"prompt": prompt, **{k: settings.get(k) for k in TEXT_KEYS if settings.get(k) is not None}}
    loop = asyncio.get_running_loop()
    stopped = threading.Event()
    counts = {"done": 0, "total": len(plan.indices()) * settings["steps"], "replicas": [], "retried": 0}

    def on_window(who: dict) -> None:  # on the event loop
        counts["done"] += 1
        if who["replica"] not in counts["replicas"]:
            counts["replicas"].append(who["replica"])
        on_windows(dict(counts, replicas=list(counts["replicas"])))
        on_progress("generate", 0.8 * counts["done"] / counts["total"])

    def on_retry(_index: int) -> None:  # on the event loop
        counts["retried"] += 1
        on_windows(dict(counts, replicas=list(counts["replicas"])))

    def on_step(_done: int, _total: int) -> None:  # in the sampling thread, between steps
        if stopped.is_set():
            raise Cancelled("cancelled")

    def on_latents(_step: int, latents: torch.Tensor) -> None:
        store.put_bytes(preview, encode_png(latent_preview(latents)))

    runner = ServeWindowRunner(h.generator, text, settings["guidance"], opts, loop, responses, on_window, on_retry)
    generator = torch.Generator("cpu").manual_seed(int(settings["seed"]))
    try:
        return await asyncio.to_thread(sample_scroll, request, conclvd_scheduler(), runner, generator, on_step,
                                       on_latents)
    finally:
        stopped.set()  # cancelled or failed: the sampling thread stops before its next step


async def _encode(h: Handles, latents: torch.Tensor, chunks: list[str], window: int, loop: bool, fps: float,
                  opts: RenderOptions, responses: _Responses) -> None:
    """Each slice (with the frame after it, `video_slices`) decoded, doubled, encoded.

    Every slice's SOFP projects on the video's last frame, decoded once on a replica and handed to
    every slice's `double` by reference; a slice that fails renews it (the replica holding it may be gone).
    """
    slices = video_slices(latents.shape[2], window, loop)
    gate = asyncio.Semaphore(opts.inflight)
    final = latents[:, :, -1:].contiguous()
    last_frame = _SharedResponses(lambda _: responses.track(h.generator.decode.remote(final)),
                                  {"last": len(slices)}, responses.done)

    async def one(i: int, frames: list[int], follows: bool) -> None:
        part = latents[:, :, frames].contiguous()

        async def attempt(failures: int) -> None:
            generation, last = last_frame.get("last")
            if failures:
                last_frame.renew("last", generation)
                _, last = last_frame.get("last")
            decoded = responses.track(h.generator.decode.remote(part))
            doubled = responses.track(h.interpolator.double.remote(decoded, follows, last))
            encoded = responses.track(h.encoder.encode.remote(doubled, chunks[i], fps, 1, opts.codec))
            try:
                await encoded
            finally:
                responses.done(decoded, doubled, encoded)

        async with gate:
            own = frames[:-1] if follows else frames
            await call_with_retries(f"slice {i} (frames {own[0]}..{own[-1]})", attempt, opts)
        last_frame.release("last")

    await asyncio.gather(*(one(i, *s) for i, s in enumerate(slices)))
