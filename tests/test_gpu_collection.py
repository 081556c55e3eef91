"""benchmarks/gpu_collection.py cannot rot: its CPU dry run renders both ways, and the full-size
networks have the published parameter counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from benchmarks import gpu_collection
from inkwalk.walk_settings import walk_frame_count


@pytest.mark.parametrize("build, published_millions", [
    ("vision_encoder", 1845),  # OpenCLIP ViT-bigG/14 image tower: 1.84 B
    ("decoder_unet", 1220),    # Kandinsky 2.2 model card: U-Net 1.22 B
    ("movq", 67),              # Kandinsky 2.2 model card: MoVQ 67 M
])
def test_full_size_networks_have_the_published_sizes(build, published_millions):
    from benchmarks import full_size_models

    with torch.device("meta"):
        model = getattr(full_size_models, build)()
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(millions - published_millions) / published_millions < 0.05


def test_ray_config_is_one_replica_per_model_on_one_gpu(tmp_path):
    config = yaml.safe_load(gpu_collection.ray_config(tmp_path / "c.yaml", gpu=True).read_text())
    deployments = config["applications"][0]["deployments"]
    assert {d["num_replicas"] for d in deployments} == {1}
    assert not any("autoscaling_config" in d or "resources" in d["ray_actor_options"] for d in deployments)
    assert sum(d["ray_actor_options"].get("num_gpus", 0) for d in deployments) <= 1


def test_without_cuda_and_without_dry_run_it_fails_in_one_line(tmp_path):
    hidden = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no CUDA device, on a GPU machine too
    run = subprocess.run([sys.executable, "-m", "benchmarks.gpu_collection", "--out", str(tmp_path)],
                         capture_output=True, text=True, env=hidden)
    assert run.returncode == 1
    assert run.stderr.strip().count("\n") == 0 and "no CUDA device" in run.stderr


@pytest.mark.slow
@pytest.mark.ray
def test_dry_run_renders_both_ways_and_prints_the_table(tmp_path):
    run = subprocess.run([sys.executable, "-m", "benchmarks.gpu_collection", "--dry-run", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=540)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| Ray, one replica per model |" in run.stdout and "| authors' way, process per pair |" in run.stdout
    report = json.loads((tmp_path / "gpu_collection.json").read_text())
    (row,) = report["rows"]
    plan = gpu_collection.plans(dry_run=True)[0]
    assert row["ray"]["frames"] == walk_frame_count(plan.paintings, plan.settings)
    assert row["authors"]["frames"] == (plan.paintings - 1) * walk_frame_count(2, plan.settings)
    for way in ("ray", "authors"):
        assert row[way]["wall_s"] > 0 and row[way]["fps"] > 0 and row[way]["gpu_peak_mib"] is None
    assert row["ratio"] == pytest.approx(row["authors"]["wall_s"] / row["ray"]["wall_s"])
    assert set(row["parity"]) == {"film_bf16_psnr_db", "x4plus_bfloat16_rel_err", "decoder_unet_bfloat16_rel_err"}
    gpu_collection.check_parity(row["parity"])  # the CPU bf16 stand-in already meets the CUDA bounds


def test_full_size_writer_leaves_weights_the_loaders_read(tmp_path, monkeypatch):
    """write_full_size's wiring (pipelines, FILM file, x4plus layout) with the three billion-weight
    networks swapped for small ones of the same interfaces; FILM and x4plus are written full size."""
    from diffusers import UNet2DConditionModel, VQModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from benchmarks import full_size_models
    from inkwalk.interpolate.film import load_film
    from inkwalk.keyframes import KandinskyKeyframer
    from inkwalk.tiny_models import make_tiny
    from inkwalk.upscale import load_realesrgan

    monkeypatch.setattr(full_size_models, "vision_encoder", lambda: CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
        projection_dim=full_size_models.EMBED_DIM, patch_size=14)))
    monkeypatch.setattr(full_size_models, "decoder_unet", lambda: UNet2DConditionModel(
        in_channels=4, out_channels=8, addition_embed_type="image", block_out_channels=(32, 64),
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn", layers_per_block=1,
        encoder_hid_dim=full_size_models.EMBED_DIM, encoder_hid_dim_type="image_proj", cross_attention_dim=32,
        attention_head_dim=4, resnet_time_scale_shift="scale_shift", class_embed_type=None))
    monkeypatch.setattr(full_size_models, "movq", lambda: VQModel(
        block_out_channels=[32, 64], down_block_types=["DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
        up_block_types=["AttnUpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, layers_per_block=1,
        norm_num_groups=8, norm_type="spatial", num_vq_embeddings=12, vq_embed_dim=4))
    make_tiny(tmp_path)
    full_size_models.write_full_size(tmp_path)
    keyframer = KandinskyKeyframer.load(models_dir=tmp_path, device="cpu")
    assert keyframer.prior.image_encoder.config.projection_dim == full_size_models.EMBED_DIM
    assert sum(p.numel() for p in load_film(models_dir=tmp_path).parameters()) > 30e6  # FILM Style, not tiny
    assert load_realesrgan(models_dir=tmp_path, device="cpu", runtime="torch").scale == 4
