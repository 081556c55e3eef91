"""Super-resolution runtimes: the automatic choice, thread sizing, the cached ONNX export, clear errors.

Parity of every runtime with PyTorch and ncnn on the real weights is in tests/test_fetch.py.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from inkwalk.errors import InkwalkError
from inkwalk.sr_runtimes import CPU_RUNTIME, affinity_threads, choose_runtime, threads_for_share
from inkwalk.upscale import get_upscaler


def test_cpu_gets_the_measured_runtime_and_cuda_gets_torch():
    assert choose_runtime("realesrgan-compact", "cpu") == CPU_RUNTIME["realesrgan-compact"] != "torch"
    assert choose_runtime("realesrgan", "cuda") == "torch"
    assert choose_runtime("realesrgan", "cpu", "torch") == "torch"
    with pytest.raises(InkwalkError, match="CPU only"):
        choose_runtime("realesrgan", "cuda", "onnxruntime")
    with pytest.raises(InkwalkError, match="unknown runtime 'tensorrt'"):
        choose_runtime("realesrgan", "cpu", "tensorrt")


def test_threads_follow_the_cpu_share_not_the_host():
    assert affinity_threads() == len(os.sched_getaffinity(0))
    assert threads_for_share(0.25) == 1  # a quarter-CPU Serve replica: one thread, never one per host core
    assert threads_for_share(1.5) == min(2, affinity_threads())
    assert threads_for_share(1000) == affinity_threads()
    assert threads_for_share(None) == affinity_threads()


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_runtime_matches_torch_and_reuses_its_export(tiny_models, tmp_path, runtime):
    import shutil

    models = tmp_path / "models"
    shutil.copytree(tiny_models / "realesr-animevideov3", models / "realesr-animevideov3")
    frames = np.random.default_rng(0).integers(0, 256, (2, 21, 30, 3), dtype=np.uint8)
    torch_out = get_upscaler("realesrgan-compact", models_dir=models, device="cpu", runtime="torch").upscale_native(
        frames)
    up = get_upscaler("realesrgan-compact", models_dir=models, device="cpu", runtime=runtime, threads=1, tile=16)
    assert up.describe()["runtime"] == runtime
    assert np.abs(up.upscale_native(frames) - torch_out).max() < 1e-4
    exports = sorted((models / "realesr-animevideov3").glob("*.onnx"))
    assert len(exports) == 1
    stamp = exports[0].stat().st_mtime_ns
    get_upscaler("realesrgan-compact", models_dir=models, device="cpu", runtime=runtime)
    assert exports[0].stat().st_mtime_ns == stamp  # the export is reused, not redone
    # new weights (another fingerprint): exported again, the stale export removed
    weights = next((models / "realesr-animevideov3").glob("*.safetensors"))
    from safetensors.numpy import load_file, save_file

    state = load_file(weights)
    save_file({k: v * 0.5 for k, v in state.items()}, weights)
    get_upscaler("realesrgan-compact", models_dir=models, device="cpu", runtime=runtime)
    again = sorted((models / "realesr-animevideov3").glob("*.onnx"))
    assert len(again) == 1 and again != exports
    assert not list((models / "realesr-animevideov3").glob(".*tmp*"))  # nothing torn left behind


def test_missing_runtime_package_is_one_clear_line(tiny_models, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(InkwalkError, match=r"^runtime openvino is not installed: pip install openvino"):
        get_upscaler("realesrgan-compact", models_dir=tiny_models, device="cpu", runtime="openvino")


def test_cli_runtime_option(tiny_models, tmp_path):
    from inkwalk.cli import main
    from inkwalk.video import read_image, save_image

    save_image(tmp_path / "a.png", np.random.default_rng(1).integers(0, 256, (20, 24, 3), dtype=np.uint8))
    outs = {}
    for runtime in ("torch", "onnxruntime"):
        out = tmp_path / f"{runtime}.png"
        assert main(["upscale", str(tmp_path / "a.png"), "-o", str(out), "--backend", "realesrgan-compact",
                     "--models", str(tiny_models), "--runtime", runtime, "--threads", "1"]) == 0
        outs[runtime] = read_image(out).astype(int)
    assert outs["torch"].shape == (80, 96, 3) and np.abs(outs["torch"] - outs["onnxruntime"]).max() <= 1


@pytest.mark.ray
def test_a_quarter_cpu_serve_replica_runs_one_thread(ray_session, tiny_models):
    """The Upscaler replica sizes its runtime by its own CPU share, not by the host's cores."""
    from ray import serve

    from services.deployments import Upscaler

    app = Upscaler.options(ray_actor_options={"num_cpus": 0.25}).bind(backend="realesrgan-compact",
                                                                      models_dir=str(tiny_models), device="cpu")
    handle = serve.run(app, name="sr-threads", route_prefix=None)
    try:
        described = handle.runtime.remote().result()
        assert described["threads"] == 1 and described["runtime"] == CPU_RUNTIME["realesrgan-compact"]
        frames = np.zeros((3, 12, 16, 3), np.uint8)
        frames[2] = 200
        assert handle.upscale.remote(frames, (64, 48)).result().shape == (3, 48, 64, 3)
        assert handle.runtime.remote().result()["frames_upscaled"] == 2  # the repeated frame once
    finally:
        serve.delete("sr-threads")


def test_cli_runtime_mistakes_are_one_line(tiny_models, tmp_path, capsys):
    from inkwalk.cli import main
    from inkwalk.video import save_image

    save_image(tmp_path / "a.png", np.zeros((20, 24, 3), np.uint8))
    args = ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "b.png"), "--backend", "realesrgan-compact",
            "--models", str(tiny_models)]
    assert main([*args, "--runtime", "openvino", "--device", "cuda"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "runs on the CPU only" in err and "models fetch" not in err
    assert main([*args, "--threads", "0"]) == 1
    assert "--threads 0" in capsys.readouterr().err
