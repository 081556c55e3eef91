"""Prompt travel: a prompt that changes over the video, as per-frame text embeddings.

A schedule maps latent frame indices to prompts (`{0: "spring mountains", 48: "autumn river"}`);
it must start at frame 0 and its keys increase. Each frame's embedding interpolates between the
embeddings of the keys around it (`linear`, FreeNoise's formula, or `slerp` per token); after the
last key the last prompt holds, unless the video loops: then the last prompt travels back to
the first one, reached again at frame N (= frame 0).
"""

from __future__ import annotations

import json
from typing import Callable, Mapping, Sequence

import torch

from inkwalk.errors import InkwalkError

INTERPOLATIONS = ("linear", "slerp")
PromptSchedule = dict[int, str]


def parse_schedule(text: str) -> PromptSchedule:
    """A schedule from a JSON object (`{"0": "a", "48": "b"}`) or `'0:spring mountains|48:autumn river'`."""
    text = text.strip()
    if text.startswith("{"):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InkwalkError(f"not a JSON object ({exc.msg} at character {exc.pos})") from None
        if not isinstance(raw, dict):
            raise InkwalkError("give a JSON object mapping frame indices to prompts")
        return schedule_from_mapping(raw)
    pairs = []
    for part in text.split("|"):
        key, sep, prompt = part.partition(":")
        if not sep:
            raise InkwalkError(f"{part.strip()!r} is not FRAME:PROMPT (e.g. '0:spring mountains|48:autumn "
                               "river')")
        pairs.append((key.strip(), prompt.strip()))
    return schedule_from_pairs(pairs)


def schedule_from_mapping(raw: Mapping) -> PromptSchedule:
    """A schedule from a mapping of frame indices (ints or digit strings) to prompts, keys in order."""
    return schedule_from_pairs(list(raw.items()))


def schedule_from_pairs(pairs: Sequence[tuple[object, object]]) -> PromptSchedule:
    schedule: PromptSchedule = {}
    for key, prompt in pairs:
        if isinstance(key, bool) or not (isinstance(key, int) or (isinstance(key, str) and key.isdigit())):
            raise InkwalkError(f"key {key!r} is not a frame index (a whole number from 0)")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InkwalkError(f"frame {key} needs a non-empty prompt")
        frame = int(key)
        if schedule and frame <= max(schedule):
            raise InkwalkError(f"frame {frame} comes after frame {max(schedule)}; list frames in "
                               "increasing order, each once")
        schedule[frame] = prompt
    if not schedule:
        raise InkwalkError("give at least one FRAME:PROMPT")
    return schedule


def check_schedule(schedule: Mapping[int, str], frames: int) -> None:
    """The schedule starts at frame 0 and every key is a frame of the video."""
    keys = list(schedule)
    if not keys or keys[0] != 0:
        raise InkwalkError("the prompt schedule must start at frame 0")
    if keys[-1] >= frames:
        raise InkwalkError(f"frame {keys[-1]} is out of range: the video has {frames} frames (0 to {frames - 1})")


def schedule_problem(raw: Mapping, frames: int, max_chars: int) -> str | None:
    """Why a job's `prompts` mapping is not a schedule for `frames` frames, or None."""
    try:
        schedule = schedule_from_mapping(raw)
        check_schedule({0: "", **schedule}, frames)
    except InkwalkError as exc:
        return str(exc)
    long = [k for k, p in schedule.items() if len(p) > max_chars]
    return f"the prompt of frame {long[0]} is longer than {max_chars} characters" if long else None


def full_schedule(prompt: str, prompts: Mapping | None) -> PromptSchedule:
    """The job's schedule: `prompt` at frame 0 unless `prompts` names frame 0 itself."""
    return {0: prompt, **(schedule_from_mapping(prompts) if prompts else {})}


def interpolate(start: torch.Tensor, end: torch.Tensor, alpha: float, method: str = "linear") -> torch.Tensor:
    """`start` -> `end` at `alpha` in [0, 1]; `slerp` per token (last dimension), linear where they are parallel."""
    if method == "linear":
        return (1 - alpha) * start + alpha * end
    if method != "slerp":
        raise InkwalkError(f"prompt interpolation {method!r}: choose one of {', '.join(INTERPOLATIONS)}")
    cosine = torch.nn.functional.cosine_similarity(start, end, dim=-1).clamp(-1, 1).unsqueeze(-1)
    theta = torch.arccos(cosine)
    sin = torch.sin(theta)
    safe = sin.abs() > 1e-4
    curved = (torch.sin((1 - alpha) * theta) * start + torch.sin(alpha * theta) * end) / torch.where(safe, sin, 1)
    return torch.where(safe, curved, (1 - alpha) * start + alpha * end)


def frame_embeddings(encode: Callable[[list[str]], torch.Tensor], schedule: Mapping[int, str], frames: int,
                     loop: bool = False, method: str = "linear") -> torch.Tensor:
    """Per-frame text embeddings `frames×77×C` for `schedule` (`encode` maps prompts to `B×77×C`)."""
    check_schedule(schedule, frames)
    keys = list(schedule)
    embeds = encode([schedule[k] for k in keys])
    anchors = list(zip(keys, embeds))
    end_frame = frames if loop else frames - 1
    if anchors[-1][0] < end_frame:
        anchors.append((end_frame, embeds[0] if loop else embeds[-1]))
    out = embeds.new_empty((frames, *embeds.shape[1:]))
    if len(anchors) == 1:  # one frame, one prompt
        out[0] = embeds[0]
    for (a, start), (b, end) in zip(anchors, anchors[1:]):
        for frame in range(a, min(b + 1, frames)):
            # a held prompt is copied, not blended with itself (which would round it)
            out[frame] = start if torch.equal(start, end) else interpolate(start, end, (frame - a) / (b - a), method)
    return out

