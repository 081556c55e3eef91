"""The segment path: a render's pieces run on the deployments, the caller holds no frame.

`render_walks` renders an ArtWalks job through deployment handles (a ConCLVD job's path is
`services.scroll`, which shares the retry policy below). It is the same code under the HTTP ingress
(`services.apps`) and the batch driver (`inkwalk render`):

    for each piece (inkwalk.segments), at most `inflight` at a time, in video order:
        Keyframes.nodes(paintings) -> Interpolator.piece -> Upscaler.upscale -> Encoder.encode
    Encoder.join(chunks) -> the video in the store
    Encoder.sheet(rows) -> the contact sheet, once every walk's row exists (beside the last pieces and the join)

Each call's response is handed to the next call as an argument, so the frames go from
replica to replica through the object store; the caller awaits only the encoder's small
answer (frames written, node). Pieces whose chunk is already in the store are not rendered
again. A piece whose call fails for any reason but a user error (a replica or node died, an
object was lost, a model raised) is retried, up to `attempts` times, from its walk's nodes;
a full deployment queue is waited out. Cancelling the coroutine cancels every call in flight.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

from pydantic import Field
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from inkwalk.artwalks import video_metadata
from inkwalk.chunks import Codec
from inkwalk.config_model import ConfigModel
from inkwalk.errors import InkwalkError
from inkwalk.segments import Piece, assign_keys, final_painting, plan_pieces, walk_ends
from inkwalk.store import Store
from inkwalk.store_layout import chunk_path, walk_row_path
from inkwalk.walk_settings import WalkSettings

log = logging.getLogger("ray.serve")
Progress = Callable[[str, float], None]


class RenderError(InkwalkError):
    """A piece that kept failing: names the piece and the last cause."""


class RenderOptions(ConfigModel):
    """How a render uses the cluster (app args `render:`; the CLI's options)."""

    inflight: int = Field(8, ge=1)  # pieces in flight per job: bounds the frames in the object store
    attempts: int = Field(3, ge=1)  # tries per piece before the job fails
    backoff_s: float = Field(0.5, ge=0)  # first wait before a retry (doubles, with jitter)
    codec: Codec = Field(default_factory=Codec)
    # at most this many of a scroll step's window calls in flight per job (each step sends as many as the
    # running generator replicas take at once, services.scroll); the rest wait in the coordinator
    windows_inflight: int = Field(16, ge=1)


@dataclass
class Handles:
    """The deployments a render calls (DeploymentHandles)."""

    keyframes: Any = None
    interpolator: Any = None
    upscaler: Any = None
    encoder: Any = None
    generator: Any = None


def user_error(exc: BaseException) -> InkwalkError | None:
    """The InkwalkError behind an exception raised in a replica, if that is what it is."""
    cause = getattr(exc, "cause", None) or exc
    return cause if isinstance(cause, InkwalkError) else None


def one_line(exc: BaseException) -> str:
    """A deployment's error as one line, without Ray's wrapping traceback."""
    cause = getattr(exc, "cause", None) or exc
    lines = str(cause).strip().splitlines()
    text = lines[0] if lines else type(cause).__name__
    return text if isinstance(cause, InkwalkError) else f"{type(cause).__name__}: {text}"


async def call_with_retries(what: str, attempt: Callable[[int], Awaitable[Any]], opts: RenderOptions) -> Any:
    """Run `attempt(n)` (n: failures so far) until it succeeds, with tenacity.

    User errors fail at once; a failure of any other kind is retried up to `opts.attempts` tries,
    waiting `backoff_s` doubled per failure with 0.5-1.5x jitter; a full deployment queue
    (`BackPressureError`) is waited out without counting as a failure.
    """
    from ray.serve.exceptions import BackPressureError

    failures = 0

    def backpressure(state: RetryCallState) -> bool:
        return isinstance(state.outcome.exception(), BackPressureError)

    def enough(state: RetryCallState) -> bool:
        nonlocal failures
        if backpressure(state):
            return False
        failures += 1
        return failures >= opts.attempts

    def pause(state: RetryCallState) -> float:
        if backpressure(state):
            return min(2.0, opts.backoff_s * 2 ** failures) * (0.5 + random.random())
        return opts.backoff_s * 2 ** (failures - 1) * (0.5 + random.random())

    def warn(state: RetryCallState) -> None:
        if not backpressure(state):
            log.warning("%s failed (attempt %d of %d), retrying: %s", what, failures, opts.attempts,
                        one_line(state.outcome.exception()))

    def give_up(state: RetryCallState) -> Any:
        raise RenderError(f"{what} failed {failures} times; last: {one_line(state.outcome.exception())}")

    async def once() -> Any:
        try:
            return await attempt(failures)
        except Exception as exc:
            cause = user_error(exc)
            if cause is not None:
                raise cause from None
            raise

    retryable = retry_if_exception(lambda e: isinstance(e, Exception) and not isinstance(e, InkwalkError))
    retrying = AsyncRetrying(retry=retryable, stop=enough,
                             wait=pause, before_sleep=warn, retry_error_callback=give_up)
    return await retrying(once)


def _missing_and_present(store: Store, pieces: Sequence[Piece], walk_keys: Sequence[str]) -> tuple[list[Piece], list[int]]:
    """The pieces whose chunk is not in the store yet, and the walks whose contact-sheet row is (one store call)."""
    there = store.exist([chunk_path(p.key) for p in pieces] + [walk_row_path(k) for k in walk_keys])
    todo = [p for p, done in zip(pieces, there) if not done]
    return todo, [i for i, row in enumerate(there[len(pieces):]) if row]


class _Responses:
    """Every deployment call of a render still in flight, so a cancel can cancel them all."""

    def __init__(self) -> None:
        self.live: set = set()

    def track(self, response):
        self.live.add(response)
        return response

    def done(self, *responses) -> None:
        for r in responses:
            self.live.discard(r)

    def cancel_all(self) -> None:
        for r in list(self.live):
            r.cancel()
        self.live.clear()


class _SharedResponses:
    """One response per owner (a walk's nodes, a scroll's last frame), requested once and shared by
    the owner's pieces; renewed after a fault.

    A generation number lets the pieces that saw one failure renew the response once between them.
    """

    def __init__(self, request: Callable[[Any], Any], uses: dict[Any, int], forget: Callable[[Any], None]):
        self.request, self.uses, self.forget = request, uses, forget
        self.current: dict[Any, tuple[int, Any]] = {}

    def get(self, owner) -> tuple[int, Any]:
        if owner not in self.current:
            self.current[owner] = (0, self.request(owner))
        return self.current[owner]

    def renew(self, owner, generation: int) -> None:
        gen, _ = self.current.get(owner, (generation, None))
        if gen == generation:
            self.forget(self.current[owner][1])
            self.current[owner] = (generation + 1, self.request(owner))

    def release(self, owner) -> None:
        """One piece of `owner` is finished; drop its nodes (free the object) after the last."""
        self.uses[owner] -= 1
        if self.uses[owner] == 0 and owner in self.current:
            self.forget(self.current.pop(owner)[1])


@dataclass
class WalkJob:
    """An ArtWalks render: paintings (store paths and content hashes) in order, settings, outputs."""

    paintings: Sequence[str]
    painting_ids: Sequence[str]
    settings: WalkSettings
    video: str  # store path of the joined video
    sheet: str | None = None  # store path of the contact sheet
    metadata: dict[str, Any] = field(default_factory=dict)
    painting_names: Sequence[str] = ()  # as the user named them, for messages (default: store file names)


@dataclass
class WalkResult:
    frames: int
    chunks_rendered: int
    chunks_reused: int
    walk_keys: list[str]
    nodes: dict[str, int] = field(default_factory=dict)  # pieces encoded per Ray node


async def render_walks(h: Handles, store: Store, job: WalkJob, models: dict[str, Any],
                       opts: RenderOptions = RenderOptions(), on_progress: Progress = lambda s, p: None,
                       on_walk_ready: Callable[[int, str], None] = lambda i, key: None) -> WalkResult:
    """Render a collection through the deployments into ``job.video``; see the module docstring.

    `models` are the deployments' identities (they name the chunks); `on_walk_ready(i, key)` is
    told when walk i's nodes (its contact-sheet row) exist in the store.
    """
    ws = job.settings
    pieces, walk_keys = assign_keys(plan_pieces(len(job.paintings), ws), job.painting_ids, ws, models, opts.codec)
    ends, final = walk_ends(len(job.paintings), ws), final_painting(len(job.paintings), ws)
    todo, rows_there = await asyncio.to_thread(_missing_and_present, store, pieces, walk_keys)
    rows_missing = set(range(len(walk_keys))) - set(rows_there)
    for i in rows_there:
        on_walk_ready(i, walk_keys[i])
    total = len(todo) + 1 + (1 if job.sheet else 0)
    done = 0

    def advance(stage: str) -> None:
        nonlocal done
        done += 1
        on_progress(stage, min(done / total, 0.99))

    on_progress("render", 0.0)
    responses = _Responses()
    owner_of = lambda p: p.walk if p.walk is not None else "last"  # noqa: E731
    uses: dict[Any, int] = {}
    for p in todo:
        uses[owner_of(p)] = uses.get(owner_of(p), 0) + 1

    def request_nodes(owner):
        picked = [final] if owner == "last" else list(ends[owner])
        row = None if owner == "last" else walk_row_path(walk_keys[owner])
        names = [job.painting_names[i] for i in picked] if job.painting_names else None
        return responses.track(h.keyframes.nodes.remote([job.paintings[i] for i in picked], ws, row, names))

    nodes = _SharedResponses(request_nodes, uses, responses.done)
    gate = asyncio.Semaphore(opts.inflight)
    per_node: dict[str, int] = {}
    out_w, out_h = ws.output_size
    upscale = (out_w, out_h) != tuple(ws.size)

    async def render_piece(piece: Piece) -> None:
        owner = owner_of(piece)

        async def attempt(failures: int) -> dict:
            generation, node_set = nodes.get(owner)
            if failures:
                nodes.renew(owner, generation)
                generation, node_set = nodes.get(owner)
            calls = [responses.track(h.interpolator.piece.remote(node_set, piece.step, piece.start,
                                                                 list(piece.times)))]
            if upscale:
                calls.append(responses.track(h.upscaler.upscale.remote(calls[-1], [out_w, out_h])))
            calls.append(responses.track(h.encoder.encode.remote(calls[-1], chunk_path(piece.key), ws.fps,
                                                                 piece.repeat, opts.codec)))
            try:
                return await calls[-1]
            finally:
                responses.done(*calls)

        async with gate:
            result = await call_with_retries(f"piece {piece.index + 1} of {len(pieces)}", attempt, opts)
        if piece.walk is not None and piece.start and piece.step == 0:
            on_walk_ready(piece.walk, walk_keys[piece.walk])
            rows_missing.discard(piece.walk)
            if not rows_missing:
                start_sheet()
        nodes.release(owner)
        per_node[result["node"]] = per_node.get(result["node"], 0) + 1
        advance("render")

    async def make_sheet() -> None:
        rows = [walk_row_path(k) for k in walk_keys]
        await call_with_retries("the contact sheet",
                                lambda _: responses.track(h.encoder.sheet.remote(rows, job.sheet)), opts)
        advance("sheet")

    async def join() -> int:
        metadata = {**video_metadata(ws, job.painting_ids, models), **job.metadata}
        chunks = [chunk_path(p.key) for p in pieces]
        frames = await call_with_retries(
            "joining the chunks", lambda _: responses.track(h.encoder.join.remote(chunks, job.video, metadata)), opts)
        advance("join")
        return frames

    sheet: list[asyncio.Future] = []  # the contact sheet's call, once started

    def start_sheet() -> None:
        """The sheet needs only the walks' rows: it is made beside the last pieces and the join, not after."""
        if job.sheet and not sheet:
            sheet.append(asyncio.ensure_future(make_sheet()))

    if not rows_missing:
        start_sheet()
    tasks = [asyncio.ensure_future(render_piece(p)) for p in todo]
    try:
        await asyncio.gather(*tasks)
        start_sheet()
        frames, *_ = await asyncio.gather(join(), *sheet)
    except BaseException:
        for t in [*tasks, *sheet]:
            t.cancel()
        responses.cancel_all()
        await asyncio.gather(*tasks, *sheet, return_exceptions=True)
        raise
    return WalkResult(frames, len(todo), len(pieces) - len(todo), walk_keys, per_node)
