"""Prometheus metrics of the job API, exported through `ray.util.metrics`.

Ray's metrics agent serves them on each node's metrics export port with the ``ray_`` prefix
(so ``inkwalk_stage_seconds`` is scraped as ``ray_inkwalk_stage_seconds``). Names and tags are
documented in docs/serving.md; keep the two in step.
"""

from __future__ import annotations

from functools import lru_cache

from ray.util import metrics as ray_metrics

# Rendering stages take from milliseconds (tiny models) to tens of minutes (a 2K walk on CPU).
STAGE_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600]

STAGE_SECONDS = "inkwalk_stage_seconds"
JOB_SECONDS = "inkwalk_job_seconds"
JOBS = "inkwalk_jobs"
JOBS_FINISHED = "inkwalk_jobs_finished_total"
JOBS_REFUSED = "inkwalk_jobs_refused_total"
QUEUE_DEPTH = "inkwalk_queue_depth"


class ServeMetrics:
    """The metric objects of one process (ingress replica or deployment replica)."""

    def __init__(self) -> None:
        self.stage_seconds = ray_metrics.Histogram(
            STAGE_SECONDS, description="Wall time of one pipeline stage of a job (keyframes, "
            "interpolate, upscale, encode, generate).", boundaries=STAGE_BUCKETS,
            tag_keys=("app", "stage"))
        self.job_seconds = ray_metrics.Histogram(
            JOB_SECONDS, description="Wall time of a job from submission to its end state.",
            boundaries=STAGE_BUCKETS, tag_keys=("app", "state"))
        self.jobs = ray_metrics.Gauge(
            JOBS, description="Jobs of this ingress replica by state (queued, running).",
            tag_keys=("app", "state"))
        self.finished = ray_metrics.Counter(
            JOBS_FINISHED, description="Jobs that reached an end state (done, failed).",
            tag_keys=("app", "state"))
        self.refused = ray_metrics.Counter(
            JOBS_REFUSED, description="Submissions refused: 4xx (bad request) or 503 (overload).",
            tag_keys=("app", "code"))
        self.queue_depth = ray_metrics.Gauge(
            QUEUE_DEPTH, description="Accepted jobs not finished yet (queued + running) in this "
            "ingress replica; submissions beyond the limit get 503.", tag_keys=("app",))


@lru_cache(maxsize=1)
def serve_metrics() -> ServeMetrics:
    """One set of metric objects per process (Ray refuses duplicate registrations of a name)."""
    return ServeMetrics()
