"""The serving pipelines, written once against "stages" that are either deployments or local.

`HandleStages` calls the Serve deployments through `DeploymentHandle`s (frames travel as uint8
arrays through the object store); `LocalStages` calls the same inkwalk objects in-process (the
Ray-task fallback of render_collection and the in-process baseline of the benchmark). The
walk itself (which frames, in which order) is the same code for both, so HTTP, batch and
benchmark render identical videos.

The frame layout of a walk and of a collection is ArtWalks' own (`inkwalk.artwalks`):
``(k - 1)(m + 1)(n + 1) + 1 + k * round(hold * fps)`` frames for k paintings.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol, Sequence

import numpy as np

from inkwalk.artwalks import WalkSettings
from inkwalk.errors import InkwalkError

UPSCALE_CHUNK = 16  # frames per Upscaler request: big enough to batch, small enough to stream


class Stages(Protocol):
    async def keyframes(self, a: np.ndarray, b: np.ndarray, settings: dict) -> np.ndarray: ...
    async def between(self, f0: np.ndarray, f1: np.ndarray, times: Sequence[float]) -> np.ndarray: ...
    async def upscale(self, frames: np.ndarray, size: Sequence[int]) -> np.ndarray: ...
    async def generate(self, prompt: str, settings: dict,
                       on_step: Callable[[float], None] = ...) -> np.ndarray: ...
    async def double(self, frames: np.ndarray) -> np.ndarray: ...


async def _with_backpressure(call: Callable[[], Awaitable[Any]], wait_s: float = 600.0) -> Any:
    """Await a handle call, retrying while the deployment's queue is full (max_queued_requests).

    A job already accepted waits for capacity instead of failing; only submission returns 503.
    """
    from ray.serve.exceptions import BackPressureError

    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        try:
            return await call()
        except BackPressureError:
            if time.monotonic() > deadline:
                raise InkwalkError("the cluster stayed overloaded for too long; resubmit the job later")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


class HandleStages:
    """Stages served by deployments (handles from an app's ingress or `serve.get_deployment_handle`)."""

    def __init__(self, keyframes=None, interpolator=None, upscaler=None, generator=None,
                 max_inflight: int = 8):
        self.k, self.i, self.u, self.g = keyframes, interpolator, upscaler, generator
        self.sem = asyncio.Semaphore(max_inflight)

    async def _call(self, method, *args) -> Any:
        async with self.sem:
            return await _with_backpressure(lambda: method.remote(*args))

    async def keyframes(self, a, b, settings):
        return await self._call(self.k.render, a, b, settings)

    async def between(self, f0, f1, times):
        return await self._call(self.i.between, f0, f1, list(times))

    async def upscale(self, frames, size):
        return await self._call(self.u.upscale, frames, list(size))

    async def generate(self, prompt, settings, on_step=lambda fraction: None):
        async with self.sem:
            async def consume():
                clip = None
                async for kind, value in self.g.options(stream=True).generate.remote(prompt, settings):
                    if kind == "progress":
                        on_step(value)
                    else:
                        clip = value
                return clip

            return await _with_backpressure(consume)

    async def double(self, frames):
        return await self._call(self.i.double, frames)


class LocalStages:
    """The same stages in this process: the deployment classes' own code, without Serve."""

    def __init__(self, keyframes=None, interpolator=None, upscaler=None, generator=None):
        self.k, self.i, self.u, self.g = keyframes, interpolator, upscaler, generator

    @classmethod
    def for_artwalks(cls, models_dir: str | None = None, keyframer: str = "kandinsky",
                     interpolator: dict | None = None, upscaler: dict | None = None) -> "LocalStages":
        """The artwalks app's three model classes, constructed here (models load once)."""
        from services.deployments import Interpolator, Keyframes, Upscaler

        return cls(keyframes=Keyframes.func_or_class(models_dir=models_dir, keyframer=keyframer),
                   interpolator=Interpolator.func_or_class(models_dir=models_dir, **(interpolator or {})),
                   upscaler=Upscaler.func_or_class(models_dir=models_dir, **(upscaler or {})))

    async def keyframes(self, a, b, settings):
        return await asyncio.to_thread(self.k.render, a, b, settings)

    async def between(self, f0, f1, times):
        return await asyncio.to_thread(self.i.between, f0, f1, list(times))

    async def upscale(self, frames, size):
        return await asyncio.to_thread(self.u.upscale, frames, list(size))

    async def generate(self, prompt, settings, on_step=lambda fraction: None):
        def run():
            for kind, value in self.g.generate(prompt, settings):
                if kind == "progress":
                    on_step(value)
                else:
                    return value

        return await asyncio.to_thread(run)

    async def double(self, frames):
        return await asyncio.to_thread(self.i.double, frames)


# --------------------------------------------------------------------------- ArtWalks


def walk_settings(settings: dict | WalkSettings) -> WalkSettings:
    """`WalkSettings` from a JSON dict (``preset`` picks the defaults); bad values are user errors."""
    from dataclasses import fields

    from inkwalk.artwalks import WalkSettings

    if isinstance(settings, WalkSettings):
        settings.validate()
        return settings
    known = {f.name for f in fields(WalkSettings)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise InkwalkError(f"unknown ArtWalks setting(s) {unknown}; known: {sorted(known)}")
    values = dict(settings)
    if "size" in values:
        size = values["size"]
        values["size"] = (int(size), int(size)) if isinstance(size, int) else tuple(int(v) for v in size)
    try:
        return WalkSettings.with_preset(values.pop("preset", "paper"), **values)
    except (TypeError, ValueError) as exc:
        raise InkwalkError(f"bad ArtWalks settings: {exc}") from None


def walk_units(ws: WalkSettings) -> int:
    """Progress units of one walk: keyframes, then one per segment."""
    return 1 + (ws.keyframes + 1)


async def render_walk(stages: Stages, a: np.ndarray, b: np.ndarray, ws: WalkSettings, cache_dir: str | Path,
                      models_dir: str | Path | None = None,
                      on_unit: Callable[[str], None] = lambda stage: None):
    """Render one walk (a, b already fitted) into the ArtWalks walk cache, or reuse it.

    Same files and key as `inkwalk.artwalks.render_walk_cached` (so `assemble` chains them and
    the CLI and the services share one cache), but each stage is a deployment call: the m+1
    segments are requested at once (the deployments queue and autoscale) and written in order
    as they arrive, upscaled in chunks.
    """
    from inkwalk.artwalks import CachedWalk, find_cached_walk
    from inkwalk.schedules import s_curve_times
    from inkwalk.video import VideoWriter

    key, cached = find_cached_walk(a, b, ws, cache_dir, models_dir)
    if cached is not None:
        for _ in range(walk_units(ws)):
            on_unit("cached")
        return cached
    cache = Path(cache_dir)
    video, nodes_file = cache / f"{key}.mp4", cache / f"{key}.npz"
    h, w = a.shape[:2]
    kf = np.asarray(await stages.keyframes(a, b, ws)) if ws.keyframes else np.zeros((0, h, w, 3), np.uint8)
    on_unit("keyframes")
    nodes = [a, *kf, b]
    times = [float(t) for t in s_curve_times(ws.frames, ws.strength)] if ws.frames else []
    out_w, out_h = ws.output_size

    async def upscaled(frames: np.ndarray) -> np.ndarray:
        if frames.shape[1:3] == (out_h, out_w):
            return frames
        chunks = [stages.upscale(frames[i:i + UPSCALE_CHUNK], (out_w, out_h))
                  for i in range(0, len(frames), UPSCALE_CHUNK)]
        return np.concatenate([np.asarray(c) for c in await asyncio.gather(*chunks)])

    async def segment(j: int) -> np.ndarray:
        frames = nodes[j][None]
        if times:
            frames = np.concatenate([frames, np.asarray(await stages.between(nodes[j], nodes[j + 1], times))])
        if j == len(nodes) - 2:
            frames = np.concatenate([frames, b[None]])
        frames = await upscaled(frames)
        on_unit("interpolate+upscale")
        return frames

    tasks = [asyncio.ensure_future(segment(j)) for j in range(len(nodes) - 1)]
    tmp_video = cache / f".{key}.{os.getpid()}.{id(tasks)}.mp4"
    tmp_nodes = cache / f".{key}.{os.getpid()}.{id(tasks)}.npz"
    try:
        writer = VideoWriter(tmp_video, ws.fps, crf=10, preset="veryfast")
        try:
            for task in tasks:
                await asyncio.to_thread(writer.write_many, await task)
        finally:
            await asyncio.to_thread(writer.close)
    except BaseException:
        for task in tasks:
            task.cancel()
        tmp_video.unlink(missing_ok=True)
        raise
    np.savez_compressed(tmp_nodes, nodes=np.stack(nodes))
    os.replace(tmp_nodes, nodes_file)
    os.replace(tmp_video, video)
    return CachedWalk(key, video, nodes_file, reused=False)


async def render_artwalk(stages: Stages, paintings: Sequence[np.ndarray], settings: dict | WalkSettings,
                         out: str | Path, cache_dir: str | Path | None = None,
                         models_dir: str | Path | None = None,
                         on_progress: Callable[[str, float], None] = lambda stage, p: None):
    """A collection: every walk in parallel through `stages`, cached walks reused, one mp4.

    Returns (`inkwalk.artwalks.CollectionResult`-like tuple): (frames, walks, contact sheet array).
    """
    from inkwalk.artwalks import assemble, contact_sheet, prepare_painting

    ws = walk_settings(settings)
    if len(paintings) < 2:
        raise InkwalkError(f"a walk needs at least 2 paintings, got {len(paintings)}")
    fitted = [prepare_painting(p, ws) for p in paintings]
    total = (len(fitted) - 1) * walk_units(ws) + 1
    done = 0

    def unit(stage: str) -> None:
        nonlocal done
        done += 1
        on_progress(stage, min(done / total, 0.99))

    tmp = tempfile.TemporaryDirectory(prefix="inkwalk-walks-") if cache_dir is None else None
    try:
        cache = Path(tmp.name if tmp else cache_dir)
        walks = await asyncio.gather(*(render_walk(stages, fitted[i], fitted[i + 1], ws, cache, models_dir, unit)
                                       for i in range(len(fitted) - 1)))
        on_progress("encode", min(done / total, 0.99))
        frames = await asyncio.to_thread(assemble, walks, out, ws)
        rows = [np.load(w.nodes)["nodes"] for w in walks]
    finally:
        if tmp is not None:
            tmp.cleanup()
    return frames, walks, contact_sheet(rows)


# --------------------------------------------------------------------------- ConCLVD


async def render_conclvd(stages: Stages, prompt: str, settings: dict, out: str | Path, fps: float = 8.0,
                         on_progress: Callable[[str, float], None] = lambda stage, p: None
                         ) -> tuple[int, np.ndarray]:
    """Text -> N frames (generator) -> 2N-1 frames (SOFP interpolator) -> mp4; returns (frames, raw clip)."""
    from inkwalk.video import write_video

    on_progress("generate", 0.0)
    clip = np.asarray(await stages.generate(prompt, settings,
                                            on_step=lambda fraction: on_progress("generate", 0.8 * fraction)))
    on_progress("interpolate", 0.8)
    frames = np.asarray(await stages.double(clip))
    on_progress("encode", 0.9)
    await asyncio.to_thread(write_video, out, list(frames), fps)
    return len(frames), clip
