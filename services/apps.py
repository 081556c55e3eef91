"""The two Serve apps, `artwalks` and `conclvd`: FastAPI job-API ingresses over the deployments.

Rendering takes minutes, so HTTP is a job API. A submission is admitted (job slots first, then
the upload streamed into the store under its limits, then headers and settings checked; nothing
is decoded here), recorded in the store and answered ``202 {job_id}``. The job then runs the
segment path (`services.render`) from this replica: every frame is computed, upscaled and
encoded on the model deployments and joined into the video by the Encoder, so the ingress holds
no frame and its memory does not grow with the collection or the output size.

Jobs survive their ingress: the record, the inputs and every finished chunk are in the store.
The owning replica heart-beats its jobs; a replica that finds a job whose owner stopped
heart-beating (restart, crash, scale-down) takes it over and resumes it from its chunks.
`DELETE` cancels a running job (any replica: through a marker in the store) or deletes a
finished one with its results.

Serve config entry points (``import_path``): `services.apps:build_artwalks` and
`services.apps:build_conclvd`, each taking the app's ``args`` (see `AppArgs`).
"""


import asyncio
import logging
import os
import random
import time
from pathlib import Path
from typing import Annotated, Any, Callable

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, WithJsonSchema, field_validator
from ray import serve
from ray.serve.handle import DeploymentHandle

from inkwalk import __version__
from inkwalk.config_model import ConfigModel, parse_config
from inkwalk.conclvd.scroll_video import scroll_metadata
from inkwalk.errors import InkwalkError
from inkwalk.limits import shown_value
from inkwalk.settings_schemas import ConCLVDSettingsModel
from inkwalk.walk_settings import WalkSettings, walk_count
from inkwalk.segments import content_key
from services import http_guard, safe_json
from services import limits as L
from services.api_docs import add_docs
from services.conclvd_generator import ConCLVDGenerator
from services.deployments import Encoder, Interpolator, Keyframes, Upscaler
from services.metrics import serve_metrics
from services.output_names import content_disposition, output_stem
from services.render import Handles, RenderError, RenderOptions, WalkJob, one_line, render_walks
from services.scroll import render_scroll
from services.settings_form import conclvd_form, walk_form
from services.store import JOB_ID, TERMINAL, JobRecord, JobStore, Retention, new_job_id
from services.uploads import UploadLimits, receive
from services.walk_frames import frame_counts, latest_frame_png, walk_pieces

log = logging.getLogger("ray.serve")
TOKEN_ENV = "INKWALK_API_TOKEN"
JOB_ID_PATH = PathParam(..., pattern=JOB_ID.pattern, description="a job id returned by POST jobs (32 hex digits)")


class AppArgs(ConfigModel):
    """The ``args`` of an app in a Serve config (every key optional), parsed once where the app is built."""

    store: str = "~/.inkwalk/results"  # folder or pyarrow filesystem URI, shared by every node
    # else INKWALK_MODELS where the app is built, else the public ids
    models_dir: str | None = Field(None, validate_default=True)
    device: str | None = None
    limits: L.Limits = Field(default_factory=L.Limits)
    defaults: dict[str, Any] = {}  # settings merged under every request's (checked by `build_*`)
    interpolator: dict[str, Any] = {}  # method, flow, batch: the Interpolator's own arguments
    upscaler: dict[str, Any] = {}  # backend, tile, batch_size, batch: the Upscaler's own arguments
    keyframer: str = "kandinsky"  # or "none": no Kandinsky weights, walks without keyframes
    motion_module: str | None = None
    fps: float = Field(8.0, gt=0)  # ConCLVD output frame rate
    heartbeat_timeout_s: float = Field(60.0, gt=0)
    render: RenderOptions = Field(default_factory=RenderOptions)
    retention: Retention = Field(default_factory=Retention)
    upload_timeout_s: float = Field(30.0, gt=0)
    # else INKWALK_API_TOKEN; when set, every route needs it
    api_token: str | None = Field(None, validate_default=True)
    guard: http_guard.GuardSettings = Field(default_factory=http_guard.GuardSettings)  # body caps and deadlines
    deployment_options: dict[str, dict[str, Any]] = {}

    @field_validator("models_dir")
    @classmethod
    def _models_from_env(cls, value: str | None) -> str | None:
        return value or os.environ.get("INKWALK_MODELS") or None

    @field_validator("api_token")
    @classmethod
    def _token_from_env(cls, value: str | None) -> str | None:
        return value or os.environ.get(TOKEN_ENV) or None


def served_backends(args: AppArgs) -> dict[str, str]:
    """The ArtWalks settings the app's deployments fix (chosen in the Serve config).

    Defined above the ingresses: `serve.ingress` copies a class with the module globals it sees then.
    """
    return {"keyframer": args.keyframer, "interpolator": args.interpolator.get("method", "flow-warp"),
            "flow": args.interpolator.get("flow", "dis"), "upscaler": args.upscaler.get("backend", "lanczos")}


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) of a single ``bytes=a-b`` range, None for the whole file; HTTPException 416 if bad."""
    if not header:
        return None
    try:
        unit, spec = header.split("=", 1)
        start_text, end_text = spec.strip().split("-", 1)
        if unit.strip() != "bytes" or "," in spec:
            raise ValueError
        if start_text == "":  # the last N bytes
            start, end = max(0, size - int(end_text)), size
        else:
            start, end = int(start_text), min(size, int(end_text) + 1) if end_text else size
    except ValueError:
        raise HTTPException(416, f"unsupported Range {http_guard.clip(header)}: use one 'bytes=START-END'",
                            headers={"Content-Range": f"bytes */{size}"}) from None
    if start >= size or start >= end:
        raise HTTPException(416, f"Range {http_guard.clip(header)} is outside the {size} bytes",
                            headers={"Content-Range": f"bytes */{size}"})
    return start, end


class JobIngress:
    """Job bookkeeping shared by both apps: records, heartbeats, take-over, cancel, files."""

    app_name = ""

    def _setup(self, args: AppArgs, api: FastAPI, handles: Handles) -> None:
        self.args = args
        self.handles = handles
        self.store = JobStore(args.store)
        self.limits = args.limits
        self.render_options = args.render
        self.retention = args.retention
        http_guard.configure(api, http_guard.Guard(args.api_token, self.limits.max_total_upload_bytes, args.guard))
        try:
            self.replica = serve.get_replica_context().replica_id.unique_id
        except Exception:  # constructed outside Serve
            self.replica = new_job_id()
        self.active: dict[str, asyncio.Task] = {}
        self.records: dict[str, JobRecord] = {}
        self.metrics = serve_metrics()
        self._models: dict[str, Any] | None = None
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    # ---------------------------------------------------------------- bookkeeping
    def _gauges(self) -> None:
        running = sum(r.state == "running" for r in self.records.values())
        self.metrics.jobs.set(running, tags={"app": self.app_name, "state": "running"})
        self.metrics.jobs.set(len(self.active) - running, tags={"app": self.app_name, "state": "queued"})
        self.metrics.queue_depth.set(len(self.active), tags={"app": self.app_name})

    def _refuse(self, code: int, message: str) -> JSONResponse:
        self.metrics.refused.inc(tags={"app": self.app_name, "code": str(code)})
        headers = {"Retry-After": "10"} if code == 503 else None
        return JSONResponse({"detail": message}, status_code=code, headers=headers)

    def _busy(self) -> JSONResponse | None:
        if len(self.active) >= self.limits.max_active_jobs:
            return self._refuse(503, f"overloaded: {len(self.active)} jobs are rendering on this replica "
                                     f"(limit {self.limits.max_active_jobs}); retry later")
        return None

    async def _describe(self) -> dict[str, Any]:
        """The deployments' model identities (they name the chunks), asked once."""
        if self._models is None:
            models: dict[str, Any] = {}
            for handle in self._model_handles():
                models.update(await handle.describe.remote())
            self._models = models
        return self._models

    def _model_handles(self) -> list:
        raise NotImplementedError

    def _start(self, record: JobRecord) -> None:
        self.records[record.job_id] = record
        self.active[record.job_id] = asyncio.get_running_loop().create_task(self._run(record))
        self._gauges()

    async def _save(self, record: JobRecord) -> None:
        record.heartbeat_at = time.time()
        await asyncio.to_thread(self.store.save, record)

    async def _run(self, record: JobRecord) -> None:
        t0 = time.time()
        record.state, record.owner, record.error = "running", self.replica, None
        record.started_at = record.started_at or time.time()
        await self._save(record)

        def on_progress(stage: str, progress: float) -> None:
            record.stage, record.progress = stage, round(max(record.progress, float(progress)), 4)

        try:
            await self._work(record, on_progress)
            record.state, record.stage, record.progress = "done", "done", 1.0
        except asyncio.CancelledError:
            if not await asyncio.to_thread(self.store.cancel_requested, self.app_name, record.job_id):
                # the replica is shutting down: leave the job running for another replica to take over
                self.records.pop(record.job_id, None)
                self.active.pop(record.job_id, None)
                raise
            record.state, record.stage, record.error = "cancelled", "cancelled", "cancelled"
        except Exception as exc:  # a failure inside a deployment fails the job, never the replica
            record.state, record.error = "failed", one_line(exc)
            record.resubmittable = isinstance(exc, RenderError) or not isinstance(exc, InkwalkError)
            log.warning("job %s failed: %s", record.job_id, record.error)
        record.finished_at = time.time()
        await self._save(record)
        self.records.pop(record.job_id, None)
        self.active.pop(record.job_id, None)
        self.metrics.finished.inc(tags={"app": self.app_name, "state": record.state})
        self.metrics.job_seconds.observe(time.time() - t0, tags={"app": self.app_name, "state": record.state})
        self._gauges()

    async def _work(self, record: JobRecord, on_progress: Callable[[str, float], None]) -> None:
        raise NotImplementedError

    async def _supervise(self) -> None:
        """Heartbeats, cancel markers, taking over orphaned jobs, retention: one loop per replica."""
        tick = min(1.0, max(0.2, self.args.heartbeat_timeout_s / 4))
        last_adopt = last_retention = 0.0
        while True:
            try:
                for job_id, record in list(self.records.items()):
                    if await asyncio.to_thread(self.store.cancel_requested, self.app_name, job_id):
                        task = self.active.get(job_id)
                        if task is not None and not task.done():
                            task.cancel()
                    elif record.state == "running":
                        await self._save(record)
                now = time.monotonic()
                if now - last_adopt > self.args.heartbeat_timeout_s / 2:
                    last_adopt = now
                    await self._adopt_orphans()
                if now - last_retention > self.retention.interval_s:
                    last_retention = now
                    gone = await asyncio.to_thread(self.store.apply_retention, self.app_name, self.retention)
                    if any(gone.values()):
                        log.info("retention removed %s", gone)
            except Exception as exc:  # the store hiccuped: try again next tick, never die
                log.warning("job supervisor: %s", one_line(exc))
            await asyncio.sleep(tick)

    async def _adopt_orphans(self) -> None:
        """Resume jobs whose owner stopped heart-beating, while this replica has free slots."""
        for record in await asyncio.to_thread(self.store.list_jobs, self.app_name):
            if len(self.active) >= self.limits.max_active_jobs:
                return
            stale = time.time() - record.heartbeat_at > self.args.heartbeat_timeout_s
            if record.state in TERMINAL or record.job_id in self.active or not stale:
                continue
            record.owner, record.resumed = self.replica, record.resumed + 1
            await self._save(record)
            await asyncio.sleep(0.2 + 0.3 * random.random())  # another replica may claim it too
            again = await asyncio.to_thread(self.store.load, self.app_name, record.job_id)
            if again is not None and again.owner == self.replica and again.state not in TERMINAL:
                log.info("resuming job %s (owner stopped heart-beating)", record.job_id)
                self._start(again)

    def _record(self, job_id: str) -> JobRecord:
        record = self.records.get(job_id) or self.store.load(self.app_name, job_id)
        if record is None:
            raise HTTPException(404, f"no {self.app_name} job {job_id!r}: check the id returned by POST jobs")
        return record

    def _list(self, limit: int, offset: int) -> dict:
        records = self.store.list_jobs(self.app_name)
        page = [self.records.get(r.job_id, r).public() for r in records[offset:offset + limit]]
        return {"jobs": page, "total": len(records), "limit": limit, "offset": offset}

    async def _delete(self, job_id: str) -> Response:
        record = self._record(job_id)
        if record.state not in TERMINAL:
            await asyncio.to_thread(self.store.request_cancel, self.app_name, job_id)
            task = self.active.get(job_id)
            if task is not None:
                task.cancel()
            elif time.time() - record.heartbeat_at > self.args.heartbeat_timeout_s:  # nobody runs it
                record.state = record.stage = "cancelled"
                record.finished_at = time.time()
                await asyncio.to_thread(self.store.save, record)
            return JSONResponse({"job_id": job_id, "state": "cancelling"}, status_code=202)
        await asyncio.to_thread(self.store.delete_job, self.app_name, job_id)
        return Response(status_code=204)

    def _output(self, job_id: str, name: str) -> str:
        record = self._record(job_id)
        if record.state != "done":
            detail = (f"job {job_id} {record.state}: {record.error}" if record.state in ("failed", "cancelled")
                      else f"job {job_id} is {record.state} ({record.stage}, {record.progress:.0%}); poll "
                           f"GET jobs/{job_id} until state is 'done'")
            raise HTTPException(409, detail)
        rel = record.outputs.get(name)
        if not rel or not self.store.exists(rel):
            raise HTTPException(404, f"job {job_id} has no {name} in the results store")
        return rel

    def _stream(self, rel: str, media_type: str, request: Request, filename: str | None = None) -> Response:
        """A store file as a streamed response with single-range support (video players seek)."""
        size = self.store.size(rel)
        if size is None:
            raise HTTPException(404, "the file is no longer in the results store")
        span = _range(request.headers.get("range"), size)
        start, end = span or (0, size)
        headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start)}
        if filename:
            headers["Content-Disposition"] = content_disposition(filename)
        if span:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        return StreamingResponse(self.store.iter_bytes(rel, start, end), status_code=206 if span else 200,
                                 media_type=media_type, headers=headers)

    def check_health(self) -> None:
        self.store.fs.get_file_info(self.store.root)  # the results store is reachable
        if self._supervisor.done():
            raise RuntimeError("the job supervisor stopped")


def _png(rel: str, store: JobStore) -> Response:
    data = store.get_bytes(rel)
    if data is None:
        raise HTTPException(404, "no such image yet")
    return Response(data, media_type="image/png")


# ---------------------------------------------------------------------- ArtWalks

artwalks_api = FastAPI(title="inkwalk ArtWalks", version=__version__, docs_url=None, redoc_url=None,
                       description="Walks between paintings (ArtWalks): submit paintings, poll the job, "
                                   "download the mp4.")
http_guard.install(artwalks_api)
add_docs(artwalks_api)


@serve.deployment(name="ArtWalksIngress", ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64,
                  max_queued_requests=128)
@serve.ingress(artwalks_api)
class ArtWalksIngress(JobIngress):
    app_name = "artwalks"

    def __init__(self, keyframes: DeploymentHandle, interpolator: DeploymentHandle,
                 upscaler: DeploymentHandle, encoder: DeploymentHandle, args: AppArgs | dict):
        self._setup(parse_config(AppArgs, args, "app arg"), artwalks_api,
                    Handles(keyframes=keyframes, interpolator=interpolator, upscaler=upscaler, encoder=encoder))

    def _model_handles(self) -> list:
        return [self.handles.keyframes, self.handles.interpolator, self.handles.upscaler]

    @artwalks_api.post("/jobs", status_code=202, summary="Submit a walk through 2+ paintings",
                       openapi_extra={"requestBody": {"content": {"multipart/form-data": {"schema": {
                           "type": "object", "required": ["paintings"],
                           "properties": {"paintings": {"type": "array", "items": {"type": "string",
                                                                                     "format": "binary"},
                                                        "description": "images in walk order"},
                                          "settings": {"type": "string", "contentMediaType": "application/json",
                                                       "contentSchema": WalkSettings.model_json_schema(),
                                                       "description": "JSON object of WalkSettings fields"}}}}}}})
    async def submit(self, request: Request):
        busy = self._busy()  # before reading a byte of the body
        if busy is not None:
            return busy
        job_id = new_job_id()
        folder = self.store.job_path(self.app_name, job_id, "inputs")
        limits = UploadLimits(max_total_bytes=self.limits.max_total_upload_bytes,
                              max_file_bytes=self.limits.max_upload_bytes, max_files=self.limits.max_paintings,
                              file_fields=("paintings",), text_fields=("settings",),
                              read_timeout_s=self.args.upload_timeout_s)
        try:
            try:  # a refused or aborted upload leaves nothing behind, not even its folder
                upload = await receive(request, self.store, folder, limits)
                paintings = upload.files
                user = safe_json.loads(upload.fields.get("settings") or "{}", "settings")
                ws = self._settings(user, len(paintings))
                for i, f in enumerate(paintings):  # headers only: nothing is decoded here
                    await asyncio.to_thread(L.check_painting_file, f.filename or f"painting {i + 1}", self.store,
                                            f.path, self.limits, tuple(ws.size), ws.fit)
            except BaseException:
                await asyncio.to_thread(self.store.delete_job, self.app_name, job_id)
                raise
        except L.RequestError as exc:
            return self._refuse(exc.status, str(exc))
        except InkwalkError as exc:
            return self._refuse(422, str(exc))
        busy = self._busy()  # the upload took a while: another job may have taken the slot
        if busy is not None:
            await asyncio.to_thread(self.store.delete_job, self.app_name, job_id)
            return busy
        record = JobRecord(job_id=job_id, app=self.app_name, owner=self.replica, version=__version__,
                           settings=ws.model_dump(mode="json"),
                           inputs=[{"name": f.filename, "path": f.path, "sha256": f.sha256, "size": f.size}
                                   for f in paintings],
                           outputs={"video": self.store.job_path(self.app_name, job_id, "video.mp4"),
                                    "keyframes": self.store.job_path(self.app_name, job_id, "keyframes.png")})
        await asyncio.to_thread(self.store.save, record)
        self._start(record)
        return JSONResponse({"job_id": job_id, "state": record.state}, status_code=202,
                            headers={"Location": f"jobs/{job_id}"})

    def _settings(self, user: dict, paintings: int) -> WalkSettings:
        """WalkSettings of a request: the app's defaults, the user's values, the served backends.

        Validated once, against the app's limits (`inkwalk.limits`). The backends are the
        deployments' (chosen in the Serve config); a request naming another one is refused rather
        than silently rendered with a different method.
        """
        served = served_backends(self.args)
        for key, value in served.items():
            if isinstance(user, dict) and key in user and user[key] != value:
                raise L.RequestError(422, f"this app serves {key} {value!r}, not {user[key]!r}: leave "
                                          f"{key!r} out or deploy an app with that backend")
        user = {**user, **served} if isinstance(user, dict) else user
        return L.parse_walk_settings(user, self.args.defaults, self.limits, paintings)

    @artwalks_api.get("/settings", summary="Defaults per preset, choices and limits of this app's settings")
    def settings_form(self) -> dict:
        return walk_form(self.args.defaults, self.limits, served_backends(self.args))

    async def _work(self, record: JobRecord, on_progress) -> None:
        ws = WalkSettings.model_validate(record.settings)  # the record's JSON, validated at submission

        record.walk_keys = [""] * walk_count(len(record.inputs), ws)

        def walk_ready(i: int, key: str) -> None:
            record.walk_keys[i] = key
            record.previews = sorted({*record.previews, i})

        job = WalkJob(paintings=[i["path"] for i in record.inputs], painting_ids=[i["sha256"] for i in record.inputs],
                      settings=ws, video=record.outputs["video"], sheet=record.outputs["keyframes"],
                      metadata={"job_id": record.job_id, "painting_names": [i["name"] for i in record.inputs]},
                      painting_names=[i["name"] or f"painting {n + 1}" for n, i in enumerate(record.inputs)])
        record.models = await self._describe()
        result = await render_walks(self.handles, self.store, job, record.models, self.render_options,
                                    on_progress, walk_ready)
        record.frames, record.walk_keys = result.frames, result.walk_keys
        record.chunks_rendered, record.chunks_reused = result.chunks_rendered, result.chunks_reused

    @artwalks_api.get("/jobs", summary="Jobs of this app, newest first (paged)")
    def list_jobs(self, limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0)) -> dict:
        return self._list(limit, offset)

    @artwalks_api.get("/jobs/{job_id}", summary="State, stage, progress (0..1) and error of a job")
    def status(self, job_id: str = JOB_ID_PATH) -> dict:
        return self._record(job_id).public()

    @artwalks_api.delete("/jobs/{job_id}", summary="Cancel a running job (202), or delete a finished one (204)")
    async def delete(self, job_id: str = JOB_ID_PATH) -> Response:
        return await self._delete(job_id)

    @artwalks_api.get("/jobs/{job_id}/video", summary="The rendered mp4 (H.264), streamed, with Range support",
                      response_class=Response)
    def video(self, request: Request, job_id: str = JOB_ID_PATH) -> Response:
        return self._stream(self._output(job_id, "video"), "video/mp4", request,
                            f"{output_stem(self._record(job_id))}.mp4")

    @artwalks_api.get("/jobs/{job_id}/keyframes", summary="Contact sheet (PNG) of the diffusion keyframes",
                      response_class=Response)
    def keyframes(self, job_id: str = JOB_ID_PATH) -> Response:
        return _png(self._output(job_id, "keyframes"), self.store)

    @artwalks_api.get("/jobs/{job_id}/previews/{walk}", summary="One walk's A, K_1..K_m, B (PNG) once it exists",
                      response_class=Response)
    def preview(self, walk: int, job_id: str = JOB_ID_PATH) -> Response:
        from inkwalk.segments import walk_row_path

        record = self._record(job_id)
        if walk not in record.previews:
            raise HTTPException(404, f"walk {walk} of job {job_id} has no keyframes yet")
        return _png(walk_row_path(record.walk_keys[walk]), self.store)

    @artwalks_api.get("/jobs/{job_id}/frames", summary="Frames of the walk finished so far, and in all")
    async def frames(self, job_id: str = JOB_ID_PATH) -> dict:
        pieces = walk_pieces(self._record(job_id), self.render_options.codec)
        return await asyncio.to_thread(frame_counts, pieces, self.store)

    @artwalks_api.get("/jobs/{job_id}/frames/latest", response_class=Response,
                      summary="The newest in-between frame (PNG): the first of the finished piece furthest along")
    async def latest_frame(self, job_id: str = JOB_ID_PATH) -> Response:
        pieces = walk_pieces(self._record(job_id), self.render_options.codec)
        png = await asyncio.to_thread(latest_frame_png, pieces, self.store)
        if png is None:
            raise HTTPException(404, f"no piece of walk job {job_id} has finished yet")
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    @artwalks_api.get("/jobs/{job_id}/paintings/{index}", summary="An uploaded painting, as sent",
                      response_class=Response)
    def painting(self, request: Request, index: int, job_id: str = JOB_ID_PATH) -> Response:
        record = self._record(job_id)
        if not 0 <= index < len(record.inputs):
            raise HTTPException(404, f"job {job_id} has {len(record.inputs)} paintings")
        return self._stream(record.inputs[index]["path"], "application/octet-stream", request)


# ---------------------------------------------------------------------- ConCLVD

conclvd_api = FastAPI(title="inkwalk ConCLVD", version=__version__, docs_url=None, redoc_url=None,
                      description="Text to Chinese-landscape-painting video (ConCLVD): submit a prompt, "
                                  "poll the job, download the mp4.")
http_guard.install(conclvd_api)
add_docs(conclvd_api)


class ConCLVDRequest(BaseModel):
    prompt: str = Field(..., description="what to paint, e.g. 'misty mountains over a river, ink wash'")
    # a plain object here so that the app's defaults merge under it before the one validation (`submit`);
    # its schema is the settings model's
    settings: Annotated[dict[str, Any], WithJsonSchema(ConCLVDSettingsModel.model_json_schema())] = Field(
        default_factory=dict, description="ConCLVD settings; fields left out take the app's defaults")


@serve.deployment(name="ConCLVDIngress", ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64,
                  max_queued_requests=128)
@serve.ingress(conclvd_api)
class ConCLVDIngress(JobIngress):
    app_name = "conclvd"

    def __init__(self, generator: DeploymentHandle, interpolator: DeploymentHandle, encoder: DeploymentHandle,
                 args: AppArgs | dict):
        self._setup(parse_config(AppArgs, args, "app arg"), conclvd_api,
                    Handles(generator=generator, interpolator=interpolator, encoder=encoder))

    def _model_handles(self) -> list:
        return [self.handles.generator, self.handles.interpolator]

    @conclvd_api.post("/jobs", status_code=202, summary="Submit a text-to-video job")
    async def submit(self, body: ConCLVDRequest):
        busy = self._busy()
        if busy is not None:
            return busy
        try:
            L.check_prompt(body.prompt, self.limits)
            merged = L.parse_conclvd_settings(body.settings, self.args.defaults, self.limits).model_dump(mode="json")
        except L.RequestError as exc:
            return self._refuse(exc.status, str(exc))
        job_id = new_job_id()
        record = JobRecord(job_id=job_id, app=self.app_name, owner=self.replica, version=__version__,
                           settings={"prompt": body.prompt, **merged},
                           outputs={"video": self.store.job_path(self.app_name, job_id, "video.mp4")})
        await asyncio.to_thread(self.store.save, record)
        self._start(record)
        return JSONResponse({"job_id": job_id, "state": record.state}, status_code=202,
                            headers={"Location": f"jobs/{job_id}"})

    async def _work(self, record: JobRecord, on_progress) -> None:
        stored = dict(record.settings)
        prompt = stored.pop("prompt")
        settings = ConCLVDSettingsModel.model_validate(stored)  # the record's JSON, validated at submission
        record.models = await self._describe()
        opts = self.render_options
        key = content_key({"prompt": prompt, "settings": stored, "models": record.models, "fps": self.args.fps,
                           "codec": opts.codec.fields()})
        preview = f"previews/{key[:2]}/{key}.png"
        record.outputs["keyframes"] = record.outputs["preview"] = preview
        values = settings.model_dump()
        metadata = {"inkwalk": __version__, "app": "conclvd", "prompt": prompt,
                    "settings": scroll_metadata(prompt, values), "models": record.models, "job_id": record.job_id}

        def on_windows(windows: dict) -> None:
            record.windows = windows

        record.frames = await render_scroll(self.handles, self.store, prompt, values, key, record.outputs["video"],
                                            preview, self.args.fps, metadata, opts, on_progress, on_windows)

    @conclvd_api.get("/settings", summary="Defaults, choices and limits of this app's settings")
    def settings_form(self) -> dict:
        return conclvd_form(self.args.defaults, self.limits)

    @conclvd_api.get("/jobs", summary="Jobs of this app, newest first (paged)")
    def list_jobs(self, limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0)) -> dict:
        return self._list(limit, offset)

    @conclvd_api.get("/jobs/{job_id}", summary="State, stage, progress (0..1) and error of a job")
    def status(self, job_id: str = JOB_ID_PATH) -> dict:
        return self._record(job_id).public()

    @conclvd_api.delete("/jobs/{job_id}", summary="Cancel a running job (202), or delete a finished one (204)")
    async def delete(self, job_id: str = JOB_ID_PATH) -> Response:
        return await self._delete(job_id)

    @conclvd_api.get("/jobs/{job_id}/video", response_class=Response,
                     summary="The rendered mp4 (2N-1 frames after SOFP, 2N looping), with Range support")
    def video(self, request: Request, job_id: str = JOB_ID_PATH) -> Response:
        return self._stream(self._output(job_id, "video"), "video/mp4", request,
                            f"{output_stem(self._record(job_id))}.mp4")

    @conclvd_api.get("/jobs/{job_id}/previews/latest", response_class=Response,
                     summary="The latents being sampled as a PNG strip (a linear map of the 4 channels to RGB)")
    def preview(self, job_id: str = JOB_ID_PATH) -> Response:
        rel = self._record(job_id).outputs.get("preview")
        if not rel or not self.store.exists(rel):
            raise HTTPException(404, f"job {job_id} has no preview yet")
        return _png(rel, self.store)

    @conclvd_api.get("/jobs/{job_id}/keyframes", summary="Latent preview (PNG) of the N sampled frames",
                     response_class=Response)
    def keyframes(self, job_id: str = JOB_ID_PATH) -> Response:
        record = self._record(job_id)
        rel = record.outputs.get("keyframes")
        if not rel or not self.store.exists(rel):
            raise HTTPException(404 if record.state in TERMINAL else 409,
                                f"job {job_id} has no generated frames yet ({record.state})")
        return _png(rel, self.store)


# ---------------------------------------------------------------------- builders


def _opts(args: AppArgs, name: str) -> dict[str, Any]:
    return dict(args.deployment_options.get(name, {}))


def build_artwalks(args: dict | None = None) -> serve.Application:
    """The `artwalks` app: ingress + Keyframes + Interpolator + Upscaler + Encoder (Serve config builder)."""
    a = parse_config(AppArgs, args, "app arg")
    L.parse_walk_settings({**a.defaults, **served_backends(a)}, {}, a.limits, a.limits.min_paintings, _default_label)
    common = {"models_dir": a.models_dir, "device": a.device, "app": "artwalks"}
    kf = Keyframes.options(**_opts(a, "Keyframes")).bind(store=a.store, keyframer=a.keyframer, limits=a.limits,
                                                         **common)
    interp = Interpolator.options(**_opts(a, "Interpolator")).bind(**common, **a.interpolator)
    up = Upscaler.options(**_opts(a, "Upscaler")).bind(**common, **a.upscaler)
    enc = Encoder.options(**_opts(a, "Encoder")).bind(store=a.store, app="artwalks")
    return ArtWalksIngress.options(**_opts(a, "ArtWalksIngress")).bind(kf, interp, up, enc, a)


def build_conclvd(args: dict | None = None) -> serve.Application:
    """The `conclvd` app: ingress (each job's coordinator) + ConCLVDGenerator (windows, decoding) + Interpolator
    (SOFP) + Encoder (Serve config builder)."""
    a = parse_config(AppArgs, args, "app arg")
    L.parse_conclvd_settings(a.defaults, {}, a.limits, label=_default_label)
    common = {"models_dir": a.models_dir, "device": a.device, "app": "conclvd"}
    gen = ConCLVDGenerator.options(**_opts(a, "ConCLVDGenerator")).bind(store=a.store, motion_module=a.motion_module,
                                                                       **common)
    interp_args = {"method": "sofp", "flow": "raft", **a.interpolator}
    interp = Interpolator.options(**_opts(a, "Interpolator")).bind(**common, **interp_args)
    enc = Encoder.options(**_opts(a, "Encoder")).bind(store=a.store, app="conclvd")
    return ConCLVDIngress.options(**_opts(a, "ConCLVDIngress")).bind(gen, interp, enc, a)


def _default_label(name: str, value: Any) -> str:
    """How a refusal names a value of the Serve config's ``defaults:``, checked when the app is built."""
    return f"default setting {name!r} = {shown_value(value)}"


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


