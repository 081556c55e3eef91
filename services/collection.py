"""A whole collection rendered on Ray: the driver behind `inkwalk render`.

The driver does what the HTTP ingress does, on the same code path (`services.render`): it
copies the paintings into the store, then drives the pieces through the `artwalks` app's
deployments and copies the joined video out. It never decodes a painting or sees a frame, so
its memory does not depend on the collection or the output size.

Where it runs:
- ``RAY_ADDRESS`` set (or ``--address``): that cluster. A running `artwalks` app is used as it is
  (its backends and its store); otherwise the driver deploys its own app for the render and
  deletes it afterwards (then ``--store`` must name a store every node can reach).
- otherwise: an embedded local Ray with its own temp folder, started for this render and shut
  down afterwards; the store defaults to the local cache (``INKWALK_CACHE``), so a rerun reuses
  every chunk already rendered.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from inkwalk.artwalks import default_cache_dir
from inkwalk.errors import InkwalkError
from inkwalk.store import Store, StoreError, file_uri, is_uri, resolve, sha256_file
from inkwalk.walk_settings import WalkSettings
from services.embedded_ray import session_folder, show_ray_info

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
RENDER_APP = "inkwalk-render"  # the app the driver deploys when none is running
DEFAULT_CONFIG = Path(__file__).resolve().parent / "serve_config.cpu.yaml"


def collection_sources(source: str | Path) -> list[str]:
    """Painting locations (local paths or URIs) of a folder (sorted by name) or a manifest (in order).

    A manifest is a text file with one image per line (``#`` comments) or a JSON list; relative
    entries are resolved against the manifest's own folder, local or remote.
    """
    import pyarrow.fs as pafs

    text = str(source)
    try:
        fs, path = resolve(text)
        info = fs.get_file_info(path)
    except (StoreError, OSError) as exc:
        raise InkwalkError(f"{text}: cannot read the collection ({str(exc).splitlines()[0]})") from None
    if info.type == pafs.FileType.Directory:
        entries = fs.get_file_info(pafs.FileSelector(path))
        found = sorted(e.path for e in entries if e.type == pafs.FileType.File
                       and Path(e.base_name).suffix.lower() in IMAGE_SUFFIXES)
        paths = [file_uri(fs, p) if is_uri(text) else p for p in found]
    elif info.type == pafs.FileType.File:
        with fs.open_input_stream(path) as src:
            body = src.read().decode("utf-8", "replace")
        if path.lower().endswith(".json"):
            try:
                entries = json.loads(body)
            except json.JSONDecodeError as exc:
                raise InkwalkError(f"{text}: not a JSON list of image paths ({exc})") from None
            if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
                raise InkwalkError(f"{text}: a JSON manifest must be a list of image paths")
        else:
            entries = [line.strip() for line in body.splitlines() if line.strip() and not line.startswith("#")]
        folder = path.rsplit("/", 1)[0]
        paths = [e if is_uri(e) or e.startswith("/") else
                 (file_uri(fs, f"{folder}/{e}") if is_uri(text) else str(Path(folder) / e)) for e in entries]
    else:
        raise InkwalkError(f"{text}: no such folder or manifest file")
    if len(paths) < 2:
        raise InkwalkError(f"{text}: a collection needs at least 2 paintings, found {len(paths)} "
                           f"({', '.join(sorted(IMAGE_SUFFIXES))})")
    return paths


def copy_inputs(store: Store, sources: list[str]) -> list[dict[str, Any]]:
    """Copy each painting into the store under its content hash (once); [{name, path, sha256}]."""
    inputs = []
    for src in sources:
        try:
            sha = sha256_file(src)
        except (StoreError, OSError) as exc:
            raise InkwalkError(f"{src}: cannot read the painting ({str(exc).splitlines()[0]})") from None
        suffix = Path(src).suffix.lower() or ".img"
        rel = f"inputs/{sha[:2]}/{sha}{suffix}"
        if not store.exists(rel):
            fs, path = resolve(src)
            with fs.open_input_stream(path) as data:
                store.put_stream(rel, iter(lambda: data.read(1 << 20), b""))
        inputs.append({"name": src.rsplit("/", 1)[-1], "path": rel, "sha256": sha})
    return inputs


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None, verbose: bool = False) -> Iterator[bool]:
    """Connect to the cluster at `address` / RAY_ADDRESS, or start an embedded one; yields `embedded`.

    The embedded Ray gets a private session folder (`services.embedded_ray`), so it never joins
    another Ray on a shared machine, and is shut down on the way out, whatever happens. Ray's and
    Serve's INFO lines and the workers' output reach the terminal only when `verbose`.
    """
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    sigterm = signal.getsignal(signal.SIGTERM)
    env = {k: os.environ[k] for k in ("INKWALK_MODELS", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME",
                                      "INKWALK_NO_PROGRESS") if k in os.environ}
    if ray.is_initialized():
        yield False
        return
    if address:
        _probe(address)
        try:
            ray.init(address=address, log_to_driver=verbose, configure_logging=verbose,
                     runtime_env={"env_vars": env})
        except Exception as exc:  # ConnectionError, auth errors: one line, not Ray's traceback
            raise InkwalkError(f"cannot connect to the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
        _restore_sigterm(sigterm)
        show_ray_info(verbose)
        try:
            yield False
        finally:
            ray.shutdown()
        return
    with session_folder() as temp:
        ray.init(address="local", _temp_dir=str(temp), num_cpus=num_cpus, include_dashboard=False,
                 log_to_driver=verbose, configure_logging=verbose, runtime_env={"env_vars": env})
        _restore_sigterm(sigterm)
        show_ray_info(verbose)
        try:
            yield True
        finally:
            ray.shutdown(wait_for_processes=True)  # Serve and every replica with it; then the folder can go


def _probe(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, with one line, when nothing listens at a host:port cluster address
    (ray.init would retry for minutes)."""
    import socket

    if "://" in address or address == "auto" or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return
    except (OSError, ValueError) as exc:
        raise InkwalkError(f"cannot connect to the Ray cluster at {address}: {exc}; start it with "
                           f"`ray start --head` or set RAY_ADDRESS to its address") from None


def _restore_sigterm(handler) -> None:
    """ray.init installs Ray's own SIGTERM handler (log and die); keep ours, which cleans up first."""
    if callable(handler) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def running_app_handles(app: str = "artwalks") -> dict | None:
    """Handles of a RUNNING `app` on the connected cluster, or None."""
    from ray import serve

    try:
        status = serve.status().applications.get(app)
    except Exception:  # Serve not started on this cluster
        return None
    if status is None or str(getattr(status.status, "value", status.status)) != "RUNNING":
        return None
    return {name: serve.get_deployment_handle(name, app_name=app)
            for name in ("Keyframes", "Interpolator", "Upscaler", "Encoder")}


def deploy_render_app(ws: WalkSettings, store: str, config: str | Path | None = None,
                      models_dir: str | None = None) -> dict:
    """Deploy an `artwalks` app that serves the settings' backends (replica options from `config`)."""
    import yaml
    from ray import serve

    from services.apps import apps_from_config
    from services.limits import Limits

    serve.start(proxy_location="Disabled")
    config = Path(config or DEFAULT_CONFIG)
    base = next((a.get("args", {}) for a in yaml.safe_load(config.read_text())["applications"]
                 if a["name"] == "artwalks"), {})
    upscaler = ws.upscaler if ws.upscaler != "none" else "lanczos"  # never called when sizes match
    overrides = {"artwalks": {"store": store, "models_dir": models_dir, "limits": Limits.cli().model_dump(),
                              "keyframer": ws.keyframer if ws.keyframes else "none",
                              "interpolator": {**base.get("interpolator", {}), "method": ws.interpolator,
                                               "flow": ws.flow},
                              "upscaler": {**base.get("upscaler", {}), "backend": upscaler}}}
    app, _ = apps_from_config(config, overrides)["artwalks"]
    try:
        serve.run(app, name=RENDER_APP, route_prefix=None)
    except Exception as exc:  # a replica that cannot start (missing weights, bad config)
        raise InkwalkError(f"the render app did not start: {app_failure(RENDER_APP, exc)}") from None
    return {name: serve.get_deployment_handle(name, app_name=RENDER_APP)
            for name in ("Keyframes", "Interpolator", "Upscaler", "Encoder")}


def app_failure(app: str, exc: BaseException) -> str:
    """Why a Serve app failed to deploy, in one line: the replica's own error, not Serve's summary."""
    import re

    from ray import serve

    try:
        deployments = serve.status().applications[app].deployments.values()
        messages = "\n".join(d.message or "" for d in deployments)
    except Exception:  # the app is gone already
        messages = ""
    errors = [line.strip() for line in messages.splitlines() if re.match(r"^[\w.]*(Error|Exception)\b.*:", line.strip())]
    line = errors[-1] if errors else (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return line[:500]


def served_settings(handles: dict, user: WalkSettings) -> WalkSettings:
    """The user's settings on a running app: its backends, refusing a request for different ones."""
    served = {}
    for name, key in (("Keyframes", "keyframer"), ("Interpolator", "interpolator"), ("Upscaler", "upscaler")):
        identity = handles[name].describe.remote().result()[key]
        served[key] = identity["backend"]
        if key == "interpolator" and "flow" in identity:
            served["flow"] = identity["flow"]
    for key, value in served.items():
        if key == "keyframer" and not user.keyframes:
            continue
        if getattr(user, key) != value and not (key == "upscaler" and user.output_size == tuple(user.size)):
            raise InkwalkError(f"the running artwalks app serves {key} {value!r}, not {getattr(user, key)!r}: "
                               f"choose --{key} {value}, or stop that app to let inkwalk deploy its own")
    return user.with_changes(**{k: v for k, v in served.items() if k != "keyframer" or user.keyframes})


@dataclass
class RenderSummary:
    out: str
    frames: int
    fps: float
    size: tuple[int, int]
    chunks_rendered: int
    chunks_reused: int
    nodes: dict[str, int]  # pieces encoded per Ray node id
    seconds: float
    sheet: str | None = None


def render_collection_on_ray(source: str | Path, out: str | Path, settings: WalkSettings, *, store: str | None = None,
                      address: str | None = None, config: str | Path | None = None, models_dir: str | None = None,
                      num_cpus: int | None = None, render: dict | None = None, sheet: bool = True,
                      on_progress: Callable[[str, float], None] = lambda stage, p: None,
                      verbose: bool = False) -> RenderSummary:
    """Render a collection (folder, manifest or URI of either) into `out` through the segment path
    (`verbose`: Ray's and Serve's INFO lines on the terminal)."""
    from inkwalk.config_model import parse_config
    from services.render import Handles, RenderOptions, WalkJob, render_walks

    t0 = time.perf_counter()
    sources = collection_sources(source)
    opts = parse_config(RenderOptions, render, "render option")
    if not (address or os.environ.get("RAY_ADDRESS")):  # the local app loads these: missing is one line, now
        from inkwalk.availability import require_models, walk_models

        hint = " -- or render without any weights: --preset offline" if settings.preset == "paper" else ""
        require_models(walk_models(settings), models_dir, hint)
    with ray_session(address, num_cpus, verbose) as embedded:
        handles = None if embedded else running_app_handles()
        if handles is not None:
            settings = served_settings(handles, settings)
            store = store or handles["Encoder"].describe.remote().result()["store"]
        else:
            if not embedded and not store:
                raise InkwalkError("rendering on a cluster with no running artwalks app needs --store URI, a store "
                                   "every node can reach (s3://..., gs://..., or a shared folder)")
            store = store or str(default_cache_dir())
        job_store = Store(store)
        inputs = copy_inputs(job_store, sources)
        _check_headers(job_store, inputs, settings)
        if handles is None:
            handles = deploy_render_app(settings, job_store.uri, config, models_dir)
        h = Handles(keyframes=handles["Keyframes"], interpolator=handles["Interpolator"],
                    upscaler=handles["Upscaler"], encoder=handles["Encoder"])
        models = {}
        for name in ("Keyframes", "Interpolator", "Upscaler"):
            models.update(handles[name].describe.remote().result())
        ids = [i["sha256"] for i in inputs]
        key = _render_key(ids, settings, models, opts)
        job = WalkJob(paintings=[i["path"] for i in inputs], painting_ids=ids, settings=settings,
                      video=f"renders/{key[:2]}/{key}.mp4", sheet=f"renders/{key[:2]}/{key}.sheet.png" if sheet else None,
                      metadata={"painting_names": [i["name"] for i in inputs]},
                      painting_names=[i["name"] for i in inputs])
        result = asyncio.run(render_walks(h, job_store, job, models, opts, on_progress))
        _copy_out(job_store, job.video, out)
        sheet_out = None
        if job.sheet and job_store.exists(job.sheet):
            sheet_out = _sheet_name(out)
            _copy_out(job_store, job.sheet, sheet_out)
    return RenderSummary(str(out), result.frames, settings.fps, settings.output_size, result.chunks_rendered,
                         result.chunks_reused, result.nodes, round(time.perf_counter() - t0, 2), sheet_out)


def _check_headers(store: Store, inputs: list[dict], settings: WalkSettings) -> None:
    """Every painting checked from its header (type, pixels, aspect, enlargement) before any work."""
    from services.limits import Limits, check_painting_file

    for i in inputs:
        check_painting_file(i["name"], store, i["path"], Limits.cli(), tuple(settings.size), settings.fit)


def _render_key(ids: list[str], settings: WalkSettings, models: dict, opts) -> str:
    from inkwalk.segments import content_key

    return content_key({"ids": ids, "settings": settings.model_dump(mode="json"), "models": models,
                        "codec": opts.codec.fields()})


def _sheet_name(out: str | Path) -> str:
    text = str(out)
    stem = text[:-len(Path(text).suffix)] if Path(text).suffix else text
    return f"{stem}.sheet.png"


def _copy_out(store: Store, rel: str, out: str | Path) -> None:
    """A store file to a local path (atomically) or to a URI."""
    if not is_uri(str(out)):
        store.get_file(rel, out)
        return
    fs, path = resolve(str(out))
    target = Store(file_uri(fs, path.rsplit("/", 1)[0]))
    with store.open_input(rel) as src:
        target.put_stream(path.rsplit("/", 1)[1], iter(lambda: src.read(1 << 20), b""))
