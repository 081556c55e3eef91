"""What a run leaves beside its shards for the user: every reject with its reason, and the summary.

A run where every clip, or more than ``--max-rejected`` of them, was rejected fails after both
files are written, with one line naming the commonest reasons and the first reject.
"""

from __future__ import annotations

import json

from data_pipeline.config import PipelineError
from data_pipeline.location import Location

REJECTS_FILE = "rejects.jsonl"
SUMMARY_FILE = "summary.json"


class TooManyRejects(PipelineError):
    """Every clip, or more than ``--max-rejected`` of them, was rejected; `summary` says which and why."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


def write_rejects(out: Location, rejects: list[dict]) -> None:
    with out.fs.open_output_stream(out.path(REJECTS_FILE)) as f:
        f.write("".join(json.dumps(r) + "\n" for r in rejects).encode())


def write_summary(out: Location, summary: dict) -> None:
    out.write_json(SUMMARY_FILE, summary)


def check_rejects(max_rejected: float, summary: dict, rejects: list[dict]) -> None:
    """Raise TooManyRejects when every clip, or more than the `max_rejected` fraction, was rejected."""
    bad, good = summary["rejected"], summary["clips_total"]
    if bad == 0 or (good > 0 and bad / (bad + good) <= max_rejected):
        return
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary["rejects_by_reason"].items(), key=lambda kv: -kv[1]))
    first = rejects[0]
    what = "every clip was rejected" if good == 0 else \
        f"{bad} of {bad + good} clips and manifest rows rejected ({100 * bad / (bad + good):.0f} % > --max-rejected " \
        f"{100 * max_rejected:g} %)"
    raise TooManyRejects(f"{what}: {reasons}; first: {first['video'] or 'line ' + str(first['manifest_line'])}: "
                         f"{first['detail']} (all in {summary['out'].rstrip('/')}/{REJECTS_FILE})", summary)
