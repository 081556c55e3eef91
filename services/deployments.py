"""The model deployments and the encoder: each loads its models once, in its constructor.

Options (replicas, autoscaling, queue limits, CPUs/GPUs, resources) are never fixed here beyond
safe defaults: the Serve config (cluster/serve_config*.yaml) or `services.apps.build_*` sets
them. Serve runs sync methods in a thread pool (STACK.md pitfall 3), so every stateful model
sits behind a lock: one replica computes one batch at a time and queues the rest, which is also
what a GPU wants. The Interpolator's and the Upscaler's piece methods are `serve.batch`ed:
requests of different jobs that arrive together go through the model together. Bad inputs
raise `InkwalkError` subclasses; they fail the request, never the replica.

Every deployment that reads or writes files gets the app's store (`inkwalk.store.Store` URI)
and works with paths inside it, so any replica on any node sees the same files.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Sequence

import numpy as np
import ray
from pydantic import Field
from ray import serve

from inkwalk.config_model import ConfigModel, parse_config
from inkwalk.errors import InkwalkError
from inkwalk.limits import Limits
from inkwalk.png import decode_png, encode_png
from inkwalk.store import Store
from inkwalk.video import check_clip, check_frame
from services.metrics import serve_metrics

DEFAULT_OPTIONS = {"ray_actor_options": {"num_cpus": 0.25}, "max_ongoing_requests": 8,
                   "max_queued_requests": 64}


class BatchOptions(ConfigModel):
    """A `serve.batch` method's options (app args `interpolator.batch`, `upscaler.batch`)."""

    max_batch_size: int = Field(4, ge=1)
    batch_wait_timeout_s: float = Field(0.02, ge=0)


class StageTimer:
    """Per-stage latency of a deployment method into the shared histogram."""

    def __init__(self, app: str, stage: str):
        self.tags = {"app": app, "stage": stage}

    def __enter__(self) -> "StageTimer":
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        serve_metrics().stage_seconds.observe(time.perf_counter() - self.t0, tags=self.tags)


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def _configure_batching(method, batch: dict[str, Any] | None) -> None:
    """Apply the app args' batch options to a `serve.batch` method."""
    options = parse_config(BatchOptions, batch, "batch option")
    method.set_max_batch_size(options.max_batch_size)
    method.set_batch_wait_timeout_s(options.batch_wait_timeout_s)


@serve.deployment(name="Keyframes", **DEFAULT_OPTIONS)
class Keyframes:
    """A walk's nodes: both paintings fitted to the walk size and the Kandinsky 2.2 keyframes between."""

    def __init__(self, store: str, models_dir: str | None = None, device: str | None = None,
                 keyframer: str = "kandinsky", app: str = "artwalks", limits: Limits | dict | None = None):
        from inkwalk.artwalks import stage_identity
        from inkwalk.keyframes import KandinskyKeyframer
        from inkwalk.walk_settings import KEYFRAMERS

        if keyframer not in KEYFRAMERS:
            raise InkwalkError(f"unknown keyframer {keyframer!r}; choose one of: {', '.join(KEYFRAMERS)}")
        self.store = Store(store)
        self.limits = parse_config(Limits, limits, "limit")
        self.name = keyframer
        self.identity = stage_identity("keyframer", keyframer, models_dir)
        self.keyframer = KandinskyKeyframer.load(models_dir=models_dir, device=device) \
            if keyframer == "kandinsky" else None
        self.app = app
        self.lock = threading.Lock()

    def _painting(self, rel: str, settings, name: str) -> np.ndarray:
        """A painting from the store, admitted from its header (size, enlargement) before decoding;
        errors say `name` (the file the user sent), not the store path."""
        from services.limits import decode_painting

        data = self.store.get_bytes(rel)
        if data is None:
            raise InkwalkError(f"painting {name} is no longer in the results store")
        return decode_painting(name, data, self.limits, tuple(settings.size), settings.fit)

    def nodes(self, paintings: Sequence[str], settings, row: str | None = None,
              names: Sequence[str] | None = None) -> np.ndarray:
        """``A, K_1..K_m, B`` (m+2×H×W×3 uint8) of the walk between two store paintings, or ``[A]``.

        `row` (a store path) receives the nodes as one contact-sheet strip (PNG), for previews;
        `names` are the paintings' names for messages (default: their store file names).
        """
        from inkwalk.artwalks import walk_nodes
        from inkwalk.sheets import contact_sheet
        if len(paintings) not in (1, 2):
            raise InkwalkError(f"nodes need 1 or 2 paintings, got {len(paintings)}")
        if len(paintings) == 2 and settings.keyframes and self.keyframer is None:
            raise InkwalkError("this deployment has no keyframe model (keyframer 'none'); ask for "
                               "keyframes 0 or deploy Keyframes with keyframer 'kandinsky'")
        names = names or [rel.rsplit("/", 1)[-1] for rel in paintings]
        images = [self._painting(rel, settings, name) for rel, name in zip(paintings, names)]
        if len(images) == 1:
            return walk_nodes(images[0], None, settings)
        with self.lock, StageTimer(self.app, "keyframes"):
            nodes = walk_nodes(images[0], images[1], settings, keyframer=self.keyframer)
        if row and not self.store.exists(row):
            self.store.put_bytes(row, encode_png(contact_sheet([nodes])))
        return np.ascontiguousarray(nodes)

    def describe(self) -> dict:
        """The backend this deployment serves and the identity of its weights."""
        return {"keyframer": self.identity}

    def check_health(self) -> None:
        if self.name == "kandinsky" and self.keyframer is None:
            raise RuntimeError("keyframe models are not loaded")


@serve.deployment(name="Interpolator", **DEFAULT_OPTIONS)
class Interpolator:
    """Frames between frames: FILM, flow-warp or SOFP, flows by RAFT or DIS (chosen by name)."""

    def __init__(self, method: str = "flow-warp", flow: str = "dis", models_dir: str | None = None,
                 device: str | None = None, app: str = "artwalks", batch: dict | None = None):
        from inkwalk.artwalks import stage_identity
        from inkwalk.interpolate import get_interpolator

        self.method, self.flow = method, flow
        self.impl = get_interpolator(method, flow=flow, models_dir=models_dir, device=device)
        self.identity = stage_identity("interpolator", method, models_dir,
                                       flow if method in ("flow-warp", "sofp") else None)
        self.app = app
        self.lock = threading.Lock()
        _configure_batching(self._piece_batch, batch)

    def between(self, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float],
                last: np.ndarray | None = None) -> np.ndarray:
        """len(times) frames between frame0 and frame1 (times strictly inside (0, 1))."""
        frame0, frame1 = check_frame(frame0, "frame0"), check_frame(frame1, "frame1")
        if frame0.shape != frame1.shape:
            raise InkwalkError(f"frames to interpolate differ in size: {frame0.shape} vs {frame1.shape}")
        times = _check_times(times)
        if not times:
            raise InkwalkError("interpolation times must be a non-empty list inside (0, 1), got []")
        kwargs = {}
        if self.method == "sofp":
            kwargs["last"] = check_frame(last if last is not None else frame1, "last frame")
            if kwargs["last"].shape != frame0.shape:
                raise InkwalkError(f"the last frame has shape {kwargs['last'].shape}, the pair {frame0.shape}")
        with self.lock, StageTimer(self.app, "interpolate"):
            return np.ascontiguousarray(self.impl.between(frame0, frame1, times, **kwargs))

    async def piece(self, nodes: np.ndarray, step: int, start: bool, times: Sequence[float]) -> np.ndarray:
        """A piece's distinct frames (`inkwalk.segments.piece_frames`) from its walk's nodes.

        Batched: pieces of any jobs that arrive together run in one locked pass of the model.
        """
        return _raise_or_return(await self._piece_batch(nodes, step, start, times))

    @serve.batch
    async def _piece_batch(self, nodes: list, step: list, start: list, times: list) -> list:
        return await asyncio.to_thread(self._pieces, list(zip(nodes, step, start, times)))

    def _pieces(self, requests: list[tuple]) -> list:
        from inkwalk.segments import Piece, piece_frames

        def one(nodes, step, start, times):
            nodes = check_clip(nodes, "walk nodes")
            if not 0 <= int(step) < len(nodes) or (times and int(step) + 1 >= len(nodes)):
                raise InkwalkError(f"step {step} is outside the walk's {len(nodes)} nodes")
            piece = Piece(0, 0, int(step), bool(start), 1, tuple(_check_times(times)))
            if not piece.distinct:
                raise InkwalkError("a piece needs its start node or at least one time")
            return piece_frames(nodes, piece, self.impl)

        with self.lock, StageTimer(self.app, "interpolate"):
            return [_safely(one, r) for r in requests]

    def double(self, frames: np.ndarray, drop_last: bool = False, last: np.ndarray | None = None) -> np.ndarray:
        """N -> 2N-1 frames: one frame halfway between each neighbouring pair (ConCLVD's SOFP step).

        `drop_last`: the last frame is the next slice's first (a scroll's slices overlap by one frame
        so that every pair is interpolated): leave it to that slice. `last`: SOFP's long-range target
        I_T, the whole video's last frame when `frames` is one slice of it (`H×W×3`, or a clip whose
        final frame it is, as `ConCLVDGenerator.decode` returns it); default: this clip's last frame.
        """
        from inkwalk.interpolate.pipeline import interpolate_frames

        frames = check_clip(frames, "clip")
        if last is not None:
            last = check_frame(last if np.ndim(last) == 3 else check_clip(last, "last frame")[-1], "last frame")
            if last.shape != frames.shape[1:]:
                raise InkwalkError(f"the last frame has shape {last.shape}, the clip's frames {frames.shape[1:]}")
        with self.lock, StageTimer(self.app, "interpolate"):
            doubled = np.stack(list(interpolate_frames(iter(frames), self.impl, self.method, 2,
                                                       last=frames[-1] if last is None else last)))
        return doubled[:-1] if drop_last else doubled

    def describe(self) -> dict:
        return {"interpolator": self.identity}

    def check_health(self) -> None:
        if self.impl is None:
            raise RuntimeError("interpolator is not loaded")


def _check_times(times) -> list[float]:
    try:
        values = [float(t) for t in times]
    except (TypeError, ValueError):
        raise InkwalkError(f"interpolation times must be numbers, got {times!r}") from None
    if not all(0.0 < t < 1.0 for t in values):
        raise InkwalkError(f"interpolation times must lie inside (0, 1), got {values}")
    return values


def _raise_or_return(result):
    """`serve.batch` hands each request its list item: an exception there is that request's error."""
    if isinstance(result, Exception):
        raise result
    return result


def _safely(fn, args: tuple):
    """fn(*args), or the exception it raised: one bad request of a batch fails alone."""
    try:
        return fn(*args)
    except Exception as exc:
        return exc


@serve.deployment(name="Upscaler", **DEFAULT_OPTIONS)
class Upscaler:
    """Super-resolution to an exact size: Real-ESRGAN (tiled, batched) or Lanczos."""

    def __init__(self, backend: str = "lanczos", models_dir: str | None = None, device: str | None = None,
                 tile: int = 256, batch_size: int = 4, app: str = "artwalks", batch: dict | None = None,
                 threads: int | None = None):
        from inkwalk.artwalks import stage_identity
        from inkwalk.sr_runtimes import threads_for_share
        from inkwalk.upscale import get_upscaler

        self.backend = backend
        # `threads` None: the replica's own CPU share, not the host's cores (a 0.25-CPU replica runs one)
        share = ray.get_runtime_context().get_assigned_resources().get("CPU") if ray.is_initialized() else None
        self.impl = get_upscaler(backend, models_dir=models_dir, device=device, tile=tile,
                                 batch_size=batch_size, threads=threads or threads_for_share(share))
        self.identity = stage_identity("upscaler", backend, models_dir)
        self.app = app
        self.lock = threading.Lock()
        _configure_batching(self._upscale_batch, batch)

    async def upscale(self, frames: np.ndarray, size: Sequence[int]) -> np.ndarray:
        """frames (N×H×W×3 uint8) resized to exactly size=(width, height).

        Batched: requests with the same input and output sizes are concatenated into one call of
        the model, so the pieces of concurrent jobs share its batches.
        """
        return _raise_or_return(await self._upscale_batch(frames, size))

    @serve.batch
    async def _upscale_batch(self, frames: list, size: list) -> list:
        return await asyncio.to_thread(self._upscale_all, list(zip(frames, size)))

    def _upscale_all(self, requests: list[tuple]) -> list:
        checked = [_safely(_check_upscale, r) for r in requests]
        groups: dict[tuple, list[int]] = {}
        for i, item in enumerate(checked):
            if not isinstance(item, Exception):
                groups.setdefault((item[0].shape[1:], item[1]), []).append(i)
        results: list = list(checked)
        with self.lock, StageTimer(self.app, "upscale"):
            for (_, size), members in groups.items():
                stacked = np.concatenate([checked[i][0] for i in members])
                try:
                    out = np.ascontiguousarray(self.impl.upscale(stacked, size))
                except Exception as exc:
                    for i in members:
                        results[i] = exc
                    continue
                at = 0
                for i in members:
                    n = len(checked[i][0])
                    results[i] = out[at:at + n]
                    at += n
        return results

    def describe(self) -> dict:
        return {"upscaler": self.identity}

    def runtime(self) -> dict:
        """What runs the network here (backend, runtime, threads, device, tiling) and how many distinct
        frames it has upscaled."""
        return {**self.impl.describe(), "frames_upscaled": getattr(self.impl, "frames_upscaled", None)}

    def check_health(self) -> None:
        if self.impl is None:
            raise RuntimeError("upscaler is not loaded")


def _check_upscale(frames, size) -> tuple[np.ndarray, tuple[int, int]]:
    frames = check_clip(frames, "frames to upscale")
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise InkwalkError(f"upscale size must be (width, height), got {size!r}") from None
    if min(width, height) < 1:
        raise InkwalkError(f"upscale size must be positive, got {size!r}")
    return frames, (width, height)


@serve.deployment(name="Encoder", **DEFAULT_OPTIONS)
class Encoder:
    """H.264 chunks of pieces, their join into a video, and contact sheets: CPU work near the store.

    At most `encodes` chunks are encoded at once, and the pieces beyond wait here without holding a
    thread; give the replica a `max_ongoing_requests` above `encodes`, so that the next piece is here
    when an encode ends and a join or a contact sheet is taken at once. Waiting in the caller instead,
    a request reaches a full replica only at the router's next retry, up to 0.5 s later (Serve's backoff).
    """

    def __init__(self, store: str, app: str = "artwalks", encodes: int = 2):
        self.store = Store(store)
        self.app = app
        self.encoding = asyncio.Semaphore(encodes)

    async def encode(self, frames: np.ndarray, chunk: str, fps: float, repeat_first: int = 1, codec=None) -> dict:
        """Encode a piece's frames (the first `repeat_first` times) into the store path `chunk`."""
        from inkwalk.chunks import Codec, encode_chunk_to_store

        frames = check_clip(frames, "frames to encode")
        async with self.encoding:
            with StageTimer(self.app, "encode"):
                count = await asyncio.to_thread(encode_chunk_to_store, frames, self.store, chunk, float(fps),
                                                int(repeat_first), codec or Codec())
        return {"chunk": chunk, "frames": count, "node": _node_id()}

    def join(self, chunks: Sequence[str], video: str, metadata: dict | None = None) -> int:
        """Join chunks (store paths, in order) into the store path `video` by stream copy; frames."""
        from inkwalk.chunks import join_chunks_to_store

        missing = [c for c, there in zip(chunks, self.store.exist(list(chunks))) if not there]
        if missing:
            raise RuntimeError(f"{len(missing)} chunk(s) missing from the store, e.g. {missing[0]}")
        with StageTimer(self.app, "join"):
            return join_chunks_to_store(self.store, list(chunks), video, metadata)

    def sheet(self, rows: Sequence[str], out: str) -> bool:
        """Stack walk rows (store PNGs) into one contact sheet; rows never rendered are left out."""
        from inkwalk.sheets import stack_rows

        images = []
        for rel in rows:
            data = self.store.get_bytes(rel)
            if data is not None:
                images.append(decode_png(data))
        if not images:
            return False
        self.store.put_bytes(out, encode_png(stack_rows(images)))
        return True

    def describe(self) -> dict:
        return {"store": self.store.uri}
