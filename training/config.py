"""Training options: one YAML file, every option overridable as `--section.key value` on the CLI.

Defaults, file and overrides merge in OmegaConf (struct mode: an unknown key is an error); the
result is a plain nested dict, so the same object travels unchanged from the driver to every
Ray Train worker and into each checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from inkwalk.errors import InkwalkError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

DEFAULTS: dict[str, Any] = {
    "run": {
        "name": "conclvd",                # same name + storage_path = resume the same run
        "storage_path": "out/train",      # local folder or pyarrow URI (shared storage multi-node)
        "export_path": None,              # motion module file; default <storage>/<name>/motion_module.safetensors
        "metrics_log": True,              # append rank-0 metrics to <storage>/<name>/metrics.jsonl (local storage)
    },
    "scaling": {
        "num_workers": 1,
        "use_gpu": False,
        "cpus_per_worker": 1.0,           # fractional on small boxes (STACK.md pitfall 1)
        "gpus_per_worker": 1.0,
        "resources": {},                  # custom resources per worker, e.g. {train: 1} (cluster/*.yaml)
    },
    "model": {
        "models_dir": None,               # else env INKWALK_MODELS, else the public checkpoints
        "motion_module": None,            # initial motion weights (AnimateDiff adapter or our export)
        "sparse_causal": True,            # false: the paper's ablation "w/o SC-Attn" (AnimateDiff's module)
        "norm_mode": "per-frame",         # motion GroupNorm per frame (AnimateDiff, release) | joint (diffusers)
        "gradient_checkpointing": False,
        "mixed_precision": "no",          # no | fp16 | bf16 (GPU only; CPU always trains in fp32)
        "ddp_find_unused_parameters": False,
    },
    "data": {
        "source": "synthetic",            # synthetic | shards
        "shards_dir": None,
        "kind": "frames",                 # frames | latents (latents need shards written with --encode)
        "batch_size": 1,                  # per worker
        "synthetic": {"frames": 8, "size": 64, "caption": "ink wash mountains and a river",
                      "encode": True},
    },
    "optim": {
        "lr": 1.0e-5,
        "weight_decay": 1.0e-2,
        "betas": [0.9, 0.999],
        "eps": 1.0e-8,
        "grad_clip": 1.0,
        "warmup_steps": 0,
    },
    "loss": {
        "caption_dropout": 0.1,
        "lambda_diff": 1.0,
        "lambda_con": 0.07,
        "tau": 0.07,
        "margin": 4,
    },
    "train": {
        "max_steps": 40000,
        "checkpoint_every": 1000,
        "num_to_keep": 3,
        "log_every": 50,
        "max_failures": 3,
        "seed": 0,
        "repeat_noise": False,            # same noise/timestep every step: exact overfitting checks
    },
    "debug": {
        "fail_at_step": None,             # raise once on `fail_rank` after this step (fault-tolerance tests)
        "fail_rank": 0,
    },
}


class TrainingConfigError(InkwalkError):
    """A training config file or override is missing, malformed or names an unknown option."""


def _merge(base: DictConfig, extra: Any, what: str) -> DictConfig:
    """`extra` merged over `base`, which refuses keys it does not know (OmegaConf struct mode)."""
    try:
        return OmegaConf.merge(base, extra)
    except ConfigKeyError as exc:
        parent = str(exc.full_key).rpartition(".")[0]
        node = OmegaConf.select(base, parent) if parent else base
        raise TrainingConfigError(f"unknown training option '{exc.full_key}' in {what} (known here: "
                                  f"{', '.join(sorted(node))})") from None
    except OmegaConfBaseException as exc:
        raise TrainingConfigError(f"training option '{exc.full_key}' in {what}: {exc.msg}") from None


def _defaults() -> DictConfig:
    """The defaults as an OmegaConf tree that refuses unknown keys, but for free-form mappings."""
    cfg = OmegaConf.create(DEFAULTS)
    OmegaConf.set_struct(cfg, True)
    OmegaConf.set_struct(cfg.scaling.resources, False)  # custom resources: any names
    return cfg


def _coerce(cfg: dict) -> dict:
    """Numbers written as `1e-5` in YAML arrive as strings: make the numeric options numeric."""
    for section, keys in {"optim": ("lr", "weight_decay", "eps", "grad_clip"),
                          "loss": ("caption_dropout", "lambda_diff", "lambda_con", "tau"),
                          "scaling": ("cpus_per_worker", "gpus_per_worker")}.items():
        for key in keys:
            try:
                cfg[section][key] = float(cfg[section][key])
            except (TypeError, ValueError):
                raise TrainingConfigError(f"training option '{section}.{key}' must be a number, "
                                          f"got {cfg[section][key]!r}") from None
    for section, key in (("train", "max_steps"), ("train", "checkpoint_every"), ("train", "log_every"),
                         ("train", "num_to_keep"), ("train", "max_failures"), ("scaling", "num_workers"),
                         ("data", "batch_size"), ("loss", "margin"), ("optim", "warmup_steps")):
        try:
            cfg[section][key] = int(cfg[section][key])
        except (TypeError, ValueError):
            raise TrainingConfigError(f"training option '{section}.{key}' must be an integer, "
                                      f"got {cfg[section][key]!r}") from None
    return cfg


def _check_sections(defaults: dict, cfg: dict, where: str = "") -> None:
    """A mapping of the defaults stays a mapping (OmegaConf lets a scalar replace one)."""
    for key, value in defaults.items():
        if isinstance(value, dict):
            if not isinstance(cfg[key], dict):
                raise TrainingConfigError(f"training option '{where}{key}' must be a mapping, got {cfg[key]!r}")
            _check_sections(value, cfg[key], f"{where}{key}.")


def _validate(cfg: dict) -> dict:
    if cfg["model"]["mixed_precision"] not in ("no", "fp16", "bf16"):
        raise TrainingConfigError("model.mixed_precision must be one of no, fp16, bf16 "
                                  f"(got {cfg['model']['mixed_precision']!r})")
    if not isinstance(cfg["model"]["sparse_causal"], bool):
        raise TrainingConfigError(f"model.sparse_causal must be true or false (got {cfg['model']['sparse_causal']!r})")
    if cfg["model"]["norm_mode"] not in ("per-frame", "joint"):
        raise TrainingConfigError("model.norm_mode must be per-frame or joint "
                                  f"(got {cfg['model']['norm_mode']!r})")
    if cfg["data"]["source"] not in ("synthetic", "shards"):
        raise TrainingConfigError(f"data.source must be 'synthetic' or 'shards' (got {cfg['data']['source']!r})")
    if cfg["data"]["kind"] not in ("frames", "latents"):
        raise TrainingConfigError(f"data.kind must be 'frames' or 'latents' (got {cfg['data']['kind']!r})")
    if cfg["data"]["source"] == "shards":
        shards = cfg["data"]["shards_dir"]
        if not shards:
            raise TrainingConfigError("data.source is 'shards' but data.shards_dir is not set: "
                                      "pass --data.shards_dir DIR (the data pipeline's output folder)")
        if "://" not in str(shards) and not Path(shards).is_dir():
            raise TrainingConfigError(f"data.shards_dir {shards} is not a folder: run the data pipeline "
                                      "first or pass the folder it wrote")
    for section, key in (("train", "max_steps"), ("train", "checkpoint_every"), ("train", "log_every"),
                         ("train", "num_to_keep"), ("scaling", "num_workers"), ("data", "batch_size")):
        if cfg[section][key] < 1:
            raise TrainingConfigError(f"{section}.{key} must be at least 1 (got {cfg[section][key]})")
    return cfg


def _absolute_paths(cfg: dict) -> dict:
    """Workers run in other folders (and under `ray job submit` in a copy): resolve paths now."""
    for section, key in (("run", "storage_path"), ("run", "export_path"), ("data", "shards_dir"),
                         ("model", "models_dir"), ("model", "motion_module")):
        value = cfg[section][key]
        if value and "://" not in str(value):
            cfg[section][key] = str(Path(os.path.expanduser(str(value))).resolve())
    if not cfg["model"]["models_dir"] and os.environ.get("INKWALK_MODELS"):
        cfg["model"]["models_dir"] = str(Path(os.environ["INKWALK_MODELS"]).resolve())
    return cfg


def parse_overrides(args: Sequence[str]) -> DictConfig:
    """`--a.b value` / `--a.b=value` pairs as an OmegaConf tree (values read as YAML: `1e-4`, `true`, `[1,2]`)."""
    dotlist, items, i = [], list(args), 0
    while i < len(items):
        arg = items[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise TrainingConfigError(f"unexpected argument {arg!r}: options look like --section.key value")
        if "=" not in arg:
            if i + 1 >= len(items):
                raise TrainingConfigError(f"option {arg} needs a value")
            arg, i = f"{arg}={items[i + 1]}", i + 1
        if "." not in arg.split("=", 1)[0]:
            raise TrainingConfigError(f"option {arg.split('=', 1)[0]} must name a section, e.g. --train.max_steps 100")
        dotlist.append(arg[2:])
        i += 1
    try:
        return OmegaConf.from_dotlist(dotlist)
    except OmegaConfBaseException as exc:
        raise TrainingConfigError(f"bad training option: {exc.msg}") from None


def load_config(path: str | Path | None = None, overrides: dict | Sequence[str] | None = None) -> dict:
    """Defaults, then the YAML file, then overrides; validated, with absolute paths."""
    cfg = _defaults()
    if path is not None:
        p = Path(path)
        if not p.is_file() and (CONFIG_DIR / p.name).is_file():
            p = CONFIG_DIR / p.name
        if not p.is_file():
            raise TrainingConfigError(f"training config {path} not found (bundled configs: "
                                      f"{', '.join(sorted(x.name for x in CONFIG_DIR.glob('*.yaml')))})")
        try:
            loaded = OmegaConf.load(p)
        except (yaml.YAMLError, OmegaConfBaseException) as exc:
            raise TrainingConfigError(f"training config {p} is not valid YAML: {exc}") from None
        if not isinstance(loaded, DictConfig):
            raise TrainingConfigError(f"training config {p} must be a mapping of sections")
        cfg = _merge(cfg, loaded, str(p))
    if overrides:
        if not isinstance(overrides, dict):
            overrides = parse_overrides(overrides)
        cfg = _merge(cfg, overrides, "the overrides")
    plain = OmegaConf.to_container(cfg)
    _check_sections(DEFAULTS, plain)
    return _absolute_paths(_validate(_coerce(plain)))


def run_dir(cfg: dict) -> str:
    """The folder Ray Train keeps this run's checkpoints in (`storage_path/name`)."""
    return f"{str(cfg['run']['storage_path']).rstrip('/')}/{cfg['run']['name']}"


def export_path(cfg: dict) -> str:
    """Where the final motion module file goes."""
    return cfg["run"]["export_path"] or f"{run_dir(cfg)}/motion_module.safetensors"
