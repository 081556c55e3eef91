"""The HTTP routes every job app shares, made once per app by `job_routes`.

Serve's class-based ingress binds routes registered on one FastAPI app to one class, so the
factory registers the common routes (list, status, delete, video) on the app it is given and
returns the base class its ingress derives from; the ingress adds its own routes (submit,
contact sheet, previews...) on the same FastAPI app. Store failures (a read-only or unreachable
results store) answer 503 with one line, never a traceback.
"""


from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve

from services import http_guard
from services.jobs import JobLifecycle
from services.metrics import serve_metrics
from services.output_names import content_disposition, output_stem
from services.render import Handles, one_line
from services.store import JOB_ID, BadRecord, JobRecord, JobStore, new_job_id

JOB_ID_PATH = PathParam(..., pattern=JOB_ID.pattern, description="a job id returned by POST jobs (32 hex digits)")


def job_routes(api: FastAPI, app_name: str, video_summary: str) -> type:
    """The base class of an app's ingress, with the routes every job app has registered on `api`."""
    api.add_exception_handler(OSError, _store_unavailable)
    api.add_exception_handler(BadRecord, _bad_record)

    class JobRoutes:
        """Setup, lookups and the common routes of one app's ingress (which defines `_work`, rendering
        one job, and `_model_handles`, the deployments whose identities name its outputs)."""

        def _setup(self, args: Any, handles: Handles) -> None:
            self.args, self.handles = args, handles
            self.app_name = app_name
            self.store = JobStore(args.store)
            self.limits = args.limits
            self.render_options = args.render
            http_guard.configure(api, http_guard.Guard(args.api_token, self.limits.max_total_upload_bytes, args.guard))
            try:
                replica = serve.get_replica_context().replica_id.unique_id
            except Exception:  # constructed outside Serve
                replica = new_job_id()
            self.replica = replica
            self.metrics = serve_metrics()
            self.lifecycle = JobLifecycle(self.store, app_name, replica, self._work,
                                          max_active=self.limits.max_active_jobs,
                                          heartbeat_timeout_s=args.heartbeat_timeout_s,
                                          retention=args.retention, metrics=self.metrics)
            self.lifecycle.start_supervisor()
            self._models: dict[str, Any] | None = None

        async def _describe(self) -> dict[str, Any]:
            """The deployments' model identities (they name the chunks), asked once."""
            if self._models is None:
                models: dict[str, Any] = {}
                for handle in self._model_handles():
                    models.update(await handle.describe.remote())
                self._models = models
            return self._models

        def _refuse(self, code: int, message: str) -> JSONResponse:
            self.metrics.refused.inc(tags={"app": app_name, "code": str(code)})
            headers = {"Retry-After": "10"} if code == 503 else None
            return JSONResponse({"detail": message}, status_code=code, headers=headers)

        def _busy(self) -> JSONResponse | None:
            if self.lifecycle.busy():
                return self._refuse(503, f"overloaded: {len(self.lifecycle.tasks)} jobs are rendering on this "
                                         f"replica (limit {self.limits.max_active_jobs}); retry later")
            return None

        async def _accepted(self, record: JobRecord) -> JSONResponse:
            await self.lifecycle.submit(record)
            return JSONResponse({"job_id": record.job_id, "state": record.state}, status_code=202,
                                headers={"Location": f"jobs/{record.job_id}"})

        def _record(self, job_id: str) -> JobRecord:
            record = self.lifecycle.get(job_id)
            if record is None:
                raise HTTPException(404, f"no {app_name} job {job_id!r}: check the id returned by POST jobs")
            return record

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

        def _png(self, rel: str | None) -> Response:
            data = self.store.get_bytes(rel) if rel else None
            if data is None:
                raise HTTPException(404, "no such image yet")
            return Response(data, media_type="image/png")

        def check_health(self) -> None:
            self.store.fs.get_file_info(self.store.root)  # the results store is reachable
            if not self.lifecycle.healthy():
                raise RuntimeError("the job supervisor stopped")

        @api.get("/jobs", summary="Jobs of this app, newest first (paged); unreadable records are skipped")
        def list_jobs(self, limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0)) -> dict:
            return self.lifecycle.page(limit, offset)

        @api.get("/jobs/{job_id}", summary="State, stage, progress (0..1) and error of a job")
        def status(self, job_id: str = JOB_ID_PATH) -> dict:
            return self._record(job_id).public()

        @api.delete("/jobs/{job_id}", summary="Cancel a running job (202), or delete a finished one (204)")
        async def delete(self, job_id: str = JOB_ID_PATH) -> Response:
            outcome = await self.lifecycle.cancel_or_delete(job_id)
            if outcome is None:
                raise HTTPException(404, f"no {app_name} job {job_id!r}: check the id returned by POST jobs")
            if outcome == "deleted":
                return Response(status_code=204)
            return JSONResponse({"job_id": job_id, "state": "cancelling"}, status_code=202)

        @api.get("/jobs/{job_id}/video", summary=video_summary, response_class=Response)
        def video(self, request: Request, job_id: str = JOB_ID_PATH) -> Response:
            return self._stream(self._output(job_id, "video"), "video/mp4", request,
                                f"{output_stem(self._record(job_id))}.mp4")

    return JobRoutes


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


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A store that refuses a read or write (read-only, full, unreachable): 503, one line."""
    return JSONResponse({"detail": f"the results store is unavailable right now: {one_line(exc)[:200]}"},
                        status_code=503, headers={"Retry-After": "30"})


async def _bad_record(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"{exc}; DELETE the job to remove it"}, status_code=422)
