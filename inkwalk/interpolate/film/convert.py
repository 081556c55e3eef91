"""Official FILM checkpoint -> our weights file, and loading that file.

The official release (google-research/frame-interpolation) ships TF2 SavedModels. Their Keras
variables are named after the layers (``var.name``), e.g.::

    feat_net/sub_extractor/cfeat_conv_3/kernel:0              (3, 3, 128, 128)   HWIO
    predict_flow/flow_predictor_1/conv_2/bias:0               (64,)
    predict_flow/flow_predictor_shared/conv_4/kernel:0        (1, 1, 128, 2)
    fusion/conv2d_7/kernel:0                                  (3, 3, 1162, 128)

The mapping to `FilmNet` is fixed by name and checked by shape:

- ``feat_net/[sub_extractor/]cfeat_conv_N``        -> ``feat_net.convs.N``
- ``predict_flow/flow_predictor_I/conv_J``         -> ``predict_flow.predictors.I.J``
- ``predict_flow/flow_predictor_shared/conv_J``    -> ``predict_flow.shared.J``
- ``fusion/conv2d[_K]`` (Keras auto-names, in creation order: per level 0, 1, ... the 2×2
  up-conv and two 3×3 convs, then the 1×1 output conv) -> the K-th of them after sorting by K
  (so the names work whatever Keras' counter started at) -> ``fusion.levels.L.{0,1,2}`` or
  ``fusion.output_conv``.

``kernel`` (H, W, in, out) becomes ``weight`` (out, in, H, W); ``bias`` stays. Every variable must be
placed exactly once and every parameter filled, or `FilmCheckpointError` says which ones.

Our file: safetensors, float32, with metadata ``format = "inkwalk-film"`` and ``config`` = the
`FilmConfig` as JSON, so `load_film` rebuilds the right architecture.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from inkwalk.errors import InkwalkError
from inkwalk.interpolate.film.net import STYLE_CONFIG, TINY_CONFIG, FilmConfig, FilmNet

FILE_FORMAT = "inkwalk-film"
MODEL_NAME = "film-style"

_FEAT = re.compile(r"feat_net/(?:sub_extractor/)?cfeat_conv_(\d+)/(kernel|bias)$")
_FLOW = re.compile(r"predict_flow/flow_predictor_(\d+|shared)/conv_(\d+)/(kernel|bias)$")
_FUSION = re.compile(r"fusion/conv2d(?:_(\d+))?/(kernel|bias)$")
_ROOTS = re.compile(r"(?:^|/)((?:feat_net|predict_flow|fusion)/.*)$")


class FilmCheckpointError(InkwalkError):
    """A FILM checkpoint that is missing, unreadable or does not match the architecture."""


def _param(kind: str) -> str:
    return "weight" if kind == "kernel" else "bias"


def _official_key(name: str) -> str:
    """Strip the ``:0`` suffix and anything above the three FILM layers (e.g. a model scope)."""
    name = name.split(":")[0]
    match = _ROOTS.search(name)
    return match.group(1) if match else name


def official_name_map(names: list[str], config: FilmConfig = STYLE_CONFIG) -> dict[str, str]:
    """official variable name -> our state-dict key; raises if a name has no place."""
    keys = {name: _official_key(name) for name in names}
    fusion_ids = sorted({int(m.group(1) or 0) for k in keys.values() if (m := _FUSION.match(k))})
    fusion_order = {k: i for i, k in enumerate(fusion_ids)}
    out_index = 3 * (config.fusion_pyramid_levels - 1)
    mapping, unknown = {}, []
    for name, key in keys.items():
        if m := _FEAT.match(key):
            mapping[name] = f"feat_net.convs.{int(m.group(1))}.{_param(m.group(2))}"
        elif m := _FLOW.match(key):
            which = "shared" if m.group(1) == "shared" else f"predictors.{int(m.group(1))}"
            mapping[name] = f"predict_flow.{which}.{int(m.group(2))}.{_param(m.group(3))}"
        elif m := _FUSION.match(key):
            order = fusion_order[int(m.group(1) or 0)]
            module = "fusion.output_conv" if order == out_index else f"fusion.levels.{order // 3}.{order % 3}"
            mapping[name] = f"{module}.{_param(m.group(2))}"
        else:
            unknown.append(name)
    if unknown:
        raise FilmCheckpointError(f"{len(unknown)} checkpoint variables are not FILM film_net weights: "
                                  f"{sorted(unknown)[:8]}; pass only the model's variables")
    return mapping


def read_official_variables(source: str | Path) -> dict[str, np.ndarray]:
    """Variables of an official checkpoint: a ``.npz`` / ``.safetensors`` of ``{var.name: array}``,
    or a TF SavedModel folder (needs ``tensorflow`` installed)."""
    path = Path(source)
    if not path.exists():
        raise FilmCheckpointError(f"FILM checkpoint {path} does not exist")
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise FilmCheckpointError(f"{path} is a folder but not a TF SavedModel (no saved_model.pb); give "
                                      "the official film_net/Style/saved_model folder or an .npz of its variables")
        try:
            import tensorflow as tf
        except ImportError as exc:
            raise FilmCheckpointError(
                f"reading the TF SavedModel {path} needs tensorflow (pip install tensorflow), or dump its "
                "variables elsewhere: np.savez('film.npz', **{v.name: v.numpy() for v in "
                "tf.saved_model.load(PATH).keras_api.variables})") from exc
        model = tf.saved_model.load(str(path))
        return {v.name: v.numpy() for v in model.keras_api.variables}
    try:
        if path.suffix == ".npz":
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        if path.suffix == ".safetensors":
            from safetensors.numpy import load_file

            return load_file(str(path))
    except (OSError, ValueError) as exc:
        raise FilmCheckpointError(f"cannot read FILM checkpoint {path}: {exc}") from exc
    raise FilmCheckpointError(f"unknown FILM checkpoint format {path.name}: expected a TF SavedModel folder, "
                              ".npz or .safetensors")


def convert_official_checkpoint(variables: Mapping[str, np.ndarray] | str | Path,
                                config: FilmConfig = STYLE_CONFIG) -> dict[str, torch.Tensor]:
    """Official FILM variables (or a path to them) -> a `FilmNet(config)` state dict (float32).

    Every variable is placed exactly once and every parameter is filled; shapes are checked
    against the architecture, built on the meta device (no memory).
    """
    if not isinstance(variables, Mapping):
        variables = read_official_variables(variables)
    mapping = official_name_map(list(variables), config)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in FilmNet(config).state_dict().items()}
    state: dict[str, torch.Tensor] = {}
    sources: dict[str, str] = {}
    problems = []
    for name, key in mapping.items():
        array = np.asarray(variables[name], dtype=np.float32)
        if array.ndim == 4:  # TF kernel H, W, in, out -> torch out, in, H, W
            array = array.transpose(3, 2, 0, 1)
        if key not in expected:
            problems.append(f"{name} -> {key}: no such parameter in this architecture")
        elif key in state:
            problems.append(f"{name} and {sources[key]} both map to {key}")
        elif tuple(array.shape) != expected[key]:
            problems.append(f"{name} -> {key}: shape {tuple(array.shape)} != expected {expected[key]}")
        else:
            state[key] = torch.from_numpy(np.ascontiguousarray(array))
            sources[key] = name
    missing = sorted(set(expected) - set(state))
    if missing:
        problems.append(f"{len(missing)} parameters have no variable: {missing[:8]}")
    if problems:
        raise FilmCheckpointError("the checkpoint does not match the FILM architecture "
                                  f"({config.to_json()}): " + "; ".join(problems[:8]))
    return state


def save_film(path: str | Path, state_dict: Mapping[str, torch.Tensor], config: FilmConfig) -> Path:
    """Write our FILM weights file (safetensors + config in the metadata)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state_dict.items()}
    save_file(tensors, str(path), metadata={"format": FILE_FORMAT, "config": config.to_json()})
    return path


def read_film(path: str | Path) -> tuple[FilmConfig, dict[str, torch.Tensor]]:
    """Our FILM weights file -> (config, state dict)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, SafetensorError) as exc:
        raise FilmCheckpointError(f"cannot read FILM weights {path}: {exc}") from exc
    if meta.get("format") != FILE_FORMAT or "config" not in meta:
        raise FilmCheckpointError(f"{path} is not an inkwalk FILM weights file (no '{FILE_FORMAT}' metadata); "
                                  "convert the official checkpoint with `python -m inkwalk.interpolate.film "
                                  "convert SAVED_MODEL OUT.safetensors`")
    return FilmConfig.from_json(meta["config"]), state


def write_tiny_checkpoint(path: str | Path, seed: int = 0) -> Path:
    """A randomly initialised tiny FILM (`TINY_CONFIG`) in our file format, for tests."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FilmNet(TINY_CONFIG)
    return save_film(path, model.state_dict(), TINY_CONFIG)


def load_film(models_dir: str | Path | None = None, path: str | Path | None = None,
              device: str | torch.device | None = None) -> FilmNet:
    """The FILM "Style" network, from our converted file found by the model registry, in eval mode."""
    from inkwalk.models import weights_file

    config, state = read_film(weights_file(MODEL_NAME, path=path, models_dir=models_dir))
    model = FilmNet(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise FilmCheckpointError(f"FILM weights do not fit their own config {config.to_json()}: {exc}") from exc
    return model.eval().requires_grad_(False).to(device or "cpu")
