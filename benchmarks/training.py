"""ConCLVD training throughput on the tiny CPU config: Ray Train (1 and 2 workers) vs a plain loop.

    python -m benchmarks.training [--steps 20] [--warmup 5]

The baseline is a single process running the very same `training.engine.Trainer.train_step`
(one torch thread, as each Ray worker gets), timed before and after the Ray runs; the faster of
the two is used, so load from other processes on a shared box cannot flatter Ray's overhead. Steady-state steps/s exclude the first `warmup`
steps; Ray's figures come from the workers' own reports (every `warmup` steps, which is part of
the measured cost), and the wall time of `fit()` (start-up, checkpoint, teardown) is shown apart.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from training.config import CONFIG_DIR, load_config


def _config(models: Path, storage: Path, name: str, workers: int, steps: int, window: int) -> dict:
    return load_config(CONFIG_DIR / "tiny_cpu.yaml", {
        "model": {"models_dir": str(models)}, "run": {"storage_path": str(storage), "name": name},
        "scaling": {"num_workers": workers, "cpus_per_worker": 1.0},
        "train": {"max_steps": steps, "log_every": window, "checkpoint_every": steps, "max_failures": 0}})


def plain_loop(cfg: dict, warmup: int, steps: int) -> tuple[float, float]:
    """(steady-state steps/s, CPU seconds per step) of the step function in this process, without Ray."""
    import torch

    from training.data import synthetic_batch
    from training.engine import Trainer, build_model

    torch.set_num_threads(1)
    device = torch.device("cpu")
    torch.manual_seed(0)
    model = build_model(cfg, device)
    trainer = Trainer(model, cfg, device)
    batch = synthetic_batch(cfg, model, 0, device)
    for _ in range(warmup):
        trainer.train_step(batch)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        trainer.train_step(batch)
    return steps / (time.perf_counter() - start), (time.process_time() - cpu) / steps


def ray_run(cfg: dict) -> tuple[float, float, float]:
    """(steady-state steps/s and worker CPU s/step after the first report window, wall seconds of fit())."""
    from training.train_conclvd import train

    start = time.perf_counter()
    train(cfg)
    wall = time.perf_counter() - start
    log = Path(cfg["run"]["storage_path"]) / cfg["run"]["name"] / "metrics.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()][1:]
    rate = len(rows) / sum(1.0 / r["steps_per_s"] for r in rows)
    return rate, sum(r["cpu_s_per_step"] for r in rows) / len(rows), wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps (after warm-up)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps; also Ray's report interval")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import ray

    from inkwalk.tiny_models import make_tiny

    total = args.warmup + args.steps
    with tempfile.TemporaryDirectory() as tmp:
        models, storage = Path(tmp) / "models", Path(tmp) / "runs"
        make_tiny(models)
        plain_cfg = _config(models, storage, "plain", 1, total, args.warmup)
        before = plain_loop(plain_cfg, args.warmup, args.steps)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            one, cpu1, wall1 = ray_run(_config(models, storage, "w1", 1, total, args.warmup))
            two, cpu2, wall2 = ray_run(_config(models, storage, "w2", 2, total, args.warmup))
        finally:
            ray.shutdown()
        after = plain_loop(plain_cfg, args.warmup, args.steps)
        plain, other = max(before[0], after[0]), min(before[0], after[0])
        plain_cpu = min(before[1], after[1])
    print(f"tiny_cpu config, batch 1 per worker, {args.steps} timed steps after {args.warmup} warm-up, "
          "1 torch thread per worker. CPU s/step: CPU time of the training process per step (robust to "
          "other load; Ray's includes its worker threads and reports every few steps).\n")
    print("| run | workers | steps/s | samples/s | vs plain (wall) | CPU s/step | vs plain (CPU) | fit() wall s |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| plain loop (no Ray); best of 2 (other: {other:.2f} steps/s) | 1 | {plain:.2f} | {plain:.2f} | 1.00 "
          f"| {plain_cpu:.3f} | 1.00 | - |")
    print(f"| Ray Train | 1 | {one:.2f} | {one:.2f} | {one / plain:.2f} | {cpu1:.3f} | {cpu1 / plain_cpu:.2f} "
          f"(overhead {100 * (cpu1 / plain_cpu - 1):.1f}%) | {wall1:.1f} |")
    print(f"| Ray Train (DDP) | 2 | {two:.2f} | {2 * two:.2f} | {2 * two / plain:.2f} | {cpu2:.3f} "
          f"| {cpu2 / plain_cpu:.2f} | {wall2:.1f} |")
    print(f"\nScaling efficiency, 2 workers vs 1 (samples/s per worker): {100 * two / one:.0f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
