"""Where one Serve job's render time goes, read from Serve's own request logs.

Every replica writes one access-log line per call (``CALL piece OK 104.1ms``) tagged with the
request id of the HTTP request that started it; a job's deployment calls carry its POST's id (the
proxy returns it as ``x-request-id``). A line is written when the call ends, so each call is the
window ``[end - latency, end]``. Laid against the job record's ``started_at`` / ``finished_at``
this says which stage ran when, how long the deployments were all idle (the ingress deciding,
Serve routing a call, the frames moving between replicas), and what the job's tail waited for
after its last piece: the join, the contact sheet, the final record save.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

# INFO 2026-12-05 19:49:51,063 artwalks_Keyframes bjr9ddcn <request id> -- CALL nodes OK 45.0ms
_LINE = re.compile(r"^\w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+?_(\w+) \S+ (\S+) -- CALL (\w+) (\w+) ([\d.]+)ms$")


@dataclass(frozen=True)
class Call:
    """One deployment call of a job: which method, when it ran (epoch seconds), how it ended."""

    stage: str  # Deployment.method
    start: float
    end: float
    status: str


def job_calls(session_dir: str | Path, request_id: str) -> list[Call]:
    """Every deployment call that ran for the request `request_id`, by start time."""
    calls = []
    for log in Path(session_dir, "logs", "serve").glob("replica_*.log"):
        for line in log.read_text(errors="replace").splitlines():
            m = _LINE.match(line)
            if m and m.group(3) == request_id:
                end = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                calls.append(Call(f"{m.group(2)}.{m.group(4)}", end - float(m.group(6)) / 1000, end, m.group(5)))
    return sorted(calls, key=lambda c: c.start)


def _union(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one of the spans."""
    total, reach = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def breakdown(calls: list[Call], started_at: float, finished_at: float) -> dict[str, float]:
    """Seconds of a render by what filled them (see the module docstring); the keys read as a timeline.

    `busy <stage>`: time at least one call of the stage ran; `idle between calls`: time inside the
    render when no deployment call ran at all; `before the first call`: the ingress from the job's
    start (record saved, chunks looked up) to its first call; `pieces -> join`: from the last encode's
    end to the join's start; `tail after the last call`: from the last call's end to the job's end
    (the final record save).
    """
    if not calls:
        return {}
    out = {"render": finished_at - started_at, "before the first call": calls[0].start - started_at}
    for stage in dict.fromkeys(c.stage for c in calls):
        spans = [(c.start, c.end) for c in calls if c.stage == stage]
        out[f"calls {stage}"] = len(spans)
        out[f"busy {stage}"] = _union(spans)
    last_end = max(c.end for c in calls)
    out["idle between calls"] = (last_end - calls[0].start) - _union([(c.start, c.end) for c in calls])
    encodes = [c for c in calls if c.stage == "Encoder.encode"]
    join = next((c for c in calls if c.stage == "Encoder.join"), None)
    sheet = next((c for c in calls if c.stage == "Encoder.sheet"), None)
    if encodes and join:
        out["pieces -> join"] = join.start - max(c.end for c in encodes)
        out["join"] = join.end - join.start
    if join and sheet:
        out["join end -> sheet end"] = max(0.0, sheet.end - join.end)
    out["tail after the last call"] = finished_at - last_end
    return out


def markdown(rows: list[tuple[str, dict[str, float]]]) -> str:
    """A table with one column per job: seconds (or counts) of each part of its render."""
    keys = list(dict.fromkeys(k for _, parts in rows for k in parts))
    lines = ["| part | " + " | ".join(name for name, _ in rows) + " |", "|---|" + "---|" * len(rows)]
    for key in keys:
        cells = []
        for _, parts in rows:
            value = parts.get(key)
            cells.append("" if value is None else f"{value:.0f}" if key.startswith("calls") else f"{value:.3f} s")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
