"""Serve building blocks without Ray: the job store on any pyarrow filesystem, retention, request limits."""

from __future__ import annotations

import asyncio
import io
import time

import numpy as np
import pytest

from inkwalk.config_model import parse_config
from inkwalk.errors import InkwalkError
from inkwalk.store import Store, StoreError
from services.limits import Limits, RequestError, decode_painting, parse_conclvd_settings, parse_walk_settings
from services.render import RenderOptions
from services.store import JobRecord, JobStore, Retention, new_job_id


@pytest.mark.parametrize("uri", ["local", "mock:///bucket/results"])
def test_job_store_round_trips_records_and_files(uri, tmp_path):
    store = JobStore(tmp_path / "store" if uri == "local" else uri)
    record = JobRecord(job_id=new_job_id(), app="artwalks", settings={"frames": 3})
    store.save(record)
    record.state, record.progress = "done", 1.0
    store.save(record)  # rewritten whole
    again = store.load("artwalks", record.job_id)
    assert again.state == "done" and again.progress == 1.0 and again.settings == {"frames": 3}
    (tmp_path / "v.mp4").write_bytes(b"\x00mp4" * 300_000)
    video = store.job_path("artwalks", record.job_id, "video.mp4")
    store.put_file(video, tmp_path / "v.mp4")
    assert b"".join(store.iter_bytes(video, 5, 13)) == b"mp4\x00mp4\x00"
    assert store.size(video) == 1_200_000
    assert [r.job_id for r in store.list_jobs("artwalks").records] == [record.job_id]
    assert store.list_jobs("conclvd").records == []
    assert store.load("artwalks", "../etc") is None and store.load("artwalks", new_job_id()) is None
    with pytest.raises(InkwalkError, match="bad job id"):
        store.job_dir("artwalks", "../../etc")
    store.request_cancel("artwalks", record.job_id)
    assert store.cancel_requested("artwalks", record.job_id)
    store.delete_job("artwalks", record.job_id)
    assert store.list_jobs("artwalks").records == [] and not store.exists(video)


@pytest.mark.parametrize("uri", ["local", "mock:///bucket/results"])
def test_many_files_are_looked_up_in_one_call_with_the_same_answers(uri, tmp_path):
    store = Store(tmp_path / "store" if uri == "local" else uri)
    store.put_bytes("chunks/ab/abc.mp4", b"x")
    store.put_bytes("walks/cd/cde.png", b"y")
    asked = ["chunks/ab/abc.mp4", "chunks/ab/abd.mp4", "walks/cd/cde.png", "walks", "nothing/here.png"]
    assert store.exist(asked) == [True, False, True, False, False]  # a folder is not a file
    assert store.exist(asked) == [store.exists(r) for r in asked] and store.exist([]) == []


def test_a_failed_write_publishes_nothing(tmp_path):
    store = Store(tmp_path)

    def blocks():
        yield b"x" * 10
        raise KeyboardInterrupt  # the writer is interrupted half-way

    with pytest.raises(KeyboardInterrupt):
        store.put_stream("a/file.bin", blocks())
    assert not store.exists("a/file.bin") and [i.path for i in store.list("a")] == []
    with pytest.raises(StoreError, match="larger than"):
        store.put_stream("a/big.bin", iter([b"x" * 6, b"y" * 6]), max_bytes=10)
    assert [i.path for i in store.list("a")] == []


def test_retention_removes_old_jobs_and_chunks_and_keeps_running_ones(tmp_path):
    store = JobStore(tmp_path)
    now = time.time()
    old = JobRecord(job_id=new_job_id(), app="artwalks", state="done", finished_at=now - 100)
    new = JobRecord(job_id=new_job_id(), app="artwalks", state="failed", finished_at=now - 1)
    running = JobRecord(job_id=new_job_id(), app="artwalks", state="running", created_at=now - 1000)
    for r in (old, new, running):
        store.save(r)
    store.put_bytes("chunks/ab/old.mp4", b"x")
    store.put_bytes("jobs/artwalks/x.tmp-deadbeef", b"half")
    rules = Retention(job_ttl_s=50, chunk_ttl_s=3600, temp_ttl_s=3600)
    assert store.apply_retention("artwalks", rules, now=now) == {"jobs": 1, "shared": 0, "temporaries": 0}
    assert {r.job_id for r in store.list_jobs("artwalks").records} == {new.job_id, running.job_id}
    gone = store.apply_retention("artwalks", Retention(max_jobs=0, chunk_ttl_s=0, temp_ttl_s=0), now=now + 10)
    assert gone == {"jobs": 1, "shared": 1, "temporaries": 1}
    assert [r.job_id for r in store.list_jobs("artwalks").records] == [running.job_id]


def _png(shape, fmt="PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros(shape, np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def test_painting_checks_name_the_problem():
    limits = Limits(max_upload_bytes=10_000, max_pixels=100 * 100)
    image = decode_painting("a.png", _png((20, 30, 4)), limits)  # RGBA -> RGB
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8
    cases = [(b"", 400, "empty"), (b"x" * 20_000, 413, "10000 bytes"), (_png((120, 120, 3)), 413, "pixels"),
             (_png((8, 8, 3), "GIF"), 415, "accepted image types"), (b"hello", 415, "not an image"),
             (_png((50, 50, 3))[:60], 400, "truncated or corrupt")]
    for data, status, phrase in cases:
        with pytest.raises(RequestError, match=phrase) as info:
            decode_painting("p.png", data, limits)
        assert info.value.status == status


def test_the_ingress_refuses_settings_past_its_configured_limits():
    """The configured limits, not the defaults, bound what a request may ask (HTTP status 422)."""
    limits = Limits(max_keyframes=2, max_video_frames=8)
    parse_walk_settings({"keyframes": 2, "frames": 4, "hold": 1.5}, {}, limits, limits.min_paintings)
    for bad, phrase in [({"keyframes": 3}, "0..2"), ({"frames": "many"}, "integer"), ({"hold": -1}, "'hold'"),
                        ({"keyframes": True}, "integer")]:
        with pytest.raises(RequestError, match=phrase) as info:
            parse_walk_settings(bad, {}, limits, limits.min_paintings)
        assert info.value.status == 422
    parse_conclvd_settings({"frames": 8, "steps": 10, "size": 64}, {}, limits)
    for bad, phrase in [({"frames": 9}, "2..8"), ({"size": 65}, r"'size'"), ({"size": 60}, "multiple of 8"),
                        ({"negative_prompt": "x" * 600}, "limit is 500")]:
        with pytest.raises(RequestError, match=phrase):
            parse_conclvd_settings(bad, {}, limits)
    with pytest.raises(InkwalkError, match="unknown limit"):
        parse_config(Limits, {"max_everything": 1}, "limit")


def test_serve_refuses_motion_windowing_in_one_line_naming_the_cli(tmp_path):
    """"motion" windowing holds the whole video in one model call: the CLI's, never a replica's."""
    from services.apps import build_conclvd
    from services.scroll import check_served_windowing

    check_served_windowing(parse_conclvd_settings({}, {}, Limits()).model_dump())
    with pytest.raises(RequestError) as info:
        check_served_windowing(parse_conclvd_settings({"windowing": "motion"}, {}, Limits()).model_dump())
    assert info.value.status == 422 and "\n" not in str(info.value)
    assert "setting 'windowing' = 'motion'" in str(info.value) and "inkwalk t2v PROMPT --windowing motion" in str(info.value)
    with pytest.raises(RequestError, match="default setting 'windowing' = 'motion'"):   # a Serve config's defaults
        build_conclvd({"store": str(tmp_path), "defaults": {"windowing": "motion"}})


def test_retries_count_failures_not_full_queues_and_never_retry_user_errors():
    import asyncio

    from ray.serve.exceptions import BackPressureError

    from services.render import RenderError, RenderOptions, call_with_retries

    opts = RenderOptions(attempts=3, backoff_s=0.001)

    def script(*outcomes):
        seen = []

        async def attempt(failures: int):
            seen.append(failures)
            outcome = outcomes[len(seen) - 1]
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        return attempt, seen

    attempt, seen = script(BackPressureError(num_queued_requests=1, max_queued_requests=1), RuntimeError("lost"),
                           BackPressureError(num_queued_requests=1, max_queued_requests=1), "ok")
    assert asyncio.run(call_with_retries("piece 1", attempt, opts)) == "ok" and seen == [0, 0, 1, 1]
    attempt, seen = script(RuntimeError("a"), RuntimeError("b"), RuntimeError("c"), "never")
    with pytest.raises(RenderError, match=r"piece 2 failed 3 times; last: RuntimeError: c"):
        asyncio.run(call_with_retries("piece 2", attempt, opts))
    assert seen == [0, 1, 2]
    attempt, seen = script(InkwalkError("bad painting"), "never")
    with pytest.raises(InkwalkError, match="bad painting"):
        asyncio.run(call_with_retries("piece 3", attempt, opts))
    assert seen == [0]


def test_serve_refuses_a_non_loopback_bind_while_a_job_app_has_no_token(monkeypatch):
    from services.commands.serve import refuse_open_exposure

    monkeypatch.delenv("INKWALK_API_TOKEN", raising=False)
    config = {"applications": [{"name": "artwalks", "import_path": "services.apps:build_artwalks", "args": {}},
                               {"name": "conclvd", "import_path": "services.apps:build_conclvd",
                                "args": {"api_token": "t"}},
                               {"name": "studio", "import_path": "services.studio:build_studio"}]}
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        refuse_open_exposure(host, config)
    for host in ("0.0.0.0", "::", "192.168.1.4", "myhost.example"):
        with pytest.raises(InkwalkError, match="artwalks has no API token.*INKWALK_API_TOKEN.*--insecure-no-token"):
            refuse_open_exposure(host, config)
    monkeypatch.setenv("INKWALK_API_TOKEN", "t")
    refuse_open_exposure("0.0.0.0", config)


def test_retention_removes_job_folders_that_never_got_a_record(tmp_path):
    import os

    store = JobStore(tmp_path)
    now = time.time()
    kept = JobRecord(job_id=new_job_id(), app="artwalks", state="running")
    store.save(kept)
    litter, uploading = new_job_id(), new_job_id()
    (tmp_path / "jobs" / "artwalks" / litter / "inputs").mkdir(parents=True)  # what a refused upload left
    for folder in (tmp_path / "jobs" / "artwalks" / litter / "inputs", tmp_path / "jobs" / "artwalks" / litter):
        os.utime(folder, (now - 7200, now - 7200))
    store.put_bytes(f"jobs/artwalks/{uploading}/inputs/000", b"arriving")  # an upload in progress
    gone = store.apply_retention("artwalks", Retention(temp_ttl_s=3600), now=now)
    assert gone["temporaries"] == 1 and gone["jobs"] == 0
    left = sorted(p.name for p in (tmp_path / "jobs" / "artwalks").iterdir())
    assert left == sorted([kept.job_id, uploading])


def test_a_painting_refused_on_a_replica_is_named_as_uploaded(tmp_path):
    """The job's message names the user's file, never the store path it was saved under."""
    from inkwalk.walk_settings import WalkSettings
    from services.deployments import Keyframes

    keyframes = Keyframes.func_or_class(str(tmp_path), keyframer="none")
    keyframes.store.put_bytes("inputs/job/000", _png((50, 50, 3))[:60])
    settings = WalkSettings(preset="offline", size=(32, 32), keyframes=0)
    with pytest.raises(RequestError, match="painting 'my scan.png' is truncated") as info:
        keyframes.nodes(["inputs/job/000"], settings, None, ["my scan.png"])
    assert "inputs/job" not in str(info.value)


class _FakeCall:
    """A deployment call with the parts of a DeploymentResponse that `render_walks` uses: awaitable,
    cancellable, and accepted as another call's argument (awaited before the call runs)."""

    def __init__(self, log: list, name: str, work, args: tuple):
        async def run():
            values = [await a if isinstance(a, _FakeCall) else a for a in args]
            log.append(("start", name))
            result = await work(*values)
            log.append(("end", name))
            return result

        self.task = asyncio.ensure_future(run())

    def __await__(self):
        return self.task.__await__()

    def cancel(self) -> None:
        self.task.cancel()


class _FakeDeployment:
    def __init__(self, log: list, **methods):
        self.log, self.methods = log, methods

    def __getattr__(self, method: str):
        work, log = self.methods[method], self.log
        return type("Method", (), {"remote": staticmethod(lambda *a: _FakeCall(log, method, work, a))})()


def test_the_contact_sheet_is_made_beside_the_last_pieces_not_after_the_join(tmp_path):
    """Every walk's row exists once its first piece is done: the sheet starts then, while the slow last
    piece (the final painting, held) is still encoding, and the job ends when the join and the sheet are done."""
    from inkwalk.chunks import Codec
    from inkwalk.segments import assign_keys, plan_pieces
    from inkwalk.store_layout import chunk_path
    from inkwalk.walk_settings import WalkSettings
    from services.render import Handles, WalkJob, render_walks

    ws = WalkSettings.model_validate({"preset": "offline", "keyframes": 0, "frames": 2, "size": [16, 16],
                                      "hold": 0.5, "fps": 4})
    models = {"interpolator": "flow-warp"}
    pieces, _ = assign_keys(plan_pieces(3, ws), ["a", "b", "c"], ws, models, Codec())
    slow = chunk_path(pieces[-1].key)
    log: list = []

    async def nodes(paintings, settings, row, names):
        return np.zeros((2, 16, 16, 3), np.uint8)

    async def piece(nodes, step, start, times):
        return nodes[:1]

    async def encode(frames, chunk, fps, repeat, codec):
        await asyncio.sleep(0.3 if chunk == slow else 0.01)
        return {"node": "n1"}

    async def join(chunks, video, metadata):
        return len(chunks)

    async def sheet(rows, out):
        return True

    job = WalkJob(paintings=["a.png", "b.png", "c.png"], painting_ids=["a", "b", "c"], settings=ws, video="v.mp4",
                  sheet="s.png")
    h = Handles(keyframes=_FakeDeployment(log, nodes=nodes), interpolator=_FakeDeployment(log, piece=piece),
                encoder=_FakeDeployment(log, encode=encode, join=join, sheet=sheet))
    result = asyncio.run(render_walks(h, Store(tmp_path), job, models, RenderOptions(inflight=len(pieces))))
    assert result.chunks_rendered == len(pieces) and result.frames == len(pieces)
    last_encode_end = max(i for i, e in enumerate(log) if e == ("end", "encode"))
    assert log.index(("start", "sheet")) < last_encode_end < log.index(("start", "join"))
    assert ("end", "sheet") in log
