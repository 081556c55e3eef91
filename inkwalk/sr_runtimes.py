"""Where a super-resolution network runs: PyTorch, or a CPU inference runtime on its ONNX export.

On CPU the same network runs faster in a dedicated runtime than in PyTorch's eager mode
(docs/benchmarks.md, "Upscaling runtimes"). The ONNX graph is exported from the very weights
spandrel loaded, so no new download is needed and the runtimes compute the same function: the
parity tests hold every runtime to >= 80 dB of the PyTorch path and of the ncnn runtime.

The export lives beside the weights, named by a fingerprint of the weights' bytes and of the
exporter, so new weights (or a new torch) are exported again, never served stale; it is written
to a temporary sibling and renamed, so a killed export leaves no torn file.

Threads: a runtime starts as many threads as it is told; by default the CPUs this process may run
on (its affinity), and a Serve replica passes its own CPU share so that a replica given a quarter
of a CPU does not start one thread per core of the host.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from inkwalk.errors import InkwalkError

RUNTIMES = ("torch", "onnxruntime", "openvino")
# Measured per model on 2 CPU threads (benchmarks/upscale.py --runtimes): the fastest runtime whose
# output stays within 1 level of the PyTorch path and of ncnn.
CPU_RUNTIME = {"realesrgan": "openvino", "realesrgan-compact": "openvino"}
RUNTIME_PACKAGE = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
ONNX_OPSET = 17


class RuntimeUnavailable(InkwalkError):
    """A runtime that cannot run here: its package is missing or it does not run on the device."""


class SRNet(Protocol):
    """One network call: uint8 N×h×w×3 frames -> float32 N×(h·s)×(w·s)×3 in [0, 1]."""


    runtime: str

    def __call__(self, frames: np.ndarray) -> np.ndarray: ...


def affinity_threads() -> int:
    """The CPUs this process may run on (its scheduler affinity, not the host's core count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def threads_for_share(num_cpus: float | None) -> int:
    """Threads for a worker granted `num_cpus` CPUs (a Ray/Serve resource share), at least one."""
    if not num_cpus or num_cpus <= 0:
        return affinity_threads()
    return max(1, min(affinity_threads(), math.ceil(num_cpus)))


def choose_runtime(backend: str, device: str, runtime: str | None = None) -> str:
    """The runtime that runs `backend` on `device`: the explicit one, else torch on CUDA and the
    measured fastest on CPU."""
    if runtime is None:
        return CPU_RUNTIME.get(backend, "torch") if device == "cpu" else "torch"
    if runtime not in RUNTIMES:
        raise RuntimeUnavailable(f"unknown runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}")
    if runtime != "torch" and device != "cpu":
        raise RuntimeUnavailable(f"runtime {runtime} runs on the CPU only; use --device cpu or --runtime torch")
    return runtime


def _require(runtime: str) -> None:
    import importlib.util

    package = RUNTIME_PACKAGE[runtime]
    if importlib.util.find_spec(package.replace("-", "_")) is None:
        raise RuntimeUnavailable(f"runtime {runtime} is not installed: pip install {package} (or --runtime torch)")


def _to_nchw(frames: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float32) * np.float32(1 / 255)


def _to_nhwc(out: np.ndarray) -> np.ndarray:
    return np.clip(out, 0.0, 1.0, out=out).transpose(0, 2, 3, 1)


class TorchNet:
    """The spandrel model in PyTorch (the CUDA path, in fp16 where the model allows; the reference on CPU)."""

    runtime = "torch"

    def __init__(self, descriptor, device: str, threads: int | None = None) -> None:
        import torch

        self.device = torch.device(device)
        if threads and self.device.type == "cpu":
            torch.set_num_threads(threads)
        self.threads = torch.get_num_threads()
        half = self.device.type == "cuda" and descriptor.supports_half
        self.dtype = torch.float16 if half else torch.float32
        self.model = descriptor.to(self.device).to(self.dtype).eval()

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).to(self.dtype) / 255.0
        with torch.inference_mode():
            y = self.model(x).clamp_(0, 1)
            return y.permute(0, 2, 3, 1).float().cpu().numpy()


class OnnxRuntimeNet:
    """The ONNX export in ONNX Runtime's CPU provider, all graph optimisations on."""

    runtime = "onnxruntime"

    def __init__(self, onnx_path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        self.threads = options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return _to_nhwc(self.session.run(None, {self.input: _to_nchw(frames)})[0])


class OpenVinoNet:
    """The ONNX export compiled by OpenVINO for the CPU, in fp32 (its default on AMX CPUs is bf16,
    which would break the parity bound)."""

    runtime = "openvino"

    def __init__(self, onnx_path: Path, threads: int) -> None:
        import openvino as ov

        self.threads = threads
        compiled = ov.Core().compile_model(str(onnx_path), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                                   "INFERENCE_PRECISION_HINT": "f32"})
        self.request = compiled.create_infer_request()

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return _to_nhwc(self.request.infer({0: _to_nchw(frames)})[0].copy())


def cuda_present() -> bool:
    """Whether PyTorch could use CUDA here, without importing torch when the NVIDIA driver is absent
    (importing torch costs about a CPU-second of a short `inkwalk upscale`)."""
    import sys

    if "torch" not in sys.modules and not Path("/proc/driver/nvidia/version").exists():
        return False
    import torch

    return torch.cuda.is_available()


def export_fingerprint(weights: Path) -> str:
    """16 hex digits of the weights' bytes, the torch version and the opset: what the export depends on."""
    from importlib.metadata import version

    digest = hashlib.sha256(f"torch {version('torch')} opset {ONNX_OPSET}\n".encode())
    with open(weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def export_path(weights: Path) -> Path:
    """Where the ONNX export of `weights` lives: beside them, named by their fingerprint."""
    return weights.with_name(f"{weights.stem}.{export_fingerprint(weights)}.onnx")


def onnx_export(descriptor, weights: Path) -> Path:
    """The ONNX export of `descriptor` (loaded from `weights`) at `export_path`, made when missing.

    Dynamic batch, height and width, so one file serves every tile and frame size. Exports of
    other fingerprints (older weights) are removed.
    """
    import torch

    from inkwalk.atomic import atomic_output

    target = export_path(weights)
    if target.is_file():
        return target
    model = descriptor.model.to("cpu").float().eval()
    dynamic = {0: "batch", 2: "height", 3: "width"}
    try:
        with atomic_output(target) as tmp, torch.inference_mode():
            torch.onnx.export(model, torch.rand(1, 3, 32, 32), str(tmp), input_names=["frames"],
                              output_names=["upscaled"], opset_version=ONNX_OPSET, dynamo=False,
                              dynamic_axes={"frames": dynamic, "upscaled": dynamic})
    except OSError as exc:
        raise RuntimeUnavailable(f"cannot write the ONNX export beside the weights ({target}): {exc}; "
                                 "use --runtime torch or a writable --models folder") from None
    for stale in weights.parent.glob(f"{weights.stem}.*.onnx"):
        if stale != target:
            stale.unlink(missing_ok=True)
    return target


def open_export(runtime: str, onnx_path: Path, threads: int | None = None) -> SRNet:
    """An ONNX export in `runtime` (onnxruntime or openvino) on `threads` CPU threads."""
    _require(runtime)
    threads = threads or affinity_threads()
    return OnnxRuntimeNet(onnx_path, threads) if runtime == "onnxruntime" else OpenVinoNet(onnx_path, threads)


def native_scale(net: SRNet) -> int:
    """The network's own factor, from one 8x8 call (which also warms the runtime up)."""
    return net(np.zeros((1, 8, 8, 3), np.uint8)).shape[1] // 8


def load_net(runtime: str, descriptor, weights: Path, device: str, threads: int | None = None) -> SRNet:
    """The network of `descriptor` (loaded from `weights`) in `runtime` (see `choose_runtime`)."""
    if runtime == "torch":
        return TorchNet(descriptor, device, threads)
    return open_export(runtime, onnx_export(descriptor, weights), threads)
