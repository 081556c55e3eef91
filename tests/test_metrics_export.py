"""The apps' Prometheus metrics reach a scrape of the local Ray node, names as documented."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

DOC = Path(__file__).resolve().parents[1] / "docs" / "serving.md"


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.read().decode()


def test_job_api_metrics_are_scraped(ray_session):
    ray = ray_session
    from services import metrics as m

    @ray.remote(num_cpus=0)
    class Recorder:
        """Records metrics the way an ingress replica does (same objects, same process model)."""

        def record(self) -> None:
            s = m.serve_metrics()
            s.stage_seconds.observe(125.0, tags={"app": "artwalks", "stage": "interpolate"})
            s.jobs.set(2, tags={"app": "artwalks", "state": "running"})
            s.queue_depth.set(3, tags={"app": "artwalks"})
            s.finished.inc(tags={"app": "artwalks", "state": "done"})

    recorder = Recorder.remote()
    ray.get(recorder.record.remote())
    port = ray.nodes()[0]["MetricsExportPort"]
    deadline, text = time.time() + 60, ""
    wanted = [f"ray_{m.STAGE_SECONDS}_bucket", f"ray_{m.JOBS}", f"ray_{m.QUEUE_DEPTH}",
              f"ray_{m.JOBS_FINISHED}"]
    while time.time() < deadline:
        text = _scrape(port)
        if all(w in text for w in wanted):
            break
        ray.get(recorder.record.remote())
        time.sleep(1)
    missing = [w for w in wanted if w not in text]
    assert not missing, f"not exported: {missing}"
    bucket_lines = [l for l in text.splitlines() if l.startswith(f"ray_{m.STAGE_SECONDS}_bucket")]
    assert any('le="3600.0"' in l for l in bucket_lines), "buckets must reach minutes-long renders"
    assert any('stage="interpolate"' in l for l in bucket_lines)
    for name in [m.STAGE_SECONDS, m.JOBS, m.QUEUE_DEPTH, m.JOBS_FINISHED]:
        assert name in DOC.read_text(), f"{name} is not documented in docs/serving.md"
