"""The two Serve apps, `artwalks` and `conclvd`: FastAPI job-API ingresses over the deployments.

Rendering takes minutes, so HTTP is a job API: a submission is checked, recorded in the
results store and answered ``202 {job_id}`` at once; the job runs as a task of the ingress
replica that calls the model deployments through `DeploymentHandle`s and writes the mp4 and
the keyframe contact sheet into the store. The owning replica writes a heartbeat into the
job record while the job runs; a job whose owner stopped heart-beating (replica restarted or
crashed) is reported ``failed`` with the reason and ``resubmittable: true``.

Serve config entry points (``import_path``): `services.apps:build_artwalks` and
`services.apps:build_conclvd`, each taking the app's ``args`` (see `AppArgs`).
"""


import asyncio
import io
import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Awaitable, Callable

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from ray import serve
from ray.serve.handle import DeploymentHandle

from inkwalk.artwalks import contact_sheet
from inkwalk.errors import InkwalkError
from services import limits as L
from services.deployments import ConCLVDGenerator, Interpolator, Keyframes, Upscaler
from services.metrics import serve_metrics
from services.pipeline import HandleStages, render_artwalk, render_conclvd, walk_settings
from services.store import TERMINAL, JobRecord, ResultsStore, new_job_id

log = logging.getLogger("ray.serve")


@dataclass
class AppArgs:
    """The ``args`` of an app in a Serve config (every key optional)."""

    store: str = "~/.inkwalk/results"  # folder or pyarrow filesystem URI
    models_dir: str | None = None
    device: str | None = None
    limits: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)  # settings merged under every request's
    interpolator: dict[str, Any] = field(default_factory=dict)  # method, flow
    upscaler: dict[str, Any] = field(default_factory=dict)  # backend, tile
    keyframer: str = "kandinsky"  # or "none": no Kandinsky weights, walks without keyframes
    motion_module: str | None = None
    fps: float = 8.0  # ConCLVD output frame rate
    heartbeat_timeout_s: float = 60.0
    max_inflight_per_job: int = 8
    deployment_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def parse(cls, args: dict[str, Any] | None) -> "AppArgs":
        args = dict(args or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(args) - known)
        if unknown:
            raise InkwalkError(f"unknown app arg(s) {unknown}; known: {sorted(known)}")
        return cls(**args)


def png_bytes(image: np.ndarray) -> bytes:
    """PNG of one image: encoding happens only at the HTTP edge."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _error_message(exc: BaseException) -> str:
    """One line for a user: the deployment's own error, not Ray's wrapping traceback."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    name = type(cause).__name__
    line = text[0] if text else name
    return line if isinstance(cause, InkwalkError) else f"{name}: {line}"


class JobIngress:
    """Job bookkeeping shared by both apps: records, heartbeats, interrupted jobs, 503s."""

    app_name = ""

    def _setup(self, args: AppArgs) -> None:
        self.args = args
        self.store = ResultsStore(args.store)
        self.limits = L.Limits.from_dict(args.limits)
        try:
            self.replica = serve.get_replica_context().replica_id.unique_id
        except Exception:  # constructed outside Serve (benchmarks)
            self.replica = new_job_id()
        self.active: dict[str, asyncio.Task] = {}
        self.metrics = serve_metrics()
        self._state_counts = {"queued": 0, "running": 0}
        for record in self.store.list_jobs(self.app_name):
            self._reap(record)

    # ---------------------------------------------------------------- bookkeeping
    def _reap(self, record: JobRecord) -> JobRecord:
        """Mark a job failed when its owner is gone (stale heartbeat, or this replica lost it)."""
        if record.state in TERMINAL:
            return record
        mine = record.owner == self.replica
        stale = time.time() - record.heartbeat_at > self.args.heartbeat_timeout_s
        if (mine and record.job_id not in self.active) or (not mine and stale):
            record.state = "failed"
            record.error = (f"interrupted: the ingress replica running this job stopped (restart or crash) "
                            f"during stage '{record.stage}' at {record.progress:.0%}; submit it again")
            record.resubmittable = True
            record.finished_at = time.time()
            self.store.save(record)
            self.metrics.finished.inc(tags={"app": self.app_name, "state": "failed"})
        return record

    def _gauges(self) -> None:
        for state, n in self._state_counts.items():
            self.metrics.jobs.set(n, tags={"app": self.app_name, "state": state})
        self.metrics.queue_depth.set(len(self.active), tags={"app": self.app_name})

    def _refuse(self, code: int, message: str) -> JSONResponse:
        self.metrics.refused.inc(tags={"app": self.app_name, "code": str(code)})
        headers = {"Retry-After": "10"} if code == 503 else None
        return JSONResponse({"detail": message}, status_code=code, headers=headers)

    def _admit(self) -> JSONResponse | None:
        if len(self.active) >= self.limits.max_active_jobs:
            return self._refuse(503, f"overloaded: {len(self.active)} jobs are rendering on this replica "
                                     f"(limit {self.limits.max_active_jobs}); retry later")
        return None

    def _submit(self, settings: dict, work: Callable[[JobRecord, Path], Awaitable[tuple[int, list]]]
                ) -> JSONResponse:
        record = JobRecord(job_id=new_job_id(), app=self.app_name, settings=settings, owner=self.replica)
        self.store.save(record)
        self._state_counts["queued"] += 1
        self.active[record.job_id] = asyncio.get_running_loop().create_task(self._run(record, work))
        self._gauges()
        return JSONResponse({"job_id": record.job_id, "state": record.state}, status_code=202,
                            headers={"Location": f"jobs/{record.job_id}"})

    async def _run(self, record: JobRecord, work) -> None:
        t0 = time.time()
        save_lock = asyncio.Lock()

        async def save() -> None:
            async with save_lock:
                record.heartbeat_at = time.time()
                await asyncio.to_thread(self.store.save, record)

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(max(0.2, self.args.heartbeat_timeout_s / 4))
                await save()

        def on_progress(stage: str, progress: float) -> None:
            record.stage, record.progress = stage, round(float(progress), 4)

        self._state_counts["queued"] -= 1
        self._state_counts["running"] += 1
        record.state = "running"
        await save()
        beat = asyncio.get_running_loop().create_task(heartbeat())
        try:
            with tempfile.TemporaryDirectory(prefix="inkwalk-job-") as tmp:
                video = Path(tmp) / "video.mp4"
                record.frames, sheet = await work(record, video, on_progress)
                on_progress("store", 0.99)
                await asyncio.to_thread(self.store.put_file,
                                        self.store.path(self.app_name, record.job_id, "video.mp4"), video)
                await asyncio.to_thread(self.store.put_bytes,
                                        self.store.path(self.app_name, record.job_id, "keyframes.png"),
                                        png_bytes(sheet))
            record.state, record.stage, record.progress = "done", "done", 1.0
        except Exception as exc:  # a failure inside a deployment fails the job, never the replica
            record.state, record.error = "failed", _error_message(exc)
            log.warning("job %s failed: %s", record.job_id, record.error)
        except asyncio.CancelledError:  # the replica is shutting down: the record must not say running
            record.state, record.error = "failed", "interrupted: the replica shut down; resubmit the job"
            record.resubmittable = True
            raise
        finally:
            beat.cancel()
            record.finished_at = time.time()
            await save()
            self._state_counts["running"] -= 1
            self.active.pop(record.job_id, None)
            self.metrics.finished.inc(tags={"app": self.app_name, "state": record.state})
            self.metrics.job_seconds.observe(time.time() - t0, tags={"app": self.app_name, "state": record.state})
            self._gauges()

    def _record(self, job_id: str) -> JobRecord:
        record = self.store.load(self.app_name, job_id)
        if record is None:
            raise HTTPException(404, f"no {self.app_name} job {job_id!r}: check the id returned by POST jobs")
        return self._reap(record)

    def _status(self, job_id: str) -> dict:
        return self._record(job_id).public()

    def _file(self, job_id: str, name: str, media_type: str) -> Response:
        record = self._record(job_id)
        if record.state != "done":
            detail = (f"job {job_id} failed: {record.error}" if record.state == "failed"
                      else f"job {job_id} is {record.state} ({record.stage}, {record.progress:.0%}); poll "
                           f"GET jobs/{job_id} until state is 'done'")
            raise HTTPException(409, detail)
        data = self.store.get_bytes(self.store.path(self.app_name, job_id, name))
        if data is None:
            raise HTTPException(404, f"job {job_id} has no {name} in the results store")
        return Response(data, media_type=media_type)

    def check_health(self) -> None:
        self.store.fs.get_file_info(self.store.root)  # the results store is reachable


# ---------------------------------------------------------------------- ArtWalks

artwalks_api = FastAPI(title="inkwalk ArtWalks", version="0.1.0",
                       description="Walks between paintings (ArtWalks): submit paintings, poll the job, "
                                   "download the mp4.")


@serve.deployment(name="ArtWalksIngress", ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64,
                  max_queued_requests=128)
@serve.ingress(artwalks_api)
class ArtWalksIngress(JobIngress):
    app_name = "artwalks"

    def __init__(self, keyframes: DeploymentHandle, interpolator: DeploymentHandle,
                 upscaler: DeploymentHandle, args: dict):
        self._setup(AppArgs.parse(args))
        self.handles = (keyframes, interpolator, upscaler)

    @artwalks_api.post("/jobs", status_code=202, summary="Submit a walk through 2+ paintings")
    async def submit(self, request: Request, paintings: list[UploadFile] = File(..., description="images in walk order"),
                     settings: str = Form("{}", description="JSON object of WalkSettings fields")):
        try:
            length = int(request.headers.get("content-length") or 0)
            L.check_total_upload(length, self.limits)
            L.check_paintings_count(len(paintings), self.limits)
            try:
                user = json.loads(settings or "{}")
            except json.JSONDecodeError as exc:
                raise L.RequestError(422, f"settings is not valid JSON ({exc})") from None
            L.check_walk_settings(user, self.limits)
            ws = self._settings(user)
            images = []
            for i, upload in enumerate(paintings):
                data = await upload.read(self.limits.max_upload_bytes + 1)
                images.append(await asyncio.to_thread(L.decode_painting, upload.filename or f"#{i}", data,
                                                      self.limits))
        except L.RequestError as exc:
            return self._refuse(exc.status, str(exc))
        except InkwalkError as exc:
            return self._refuse(422, str(exc))
        busy = self._admit()
        if busy is not None:
            return busy
        stages = HandleStages(*self.handles, max_inflight=self.args.max_inflight_per_job)

        async def work(record: JobRecord, out: Path, on_progress):
            frames, _, sheet = await render_artwalk(stages, images, ws, out, models_dir=self.args.models_dir,
                                                    on_progress=on_progress)
            return frames, sheet

        merged = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(ws).items()}
        return self._submit(merged, work)

    def _settings(self, user: dict):
        """WalkSettings of a request: the app's defaults, the user's values, the served backends.

        The backends are the deployments' (chosen in the Serve config); a request naming another
        one is refused rather than silently rendered with a different method.
        """
        served = {"keyframer": self.args.keyframer,
                  "interpolator": self.args.interpolator.get("method", "flow-warp"),
                  "flow": self.args.interpolator.get("flow", "dis"),
                  "upscaler": self.args.upscaler.get("backend", "lanczos")}
        for key, value in served.items():
            if key in user and user[key] != value:
                raise L.RequestError(422, f"this app serves {key} {value!r}, not {user[key]!r}: leave "
                                          f"{key!r} out or deploy an app with that backend")
        ws = walk_settings({**self.args.defaults, **user, **served})
        L.check_walk_sizes(tuple(ws.size), ws.output_size, self.limits)
        return ws

    @artwalks_api.get("/jobs/{job_id}", summary="State, stage, progress (0..1) and error of a job")
    def status(self, job_id: str) -> dict:
        return self._status(job_id)

    @artwalks_api.get("/jobs/{job_id}/video", summary="The rendered mp4 (H.264)",
                      response_class=Response)
    def video(self, job_id: str) -> Response:
        return self._file(job_id, "video.mp4", "video/mp4")

    @artwalks_api.get("/jobs/{job_id}/keyframes", summary="Contact sheet (PNG) of the diffusion keyframes",
                      response_class=Response)
    def keyframes(self, job_id: str) -> Response:
        return self._file(job_id, "keyframes.png", "image/png")


# ---------------------------------------------------------------------- ConCLVD

conclvd_api = FastAPI(title="inkwalk ConCLVD", version="0.1.0",
                      description="Text to Chinese-landscape-painting video (ConCLVD): submit a prompt, "
                                  "poll the job, download the mp4.")


class ConCLVDRequest(BaseModel):
    prompt: str = Field(..., description="what to paint, e.g. 'misty mountains over a river, ink wash'")
    settings: dict[str, Any] = Field(default_factory=dict,
                                     description="negative_prompt, frames, steps, guidance, size, seed")


@serve.deployment(name="ConCLVDIngress", ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64,
                  max_queued_requests=128)
@serve.ingress(conclvd_api)
class ConCLVDIngress(JobIngress):
    app_name = "conclvd"

    def __init__(self, generator: DeploymentHandle, interpolator: DeploymentHandle, args: dict):
        self._setup(AppArgs.parse(args))
        self.handles = (generator, interpolator)

    @conclvd_api.post("/jobs", status_code=202, summary="Submit a text-to-video job")
    async def submit(self, body: ConCLVDRequest):
        try:
            L.check_prompt(body.prompt, self.limits)
            merged = {**self.args.defaults, **body.settings}
            L.check_conclvd_settings(merged, self.limits)
        except L.RequestError as exc:
            return self._refuse(exc.status, str(exc))
        busy = self._admit()
        if busy is not None:
            return busy
        generator, interpolator = self.handles
        stages = HandleStages(generator=generator, interpolator=interpolator,
                              max_inflight=self.args.max_inflight_per_job)
        prompt = body.prompt

        async def work(record: JobRecord, out: Path, on_progress):
            n, clip = await render_conclvd(stages, prompt, merged, out, fps=self.args.fps, on_progress=on_progress)
            return n, contact_sheet([clip])

        return self._submit({"prompt": prompt, **merged}, work)

    @conclvd_api.get("/jobs/{job_id}", summary="State, stage, progress (0..1) and error of a job")
    def status(self, job_id: str) -> dict:
        return self._status(job_id)

    @conclvd_api.get("/jobs/{job_id}/video", summary="The rendered mp4 (2N-1 frames after SOFP)",
                     response_class=Response)
    def video(self, job_id: str) -> Response:
        return self._file(job_id, "video.mp4", "video/mp4")

    @conclvd_api.get("/jobs/{job_id}/keyframes", summary="Contact sheet (PNG) of the N generated frames",
                     response_class=Response)
    def keyframes(self, job_id: str) -> Response:
        return self._file(job_id, "keyframes.png", "image/png")


# ---------------------------------------------------------------------- builders


def _opts(args: AppArgs, name: str) -> dict[str, Any]:
    return dict(args.deployment_options.get(name, {}))


def build_artwalks(args: dict | None = None) -> serve.Application:
    """The `artwalks` app: ingress + Keyframes + Interpolator + Upscaler (Serve config builder)."""
    a = AppArgs.parse(args)
    common = {"models_dir": a.models_dir, "device": a.device, "app": "artwalks"}
    kf = Keyframes.options(**_opts(a, "Keyframes")).bind(**common, keyframer=a.keyframer)
    interp = Interpolator.options(**_opts(a, "Interpolator")).bind(**common, **a.interpolator)
    up = Upscaler.options(**_opts(a, "Upscaler")).bind(**common, **a.upscaler)
    return ArtWalksIngress.options(**_opts(a, "ArtWalksIngress")).bind(kf, interp, up, args or {})


def build_conclvd(args: dict | None = None) -> serve.Application:
    """The `conclvd` app: ingress + ConCLVDGenerator + Interpolator (SOFP) (Serve config builder)."""
    a = AppArgs.parse(args)
    common = {"models_dir": a.models_dir, "device": a.device, "app": "conclvd"}
    gen = ConCLVDGenerator.options(**_opts(a, "ConCLVDGenerator")).bind(**common, motion_module=a.motion_module)
    interp_args = {"method": "sofp", "flow": "raft", **a.interpolator}
    interp = Interpolator.options(**_opts(a, "Interpolator")).bind(**common, **interp_args)
    return ConCLVDIngress.options(**_opts(a, "ConCLVDIngress")).bind(gen, interp, args or {})


def apps_from_config(path: str | Path, overrides: dict[str, dict] | None = None) -> dict[str, tuple]:
    """Build every app of a Serve config file for `serve.run`: {name: (application, route_prefix)}.

    The config's per-deployment options (``deployments:``) are applied exactly as `serve deploy`
    would; `overrides` patches an app's args (tests point the store and models elsewhere).
    """
    import importlib

    import yaml

    config = yaml.safe_load(Path(path).read_text())
    built = {}
    for entry in config["applications"]:
        patch = dict((overrides or {}).get(entry["name"], {}))
        patch_options = patch.pop("deployment_options", {})
        args = {**entry.get("args", {}), **patch}
        options = {d["name"]: {k: v for k, v in d.items() if k != "name"} for d in entry.get("deployments", [])}
        for name, extra in patch_options.items():
            options[name] = {**options.get(name, {}), **extra}
        args["deployment_options"] = options
        module, func = entry["import_path"].split(":")
        built[entry["name"]] = (getattr(importlib.import_module(module), func)(args), entry["route_prefix"])
    return built
