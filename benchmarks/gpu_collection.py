"""The paper-scale run, ready for a GPU: a 10-painting 2K collection on Ray vs the authors' way.

    python -m benchmarks.gpu_collection [--out DIR]   # one CUDA machine, under 8 minutes on one H100
    python -m benchmarks.gpu_collection --dry-run     # the same code on CPU, tiny: 3 paintings, small frames

For each weight scale (tiny-shaped, and full-size random weights of the real architectures,
`benchmarks.full_size_models`) it renders the collection with the paper preset (Kandinsky 2.2
keyframes, FILM, Real-ESRGAN x4plus) twice:
- **ray**: `render_collection_on_ray` with one replica per model (cluster/serve_config.yaml's
  artwalks app, its replica counts pinned to 1 and its GPUs shared on one device);
- **authors' way**: one fresh `inkwalk walk A B` process per pair, loading every model each time,
  keyframes first and FILM after them, as the authors' release runs.
It checks reduced precision against float32 on the same weights (asserted on CUDA), then prints a
markdown table (frames/s, GPU peak memory, wall time, ratio) and writes it to DIR/gpu_collection.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml

from inkwalk.walk_settings import WalkSettings, walk_frame_count

ROOT = Path(__file__).resolve().parent.parent
GPU_CONFIG = ROOT / "cluster" / "serve_config.yaml"
# Each model replica's share of the one GPU (Ray schedules fractions; together they fit on one device).
GPU_SHARE = {"Keyframes": 0.4, "Interpolator": 0.3, "Upscaler": 0.3}
# Bounds the CUDA run asserts: reduced precision vs float32 on the same weights and inputs.
MIN_PSNR_DB = 30.0
MAX_REL_ERR = 0.05


@dataclass(frozen=True)
class Plan:
    """One scale of the run: which weights, how many paintings, and the walk settings."""

    scale: str          # "tiny" or "full"
    paintings: int
    settings: WalkSettings

    @property
    def label(self) -> str:
        s = self.settings
        return (f"{self.scale} weights, {self.paintings} paintings, {s.size[0]}x{s.size[1]} -> "
                f"{s.output_size[0]}x{s.output_size[1]}, m={s.keyframes}, n={s.frames}, {s.steps} steps")


def plans(dry_run: bool) -> list[Plan]:
    """The GPU run (both scales at 2K with the same walks: m=2, n=4, 10 steps instead of the paper's
    m=5, n=24, 50, so both scales and both ways fit in 8 minutes), or the tiny CPU dry run."""
    paper = lambda **kw: WalkSettings(preset="paper", **kw)  # noqa: E731
    if dry_run:
        return [Plan("tiny", 3, paper(size=(64, 32), upscale="x2", keyframes=1, frames=2, steps=1))]
    walk = paper(size=(1280, 720), upscale="2560x1440", keyframes=2, frames=4, steps=10)
    return [Plan("tiny", 10, walk), Plan("full", 10, walk)]


def write_weights(root: Path, scale: str, device: str) -> Path:
    """Tiny random checkpoints of every model, the paper's four overwritten at full size for "full"."""
    from inkwalk.tiny_models import make_tiny

    make_tiny(root)
    if scale == "full":
        from benchmarks.full_size_models import write_full_size

        write_full_size(root, device)
    return root


def ray_config(out: Path, gpu: bool) -> Path:
    """cluster/serve_config.yaml's artwalks app for one machine: one replica per deployment, no custom
    node resources, the GPU shared by fractions (no GPU at all on the dry run)."""
    config = yaml.safe_load(GPU_CONFIG.read_text())
    app = next(a for a in config["applications"] if a["name"] == "artwalks")
    for d in app["deployments"]:
        d.pop("autoscaling_config", None)
        d["num_replicas"] = 1
        options = d["ray_actor_options"]
        options.pop("resources", None)
        options["num_cpus"] = min(options.get("num_cpus", 1), 2) if gpu else 0.1
        if d["name"] in GPU_SHARE:
            options["num_gpus"] = GPU_SHARE[d["name"]] if gpu else 0
        else:
            options.pop("num_gpus", None)
    if not gpu:  # serve.batch holds CPU requests back for nothing (services/serve_config.cpu.yaml)
        app["args"]["interpolator"]["batch"] = {"max_batch_size": 1}
        app["args"]["upscaler"]["batch"] = {"max_batch_size": 1}
    config["applications"] = [app]
    out.write_text(yaml.safe_dump(config))
    return out


class GpuMemory:
    """Peak GPU memory in use (MiB) across every process, polled with nvidia-smi; None without a GPU."""

    def __init__(self, enabled: bool, interval_s: float = 0.25) -> None:
        self.enabled, self.interval_s, self.peak = enabled, interval_s, None
        self._stop = threading.Event()

    def _used(self) -> int:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, check=True).stdout
        return sum(int(v) for v in out.split())

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak or 0, self._used())
            except (OSError, subprocess.CalledProcessError):  # no nvidia-smi: the peak stays unknown
                return
            self._stop.wait(self.interval_s)

    @contextmanager
    def watch(self) -> Iterator["GpuMemory"]:
        if not self.enabled:
            yield self
            return
        thread = threading.Thread(target=self._poll, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()


def render_on_ray(plan: Plan, paintings: Path, models: Path, work: Path, gpu: bool) -> dict:
    """The collection through the Serve path, one replica per model; frames counted in the video."""
    from inkwalk.video import probe
    from services.collection import render_collection_on_ray

    work.mkdir(parents=True, exist_ok=True)
    out = work / "ray.mp4"
    with GpuMemory(gpu).watch() as memory:
        start = time.perf_counter()
        render_collection_on_ray(paintings, out, plan.settings, store=str(work / "store"), models_dir=str(models),
                                 config=ray_config(work / "serve_config.yaml", gpu), sheet=False)
        wall = time.perf_counter() - start
    return {"wall_s": wall, "frames": probe(out).frames, "gpu_peak_mib": memory.peak}


def render_authors_way(plan: Plan, paintings: Path, models: Path, work: Path, gpu: bool) -> dict:
    """One fresh `inkwalk walk A B` process per pair, loading every model each time; frames summed
    over the pair videos."""
    from inkwalk.video import probe

    work.mkdir(parents=True, exist_ok=True)
    s = plan.settings
    files = sorted(paintings.iterdir())
    env = dict(os.environ, INKWALK_NO_PROGRESS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    args = ["--preset", "paper", "--size", f"{s.size[0]}x{s.size[1]}", "--upscale", s.upscale, "-m", str(s.keyframes),
            "-n", str(s.frames), "--steps", str(s.steps), "--models", str(models), "--device",
            "cuda" if gpu else "cpu", "--no-sheet"]
    outs = []
    with GpuMemory(gpu).watch() as memory:
        start = time.perf_counter()
        for i, (a, b) in enumerate(zip(files[:-1], files[1:])):
            outs.append(work / f"pair{i:02d}.mp4")
            subprocess.run([sys.executable, "-m", "inkwalk.cli", "walk", str(a), str(b), "-o", str(outs[-1]),
                            "--store", str(work / f"store{i:02d}"), *args], check=True, env=env,
                           stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
    return {"wall_s": wall, "frames": sum(probe(o).frames for o in outs), "gpu_peak_mib": memory.peak}


def run_plan(plan: Plan, work: Path, gpu: bool) -> dict:
    """Weights, paintings, parity, then both ways; one row of the table."""
    from benchmarks.full_size_models import precision_parity
    from inkwalk.paintings import collection
    from inkwalk.video import save_image

    device = "cuda" if gpu else "cpu"
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    models = write_weights(work / "models", plan.scale, device)
    weights_s = time.perf_counter() - start
    folder = work / "paintings"
    folder.mkdir(exist_ok=True)
    for i, img in enumerate(collection(plan.paintings, tuple(plan.settings.size))):
        save_image(folder / f"p{i:02d}.png", img)
    parity = precision_parity(models, device, (256, 128) if gpu else (64, 32))
    if gpu:
        check_parity(parity)
    ray = render_on_ray(plan, folder, models, work / "ray", gpu)
    authors = render_authors_way(plan, folder, models, work / "authors", gpu)
    expected = walk_frame_count(plan.paintings, plan.settings)
    pair_frames = (plan.paintings - 1) * walk_frame_count(2, plan.settings)
    return {"plan": plan.label, "scale": plan.scale, "paintings": plan.paintings,
            "settings": {k: v for k, v in plan.settings.model_dump().items() if k in
                         ("size", "upscale", "keyframes", "frames", "steps", "batch")},
            "output_size": list(plan.settings.output_size), "weights_s": weights_s, "parity": parity,
            "expected_frames": {"ray": expected, "authors": pair_frames},
            "ray": {**ray, "fps": ray["frames"] / ray["wall_s"]},
            "authors": {**authors, "fps": authors["frames"] / authors["wall_s"]},
            "ratio": authors["wall_s"] / ray["wall_s"]}


def check_parity(parity: dict[str, float]) -> None:
    """Reduced precision must stay within the bounds: PSNR >= MIN_PSNR_DB, relative error <= MAX_REL_ERR."""
    bad = [f"{k}={v:.4g}" for k, v in parity.items()
           if (k.endswith("_db") and v < MIN_PSNR_DB) or (k.endswith("_rel_err") and v > MAX_REL_ERR)]
    if bad:
        raise AssertionError(f"reduced precision out of bounds vs float32: {', '.join(bad)}")


def table(rows: list[dict]) -> str:
    """The markdown table: one line per scale and way."""
    mib = lambda v: "n/a (no GPU)" if v is None else f"{v:.0f}"  # noqa: E731
    lines = ["| run | way | frames | wall (s) | frames/s | GPU peak (MiB) | ratio (authors / ray) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        for way, name in (("ray", "Ray, one replica per model"), ("authors", "authors' way, process per pair")):
            w = r[way]
            ratio = f"{r['ratio']:.2f}x" if way == "ray" else ""
            lines.append(f"| {r['plan']} | {name} | {w['frames']} | {w['wall_s']:.1f} | {w['fps']:.2f} | "
                         f"{mib(w['gpu_peak_mib'])} | {ratio} |")
    parity = "; ".join(f"{r['scale']}: " + ", ".join(f"{k} {v:.4g}" for k, v in r["parity"].items()) for r in rows)
    return "\n".join(lines) + f"\n\nreduced precision vs float32: {parity}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny weights, 3 small paintings")
    parser.add_argument("--out", type=Path, default=Path("gpu_collection_out"), help="work folder and JSON")
    args = parser.parse_args(argv)
    import torch

    gpu = torch.cuda.is_available() and not args.dry_run
    if not gpu and not args.dry_run:
        print("error: no CUDA device here; run on a GPU machine, or pass --dry-run for the CPU check",
              file=sys.stderr)
        return 1
    os.environ.setdefault("INKWALK_NO_PROGRESS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report = {"device": torch.cuda.get_device_name() if gpu else "cpu (dry run)", "rows": []}
    start = time.perf_counter()
    for plan in plans(args.dry_run):  # the JSON after each scale: a cut-short run keeps what it measured
        report["rows"].append(run_plan(plan, args.out / plan.scale, gpu))
        report["total_s"] = time.perf_counter() - start
        (args.out / "gpu_collection.json").write_text(json.dumps(report, indent=2))
        print(f"{plan.scale} weights done at {report['total_s']:.0f} s", file=sys.stderr)
    rows = report["rows"]
    print(f"device: {report['device']}, total {report['total_s']:.0f} s")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
