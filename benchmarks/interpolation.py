"""Frame interpolation quality and speed on real video: keep the even frames, rebuild the odd.

    python -m benchmarks.interpolation [--videos DIR] [--max-frames 301]

Prints a markdown table of PSNR / SSIM against the real odd frames and inserted frames per
CPU second for `blend`, `flow-warp` (DIS), `sofp` (DIS) and the baseline the ConCLVD authors'
release ships instead of SOFP (OpenCV Farneback, both neighbours warped, 50/50 blend).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from inkwalk.interpolate import get_interpolator, interpolate_clip
from inkwalk.video import probe, read_frames

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
MAX_SIDE = 384  # vtest.avi (768×576) is halved to keep the run to a few minutes on 2 cores


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (Wang et al. 2004): 11×11 gaussian window, sigma 1.5, K1=0.01, K2=0.03, mean over RGB."""
    x, y = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(img: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(img, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(m[5:-5, 5:-5].mean())


def farneback_release(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """The ConCLVD release (app.py): Farneback(prev -> next) with its parameters; prev remapped by
    +flow, next by -flow (full flow, default constant border), cv2.addWeighted 0.5/0.5.
    Its grey conversion is COLOR_BGR2GRAY on RGB frames; kept as released."""
    g0, g1 = cv2.cvtColor(prev, cv2.COLOR_BGR2GRAY), cv2.cvtColor(nxt, cv2.COLOR_BGR2GRAY)
    flow = cv2.calcOpticalFlowFarneback(g0, g1, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    h, w = prev.shape[:2]
    grid = np.dstack(np.meshgrid(np.arange(w), np.arange(h))).astype(np.float32)
    a = cv2.remap(prev, grid + flow, None, cv2.INTER_LINEAR)
    b = cv2.remap(nxt, grid - flow, None, cv2.INTER_LINEAR)
    return cv2.addWeighted(a, 0.5, b, 0.5, 0)


def farneback_half(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """The same with the flow halved (prev by +flow/2, next by -flow/2), the midpoint reading."""
    g0, g1 = cv2.cvtColor(prev, cv2.COLOR_BGR2GRAY), cv2.cvtColor(nxt, cv2.COLOR_BGR2GRAY)
    flow = cv2.calcOpticalFlowFarneback(g0, g1, None, 0.5, 3, 15, 3, 5, 1.2, 0) / 2
    h, w = prev.shape[:2]
    grid = np.dstack(np.meshgrid(np.arange(w), np.arange(h))).astype(np.float32)
    a = cv2.remap(prev, grid + flow, None, cv2.INTER_LINEAR)
    b = cv2.remap(nxt, grid - flow, None, cv2.INTER_LINEAR)
    return cv2.addWeighted(a, 0.5, b, 0.5, 0)


def load(path: Path, max_frames: int) -> np.ndarray:
    info = probe(path)
    scale = min(1.0, MAX_SIDE / max(info.width, info.height))
    size = (round(info.width * scale) // 2 * 2, round(info.height * scale) // 2 * 2)
    n = min(info.frames, max_frames)
    n -= 1 - n % 2  # odd count: the clip starts and ends on a kept (even) frame
    return read_frames(path, list(range(n)), size=None if scale == 1.0 else size)


def run_method(name: str, kept: np.ndarray) -> tuple[np.ndarray, float]:
    """Rebuilt odd frames and the CPU time of this process to make them (flow included).

    CPU time, not wall time: the reference machine is shared, and every method here runs on
    one thread (cv2.setNumThreads(1)), so CPU seconds compare methods fairly under load."""
    start = time.process_time()
    if name.startswith("farneback"):
        fn = farneback_release if name == "farneback (release)" else farneback_half
        out = np.stack([fn(kept[i], kept[i + 1]) for i in range(len(kept) - 1)])
    else:
        method, _, flow = name.partition(" ")
        interp = get_interpolator(method, flow="dis")
        out = interpolate_clip(kept, method=method, factor=2, interpolator=interp)[1::2]
    return out, time.process_time() - start


METHOD_NAMES = ("blend", "farneback (release)", "farneback (flow/2)", "flow-warp dis", "sofp dis")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=VIDEOS)
    parser.add_argument("--max-frames", type=int, default=301)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)  # comparable single-core timings on a shared machine
    print("| video | size | pairs | method | PSNR dB | SSIM | frames/CPU-s | dB vs blend | dB vs farneback (release) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in sorted(args.videos.glob("*.avi")):
        frames = load(path, args.max_frames)
        kept, truth = frames[0::2], frames[1::2]
        rows = {}
        for name in METHOD_NAMES:
            out, seconds = run_method(name, kept)
            rows[name] = (np.mean([psnr(o, t) for o, t in zip(out, truth)]),
                          np.mean([ssim(o, t) for o, t in zip(out, truth)]), len(out) / seconds)
        for name, (p, s, fps) in rows.items():
            print(f"| {path.name} | {frames.shape[2]}×{frames.shape[1]} | {len(truth)} | {name} | {p:.2f} | "
                  f"{s:.4f} | {fps:.1f} | {p - rows['blend'][0]:+.2f} | {p - rows['farneback (release)'][0]:+.2f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
