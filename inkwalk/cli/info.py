"""`inkwalk info FILE`: what a video (or image) is, without decoding all of it, and how inkwalk made it."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers) -> None:
    p = subparsers.add_parser("info", help="show a video's size, frames, fps and codec (or an image's size), and "
                                           "the settings, seed, prompt and models inkwalk made it with")
    p.add_argument("file", help="a video or image file")
    p.add_argument("--json", action="store_true", help="print only inkwalk's metadata of the video, as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inkwalk import video
    from inkwalk.provenance import read_metadata

    try:
        info = video.probe(args.file)
    except video.MediaError as exc:
        if exc.reason != "is a still image, not a video":
            raise
        frame = video.read_image(args.file)
        print(f"{args.file}: image {frame.shape[1]}×{frame.shape[0]}")
        for line in describe(read_metadata(args.file)):
            print(line)
        return 0
    metadata = read_metadata(args.file)
    if args.json:
        print(json.dumps(metadata, indent=2, sort_keys=True))
        return 0
    print(f"{info.path}: {info.width}×{info.height}, {info.frames} frames, {video.format_fps(info.fps)} fps, "
          f"{info.duration_s:.2f} s, codec {info.codec}")
    for line in describe(metadata):
        print(line)
    return 0


def describe(metadata: dict[str, Any]) -> list[str]:
    """inkwalk's metadata of a video as lines a person reads (nothing when it has none)."""
    if not metadata:
        return []
    settings = dict(metadata.get("settings") or {})
    made = f"made by inkwalk {metadata.get('inkwalk', '?')} ({metadata.get('app', '?')})"
    lines = [made + (f", job {metadata['job_id']}" if metadata.get("job_id") else "")]
    if "prompt" in metadata:
        lines.append(f"prompt: {metadata['prompt']}")
    if "seed" in settings:  # a walk without keyframes has none: nothing random happened
        lines.append(f"seed: {settings.pop('seed')}")
    if settings:
        lines.append("settings: " + " ".join(f"{k}={_value(v)}" for k, v in sorted(settings.items())))
    paintings, names = metadata.get("paintings") or [], metadata.get("painting_names") or []
    if paintings:
        named = [f"{name} ({digest[:12]})" for name, digest in zip(names, paintings)] if len(names) == len(paintings) \
            else [digest[:12] for digest in paintings]
        lines.append(f"paintings: {len(paintings)} (name and sha256): " + ", ".join(named))
    source = metadata.get("source") or {}
    if source:
        lines.append(f"source: {source.get('name', '?')} (sha256 {str(source.get('sha256', '?'))[:12]})")
    models = metadata.get("models") or {}
    if models:
        lines.append("models:")
        lines += [f"  {stage}: {_model(identity)}" for stage, identity in sorted(models.items())]
    return lines


def _value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return json.dumps(value) if isinstance(value, str) and (" " in value or not value) else str(value)


def _model(identity: Any) -> str:
    """One stage's identity: its backend (and flow), then each weight's fingerprint."""
    if not isinstance(identity, dict):
        return str(identity)
    identity = dict(identity)
    head = str(identity.pop("backend", ""))
    if "flow" in identity:
        head += f" (flow {identity.pop('flow')})"
    weights = identity.pop("weights", {}) or {}
    parts = [f"{k}={v}" for k, v in sorted({**identity, **weights}.items())]
    return ", ".join(p for p in [head, *parts] if p) or "-"
