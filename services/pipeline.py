"""The serving pipelines, written once against "stages" that are either deployments or local.

`HandleStages` calls the Serve deployments through `DeploymentHandle`s (frames travel as uint8
arrays through the object store); `LocalStages` calls the same inkwalk objects in-process (the
Ray-task fallback of render_collection and the in-process baseline of the benchmark). The
walk itself (which frames, in which order) is the same code for both, so HTTP, batch and
benchmark render identical videos.

Frame count of an ArtWalks video from k paintings, m keyframes, n frames per segment and
h = round(hold_seconds * fps) hold frames: ``k*h + (k-1)*(m+1)*(n+1) + 1``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol, Sequence

import numpy as np

from inkwalk.errors import InkwalkError

UPSCALE_CHUNK = 16  # frames per Upscaler request: big enough to batch, small enough to stream


class Stages(Protocol):
    async def keyframes(self, a: np.ndarray, b: np.ndarray, settings: dict) -> np.ndarray: ...
    async def between(self, f0: np.ndarray, f1: np.ndarray, times: Sequence[float]) -> np.ndarray: ...
    async def upscale(self, frames: np.ndarray, size: Sequence[int]) -> np.ndarray: ...
    async def generate(self, prompt: str, settings: dict) -> np.ndarray: ...
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

    async def generate(self, prompt, settings):
        return await self._call(self.g.generate, prompt, settings)

    async def double(self, frames):
        return await self._call(self.i.double, frames)


class LocalStages:
    """The same stages in this process: the deployment classes' own code, without Serve."""

    def __init__(self, keyframes=None, interpolator=None, upscaler=None, generator=None):
        self.k, self.i, self.u, self.g = keyframes, interpolator, upscaler, generator

    @classmethod
    def for_artwalks(cls, models_dir: str | None, interpolator: dict | None = None,
                     upscaler: dict | None = None) -> "LocalStages":
        from services.deployments import Interpolator, Keyframes, Upscaler

        return cls(keyframes=Keyframes.func_or_class(models_dir=models_dir),
                   interpolator=Interpolator.func_or_class(models_dir=models_dir, **(interpolator or {})),
                   upscaler=Upscaler.func_or_class(models_dir=models_dir, **(upscaler or {})))

    @classmethod
    def for_conclvd(cls, models_dir: str | None, interpolator: dict | None = None,
                    motion_module: str | None = None) -> "LocalStages":
        from services.deployments import ConCLVDGenerator, Interpolator

        return cls(generator=ConCLVDGenerator.func_or_class(models_dir=models_dir, motion_module=motion_module),
                   interpolator=Interpolator.func_or_class(models_dir=models_dir, **(interpolator or {})))

    async def keyframes(self, a, b, settings):
        return await asyncio.to_thread(self.k.render, a, b, settings)

    async def between(self, f0, f1, times):
        return await asyncio.to_thread(self.i.between, f0, f1, list(times))

    async def upscale(self, frames, size):
        return await asyncio.to_thread(self.u.upscale, frames, list(size))

    async def generate(self, prompt, settings):
        return await asyncio.to_thread(self.g.generate, prompt, settings)

    async def double(self, frames):
        return await asyncio.to_thread(self.i.double, frames)


# --------------------------------------------------------------------------- ArtWalks


@dataclass(frozen=True)
class WalkPlan:
    """What the serving layer needs to know of WalkSettings to schedule a walk."""

    keyframes: int
    frames: int
    s_curve: float
    hold_frames: int
    fps: float
    size: tuple[int, int]
    output_size: tuple[int, int]
    fit: str


def walk_settings(settings: dict):
    """`inkwalk.artwalks.WalkSettings` from a JSON dict; unknown keys are a user error."""
    from dataclasses import fields

    from inkwalk.artwalks import WalkSettings

    known = {f.name for f in fields(WalkSettings)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise InkwalkError(f"unknown ArtWalks setting(s) {unknown}; known: {sorted(known)}")
    try:
        return WalkSettings(**settings)
    except TypeError as exc:
        raise InkwalkError(f"bad ArtWalks settings: {exc}") from None


def walk_plan(settings: dict) -> WalkPlan:
    ws = walk_settings(settings)
    size = tuple(int(v) for v in ws.size)
    out = tuple(int(v) for v in (ws.upscale or size))
    return WalkPlan(keyframes=int(ws.keyframes), frames=int(ws.frames), s_curve=float(ws.s_curve),
                    hold_frames=int(round(float(ws.hold_seconds) * float(ws.fps))), fps=float(ws.fps),
                    size=size, output_size=out, fit=str(ws.fit))


def collection_frame_count(paintings: int, plan: WalkPlan) -> int:
    """Frames of the video of a collection (documented in docs/serving.md)."""
    return paintings * plan.hold_frames + (paintings - 1) * (plan.keyframes + 1) * (plan.frames + 1) + 1


def walk_key(a: np.ndarray, b: np.ndarray, settings: dict, last: bool) -> str:
    """Cache key of one rendered walk: both paintings' pixels and every setting."""
    h = hashlib.sha256()
    for img in (a, b):
        h.update(str(img.shape).encode())
        h.update(np.ascontiguousarray(img).tobytes())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update(b"last" if last else b"inner")
    return h.hexdigest()[:32]


async def render_walk(stages: Stages, a: np.ndarray, b: np.ndarray, settings: dict, path: str | Path,
                      last: bool, on_unit: Callable[[str], None] = lambda stage: None,
                      crf: int = 18) -> tuple[int, np.ndarray]:
    """Render the walk a -> b into an mp4 at `path`; returns (frames written, keyframes).

    Frames: h copies of a (hold), then each of the m+1 segments as its start frame plus n
    in-betweens at S-curve times; the last walk of a collection adds b and its hold.
    Segments are requested all at once (the deployments queue and autoscale) and written in
    order as they arrive, upscaled in chunks.
    """
    from inkwalk.schedules import s_curve_times
    from inkwalk.video import VideoWriter, fit_image

    plan = walk_plan(settings)
    a = fit_image(a, plan.size, mode=plan.fit)
    b = fit_image(b, plan.size, mode=plan.fit)
    kf = await stages.keyframes(a, b, settings)
    on_unit("keyframes")
    kf = np.asarray(kf)
    seq = [a, *list(kf), b]
    times = [float(t) for t in s_curve_times(plan.frames, plan.s_curve)]

    async def segment(j: int) -> np.ndarray:
        mids = await stages.between(seq[j], seq[j + 1], times)
        on_unit("interpolate")
        frames = np.concatenate([seq[j][None], np.asarray(mids)])
        if j == len(seq) - 2 and last:
            frames = np.concatenate([frames, np.repeat(b[None], 1 + plan.hold_frames, axis=0)])
        if j == 0 and plan.hold_frames:
            frames = np.concatenate([np.repeat(a[None], plan.hold_frames, axis=0), frames])
        if plan.output_size != plan.size:
            chunks = [stages.upscale(frames[i:i + UPSCALE_CHUNK], plan.output_size)
                      for i in range(0, len(frames), UPSCALE_CHUNK)]
            frames = np.concatenate([np.asarray(c) for c in await asyncio.gather(*chunks)])
        on_unit("upscale")
        return frames

    tasks = [asyncio.ensure_future(segment(j)) for j in range(len(seq) - 1)]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        writer = VideoWriter(path, plan.fps, crf=crf)
        try:
            for task in tasks:
                frames = await task
                await asyncio.to_thread(writer.write_many, frames)
                written += len(frames)
        finally:
            await asyncio.to_thread(writer.close)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    return written, kf


def walk_units(plan: WalkPlan) -> int:
    """Progress units of one walk: keyframes, then interpolate + upscale per segment."""
    return 1 + 2 * (plan.keyframes + 1)


def concat_videos(parts: Sequence[str | Path], out: str | Path, fps: float, crf: int = 18) -> int:
    """One mp4 from walk parts, streaming (decode each part, encode once more)."""
    from inkwalk.video import VideoWriter, iter_frames

    n = 0
    with VideoWriter(out, fps, crf=crf) as writer:
        for part in parts:
            for frame in iter_frames(part):
                writer.write(frame)
                n += 1
    return n


async def render_artwalk(stages: Stages, paintings: Sequence[np.ndarray], settings: dict, out: str | Path,
                         on_progress: Callable[[str, float], None] = lambda stage, p: None,
                         cache_dir: str | Path | None = None,
                         on_walk_done: Callable[[int, bool], None] = lambda i, cached: None
                         ) -> tuple[int, list[np.ndarray]]:
    """A whole collection: every walk in parallel, walks found in `cache_dir` reused, one video.

    Returns (frames in the video, keyframes of each rendered walk).
    """
    plan = walk_plan(settings)
    k = len(paintings)
    total = (k - 1) * walk_units(plan) + 1
    done = 0

    def unit(stage: str) -> None:
        nonlocal done
        done += 1
        on_progress(stage, min(done / total, 0.99))

    tmp = None
    if cache_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="inkwalk-walks-")
        cache_dir = tmp.name
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    try:
        async def walk(i: int):
            last = i == k - 2
            key = walk_key(paintings[i], paintings[i + 1], settings, last)
            part = cache / f"walk-{key}.mp4"
            if part.exists():
                for _ in range(walk_units(plan)):
                    unit("cached")
                on_walk_done(i, True)
                return part, None
            partial = cache / f"walk-{key}.partial-{os.getpid()}-{id(part)}.mp4"
            _, kf = await render_walk(stages, paintings[i], paintings[i + 1], settings, partial, last, unit)
            os.replace(partial, part)
            on_walk_done(i, False)
            return part, kf

        results = await asyncio.gather(*(walk(i) for i in range(k - 1)))
        on_progress("encode", min(done / total, 0.99))
        n = await asyncio.to_thread(concat_videos, [p for p, _ in results], out, plan.fps)
    finally:
        if tmp is not None:
            tmp.cleanup()
    expected = collection_frame_count(k, plan)
    if n != expected:
        raise InkwalkError(f"internal error: wrote {n} frames, expected {expected}")
    return n, [kf for _, kf in results if kf is not None]


# --------------------------------------------------------------------------- ConCLVD


async def render_conclvd(stages: Stages, prompt: str, settings: dict, out: str | Path, fps: float = 8.0,
                         on_progress: Callable[[str, float], None] = lambda stage, p: None
                         ) -> tuple[int, np.ndarray]:
    """Text -> N frames (generator) -> 2N-1 frames (SOFP interpolator) -> mp4; returns (frames, raw clip)."""
    from inkwalk.video import write_video

    on_progress("generate", 0.0)
    clip = np.asarray(await stages.generate(prompt, settings))
    on_progress("interpolate", 0.6)
    frames = np.asarray(await stages.double(clip))
    on_progress("encode", 0.9)
    await asyncio.to_thread(write_video, out, list(frames), fps)
    return len(frames), clip


def contact_sheet(frames: Sequence[np.ndarray], columns: int = 6, thumb: int = 160) -> bytes:
    """A PNG grid of thumbnails (the keyframes of a job): encoding happens only at the HTTP edge."""
    import io

    from PIL import Image

    frames = [np.asarray(f) for f in frames]
    if not frames:
        raise InkwalkError("no keyframes to show")
    h, w = frames[0].shape[:2]
    tw, th = thumb, max(1, round(thumb * h / w))
    cols = min(columns, len(frames))
    rows = (len(frames) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * tw, rows * th), (255, 255, 255))
    for i, f in enumerate(frames):
        im = Image.fromarray(f).resize((tw, th), Image.Resampling.LANCZOS)
        sheet.paste(im, ((i % cols) * tw, (i // cols) * th))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()


def plan_dict(plan: WalkPlan) -> dict:
    return asdict(plan)
