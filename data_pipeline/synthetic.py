"""Synthetic CLV-HD: procedural ink-wash landscape clips with real motion, plus a manifest.

    python -m data_pipeline.synthetic --out DIR --clips N [--seed S]

Each clip is layered mountain ridges in graded ink on rice paper, with one or more motions:
mist drifting across the ridges, water flowing at their feet, a slow camera pan, falling
petals or rain. Lengths, sizes and frame rates vary from clip to clip, and each clip's
caption says what it shows. Made for tests, demos and benchmarks, so anyone who clones the
project has data; writing uses `inkwalk.video_writer.VideoWriter` (H.264 mp4).
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from inkwalk.errors import InkwalkError

PAPER = np.array([236, 229, 214], np.float32)
INK = np.array([28, 30, 36], np.float32)
PETAL = np.array([226, 150, 165], np.float32)
SIZES = [(256, 192), (192, 256), (320, 180), (240, 240), (288, 216), (224, 168)]
FPS = [12.0, 15.0, 24.0]
MOTIONS = ("mist", "water", "pan", "petals", "rain")
MANIFEST = "manifest.csv"


@dataclass(frozen=True)
class ClipPlan:
    """Everything that defines one synthetic clip; the caption is derived from it."""

    name: str
    width: int
    height: int
    frames: int
    fps: float
    motions: tuple[str, ...]
    seed: int
    direction: int  # +1 right, -1 left (mist drift and pan)

    @property
    def caption(self) -> str:
        side = "right" if self.direction > 0 else "left"
        parts = ["ink wash painting of layered mountains"]
        if "water" in self.motions:
            parts.append("a river flowing at their foot")
        if "mist" in self.motions:
            parts.append(f"mist drifting to the {side}")
        if "pan" in self.motions:
            parts.append(f"the view slowly panning {side}")
        if "petals" in self.motions:
            parts.append("pink petals falling")
        if "rain" in self.motions:
            parts.append("rain falling")
        return ", ".join(parts)


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Soft 0..1 noise: a coarse random grid upsampled bicubically."""
    gw, gh = max(2, width // cells), max(2, height // cells)
    grid = rng.random((gh, gw)).astype(np.float32)
    out = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0)


def _ridge(rng: np.random.Generator, width: int, base: float, amp: float) -> np.ndarray:
    """A mountain ridge line: a few random sinusoids plus fine jitter, in pixels from the top."""
    x = np.arange(width, dtype=np.float32)
    y = np.full(width, base, np.float32)
    for k in range(4):
        freq = rng.uniform(0.5, 3.0) * (k + 1) * 2 * np.pi / max(width, 1) * 0.6
        y -= amp / (k + 1) * (1.0 - np.abs(np.sin(freq * x + rng.uniform(0, 2 * np.pi))))
    y += np.convolve(rng.normal(0, amp * 0.04, width), np.ones(5) / 5, mode="same").astype(np.float32)
    return y


def _landscape(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Ink coverage 0..1 of the still landscape: far ridges pale, near ridges dark, bases misty."""
    ink = np.zeros((height, width), np.float32)
    rows = np.arange(height, dtype=np.float32)[:, None]
    layers = 4
    for i in range(layers):
        depth = (i + 1) / layers
        ridge = _ridge(rng, width, base=height * (0.5 + 0.1 * i), amp=height * (0.2 - 0.03 * i))
        below = rows - ridge[None, :]
        # graded wash: strongest just under the ridge, fading downwards into mist
        wash = np.where(below >= 0, np.exp(-below / (height * (0.10 + 0.05 * depth))), 0.0)
        edge = np.exp(-np.abs(below) / 1.5) * 0.5  # a brush line along the ridge
        strength = 0.25 + 0.6 * depth
        ink = np.maximum(ink, strength * np.clip(wash + edge, 0, 1))
    texture = _smooth_noise(rng, width, height, 6)
    return np.clip(ink * (0.8 + 0.35 * texture), 0, 1)


def render_clip(plan: ClipPlan) -> Iterator[np.ndarray]:
    """Yield the clip's frames (``H×W×3`` uint8), one at a time."""
    rng = np.random.default_rng(plan.seed)
    w, h, n = plan.width, plan.height, plan.frames
    pan_speed = rng.uniform(0.8, 1.6) if "pan" in plan.motions else 0.0
    canvas_w = w + int(np.ceil(pan_speed * n)) + 1
    ink = _landscape(rng, canvas_w, h)
    paper_grain = (_smooth_noise(rng, canvas_w, h, 2) - 0.5) * 10.0
    seal = (int(w * 0.86), int(h * 0.08), max(4, w // 24))  # a red seal in a corner, fixed to the frame

    mist_speed = rng.uniform(1.0, 2.5) * plan.direction
    mist_margin = int(np.ceil(abs(mist_speed) * n)) + 1
    mist = _smooth_noise(rng, w + 2 * mist_margin, h, 24) if "mist" in plan.motions else None
    mist_band = np.exp(-((np.arange(h) - h * rng.uniform(0.45, 0.65)) / (h * 0.16)) ** 2)[:, None]
    water_top = int(h * rng.uniform(0.72, 0.8))
    water_phase = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    n_drops = 60 if "rain" in plan.motions else 26
    drops = np.column_stack([rng.uniform(0, w, n_drops), rng.uniform(0, h, n_drops),
                             rng.uniform(0, 2 * np.pi, n_drops)])

    for t in range(n):
        x0 = int(round(t * pan_speed)) if plan.direction > 0 else int(round((n - 1 - t) * pan_speed))
        cover = ink[:, x0:x0 + w].copy()
        if "water" in plan.motions:
            depth = np.clip((yy - water_top) / max(h - water_top, 1), 0, 1)
            ripples = np.sin(yy * 0.9 - t * 0.7 + np.sin(xx * 0.05 + t * 0.15 + water_phase) * 2.0)
            water = np.where(yy >= water_top, 0.08 + 0.25 * depth * (ripples > 0.6), 0.0)
            cover = np.where(yy >= water_top, water, cover)
        if mist is not None:
            mx = mist_margin + int(round(t * mist_speed))
            haze = mist[:, mx:mx + w] * mist_band
            cover = cover * (1 - np.clip(haze * 1.8, 0, 0.95))
        img = PAPER[None, None, :] * (1 - cover[..., None]) + INK[None, None, :] * cover[..., None]
        img += paper_grain[:, x0:x0 + w, None]
        frame = np.clip(img, 0, 255).astype(np.uint8)
        cv2.rectangle(frame, (seal[0], seal[1]), (seal[0] + seal[2], seal[1] + seal[2]), (178, 34, 34), -1)
        if "rain" in plan.motions:
            for x, y, _ in drops:
                cv2.line(frame, (int(x), int(y)), (int(x - 2), int(y + 7)), (110, 112, 120), 1, cv2.LINE_AA)
            drops[:, 0] = (drops[:, 0] - 1.5) % w
            drops[:, 1] = (drops[:, 1] + 7.0) % h
        if "petals" in plan.motions:
            for x, y, phase in drops:
                cx = int(x + 4 * np.sin(phase + t * 0.3))
                cv2.ellipse(frame, (cx, int(y)), (3, 2), float((phase * 57 + t * 9) % 180), 0, 360,
                            tuple(int(c) for c in PETAL), -1, cv2.LINE_AA)
            drops[:, 1] = (drops[:, 1] + 1.6) % h
        yield frame


def plan_synthetic_clips(n: int, seed: int = 0, min_frames: int = 36, max_frames: int = 72,
               scale: float = 1.0) -> list[ClipPlan]:
    """Varied clips: size, length, fps, motions and direction drawn from the seed."""
    if n < 1:
        raise InkwalkError(f"--clips must be at least 1, got {n}")
    if not 1 <= min_frames <= max_frames:
        raise InkwalkError(f"frame range {min_frames}..{max_frames} is empty: need 1 <= min <= max")
    rng = np.random.default_rng(seed)
    plans = []
    for i in range(n):
        w, h = SIZES[int(rng.integers(len(SIZES)))]
        w, h = max(16, int(w * scale)), max(16, int(h * scale))
        k = int(rng.integers(1, 3))
        motions = tuple(sorted(rng.choice(MOTIONS, size=k, replace=False).tolist(), key=MOTIONS.index))
        if "petals" in motions and "rain" in motions:
            motions = tuple(m for m in motions if m != "rain")
        plans.append(ClipPlan(name=f"clip-{i:04d}.mp4", width=w, height=h,
                              frames=int(rng.integers(min_frames, max_frames + 1)),
                              fps=float(FPS[int(rng.integers(len(FPS)))]), motions=motions,
                              seed=int(rng.integers(2**31)), direction=int(rng.choice([-1, 1]))))
    return plans


def generate(out: str | Path, clips: int, seed: int = 0, min_frames: int = 36, max_frames: int = 72,
             scale: float = 1.0) -> Path:
    """Write `clips` videos under ``out/videos`` and ``out/manifest.csv``; returns the manifest path."""
    from inkwalk.progress import progress
    from inkwalk.video_writer import VideoWriter

    out = Path(out)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    plans = plan_synthetic_clips(clips, seed, min_frames, max_frames, scale)
    rows = []
    for plan in progress(plans, desc="synthetic clips", unit="clip"):
        with VideoWriter(out / "videos" / plan.name, plan.fps, crf=20, preset="veryfast") as writer:
            writer.write_many(render_clip(plan))
        rows.append({"video": f"videos/{plan.name}", "caption": plan.caption, "frames": plan.frames,
                     "width": plan.width, "height": plan.height, "fps": plan.fps,
                     "motions": " ".join(plan.motions)})
    manifest = out / MANIFEST
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_pipeline.synthetic", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for videos/ and manifest.csv")
    p.add_argument("--clips", type=int, required=True, help="number of clips")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-frames", type=int, default=36)
    p.add_argument("--max-frames", type=int, default=72)
    p.add_argument("--scale", type=float, default=1.0, help="multiply every clip size (e.g. 0.5 for tests)")
    args = p.parse_args(argv)
    try:
        manifest = generate(args.out, args.clips, args.seed, args.min_frames, args.max_frames, args.scale)
    except InkwalkError as exc:
        print(f"synthetic: error: {exc}", file=sys.stderr)
        return 1
    print(manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
