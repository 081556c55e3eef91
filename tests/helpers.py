"""Synthetic media for tests: textured frames with known motion, made on the fly."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np


def textured_frame(height: int, width: int, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    """A richly textured RGB frame, optionally translated right by `shift` pixels.

    Detail lives in brightness and colour varies slowly, as in real pictures (4:2:0 video
    keeps fine brightness detail but not fine colour detail).
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    x = x - shift
    luma = np.zeros((height, width))
    for _ in range(5):
        fx, fy, ph = rng.uniform(0.01, 0.1), rng.uniform(0.01, 0.1), rng.uniform(0, 6.28)
        luma += np.sin(fx * x * 6.28 + fy * y * 6.28 + ph)
    luma = (luma - luma.min()) / (luma.max() - luma.min() + 1e-9)
    tint = np.stack([np.sin(0.01 * (x + y) + p) for p in rng.uniform(0, 6.28, 3)], axis=-1)
    out = luma[..., None] * 0.8 + 0.1 + 0.08 * tint
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def shifted_texture(h: int, w: int, dx: float = 0.0, dy: float = 0.0, seed: int = 0) -> np.ndarray:
    """A smooth random texture sampled at (x - dx, y - dy): an exact sub-pixel translation."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    x, y = x - dx, y - dy
    img = np.zeros((h, w, 3))
    for _ in range(12):
        fx, fy = rng.uniform(-0.12, 0.12, 2)
        img += rng.uniform(8, 20, 3) * np.sin(2 * np.pi * (fx * x + fy * y) + rng.uniform(0, 2 * np.pi))[..., None]
    return np.clip(128 + img, 0, 255).astype(np.uint8)


def moving_clip(frames: int, height: int, width: int, speed: float = 1.5, seed: int = 0) -> np.ndarray:
    """A clip of a texture panning right at `speed` px per frame."""
    return np.stack([textured_frame(height, width, shift=i * speed, seed=seed) for i in range(frames)])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served_apps(config: Path, overrides: dict) -> Iterator[int]:
    """Every app of a Serve config, with `overrides`, on a free loopback port (yielded); Serve shut down after."""
    from ray import serve

    from services.apps import apps_from_config

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        for name, (app, prefix) in apps_from_config(config, overrides=overrides).items():
            serve.run(app, name=name, route_prefix=prefix)
        yield port
    finally:
        serve.shutdown()
