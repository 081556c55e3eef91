"""The two Serve apps, `artwalks` and `conclvd`: FastAPI job-API ingresses over the deployments.

Rendering takes minutes, so HTTP is a job API. A submission is admitted (job slots first, then
the upload streamed into the store under its limits, then headers and settings checked; nothing
is decoded here), recorded in the store and answered ``202 {job_id}``. The job then runs the
segment path (`services.render`) from this replica: every frame is computed, upscaled and
encoded on the model deployments and joined into the video by the Encoder, so the ingress holds
no frame and its memory does not grow with the collection or the output size.

Jobs survive their ingress: the record, the inputs and every finished chunk are in the store,
and `services.jobs` (heartbeats, cancel, an atomic take-over, retention) runs them. The routes
both apps share (list, status, delete, video) come from `services.job_routes`; this module
holds what differs: submission, rendering and each app's own outputs.

Serve config entry points (``import_path``): `services.apps:build_artwalks` and
`services.apps:build_conclvd`, each taking the app's ``args`` (see `AppArgs`).
"""


import asyncio
import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, WithJsonSchema, field_validator
from ray import serve
from ray.serve.handle import DeploymentHandle

from inkwalk import __version__
from inkwalk.conclvd.scroll_video import scroll_metadata
from inkwalk.config_model import ConfigModel, parse_config
from inkwalk.errors import InkwalkError
from inkwalk.limits import shown_value
from inkwalk.segments import content_key
from inkwalk.store_layout import JOB_INPUTS, JOB_SHEET, JOB_VIDEO, preview_path, walk_row_path
from inkwalk.settings_schemas import ConCLVDSettingsModel
from inkwalk.walk_settings import WalkSettings, walk_count
from services import http_guard, safe_json
from services import limits as L
from services.api_docs import add_docs
from services.conclvd_generator import ConCLVDGenerator
from services.deployments import Encoder, Interpolator, Keyframes, Upscaler
from services.job_routes import JOB_ID_PATH, job_routes
from services.render import Handles, RenderOptions, WalkJob, render_walks
from services.scroll import SERVED_WINDOWING, check_served_windowing, render_scroll
from services.settings_form import conclvd_form, walk_form
from services.store import TERMINAL, JobRecord, Retention, new_job_id
from services.uploads import UploadLimits, receive
from services.walk_frames import frame_counts, latest_frame_png, walk_pieces

TOKEN_ENV = "INKWALK_API_TOKEN"


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


# ---------------------------------------------------------------------- ArtWalks

artwalks_api = FastAPI(title="inkwalk ArtWalks", version=__version__, docs_url=None, redoc_url=None,
                       description="Walks between paintings (ArtWalks): submit paintings, poll the job, "
                                   "download the mp4.")
http_guard.install(artwalks_api)
add_docs(artwalks_api)


@serve.deployment(name="ArtWalksIngress", ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64,
                  max_queued_requests=128)
@serve.ingress(artwalks_api)
class ArtWalksIngress(job_routes(artwalks_api, "artwalks", "The rendered mp4 (H.264), streamed, with Range support")):

    def __init__(self, keyframes: DeploymentHandle, interpolator: DeploymentHandle,
                 upscaler: DeploymentHandle, encoder: DeploymentHandle, args: AppArgs | dict):
        self._setup(parse_config(AppArgs, args, "app arg"),
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
        folder = self.store.job_path(self.app_name, job_id, JOB_INPUTS)
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
                await asyncio.to_thread(L.check_collection_files, self.store,  # headers only: nothing decoded
                                        [(f.filename or f"painting {i + 1}", f.path) for i, f in enumerate(paintings)],
                                        self.limits, tuple(ws.size), ws.fit)
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
                           outputs={"video": self.store.job_path(self.app_name, job_id, JOB_VIDEO),
                                    "keyframes": self.store.job_path(self.app_name, job_id, JOB_SHEET)})
        return await self._accepted(record)

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

    @artwalks_api.get("/jobs/{job_id}/keyframes", summary="Contact sheet (PNG) of the diffusion keyframes",
                      response_class=Response)
    def keyframes(self, job_id: str = JOB_ID_PATH) -> Response:
        return self._png(self._output(job_id, "keyframes"))

    @artwalks_api.get("/jobs/{job_id}/previews/{walk}", summary="One walk's A, K_1..K_m, B (PNG) once it exists",
                      response_class=Response)
    def preview(self, walk: int, job_id: str = JOB_ID_PATH) -> Response:
        record = self._record(job_id)
        if walk not in record.previews:
            raise HTTPException(404, f"walk {walk} of job {job_id} has no keyframes yet")
        return self._png(walk_row_path(record.walk_keys[walk]))

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
class ConCLVDIngress(job_routes(conclvd_api, "conclvd",
                                "The rendered mp4 (2N-1 frames after SOFP, 2N looping), with Range support")):

    def __init__(self, generator: DeploymentHandle, interpolator: DeploymentHandle, encoder: DeploymentHandle,
                 args: AppArgs | dict):
        self._setup(parse_config(AppArgs, args, "app arg"),
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
            check_served_windowing(merged)
        except L.RequestError as exc:
            return self._refuse(exc.status, str(exc))
        job_id = new_job_id()
        record = JobRecord(job_id=job_id, app=self.app_name, owner=self.replica, version=__version__,
                           settings={"prompt": body.prompt, **merged},
                           outputs={"video": self.store.job_path(self.app_name, job_id, JOB_VIDEO)})
        return await self._accepted(record)

    async def _work(self, record: JobRecord, on_progress) -> None:
        stored = dict(record.settings)
        prompt = stored.pop("prompt")
        settings = ConCLVDSettingsModel.model_validate(stored)  # the record's JSON, validated at submission
        record.models = await self._describe()
        opts = self.render_options
        key = content_key({"prompt": prompt, "settings": stored, "models": record.models, "fps": self.args.fps,
                           "codec": opts.codec.fields()})
        preview = preview_path(key)
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
        return conclvd_form(self.args.defaults, self.limits, {"windowing": SERVED_WINDOWING})

    @conclvd_api.get("/jobs/{job_id}/previews/latest", response_class=Response,
                     summary="The latents being sampled as a PNG strip (a linear map of the 4 channels to RGB)")
    def preview(self, job_id: str = JOB_ID_PATH) -> Response:
        rel = self._record(job_id).outputs.get("preview")
        if not rel or not self.store.exists(rel):
            raise HTTPException(404, f"job {job_id} has no preview yet")
        return self._png(rel)

    @conclvd_api.get("/jobs/{job_id}/keyframes", summary="Latent preview (PNG) of the N sampled frames",
                     response_class=Response)
    def keyframes(self, job_id: str = JOB_ID_PATH) -> Response:
        record = self._record(job_id)
        rel = record.outputs.get("keyframes")
        if not rel or not self.store.exists(rel):
            raise HTTPException(404 if record.state in TERMINAL else 409,
                                f"job {job_id} has no generated frames yet ({record.state})")
        return self._png(rel)


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
    check_served_windowing(L.parse_conclvd_settings(a.defaults, {}, a.limits, label=_default_label).model_dump(),
                           _default_label)
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


