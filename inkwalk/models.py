"""Find and load a registry model: an explicit path, else the models folder, else its public default.

`locate`, `load_pretrained` and `weights_file` turn a registry name (inkwalk.model_registry) into
loaded weights, or one ModelNotFoundError that says where they looked and how to provide the model.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from inkwalk.errors import InkwalkError
from inkwalk.model_registry import REGISTRY, ModelSpec, models_dir

class ModelNotFoundError(InkwalkError):
    """A model's weights are neither where the user pointed nor reachable at the public default."""

    def __init__(self, name: str, looked: list[str], howto: str, reason: str = "") -> None:
        self.name = name
        self.looked = looked
        self.howto = howto
        self.reason = reason
        where = "; ".join(looked)
        why = f" ({reason})" if reason else ""
        super().__init__(f"model '{name}' not found{why}. Looked in: {where}. To provide it: {howto}")

    def __reduce__(self):
        # Ray ships exceptions between processes with pickle, which replays the constructor.
        return type(self), (self.name, self.looked, self.howto, self.reason)


def _spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise InkwalkError(f"unknown model '{name}'; known models: {', '.join(REGISTRY)}") from None


_models_dir = models_dir  # the functions below take a `models_dir` argument that shadows the function


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _local_candidates(spec: ModelSpec, path: str | Path | None, mdir: Path) -> list[tuple[str, Path]]:
    """(label, path) pairs to try, in precedence order."""
    out = []
    if path is not None:
        p = Path(path).expanduser()
        if spec.kind == "folder" and spec.subfolder and (p / spec.subfolder).is_dir():
            p = p / spec.subfolder  # a whole SD 1.5 folder was given for one component
        elif spec.kind == "file" and p.is_dir():
            p = p / spec.filename
        out.append(("path", p))
    out.append(("models dir", mdir / spec.local))
    return out


def _present(spec: ModelSpec, p: Path) -> bool:
    return p.is_file() if spec.kind == "file" else p.is_dir()


def local_copy(name: str, models_dir: str | Path | None = None) -> Path | None:
    """The model's copy in the models folder, or None when there is none (used by `inkwalk models list`)."""
    spec = _spec(name)
    local = _models_dir(models_dir) / spec.local
    return local if _present(spec, local) else None


def locate(name: str, path: str | Path | None = None, models_dir: str | Path | None = None) -> str:
    """Where `name` loads from: explicit `path` > `<models_dir>/<local subpath>` > the public default.

    An explicit path that does not exist is an error (it never silently falls back). For SD 1.5
    components the hub default is the repo id; `load_pretrained` adds the subfolder.
    """
    spec = _spec(name)
    mdir = _models_dir(models_dir)
    cands = _local_candidates(spec, path, mdir)
    for label, p in cands:
        if _present(spec, p):
            return str(p)
        if label == "path":
            raise ModelNotFoundError(name, [f"{p} (given path, missing)"], spec.howto)
    if spec.default is None:
        raise ModelNotFoundError(name, _looked(cands) + ["no public direct download"], spec.howto)
    return spec.default


def fingerprint(name: str, models_dir: str | Path | None = None) -> str:
    """A cheap identity of the weights `name` loads from: names, sizes and times of its local files,
    or its public id when no local copy exists. Rendered chunks are keyed by it, so replacing
    weights renders anew instead of reusing pixels the old weights made."""
    import hashlib

    spec = _spec(name)
    local = _models_dir(models_dir) / spec.local
    if not _present(spec, local):
        return f"default:{spec.default}"
    files = [local] if local.is_file() else sorted(f for f in local.rglob("*") if f.is_file())
    digest = hashlib.sha256()
    for f in files:
        st = f.stat()
        digest.update(f"{f.relative_to(local.parent)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return f"local:{digest.hexdigest()[:16]}"


def _looked(cands: list[tuple[str, Path]]) -> list[str]:
    return [f"{p} ({label}, missing)" for label, p in cands]


def load_pretrained(name: str, cls: Any, path: str | Path | None = None, models_dir: str | Path | None = None,
                    **kwargs: Any) -> Any:
    """`cls.from_pretrained` from wherever `locate` finds `name`; failures become ModelNotFoundError.

    Tokenizers must have more than two tokens: transformers returns a 2-token tokenizer instead of
    failing when a hub id is neither cached nor reachable (STACK.md pitfall 9).
    """
    spec = _spec(name)
    if spec.kind != "folder":
        raise InkwalkError(f"model '{name}' is a single weights file: use weights_file('{name}')")
    where = locate(name, path=path, models_dir=models_dir)
    mdir = _models_dir(models_dir)
    from_hub = where == spec.default
    if from_hub and spec.subfolder:
        kwargs.setdefault("subfolder", spec.subfolder)
    looked = _looked(_local_candidates(spec, path, mdir)) if from_hub else []
    looked.append(f"{where}{' (' + spec.subfolder + ')' if from_hub and spec.subfolder else ''}"
                  f"{' (hub, offline: HF_HUB_OFFLINE=1)' if from_hub and _offline() else ''}")
    try:
        obj = cls.from_pretrained(where, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(name, looked, spec.howto, reason=_short(exc)) from exc
    from transformers import PreTrainedTokenizerBase

    # a tokenizer itself, or the one inside a pipeline / processor
    tok = obj if isinstance(obj, PreTrainedTokenizerBase) else vars(obj).get("tokenizer")
    if isinstance(tok, PreTrainedTokenizerBase) and len(tok) <= 2:
        raise ModelNotFoundError(name, looked, spec.howto,
                                 reason=f"tokenizer from {where} has only {len(tok)} tokens")
    return obj


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    if not text:
        return type(exc).__name__
    line = text[0] if len(text[0]) <= 300 else text[0][:300] + "..."
    return f"{type(exc).__name__}: {line}"


def weights_file(name: str, path: str | Path | None = None, models_dir: str | Path | None = None) -> Path:
    """The local weights file of a single-file model; downloads it into the torch hub cache when online."""
    spec = _spec(name)
    if spec.kind != "file":
        raise InkwalkError(f"model '{name}' is a folder model: use load_pretrained('{name}', cls)")
    where = locate(name, path=path, models_dir=models_dir)
    if where != spec.default:  # a local file
        return Path(where)
    import torch.hub

    mdir = _models_dir(models_dir)
    looked = _looked(_local_candidates(spec, path, mdir))
    cached = Path(torch.hub.get_dir()) / "checkpoints" / spec.download_name
    if cached.is_file():
        return cached
    looked.append(f"{cached} (torch hub cache, missing)")
    if _offline():
        raise ModelNotFoundError(name, looked + [f"{where} (not downloaded: offline, HF_HUB_OFFLINE=1)"],
                                 spec.howto)
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        show = os.environ.get("INKWALK_NO_PROGRESS") != "1" and sys.stderr.isatty()
        torch.hub.download_url_to_file(where, str(cached), progress=show)
    except Exception as exc:  # any network failure is "not found" to the user
        raise ModelNotFoundError(name, looked + [f"{where} (download failed)"], spec.howto,
                                 reason=_short(exc)) from exc
    return cached

