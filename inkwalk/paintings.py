"""Procedurally drawn ink-wash "paintings", so demos and tests need no images from anywhere.

Each painting is built like a Chinese landscape (shan shui) wash: a warm paper with fibres,
layers of ink whose density fades into mist, dry-brush texture dots, trees, a boat and a red
seal. Everything comes from one `numpy.random.Generator`, so a (name, seed, size) triple
always draws the same picture, and different seeds draw different scenes.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from inkwalk.errors import InkwalkError

INK = np.array([28, 30, 36], np.float32)
SEAL = np.array([178, 38, 32], np.float32)


def _noise2d(rng: np.random.Generator, h: int, w: int, cells: int, octaves: int = 4) -> np.ndarray:
    """Smooth fractal value noise in about [-1, 1], `cells` grid cells across the short side."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        c = cells * 2 ** o
        grid = rng.standard_normal((max(2, c * h // min(h, w) + 2), max(2, c * w // min(h, w) + 2)))
        out += amp * cv2.resize(grid.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
    return out / total


def _noise1d(rng: np.random.Generator, n: int, knots: int, octaves: int = 5) -> np.ndarray:
    """Fractal 1-D noise of length n in about [-1, 1] (ridge lines, river banks)."""
    x = np.linspace(0.0, 1.0, n)
    out = np.zeros(n)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        k = knots * 2 ** o + 1
        out += amp * np.interp(x, np.linspace(0, 1, k), rng.uniform(-1, 1, k))
        total += amp
        amp *= 0.5
    return out / total


def _paper(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Warm rice paper: uneven tone plus fine fibres."""
    base = np.array([232, 224, 204], np.float32)
    tone = 6.0 * _noise2d(rng, h, w, 3, 3)[..., None]
    fibres = rng.standard_normal((h, w)).astype(np.float32)
    fibres = cv2.GaussianBlur(fibres, (0, 0), sigmaX=2.5, sigmaY=0.6) * 5.0
    return base + tone + fibres[..., None]


def _mountain_layer(rng: np.random.Generator, h: int, w: int, top: float, height: float,
                    strength: float, falloff: float, texture: np.ndarray) -> np.ndarray:
    """Ink density of one mountain range: dark at the ridge, fading down into mist."""
    ridge = top * h + height * h * _noise1d(rng, w, int(rng.integers(2, 5)))
    peaks = np.exp(-((np.arange(w) - rng.uniform(0.2, 0.8) * w) / (0.25 * w)) ** 2)
    ridge = ridge - 0.6 * height * h * peaks
    y = np.arange(h, dtype=np.float32)[:, None]
    depth = y - ridge[None, :].astype(np.float32)
    inside = depth > 0
    wash = np.exp(-np.clip(depth, 0, None) / (falloff * h)) * inside
    # a darker, slightly broken contour stroke along the ridge
    contour = np.exp(-(depth / (0.004 * h + 1.0)) ** 2) * (0.6 + 0.4 * (texture > -0.2))
    dens = strength * np.clip(0.75 * wash * (0.75 + 0.35 * texture) + 0.5 * contour, 0, 1)
    return dens.astype(np.float32)


def _dots(rng: np.random.Generator, dens: np.ndarray, layer: np.ndarray, count: int, radius: float,
          value: float) -> None:
    """Dry-brush moss dots (dian) where a layer's ink is strong, added in place."""
    h, w = dens.shape
    ys, xs = np.nonzero(layer > 0.45 * layer.max())
    if len(ys) == 0:
        return
    pick = rng.integers(0, len(ys), count)
    canvas = np.zeros_like(dens)
    for y, x in zip(ys[pick], xs[pick]):
        r = max(1, int(radius * rng.uniform(0.5, 1.3)))
        cv2.ellipse(canvas, (int(x), int(y)), (r, max(1, r // 2)), float(rng.uniform(0, 180)), 0, 360,
                    float(value * rng.uniform(0.5, 1.0)), -1, cv2.LINE_AA)
    np.maximum(dens, canvas, out=dens)


def _tree(canvas: np.ndarray, rng: np.random.Generator, x: float, y: float, size: float) -> None:
    """A pine: a leaning trunk and flat clusters of needles, drawn as ink density."""
    lean = rng.uniform(-0.25, 0.25) * size
    top = (int(x + lean), int(y - size))
    cv2.line(canvas, (int(x), int(y)), top, 0.9, max(1, int(size / 18)), cv2.LINE_AA)
    for k in range(int(rng.integers(3, 6))):
        f = 0.35 + 0.65 * k / 5
        cx = int(x + lean * f + rng.uniform(-0.1, 0.1) * size)
        cy = int(y - size * f)
        ax = max(2, int(size * rng.uniform(0.18, 0.32) * (1.1 - 0.5 * f)))
        cv2.ellipse(canvas, (cx, cy), (ax, max(1, ax // 3)), float(rng.uniform(-10, 10)), 0, 360,
                    float(rng.uniform(0.55, 0.85)), -1, cv2.LINE_AA)


def _seal_and_script(img: np.ndarray, rng: np.random.Generator, right: bool) -> None:
    """A column of calligraphy-like strokes and a red seal in an upper corner, in place."""
    h, w, _ = img.shape
    s = max(6, int(0.045 * min(h, w)))
    x = int(w - 2.2 * s) if right else int(1.2 * s)
    dens = np.zeros((h, w), np.float32)
    y = int(0.08 * h)
    for _ in range(int(rng.integers(4, 7))):
        for _ in range(int(rng.integers(2, 4))):
            p0 = (x + int(rng.uniform(0, s)), y + int(rng.uniform(0, s)))
            p1 = (x + int(rng.uniform(0, s)), y + int(rng.uniform(0, s)))
            cv2.line(dens, p0, p1, 0.85, max(1, s // 6), cv2.LINE_AA)
        y += int(1.25 * s)
    img[:] = img * (1 - dens[..., None]) + INK * dens[..., None]
    seal = np.zeros((h, w), np.float32)
    sy = min(h - s - 1, y + s // 2)
    cv2.rectangle(seal, (x, sy), (x + s, sy + s), 0.9, -1)
    carve = (rng.random((h, w)) < 0.12).astype(np.float32)
    seal *= 1 - 0.6 * carve
    img[:] = img * (1 - seal[..., None]) + SEAL * seal[..., None]


def _finish(img: np.ndarray, dens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Let the ink bleed a little into the paper and composite it."""
    wet = cv2.GaussianBlur(dens, (0, 0), 1.2)
    dens = np.clip(0.6 * dens + 0.4 * wet, 0, 1)
    return img * (1 - dens[..., None]) + INK * dens[..., None]


def _mountains(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    img = _paper(rng, h, w)
    dens = np.zeros((h, w), np.float32)
    texture = _noise2d(rng, h, w, 6, 4)
    layers = int(rng.integers(4, 6))
    for i in range(layers):
        f = i / (layers - 1)
        layer = _mountain_layer(rng, h, w, top=0.25 + 0.45 * f, height=0.2 - 0.08 * f,
                                strength=0.25 + 0.65 * f, falloff=0.05 + 0.05 * f, texture=texture)
        # mist: each nearer layer covers what lies behind it, then fades to paper at its foot
        cover = np.clip(layer * 3.0, 0, 1)
        dens = dens * (1 - 0.85 * cover) + layer
        if i >= layers - 2:
            _dots(rng, dens, layer, count=int(0.0012 * w * h / (1 + i)), radius=0.004 * min(w, h) + 1,
                  value=0.9)
    trees = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(3, 7))):
        x = rng.uniform(0.05, 0.95) * w
        _tree(trees, rng, x, h * rng.uniform(0.82, 0.97), h * rng.uniform(0.08, 0.16))
    dens = np.maximum(np.clip(dens, 0, 1), trees)
    if rng.random() < 0.6:  # a pale sun or moon in the sky
        cx, cy, r = int(rng.uniform(0.2, 0.8) * w), int(0.14 * h), int(0.05 * min(w, h))
        moon = np.zeros((h, w), np.float32)
        cv2.circle(moon, (cx, cy), r, 1.0, -1, cv2.LINE_AA)
        img = img * (1 - 0.5 * moon[..., None]) + SEAL * 0.5 * moon[..., None]
    img = _finish(img, dens, rng)
    _seal_and_script(img, rng, right=bool(rng.random() < 0.5))
    return img


def _river(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    img = _paper(rng, h, w)
    texture = _noise2d(rng, h, w, 6, 4)
    far = _mountain_layer(rng, h, w, top=0.22, height=0.12, strength=0.3, falloff=0.08, texture=texture)
    near = _mountain_layer(rng, h, w, top=0.36, height=0.08, strength=0.6, falloff=0.05, texture=texture)
    dens = far * (1 - np.clip(3 * near, 0, 1)) + near
    # the river: a band that widens toward the viewer, wandering left and right
    y = np.arange(h, dtype=np.float32)
    horizon = 0.42 * h
    t = np.clip((y - horizon) / (h - horizon), 0, 1)
    centre = w * (0.5 + 0.22 * _noise1d(rng, h, 2, 3)) + (t - 0.5) * w * rng.uniform(-0.3, 0.3)
    half = w * (0.03 + 0.32 * t ** 1.3)
    xx = np.arange(w, dtype=np.float32)[None, :]
    dist = np.abs(xx - centre[:, None]) - half[:, None]
    below = (y >= horizon)[:, None]
    bank = np.clip(1.0 - np.abs(dist) / (0.03 * w + 2), 0, 1) * below
    land = (dist > 0) * below
    land_wash = land * (0.5 * t[:, None] ** 0.7) * (0.7 + 0.3 * texture)
    dens = np.maximum(dens * (1 - land * np.clip(4 * t[:, None], 0, 1)), land_wash.astype(np.float32)) + 0.55 * bank
    # ripples on the water: short horizontal strokes, denser far away
    water = (dist < -2) * below
    ripples = np.zeros((h, w), np.float32)
    ys, xs = np.nonzero(water)
    if len(ys):
        for k in rng.integers(0, len(ys), int(0.0006 * w * h)):
            length = int((0.01 + 0.05 * t[ys[k]]) * w)
            cv2.line(ripples, (int(xs[k]), int(ys[k])), (int(xs[k]) + length, int(ys[k])), 0.35, 1,
                     cv2.LINE_AA)
    dens = np.clip(dens, 0, 1) * (1 - 0.6 * water) + ripples * water
    # trees on the near banks and a boat with a fisherman
    trees = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(4, 8))):
        row = int(rng.uniform(0.7, 0.97) * h)
        side = -1 if rng.random() < 0.5 else 1
        x = centre[row] + side * (half[row] + rng.uniform(0.02, 0.12) * w)
        if 0 < x < w:
            _tree(trees, rng, x, row, h * rng.uniform(0.12, 0.22))
    row = int(rng.uniform(0.55, 0.7) * h)
    bx, by, bl = int(centre[row]), row, max(6, int(0.06 * w))
    cv2.ellipse(trees, (bx, by), (bl // 2, max(2, bl // 8)), 0, 0, 180, 0.9, -1, cv2.LINE_AA)
    cv2.line(trees, (bx, by - 1), (bx + bl // 6, by - bl // 3), 0.9, max(1, bl // 12), cv2.LINE_AA)
    cv2.line(trees, (bx - bl // 3, by), (bx + bl // 2, by - bl // 2), 0.7, 1, cv2.LINE_AA)
    dens = np.maximum(np.clip(dens, 0, 1), trees)
    img = _finish(img, dens, rng)
    _seal_and_script(img, rng, right=bool(rng.random() < 0.5))
    return img


PAINTINGS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "mountains": _mountains,
    "river": _river,
}


def draw(name: str, size: tuple[int, int] = (640, 400), seed: int = 0) -> np.ndarray:
    """Draw painting `name` ("mountains" or "river") at `size=(width, height)`; uint8 H×W×3.

    The same name, size and seed always give the same pixels.
    """
    if name not in PAINTINGS:
        raise InkwalkError(f"unknown painting {name!r}; choose one of: {', '.join(PAINTINGS)}")
    w, h = int(size[0]), int(size[1])
    if w < 16 or h < 16:
        raise InkwalkError(f"a painting needs at least 16x16 pixels, got {w}x{h}")
    rng = np.random.default_rng([seed, list(PAINTINGS).index(name)])
    return np.clip(np.rint(PAINTINGS[name](rng, w, h)), 0, 255).astype(np.uint8)


def collection(count: int, size: tuple[int, int] = (640, 400), seed: int = 0) -> list[np.ndarray]:
    """`count` different paintings alternating mountains and river scenes (benchmarks, demos)."""
    names = list(PAINTINGS)
    return [draw(names[i % len(names)], size, seed + i) for i in range(count)]
