"""Model registry and tiny-model factory: what a user sees when weights are present, local, or missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inkwalk.cli import main
from inkwalk.model_registry import REGISTRY
from inkwalk.models import ModelNotFoundError, load_pretrained, locate, weights_file

INKWALK = Path(sys.executable).with_name("inkwalk")

# Runs in a fresh interpreter: every tiny model through its real loader, offline, plus the checks that
# make the tiny models usable by the rest of the project (embedding sizes, VAE factor 8, AnimateDiff).
LOAD_ALL = r"""
import json, sys
import numpy as np, torch
from diffusers import (AutoencoderKL, DDIMScheduler, KandinskyV22Pipeline, KandinskyV22PriorPipeline,
                       MotionAdapter, UNet2DConditionModel, UNetMotionModel)
from transformers import CLIPModel, CLIPProcessor, CLIPTextModel, CLIPTokenizer
from torchvision.models.optical_flow import raft_large, raft_small
import spandrel
from inkwalk.interpolate.film import FilmNet, load_film
from inkwalk.models import load_pretrained, weights_file

d = sys.argv[1]
out = {}
g = torch.Generator().manual_seed(0)
prior = load_pretrained("kandinsky-2-2-prior", KandinskyV22PriorPipeline, models_dir=d)
decoder = load_pretrained("kandinsky-2-2-decoder", KandinskyV22Pipeline, models_dir=d)
emb = prior("a red boat", num_inference_steps=2, generator=g)
out["prior_embed"] = list(emb.image_embeds.shape)
out["decoder_hid_dim"] = decoder.unet.config.encoder_hid_dim
img = decoder(image_embeds=emb.image_embeds, negative_image_embeds=emb.negative_image_embeds, height=64,
              width=64, num_inference_steps=2, generator=g, output_type="np").images
out["keyframe"] = list(img.shape)

tok = load_pretrained("sd15-tokenizer", CLIPTokenizer, models_dir=d)
ids = tok("a misty mountain river at dawn").input_ids
out["tokenizer_len"] = len(tok)
out["eos_count"] = ids.count(tok.eos_token_id)
out["n_ids"] = len(ids)
text = load_pretrained("sd15-text-encoder", CLIPTextModel, models_dir=d)
unet = load_pretrained("sd15-unet", UNet2DConditionModel, models_dir=d)
vae = load_pretrained("sd15-vae", AutoencoderKL, models_dir=d)
sched = load_pretrained("sd15-scheduler", DDIMScheduler, models_dir=d)
adapter = load_pretrained("animatediff-motion-adapter", MotionAdapter, models_dir=d)
enc = tok(["a river"], padding="max_length", max_length=77, return_tensors="pt")
hidden = text(enc.input_ids).last_hidden_state
out["text_hidden"] = hidden.shape[-1]
out["unet_cross_dim"] = unet.config.cross_attention_dim
with torch.no_grad():
    lat = vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mean
    out["vae_latent"] = list(lat.shape)
    out["vae_scaling"] = vae.config.scaling_factor
    motion = UNetMotionModel.from_unet2d(unet, adapter)
    frames = 2
    noise = motion(torch.randn(1, 4, frames, 8, 8), 10, hidden.repeat_interleave(frames, 0)).sample
out["motion_out"] = list(noise.shape)
out["betas"] = [sched.config.beta_schedule, sched.config.beta_start, sched.config.beta_end]

clip = load_pretrained("clip-vit-large-patch14", CLIPModel, models_dir=d)
proc = load_pretrained("clip-vit-large-patch14", CLIPProcessor, models_dir=d)
inputs = proc(text=["a river"], images=[np.zeros((40, 50, 3), np.uint8)], return_tensors="pt", padding=True)
with torch.no_grad():
    res = clip(**inputs)
out["clip"] = [res.text_embeds.shape[-1], res.image_embeds.shape[-1]]

for name, factory in (("raft-large", raft_large), ("raft-small", raft_small)):
    model = factory(weights=None)
    missing = model.load_state_dict(torch.load(weights_file(name, models_dir=d), weights_only=True))
    out[name] = [len(missing.missing_keys), len(missing.unexpected_keys)]

sr = spandrel.ModelLoader().load_from_file(weights_file("realesrgan-x4plus", models_dir=d))
with torch.no_grad():
    up = sr(torch.rand(1, 3, 12, 10))
out["esrgan"] = [sr.architecture.id, sr.scale, list(up.shape)]
compact = spandrel.ModelLoader().load_from_file(weights_file("realesr-animevideov3", models_dir=d))
out["compact"] = [compact.architecture.id, compact.scale]
out["film"] = isinstance(load_film(models_dir=d), FilmNet)
print("RESULT " + json.dumps(out))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "INKWALK_MODELS"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", INKWALK_NO_PROGRESS="1")
    return env


@pytest.fixture(scope="module")
def cli_tiny(tmp_path_factory) -> Path:
    """Tiny models written by the user-facing command, in its own process."""
    root = tmp_path_factory.mktemp("cli-tiny") / "models"
    proc = subprocess.run([str(INKWALK), "models", "make-tiny", str(root)], env=_env(), capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"--models {root}" in proc.stdout
    return root


def test_make_tiny_layout(cli_tiny: Path) -> None:
    for spec in REGISTRY.values():
        p = cli_tiny / spec.local
        assert (p.is_file() if spec.kind == "file" else p.is_dir()), spec.name
    assert (cli_tiny / "stable-diffusion-v1-5" / "model_index.json").is_file()
    assert (cli_tiny / "raft-large" / Path(REGISTRY["raft-large"].default).name).is_file()


def test_every_tiny_model_loads_offline_in_fresh_process(cli_tiny: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", LOAD_ALL, str(cli_tiny)], env=_env(), capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert out["prior_embed"] == [1, out["decoder_hid_dim"]]
    assert out["keyframe"] == [1, 64, 64, 3]
    assert out["tokenizer_len"] > 2
    assert out["eos_count"] == 1 and out["n_ids"] > 7  # every word tokenized, nothing mapped to unknown
    assert out["text_hidden"] == out["unet_cross_dim"]
    assert out["vae_latent"] == [1, 4, 8, 8] and out["vae_scaling"] == pytest.approx(0.18215)
    assert out["motion_out"] == [1, 4, 2, 8, 8]
    assert out["betas"] == ["scaled_linear", 0.00085, 0.012]
    assert out["clip"][0] == out["clip"][1]
    assert out["raft-large"] == [0, 0] and out["raft-small"] == [0, 0]
    assert out["esrgan"] == ["ESRGAN", 4, [1, 3, 48, 40]]
    assert out["compact"] == ["Compact", 4]
    assert out["film"] is True


def test_missing_model_error_names_model_places_and_override(tmp_path: Path) -> None:
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTokenizer

    empty = tmp_path / "models"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError) as err:
        load_pretrained("sd15-unet", UNet2DConditionModel, models_dir=empty, cache_dir=tmp_path / "hf")
    msg = str(err.value)
    for part in ("sd15-unet", str(empty / "stable-diffusion-v1-5" / "unet"), "stable-diffusion-v1-5/stable-diffusion-v1-5",
                 "--models DIR", "INKWALK_MODELS", "hf download"):
        assert part in msg, part
    # transformers hands back a 2-token tokenizer offline instead of failing: the registry must not
    with pytest.raises(ModelNotFoundError, match="sd15-tokenizer.*2 tokens"):
        load_pretrained("sd15-tokenizer", CLIPTokenizer, models_dir=empty, cache_dir=tmp_path / "hf")


def test_missing_weights_file_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("INKWALK_MODELS", raising=False)
    with pytest.raises(ModelNotFoundError) as err:
        weights_file("raft-large")
    msg = str(err.value)
    assert "raft-large" in msg and "INKWALK_MODELS" in msg and "--models DIR" in msg
    assert REGISTRY["raft-large"].default in msg and str(tmp_path / "torch") in msg
    with pytest.raises(ModelNotFoundError, match="film-style.*python -m inkwalk.interpolate.film convert"):
        weights_file("film-style", models_dir=tmp_path)
    with pytest.raises(ModelNotFoundError, match=r"realesrgan-x4plus.*given path"):
        weights_file("realesrgan-x4plus", path=tmp_path / "nope.pth")


def test_locate_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    local_file = models / REGISTRY["raft-small"].local
    local_file.parent.mkdir(parents=True)
    local_file.write_bytes(b"x")
    (models / "stable-diffusion-v1-5" / "vae").mkdir(parents=True)
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"y")
    monkeypatch.delenv("INKWALK_MODELS", raising=False)

    assert locate("raft-small") == REGISTRY["raft-small"].default
    assert locate("raft-small", models_dir=models) == str(local_file)
    assert locate("raft-small", path=explicit, models_dir=models) == str(explicit)
    assert locate("raft-large", models_dir=models) == REGISTRY["raft-large"].default
    assert locate("sd15-vae", models_dir=models) == str(models / "stable-diffusion-v1-5" / "vae")
    assert locate("sd15-unet", models_dir=models) == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    # a whole SD 1.5 folder given as the path resolves to the component inside it
    assert locate("sd15-vae", path=models / "stable-diffusion-v1-5") == str(models / "stable-diffusion-v1-5" / "vae")
    monkeypatch.setenv("INKWALK_MODELS", str(models))
    assert locate("raft-small") == str(local_file)
    assert locate("raft-small", models_dir=tmp_path / "elsewhere") == REGISTRY["raft-small"].default
    assert weights_file("raft-small") == local_file


def test_models_list_shows_sources_and_local_copies(cli_tiny: Path, tmp_path: Path, capsys) -> None:
    assert main(["models", "list", "--models", str(cli_tiny)]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name, spec in REGISTRY.items():
        row = next(line for line in lines if line.startswith(name + " "))
        assert str(cli_tiny / spec.local) in row
        assert (spec.default or "convert the official release") in row
    partial = tmp_path / "partial"
    (partial / "raft-small").mkdir(parents=True)
    (partial / REGISTRY["raft-small"].local).write_bytes(b"x")
    assert main(["models", "list", "--models", str(partial)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert str(partial / REGISTRY["raft-small"].local) in next(x for x in lines if x.startswith("raft-small "))
    assert next(x for x in lines if x.startswith("raft-large ")).rstrip().endswith(" -")


def test_model_not_found_error_survives_pickling_between_processes():
    import pickle

    from inkwalk.models import ModelNotFoundError

    err = ModelNotFoundError("raft-large", ["/a", "/b"], "pass --models DIR", "offline")
    back = pickle.loads(pickle.dumps(err))
    assert (back.name, back.looked, str(back)) == ("raft-large", ["/a", "/b"], str(err))
