"""Can these models load without waiting on the network? Answered in seconds, before any loading.

Loading a model that is neither in the models folder nor cached makes diffusers / transformers /
torch.hub go to the hub, and on a machine with no network they retry for minutes before failing.
`require_models` answers first: a model is available when it has a local copy (models folder or
an explicit path), a cached copy (Hugging Face cache, torch hub cache), or when its public source
answers within a few seconds; with HF_HUB_OFFLINE set, only local and cached copies count.
"""

from __future__ import annotations

import os
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable
from urllib.parse import urlsplit

from inkwalk.errors import InkwalkError

REACH_TIMEOUT_S = 3.0


class ModelsUnavailableError(InkwalkError):
    """Models that are not on this machine and cannot be downloaded now."""


def _hub_offline() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def torch_hub_dir() -> Path:
    """`torch.hub.get_dir()`, without importing torch (seconds) when it is not loaded yet: the same
    rule, ``$TORCH_HOME/hub`` with TORCH_HOME defaulting to ``$XDG_CACHE_HOME/torch``."""
    if "torch.hub" in sys.modules:
        return Path(sys.modules["torch.hub"].get_dir())
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.path.expanduser(home)) / "hub"


def _cached(spec) -> bool:
    """A download from an earlier run: the Hugging Face cache (folders) or the torch hub cache (files)."""
    if spec.kind == "file":
        return (torch_hub_dir() / "checkpoints" / spec.download_name).is_file()
    from huggingface_hub import constants

    snapshots = Path(constants.HF_HUB_CACHE) / f"models--{spec.default.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return False
    return any((snap / spec.subfolder).is_dir() if spec.subfolder else True for snap in snapshots.iterdir())


def _source_host(spec) -> str:
    """scheme://host the model downloads from (HF_ENDPOINT for hub repos)."""
    url = spec.default if spec.kind == "file" else os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def unreachable(hosts: Iterable[str], timeout_s: float = REACH_TIMEOUT_S) -> set[str]:
    """The `hosts` (scheme://host) that do not answer an HTTP request within `timeout_s`.

    All are asked at once, in threads, and the whole check is bounded by `timeout_s` (a DNS
    lookup that hangs counts as unreachable). Any HTTP answer, even an error status, is an answer.
    """
    hosts = set(hosts)
    answered: set[str] = set()

    def ask(host: str) -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(host, method="HEAD"), timeout=timeout_s).close()
        except urllib.error.HTTPError:
            pass
        except Exception:  # refused, no route, DNS failure, TLS failure, timeout
            return
        answered.add(host)

    threads = [threading.Thread(target=ask, args=(h,), daemon=True) for h in sorted(hosts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s)
    return hosts - answered


def absent_models(names: Iterable[str], models_dir: str | Path | None = None) -> list[str]:
    """The models in `names` with neither a local copy nor a cached download (no network asked)."""
    from inkwalk.model_registry import REGISTRY, models_dir as resolve_models_dir
    from inkwalk.models import local_copy

    mdir = resolve_models_dir(models_dir)
    return [name for name in dict.fromkeys(names)
            if local_copy(name, mdir) is None and not (REGISTRY[name].default is not None and _cached(REGISTRY[name]))]


def require_models(names: Iterable[str], models_dir: str | Path | None = None, hint: str = "",
                   timeout_s: float = REACH_TIMEOUT_S) -> None:
    """Raise `ModelsUnavailableError` (one line naming every missing model) unless every model in
    `names` can load now.

    `hint` is appended to the message, e.g. a weight-free alternative (" -- or use --backend lanczos").
    """
    from inkwalk.model_registry import REGISTRY, models_dir as resolve_models_dir

    mdir = resolve_models_dir(models_dir)
    absent = absent_models(names, mdir)
    reasons = []
    no_source = [n for n in absent if REGISTRY[n].default is None]
    if no_source:
        reasons.append(f"{', '.join(no_source)}: no public download")
    downloadable = [n for n in absent if REGISTRY[n].default is not None]
    lost = []
    if downloadable and _hub_offline():
        lost, why = downloadable, "HF_HUB_OFFLINE is set, so nothing is downloaded"
    elif downloadable and no_source:  # failing anyway: no need to wait on the network
        lost, why = downloadable, "not downloaded yet"
    elif downloadable:
        down = unreachable([_source_host(REGISTRY[n]) for n in downloadable], timeout_s)
        lost = [n for n in downloadable if _source_host(REGISTRY[n]) in down]
        why = f"{', '.join(sorted(down))} could not be reached within {timeout_s:g} s"
    if lost:
        reasons.append(f"{', '.join(lost)}: {why}")
    missing = no_source + lost
    if not missing:
        return
    where = f"not in the models folder {mdir}"
    how = (f"To provide it: {REGISTRY[missing[0]].howto}" if len(missing) == 1
           else "`inkwalk models list` shows where each one comes from and how to get it")
    raise ModelsUnavailableError(
        f"{f'{len(missing)} models not available:' if len(missing) > 1 else 'model'} {', '.join(missing)}"
        f"{' not available' if len(missing) == 1 else ''} ({where}, not cached; {'; '.join(reasons)}). {how}{hint}")


def interpolator_models(method: str, flow: str = "dis") -> list[str]:
    """Registry models an interpolator loads (`inkwalk.interpolate.get_interpolator`)."""
    if method == "film":
        return ["film-style"]
    if method in ("flow-warp", "sofp") and flow.startswith("raft"):
        return ["raft-small" if flow == "raft-small" else "raft-large"]
    return []


def walk_models(settings) -> list[str]:
    """Registry models a walk with `settings` loads (`inkwalk.artwalks.load_walk_models`)."""
    from inkwalk.upscale import SR_MODELS

    names = []
    if settings.keyframes > 0 and settings.keyframer == "kandinsky":
        names += ["kandinsky-2-2-prior", "kandinsky-2-2-decoder"]
    names += interpolator_models(settings.interpolator, settings.flow)
    if settings.upscaler in SR_MODELS and settings.output_size != tuple(settings.size):
        names.append(SR_MODELS[settings.upscaler])
    return names
