"""Whether models can load is answered in seconds, from the models folder, the caches and a bounded probe."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from inkwalk.availability import ModelsUnavailableError, require_models, unreachable
from inkwalk.model_registry import RAFT_LARGE_URL, RAFT_SMALL_URL


def test_registry_urls_are_torchvisions_own():
    from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights

    assert RAFT_LARGE_URL == Raft_Large_Weights.C_T_SKHT_V2.url
    assert RAFT_SMALL_URL == Raft_Small_Weights.C_T_V2.url


def test_torch_hub_dir_without_importing_torch_matches_torch():
    code = """
import os, sys
from inkwalk.availability import torch_hub_dir
os.environ.pop("TORCH_HOME", None)
ours = [torch_hub_dir()]
os.environ["TORCH_HOME"] = "/tmp/somewhere-else"
ours.append(torch_hub_dir())
assert "torch" not in sys.modules
import torch.hub
ours = [str(p) for p in ours]
os.environ.pop("TORCH_HOME")
print(ours[0] == torch.hub.get_dir(), end=" ")
os.environ["TORCH_HOME"] = "/tmp/somewhere-else"
print(ours[1] == torch.hub.get_dir())
"""
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() \
        == ["True", "True"]


def test_local_models_need_no_network(tiny_models, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:1")  # would fail if asked
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.perf_counter()
    require_models(["sd15-unet", "clip-vit-large-patch14", "realesrgan-x4plus", "film-style"], tiny_models)
    assert time.perf_counter() - start < 0.5


def test_a_hub_cache_copy_counts_as_available(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelsUnavailableError, match="sd15-vae"):
        require_models(["sd15-vae"], tmp_path / "models")
    (tmp_path / "models--stable-diffusion-v1-5--stable-diffusion-v1-5" / "snapshots" / "abc123" / "vae").mkdir(
        parents=True)
    require_models(["sd15-vae"], tmp_path / "models")  # offline, but cached


def test_offline_refusal_names_every_missing_model_and_the_way_out(tmp_path):
    with pytest.raises(ModelsUnavailableError) as info:
        require_models(["film-style", "sd15-unet"], tmp_path, hint=" -- or use --preset offline")
    text = str(info.value)
    assert "film-style: no public download" in text and "sd15-unet: HF_HUB_OFFLINE is set" in text
    assert "hf download stable-diffusion-v1-5" not in text.split("To provide")[0]
    assert text.endswith("-- or use --preset offline") and "\n" not in text


def test_unreachable_hosts_are_found_within_the_timeout():
    import socket

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        hosts = {f"http://127.0.0.1:{silent.getsockname()[1]}", "http://127.0.0.1:1"}
        start = time.perf_counter()
        assert unreachable(hosts, timeout_s=1.0) == hosts
        assert time.perf_counter() - start < 2.0
