"""The four model deployments: each loads its models once, in its constructor.

Options (replicas, autoscaling, queue limits, CPUs/GPUs) are never fixed here beyond safe
defaults: the Serve config (cluster/serve_config*.yaml) or `services.apps.build_*` sets them.
Serve runs sync methods in a thread pool (STACK.md pitfall 3), so every stateful model sits
behind a lock: one replica computes one request at a time and queues the rest, which is also
what the GPU wants. Bad inputs raise `InkwalkError` subclasses; they fail the request, never
the replica.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Iterator, Sequence

import numpy as np
from ray import serve

from inkwalk.errors import InkwalkError
from inkwalk.video import check_clip, check_frame
from services.metrics import serve_metrics

DEFAULT_OPTIONS = {"ray_actor_options": {"num_cpus": 0.25}, "max_ongoing_requests": 2,
                   "max_queued_requests": 64}


class _Timed:
    """Per-stage latency of a deployment method into the shared histogram."""

    def __init__(self, app: str, stage: str):
        self.tags = {"app": app, "stage": stage}

    def __enter__(self) -> "_Timed":
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        serve_metrics().stage_seconds.observe(time.perf_counter() - self.t0, tags=self.tags)


@serve.deployment(name="Keyframes", **DEFAULT_OPTIONS)
class Keyframes:
    """Kandinsky 2.2 keyframes between two paintings (ArtWalks conceptual interpolation)."""

    def __init__(self, models_dir: str | None = None, device: str | None = None,
                 keyframer: str = "kandinsky", app: str = "artwalks"):
        from inkwalk.artwalks import KEYFRAMERS, KandinskyKeyframer

        if keyframer not in KEYFRAMERS:
            raise InkwalkError(f"unknown keyframer {keyframer!r}; choose one of: {', '.join(KEYFRAMERS)}")
        self.name = keyframer
        self.keyframer = KandinskyKeyframer.load(models_dir=models_dir, device=device) \
            if keyframer == "kandinsky" else None
        self.app = app
        self.lock = threading.Lock()

    def render(self, a: np.ndarray, b: np.ndarray, settings) -> np.ndarray:
        """settings.keyframes keyframes (m×H×W×3 uint8) between fitted paintings a and b, one seed."""
        from inkwalk.artwalks import WalkSettings, render_keyframes

        a, b = check_frame(a, "painting A"), check_frame(b, "painting B")
        if not isinstance(settings, WalkSettings):
            raise InkwalkError(f"settings must be WalkSettings, got {type(settings).__name__}")
        settings.validate()
        if settings.keyframes and self.keyframer is None:
            raise InkwalkError("this deployment has no keyframe model (keyframer 'none'); ask for "
                               "keyframes 0 or deploy Keyframes with keyframer 'kandinsky'")
        with self.lock, _Timed(self.app, "keyframes"):
            return np.ascontiguousarray(render_keyframes(a, b, settings, keyframer=self.keyframer))

    def describe(self) -> dict:
        """The backend this deployment serves (clients set WalkSettings from it)."""
        return {"keyframer": self.name}

    def check_health(self) -> None:
        if self.name == "kandinsky" and self.keyframer is None:
            raise RuntimeError("keyframe models are not loaded")


@serve.deployment(name="ConCLVDGenerator", **DEFAULT_OPTIONS)
class ConCLVDGenerator:
    """SD 1.5 + ConCLVD motion module: text -> N frames (SOFP runs in the Interpolator)."""

    def __init__(self, models_dir: str | None = None, motion_module: str | None = None,
                 device: str | None = None, app: str = "conclvd"):
        from inkwalk.conclvd import load_conclvd

        self.model = load_conclvd(models_dir=models_dir, motion_module=motion_module, device=device)
        self.app = app
        self.lock = threading.Lock()

    def generate(self, prompt: str, settings: dict) -> Iterator[tuple[str, Any]]:
        """Stream ``("progress", step / steps)`` after each denoising step, then ``("clip", frames)``.

        The clip is frames×size×size×3 uint8, before frame interpolation. Call through a handle
        with ``.options(stream=True)``; the ingress turns the steps into the job's progress.
        """
        from inkwalk.conclvd import generate_video

        allowed = {"negative_prompt", "frames", "steps", "guidance", "size", "seed"}
        unknown = sorted(set(settings) - allowed)
        if unknown:
            raise InkwalkError(f"unknown ConCLVD setting(s) {unknown}; known: {sorted(allowed)}")
        steps: queue.Queue = queue.Queue()
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                with self.lock, _Timed(self.app, "generate"):
                    result["clip"] = generate_video(self.model, prompt, sofp=False,
                                                    progress=lambda i, n: steps.put(i / n), **settings)
            except BaseException as exc:  # re-raised in the caller's thread below
                result["error"] = exc
            finally:
                steps.put(None)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        while (fraction := steps.get()) is not None:
            yield "progress", float(fraction)
        worker.join()
        if "error" in result:
            raise result["error"]
        yield "clip", np.ascontiguousarray(result["clip"])

    def check_health(self) -> None:
        if self.model is None:
            raise RuntimeError("ConCLVD model is not loaded")


@serve.deployment(name="Interpolator", **DEFAULT_OPTIONS)
class Interpolator:
    """Frames between frames: FILM, flow-warp or SOFP, flows by RAFT or DIS (chosen by name)."""

    def __init__(self, method: str = "flow-warp", flow: str = "dis", models_dir: str | None = None,
                 device: str | None = None, app: str = "artwalks"):
        from inkwalk.interpolate import get_interpolator

        self.method, self.flow = method, flow
        self.impl = get_interpolator(method, flow=flow, models_dir=models_dir, device=device)
        self.app = app
        self.lock = threading.Lock()

    def between(self, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float],
                last: np.ndarray | None = None) -> np.ndarray:
        """len(times) frames between frame0 and frame1 (times strictly inside (0, 1))."""
        frame0, frame1 = check_frame(frame0, "frame0"), check_frame(frame1, "frame1")
        if frame0.shape != frame1.shape:
            raise InkwalkError(f"frames to interpolate differ in size: {frame0.shape} vs {frame1.shape}")
        try:
            times = [float(t) for t in times]
        except (TypeError, ValueError):
            raise InkwalkError(f"interpolation times must be numbers, got {times!r}") from None
        if not times or not all(0.0 < t < 1.0 for t in times):
            raise InkwalkError(f"interpolation times must be a non-empty list inside (0, 1), got {times}")
        kwargs = {}
        if self.method == "sofp":
            kwargs["last"] = check_frame(last if last is not None else frame1, "last frame")
            if kwargs["last"].shape != frame0.shape:
                raise InkwalkError(f"the last frame has shape {kwargs['last'].shape}, the pair {frame0.shape}")
        with self.lock, _Timed(self.app, "interpolate"):
            return np.ascontiguousarray(self.impl.between(frame0, frame1, times, **kwargs))

    def double(self, frames: np.ndarray) -> np.ndarray:
        """N -> 2N-1 frames: one frame halfway between each neighbouring pair (ConCLVD's SOFP step)."""
        from inkwalk.interpolate import interpolate_clip

        frames = check_clip(frames, "clip")
        with self.lock, _Timed(self.app, "interpolate"):
            return interpolate_clip(frames, self.method, flow=self.flow, factor=2, interpolator=self.impl)

    def describe(self) -> dict:
        return {"interpolator": self.method, "flow": self.flow}

    def check_health(self) -> None:
        if self.impl is None:
            raise RuntimeError("interpolator is not loaded")


@serve.deployment(name="Upscaler", **DEFAULT_OPTIONS)
class Upscaler:
    """Super-resolution to an exact size: Real-ESRGAN (tiled, batched) or Lanczos."""

    def __init__(self, backend: str = "lanczos", models_dir: str | None = None, device: str | None = None,
                 tile: int = 256, batch_size: int = 4, app: str = "artwalks"):
        from inkwalk.upscale import get_upscaler

        self.backend = backend
        self.impl = get_upscaler(backend, models_dir=models_dir, device=device, tile=tile,
                                 batch_size=batch_size)
        self.app = app
        self.lock = threading.Lock()

    def upscale(self, frames: np.ndarray, size: Sequence[int]) -> np.ndarray:
        """frames (N×H×W×3 uint8) resized to exactly size=(width, height)."""
        frames = check_clip(frames, "frames to upscale")
        try:
            width, height = (int(v) for v in size)
        except (TypeError, ValueError):
            raise InkwalkError(f"upscale size must be (width, height), got {size!r}") from None
        if min(width, height) < 1:
            raise InkwalkError(f"upscale size must be positive, got {size!r}")
        with self.lock, _Timed(self.app, "upscale"):
            return np.ascontiguousarray(self.impl.upscale(frames, (width, height)))

    def describe(self) -> dict:
        return {"upscaler": self.backend}

    def check_health(self) -> None:
        if self.impl is None:
            raise RuntimeError("upscaler is not loaded")
