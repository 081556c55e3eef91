"""The job lifecycle of one ingress replica: run, heart-beat, cancel, take over, retain.

A job's record in the store is the truth every replica shares; this replica's memory holds only
the jobs it runs right now (`records`, `tasks`), and a job leaves memory on every way out of
`_run` (done, failed, cancelled, the replica shutting down, a final save that failed), so a
slot is never held by a job nobody runs.

Take-over is an atomic claim: a job whose owner stopped heart-beating has a generation (the
times it was taken over, ``record.resumed``); a replica runs generation ``g + 1`` only after
`JobStore.claim` created that generation's claim file exclusively, so two replicas can never
both run it. An owner that finds a newer generation claimed (it was only slow) stops, and looks
for that claim before every write of the record, so its heartbeat or end state never overwrites
the new owner's record.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Awaitable, Callable

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from inkwalk.errors import InkwalkError
from services.render import RenderError, one_line
from services.store import TERMINAL, BadRecord, JobRecord, JobStore, Retention

log = logging.getLogger("ray.serve")
Progress = Callable[[str, float], None]
Work = Callable[[JobRecord, Progress], Awaitable[None]]
MAX_RESUMES = 5  # a job whose runs keep dying is failed, not adopted forever


class JobLifecycle:
    """Every job of one app on one replica, from `start` to its end state in the store."""

    def __init__(self, store: JobStore, app: str, replica: str, work: Work, *, max_active: int,
                 heartbeat_timeout_s: float, retention: Retention, metrics: Any = None):
        self.store, self.app, self.replica, self.work = store, app, replica, work
        self.max_active, self.heartbeat_timeout_s = max_active, heartbeat_timeout_s
        self.retention, self.metrics = retention, metrics
        self.records: dict[str, JobRecord] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.cancelling: set[str] = set()
        self._supervisor: asyncio.Task | None = None
        self._writing = threading.Lock()  # one record write at a time: a cancelled save's thread runs on

    # ------------------------------------------------------------------ admission
    def busy(self) -> bool:
        return len(self.tasks) >= self.max_active

    async def submit(self, record: JobRecord) -> None:
        """Save a new job and run it here (generation 0 needs no claim: nobody else knows it)."""
        await asyncio.to_thread(self.store.save, record)
        self._start(record)

    def _start(self, record: JobRecord) -> None:
        self.records[record.job_id] = record
        self.tasks[record.job_id] = asyncio.get_running_loop().create_task(self._run(record))
        self._gauges()

    def _release(self, job_id: str) -> None:
        self.records.pop(job_id, None)
        self.tasks.pop(job_id, None)
        self.cancelling.discard(job_id)
        self._gauges()

    # ------------------------------------------------------------------ reading
    def get(self, job_id: str) -> JobRecord | None:
        """The live record when this replica runs the job, else the stored one (None: no such job)."""
        return self.records.get(job_id) or self.store.load(self.app, job_id)

    def page(self, limit: int, offset: int) -> dict[str, Any]:
        """A page of the app's jobs, newest first; records that cannot be read or served are skipped."""
        listing = self.store.list_jobs(self.app)
        if listing.skipped:
            log.warning("%s: %d job record(s) skipped in the listing: %s", self.app, len(listing.skipped),
                        ", ".join(listing.skipped[:5]))
        records = listing.records
        page = [self.records.get(r.job_id, r).public() for r in records[offset:offset + limit]]
        return {"jobs": page, "total": len(records), "skipped": len(listing.skipped), "limit": limit,
                "offset": offset}

    # ------------------------------------------------------------------ running
    async def _run(self, record: JobRecord) -> None:
        t0 = time.time()

        def on_progress(stage: str, progress: float) -> None:
            record.stage, record.progress = stage, round(max(record.progress, float(progress)), 4)

        try:
            try:
                record.state, record.owner, record.error = "running", self.replica, None
                record.started_at = record.started_at or time.time()
                if not await self._save(record):
                    return  # a newer generation was claimed meanwhile: that replica runs it
                await self.work(record, on_progress)
                record.state, record.stage, record.progress = "done", "done", 1.0
            except asyncio.CancelledError:
                if record.job_id not in self.cancelling:
                    raise  # the replica is shutting down (or lost its claim): another replica takes over
                record.state, record.stage, record.error = "cancelled", "cancelled", "cancelled"
            except Exception as exc:  # a failure inside a deployment fails the job, never the replica
                record.state, record.error = "failed", one_line(exc)
                record.resubmittable = isinstance(exc, RenderError) or not isinstance(exc, InkwalkError)
                log.warning("job %s failed: %s", record.job_id, record.error)
            record.finished_at = time.time()
            await self._until_saved(record)
            self._count(record, time.time() - t0)
        finally:
            self._release(record.job_id)

    async def _until_saved(self, record: JobRecord) -> None:
        """The end state saved before the slot is released: a cancel arriving meanwhile (a DELETE racing
        completion) waits for the save (bounded by its retries) instead of leaving the store behind memory."""
        save = asyncio.ensure_future(self._final_save(record))
        while not save.done():
            try:
                await asyncio.shield(save)
            except asyncio.CancelledError:
                continue

    async def _final_save(self, record: JobRecord) -> None:
        """The end state, retried; if the store keeps failing the job stays 'running' there with a
        stale heartbeat, and the lifecycle (this replica's or another's) takes it over again."""
        try:
            async for attempt in AsyncRetrying(stop=stop_after_attempt(3), wait=wait_exponential(0.2, max=2),
                                               retry=retry_if_exception_type(OSError), reraise=True):
                with attempt:
                    saved = await self._save(record)
            if not saved:
                log.info("job %s: its end state here (%s) is not saved: another replica took it over",
                         record.job_id, record.state)
        except OSError as exc:
            log.warning("job %s: its end state (%s) could not be saved: %s", record.job_id, record.state,
                        one_line(exc))

    async def _save(self, record: JobRecord) -> bool:
        """Write the record; False (nothing written) when a newer generation of the job was claimed."""
        return await asyncio.to_thread(self._write, record)

    def _write(self, record: JobRecord) -> bool:
        """Serialise and write under one lock, so a save whose awaiting task was cancelled (its thread
        still runs) cannot land a stale state after a newer one. The claim is looked for right before
        the write: an owner that was only slow cannot overwrite the new owner's record a heartbeat
        later (only a take-over landing within this call's few milliseconds can)."""
        with self._writing:
            if self.store.claimed(self.app, record.job_id, record.resumed + 1):
                return False
            record.heartbeat_at = time.time()
            self.store.save(record)
            return True

    # ------------------------------------------------------------------ cancel and delete
    async def cancel_or_delete(self, job_id: str) -> str | None:
        """'cancelling' (a job not finished), 'deleted' (a finished one), None (no such job).

        Repeated and concurrent calls are safe: the cancel marker is idempotent, a task is
        cancelled once, and deleting a folder that another call deleted first is not an error.
        """
        try:
            record = self.get(job_id)
        except BadRecord:  # nothing can run from an unreadable record: remove it
            await asyncio.to_thread(self.store.delete_job, self.app, job_id)
            return "deleted"
        if record is None:
            return None
        if record.state in TERMINAL and job_id not in self.tasks:  # a task here may still be saving it
            await asyncio.to_thread(self.store.delete_job, self.app, job_id)
            return "deleted"
        await asyncio.to_thread(self.store.request_cancel, self.app, job_id)
        self._cancel_task(job_id)
        if job_id not in self.tasks and self._stale(record):  # nobody runs it: end it here
            await self._end_orphan(record, "cancelled", "cancelled")
        return "cancelling"

    def _cancel_task(self, job_id: str) -> None:
        task = self.tasks.get(job_id)
        if task is not None and job_id not in self.cancelling:
            self.cancelling.add(job_id)
            task.cancel()

    async def _end_orphan(self, record: JobRecord, state: str, error: str) -> None:
        """End a job nobody runs, under a claim so no replica adopts it at the same time."""
        generation = record.resumed + 1
        if not await asyncio.to_thread(self.store.claim, self.app, record.job_id, generation, self.replica):
            return
        record.state, record.stage, record.error = state, state, error
        record.owner, record.resumed, record.finished_at = self.replica, generation, time.time()
        await self._save(record)

    # ------------------------------------------------------------------ supervision
    def start_supervisor(self) -> None:
        self._supervisor = asyncio.get_running_loop().create_task(self.supervise())

    def healthy(self) -> bool:
        return self._supervisor is not None and not self._supervisor.done()

    async def supervise(self) -> None:
        """Heartbeats, cancel markers, take-over of orphaned jobs, retention: one loop per replica."""
        tick = min(1.0, max(0.2, self.heartbeat_timeout_s / 4))
        last_adopt = last_retention = 0.0
        while True:
            try:
                await self.beat()
                now = time.monotonic()
                if now - last_adopt > self.heartbeat_timeout_s / 2:
                    last_adopt = now
                    await self.adopt_orphans()
                if now - last_retention > self.retention.interval_s:
                    last_retention = now
                    gone = await asyncio.to_thread(self.store.apply_retention, self.app, self.retention)
                    if any(gone.values()):
                        log.info("retention removed %s", gone)
            except Exception as exc:  # the store hiccuped: try again next tick, never die
                log.warning("job supervisor: %s", one_line(exc))
            await asyncio.sleep(tick)

    async def beat(self) -> None:
        """One heartbeat of every job run here; act on cancel markers and on lost claims."""
        for job_id, record in list(self.records.items()):
            if await asyncio.to_thread(self.store.cancel_requested, self.app, job_id):
                self._cancel_task(job_id)
            elif record.state == "running" and not await self._save(record):
                log.warning("job %s was taken over by another replica; stopping here", job_id)
                task = self.tasks.get(job_id)
                if task is not None:
                    task.cancel()

    def _stale(self, record: JobRecord) -> bool:
        return time.time() - record.heartbeat_at > self.heartbeat_timeout_s

    async def adopt_orphans(self) -> None:
        """Take over (or end) jobs whose owner stopped heart-beating, while this replica has slots."""
        for record in (await asyncio.to_thread(self.store.list_jobs, self.app)).records:
            if self.busy():
                return
            if record.state in TERMINAL or record.job_id in self.tasks or not self._stale(record):
                continue
            if await asyncio.to_thread(self.store.cancel_requested, self.app, record.job_id):
                await self._end_orphan(record, "cancelled", "cancelled")
            elif record.resumed >= MAX_RESUMES:
                await self._end_orphan(record, "failed", f"its runs stopped {record.resumed + 1} times "
                                                         "(replicas restarting?); submit it again")
            else:
                await self._adopt(record)

    async def _adopt(self, record: JobRecord) -> None:
        generation = record.resumed + 1
        if not await asyncio.to_thread(self.store.claim, self.app, record.job_id, generation, self.replica):
            return  # another replica claimed this generation first
        record.owner, record.resumed = self.replica, generation
        log.info("resuming job %s (owner stopped heart-beating; generation %d)", record.job_id, generation)
        self._start(record)

    # ------------------------------------------------------------------ metrics
    def _gauges(self) -> None:
        if self.metrics is None:
            return
        running = sum(r.state == "running" for r in self.records.values())
        self.metrics.jobs.set(running, tags={"app": self.app, "state": "running"})
        self.metrics.jobs.set(len(self.tasks) - running, tags={"app": self.app, "state": "queued"})
        self.metrics.queue_depth.set(len(self.tasks), tags={"app": self.app})

    def _count(self, record: JobRecord, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.finished.inc(tags={"app": self.app, "state": record.state})
            self.metrics.job_seconds.observe(seconds, tags={"app": self.app, "state": record.state})
