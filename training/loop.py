"""The Ray Train worker loop: model on this worker's device, DDP, data shard, checkpoints, metrics.

Every worker runs `train_loop_per_worker`. Rank 0 alone writes checkpoints; every worker calls
`ray.train.report` at the same steps (it is a barrier). Restarting, after a worker failure or
when the same run is submitted again, resumes from `ray.train.get_checkpoint()`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from training.config import run_dir
from training.data import shard_batches, synthetic_batch
from training.engine import Trainer, build_model


class InjectedFault(RuntimeError):
    """Raised on purpose by `debug.fail_at_step` to exercise fault tolerance."""


def _maybe_fail(cfg: dict, step: int, rank: int) -> None:
    """Raise once (a marker file in the run folder remembers it) at `debug.fail_at_step`."""
    fail_at = cfg["debug"]["fail_at_step"]
    if fail_at is None or int(fail_at) != step or rank != int(cfg["debug"]["fail_rank"]):
        return
    marker = Path(run_dir(cfg)) / f".fault_injected_at_{step}"
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    raise InjectedFault(f"injected worker failure on rank {rank} after step {step}")


def _mean_across_workers(values: dict[str, float], world: int, device: torch.device) -> dict[str, float]:
    if world == 1:
        return values
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return {k: float(v) / world for k, v in zip(keys, t.tolist())}


def train_loop_per_worker(cfg: dict) -> None:
    """Train until `train.max_steps`, resuming from the latest checkpoint when there is one."""
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(int(cfg["train"]["seed"]))
    model = build_model(cfg, device)

    def wrap(module: torch.nn.Module) -> torch.nn.Module:
        # Moves nothing (the bundle is already on `device`); wraps in DDP when world > 1.
        kwargs = {"find_unused_parameters": bool(cfg["model"]["ddp_find_unused_parameters"])}
        if device.type == "cuda":
            kwargs["gradient_as_bucket_view"] = True
        return ray.train.torch.prepare_model(module, move_to_device=False, parallel_strategy_kwargs=kwargs)

    trainer = Trainer(model, cfg, device, wrap=wrap)
    data_pos = {"epoch": 0, "index": 0}
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:  # every rank restores the same files, so replicas stay identical
        with checkpoint.as_directory() as folder:
            state = trainer.load(folder)
        data_pos = state.get("data", data_pos)
    resumed_from = trainer.step

    batch_size = int(cfg["data"]["batch_size"])
    if cfg["data"]["source"] == "synthetic":
        fixed = synthetic_batch(cfg, model, rank, device)
        batches = iter(lambda: (0, 0, fixed), None)
    else:
        shard = ray.train.get_dataset_shard("train")
        batches = shard_batches(shard, cfg["data"]["kind"], batch_size, device,
                                start_epoch=int(data_pos["epoch"]), skip=int(data_pos["index"]))

    max_steps = int(cfg["train"]["max_steps"])
    every_ckpt = int(cfg["train"]["checkpoint_every"])
    every_log = int(cfg["train"]["log_every"])
    window: dict[str, float] = {}
    window_steps, window_start, window_cpu = 0, time.perf_counter(), time.process_time()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    while trainer.step < max_steps:
        epoch, index, batch = next(batches)
        out = trainer.train_step(batch, rank=rank)
        data_pos = {"epoch": epoch, "index": index + 1}
        for k, v in out.items():
            window[k] = window.get(k, 0.0) + v
        window_steps += 1
        step = trainer.step
        _maybe_fail(cfg, step, rank)
        save = step % every_ckpt == 0 or step == max_steps
        if not (save or step % every_log == 0):
            continue
        elapsed = time.perf_counter() - window_start
        metrics = _mean_across_workers({k: v / window_steps for k, v in window.items()}, world, device)
        steps_per_s = window_steps / max(elapsed, 1e-9)
        # CPU seconds this worker process spent per step (all its threads): robust to a busy machine.
        cpu_per_step = (time.process_time() - window_cpu) / window_steps
        metrics.update(step=step, epoch=epoch, lr=trainer.lr, steps_per_s=steps_per_s, cpu_s_per_step=cpu_per_step,
                       samples_per_s=steps_per_s * batch_size * world, world_size=world,
                       resumed_from_step=resumed_from)
        if device.type == "cuda":
            metrics["gpu_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        if save:
            with tempfile.TemporaryDirectory() as tmp:
                ckpt = None
                if rank == 0:
                    trainer.save(tmp, {"data": data_pos, "world_size": world, "config": cfg})
                    ckpt = ray.train.Checkpoint.from_directory(tmp)
                ray.train.report(metrics, checkpoint=ckpt, checkpoint_dir_name=f"checkpoint_{step:08d}")
        else:
            ray.train.report(metrics)
        window, window_steps, window_start, window_cpu = {}, 0, time.perf_counter(), time.process_time()
