"""Train the ConCLVD motion module + noise adapter with Ray Train; export the motion module file.

    python -m training.train_conclvd --config training/configs/tiny_cpu.yaml [--section.key value ...]
    ray job submit --working-dir . -- python -m training.train_conclvd --config training/configs/conclvd_3090.yaml

Submitting the same `run.name` + `run.storage_path` again resumes from its latest checkpoint.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

from inkwalk.errors import InkwalkError
from training.config import export_path, load_config, run_dir
from training.engine import TRAINABLE_FILE


class TrainingFailed(InkwalkError):
    """The Ray Train run ended in an error after using up its retries."""


def _metrics_logger(path: str):
    """A Ray Train callback (runs on the controller) that prints each report and appends it to JSONL."""
    from ray.train import UserCallback

    class MetricsLog(UserCallback):
        def after_report(self, run_context: Any, metrics: list[dict], checkpoint: Any) -> None:
            row = dict(metrics[0]) if metrics else {}
            if checkpoint is not None:
                row["checkpoint"] = checkpoint.path
            with open(path, "a") as f:
                f.write(json.dumps(row) + "\n")
            shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                             if k in ("step", "loss", "loss_diff", "loss_con", "lr", "steps_per_s", "samples_per_s",
                                      "gpu_mem_gb"))
            print(f"[train] {shown}{' (checkpoint)' if checkpoint is not None else ''}", flush=True)

    return MetricsLog()


def build_trainer(cfg: dict):
    """The `TorchTrainer` for a config: scaling, storage/name (resume key), checkpoints, retries, data."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from training.loop import train_loop_per_worker

    sc = cfg["scaling"]
    resources = {"CPU": sc["cpus_per_worker"]}
    if sc["use_gpu"]:
        resources["GPU"] = sc["gpus_per_worker"]
    resources.update(sc["resources"] or {})
    datasets = None
    if cfg["data"]["source"] == "shards":
        from data_pipeline.shards import read_shards
        from training.data import columns_for

        datasets = {"train": read_shards(cfg["data"]["shards_dir"], columns=columns_for(cfg["data"]["kind"]))}
    callbacks = []
    if cfg["run"]["metrics_log"] and "://" not in str(cfg["run"]["storage_path"]):
        Path(run_dir(cfg)).mkdir(parents=True, exist_ok=True)
        callbacks.append(_metrics_logger(str(Path(run_dir(cfg)) / "metrics.jsonl")))
    run_config = ray.train.RunConfig(
        name=cfg["run"]["name"], storage_path=cfg["run"]["storage_path"],
        checkpoint_config=ray.train.CheckpointConfig(num_to_keep=cfg["train"]["num_to_keep"]),
        failure_config=ray.train.FailureConfig(max_failures=cfg["train"]["max_failures"]),
        callbacks=callbacks)
    return TorchTrainer(
        train_loop_per_worker, train_loop_config=cfg,
        scaling_config=ray.train.ScalingConfig(num_workers=sc["num_workers"], use_gpu=sc["use_gpu"],
                                               resources_per_worker=resources),
        run_config=run_config, datasets=datasets)


def export_motion_module(checkpoint_dir: str | Path, dest: str | Path) -> Path:
    """Copy the trainable weights of a checkpoint to `dest`: the file `inkwalk t2v --motion-module` loads."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.copyfile(Path(checkpoint_dir) / TRAINABLE_FILE, tmp)
    tmp.replace(dest)
    return dest


def train(cfg: dict):
    """Run (or resume) training to `train.max_steps`, then export the motion module; returns the Result."""
    import ray

    if not ray.is_initialized():
        ray.init(log_to_driver=True)
    from ray.train import TrainingFailedError

    try:
        result = build_trainer(cfg).fit()
    except TrainingFailedError as exc:
        raise TrainingFailed(f"training run {cfg['run']['name']} failed after "
                             f"{cfg['train']['max_failures']} retries: {exc}") from None
    if result.checkpoint is None:
        raise TrainingFailed(f"training run {cfg['run']['name']} finished without a checkpoint")
    with result.checkpoint.as_directory() as folder:
        export_motion_module(folder, export_path(cfg))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.train_conclvd",
        description="Train the ConCLVD motion module and noise adapter on Ray Train. Every config option "
                    "can be overridden as --section.key value (e.g. --train.max_steps 100).")
    parser.add_argument("--config", required=True, help="YAML file (or the name of a bundled config)")
    args, rest = parser.parse_known_args(argv)
    try:
        cfg = load_config(args.config, rest)
        result = train(cfg)
    except InkwalkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    metrics = result.metrics or {}
    print(f"done: step {metrics.get('step')}, loss {metrics.get('loss')}, "
          f"motion module -> {export_path(cfg)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
