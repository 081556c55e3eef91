"""ConCLVD training on Ray Train: overfitting, checkpoints, resubmission, worker failure, export.

Three TorchTrainer runs with 2 CPU workers on tiny models share one module fixture:
  B1: 4 steps;  B2: the same run submitted again up to 8 steps;
  C:  8 steps in one go, rank 1 raising after step 3 (max_failures=1).
B2 and C must end with identical trainable weights: both equal the uninterrupted trajectory only
if the weights, the optimiser state and the per-step randomness were all restored exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training.config import TrainingConfigError, load_config, parse_overrides

CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny_cpu.yaml"


def tiny_config(models: Path, storage: Path, name: str, **train: object) -> dict:
    overrides = {"model": {"models_dir": str(models)},
                 "run": {"storage_path": str(storage), "name": name},
                 "scaling": {"num_workers": 2, "cpus_per_worker": 0.5},
                 "train": {"max_steps": 8, "checkpoint_every": 2, "log_every": 2, "num_to_keep": 2,
                           "max_failures": 1, "repeat_noise": True, **train}}
    return load_config(CONFIG, overrides)


def metrics_rows(cfg: dict) -> list[dict]:
    path = Path(cfg["run"]["storage_path"]) / cfg["run"]["name"] / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(ray_session, tiny_models, tmp_path_factory):
    from training.train_conclvd import train

    storage = tmp_path_factory.mktemp("train-runs")
    resumed = tiny_config(tiny_models, storage, "resume", max_steps=4)
    train(resumed)
    after_first = sorted(p.name for p in (storage / "resume").glob("checkpoint_0*"))
    resumed = tiny_config(tiny_models, storage, "resume", max_steps=8)
    train(resumed)
    faulty = tiny_config(tiny_models, storage, "fault", max_steps=8)
    faulty["debug"].update(fail_at_step=3, fail_rank=1)
    train(faulty)
    return {"resumed": resumed, "faulty": faulty, "after_first": after_first, "storage": storage}


@pytest.mark.ray
def test_loss_falls_checkpoints_every_n_and_export(runs):
    cfg = runs["faulty"]
    rows = metrics_rows(cfg)
    # Overfitting one fixed batch: the last 2-step window is well below the first one.
    assert rows[-1]["loss"] < 0.85 * rows[0]["loss"], [r["loss"] for r in rows]
    assert rows[-1]["step"] == 8 and all(r["world_size"] == 2 for r in rows)
    assert all({"loss_diff", "loss_con", "lr", "steps_per_s", "samples_per_s"} <= set(r) for r in rows)
    # A checkpoint at every 2nd step, only the newest 2 kept on disk.
    assert all("checkpoint" in r for r in rows if r["step"] % 2 == 0)
    run = Path(cfg["run"]["storage_path"]) / cfg["run"]["name"]
    assert sorted(p.name for p in run.glob("checkpoint_0*")) == ["checkpoint_00000006", "checkpoint_00000008"]
    # The export is the last checkpoint's trainable weights and loads as a motion module.
    export = run / "motion_module.safetensors"
    final = load_file(str(run / "checkpoint_00000008" / "trainable.safetensors"))
    exported = load_file(str(export))
    assert exported.keys() == final.keys() and all(torch.equal(exported[k], final[k]) for k in final)
    from inkwalk.conclvd import load_conclvd

    model = load_conclvd(models_dir=cfg["model"]["models_dir"], motion_module=export)
    name, param = next(iter(model.trainable_state_dict().items()))
    assert torch.equal(param.detach(), final[name])


@pytest.mark.ray
def test_worker_failure_resumes_from_last_checkpoint(runs):
    cfg = runs["faulty"]
    run = Path(cfg["run"]["storage_path"]) / cfg["run"]["name"]
    assert (run / ".fault_injected_at_3").exists()  # the failure really happened
    steps = [r["step"] for r in metrics_rows(cfg)]
    assert steps == [2, 4, 6, 8]  # continuous: no restart from 0, no step reported twice
    restarts = {r["resumed_from_step"] for r in metrics_rows(cfg)}
    assert restarts == {0, 2}  # lost step 3 only: less than one checkpoint interval


@pytest.mark.ray
def test_resubmission_continues_with_identical_state(runs):
    assert runs["after_first"] == ["checkpoint_00000002", "checkpoint_00000004"]
    rows = metrics_rows(runs["resumed"])
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    assert [r["resumed_from_step"] for r in rows] == [0, 0, 4, 4]
    # Resubmitted at step 4 (B) and crashed after step 3 (C), both end on the same weights:
    # optimiser moments, LR schedule and per-step noise all continued exactly.
    storage = runs["storage"]
    b = load_file(str(storage / "resume" / "checkpoint_00000008" / "trainable.safetensors"))
    c = load_file(str(storage / "fault" / "checkpoint_00000008" / "trainable.safetensors"))
    assert all(torch.allclose(b[k], c[k], atol=1e-6) for k in b)
    exported = load_file(str(storage / "resume" / "motion_module.safetensors"))
    assert all(torch.equal(exported[k], b[k]) for k in b)  # the resubmitted run exported its final step
    b_opt = torch.load(storage / "resume" / "checkpoint_00000008" / "optimizer.pt", weights_only=True)
    c_opt = torch.load(storage / "fault" / "checkpoint_00000008" / "optimizer.pt", weights_only=True)
    assert b_opt["optimizer"]["state"].keys() == c_opt["optimizer"]["state"].keys()
    for i, state in b_opt["optimizer"]["state"].items():
        assert float(state["step"]) == 8.0
        assert torch.allclose(state["exp_avg_sq"], c_opt["optimizer"]["state"][i]["exp_avg_sq"], atol=1e-9)


def test_config_overrides_and_errors(tmp_path):
    cfg = load_config(CONFIG, ["--optim.lr", "1e-4", "--train.max_steps=7", "--data.synthetic.size", "16",
                               "--run.storage_path", str(tmp_path)])
    assert cfg["optim"]["lr"] == 1e-4 and cfg["train"]["max_steps"] == 7 and cfg["data"]["synthetic"]["size"] == 16
    assert parse_overrides(["--a.b", "[1, 2]"]) == {"a": {"b": [1, 2]}}
    with pytest.raises(TrainingConfigError, match="unknown training option 'optim.learning_rate'"):
        load_config(CONFIG, ["--optim.learning_rate", "1"])
    with pytest.raises(TrainingConfigError, match="data.shards_dir"):
        load_config(CONFIG, ["--data.source", "shards"])
    with pytest.raises(TrainingConfigError, match="mixed_precision"):
        load_config(CONFIG, ["--model.mixed_precision", "fp8"])
    with pytest.raises(TrainingConfigError, match="norm_mode"):
        load_config(CONFIG, ["--model.norm_mode", "both"])


def test_config_builds_the_sparse_causal_ablation(tiny_models, tmp_path):
    from inkwalk.conclvd.motion_module import SparseCausalAttention
    from training.engine import build_model

    cfg = tiny_config(tiny_models, tmp_path, "ablation")
    assert cfg["model"]["sparse_causal"] and cfg["model"]["norm_mode"] == "per-frame"
    cfg = load_config(CONFIG, {**cfg, "model": {**cfg["model"], "sparse_causal": False, "norm_mode": "joint"}})
    model = build_model(cfg, torch.device("cpu"))
    block = model.unet.down_blocks[0].motion_modules[0]
    assert (model.config.sparse_causal, block.norm_mode) == (False, "joint")
    assert not isinstance(block.transformer_blocks[0].attn2, SparseCausalAttention)


@pytest.mark.ray
def test_shard_batches_decode_and_resume_position(ray_session, tmp_path):
    """Frames from real Parquet shards through Ray Data, skipping what a checkpoint already consumed."""
    import numpy as np
    import pyarrow as pa

    from data_pipeline.shards import ShardWriter, read_shards
    from training.data import columns_for, shard_batches

    clips = np.random.default_rng(0).integers(0, 255, (5, 8, 16, 16, 3), dtype=np.uint8)
    rows = [{"clip_id": f"c{i}", "video": "v.mp4", "caption": f"clip {i}", "indices": list(range(8)), "fps": 24.0,
             "frames": clips[i].tobytes(), "shape": list(clips[i].shape)} for i in range(5)]
    writer = ShardWriter(str(tmp_path), encoded=False, rows_per_shard=2)
    writer.write_table(pa.Table.from_pylist(rows))
    writer.close()
    shard = read_shards(str(tmp_path), columns=columns_for("frames")).iterator()
    got = shard_batches(shard, "frames", batch_size=2, device=torch.device("cpu"), start_epoch=0, skip=1)
    seen = [next(got) for _ in range(3)]
    # 5 clips in batches of 2 (last partial batch dropped): epoch 0 has indices 0, 1; index 0 was skipped.
    assert [(e, i) for e, i, _ in seen] == [(0, 1), (1, 0), (1, 1)]
    batch = seen[1][2]
    assert batch["frames"].dtype == torch.uint8 and tuple(batch["frames"].shape) == (2, 8, 16, 16, 3)
    by_caption = {r["caption"]: clips[i] for i, r in enumerate(rows)}
    for caption, frames in zip(batch["caption"], batch["frames"]):
        assert np.array_equal(frames.numpy(), by_caption[caption])
