"""The job lifecycle without Ray: atomic take-over, cancels and store errors never leak a slot,
listings survive a bad record."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from services.jobs import MAX_RESUMES, JobLifecycle
from services.store import JobRecord, JobStore, Retention, new_job_id

APP = "artwalks"


class FlakyStore(JobStore):
    """A store whose writes of end states fail while `read_only` is set (a full or read-only disk)."""

    read_only = False

    def save(self, record: JobRecord) -> None:
        if self.read_only:
            raise PermissionError(f"[Errno 13] read-only store: {record.job_id}")
        super().save(record)


def lifecycle(store: JobStore, work, *, replica: str = "", heartbeat_timeout_s: float = 30.0) -> JobLifecycle:
    return JobLifecycle(store, APP, replica or new_job_id(), work, max_active=1000,
                        heartbeat_timeout_s=heartbeat_timeout_s, retention=Retention())


def stale_job(store: JobStore, resumed: int = 0, **fields) -> JobRecord:
    """A job its owner stopped heart-beating a minute ago."""
    record = JobRecord(job_id=new_job_id(), app=APP, state="running", owner="gone", resumed=resumed, **fields)
    store.save(record)
    raw = json.loads(store.get_bytes(store.job_path(APP, record.job_id, "job.json")))
    raw["heartbeat_at"] = time.time() - 60
    store.put_bytes(store.job_path(APP, record.job_id, "job.json"), json.dumps(raw).encode())
    return record


async def settled(*cycles: JobLifecycle, timeout: float = 10.0) -> None:
    """Wait until no lifecycle runs a job."""
    deadline = time.monotonic() + timeout
    while any(c.tasks for c in cycles):
        assert time.monotonic() < deadline, "jobs still running"
        await asyncio.sleep(0.01)


def test_exclusive_create_has_one_winner_among_racing_threads(tmp_path):
    store = JobStore(tmp_path)
    job_id = new_job_id()
    for generation in range(100):
        wins, barrier = [], threading.Barrier(6)

        def race(name: str) -> None:
            barrier.wait()
            if store.claim(APP, job_id, generation, name):
                wins.append(name)

        threads = [threading.Thread(target=race, args=(f"r{i}",)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1, (generation, wins)
        assert store.claimed(APP, job_id, generation) and not store.claimed(APP, job_id, generation + 1)


def test_exclusive_create_on_an_object_store_settles_on_one_writer():
    store = JobStore("mock:///bucket/results")
    for round_ in range(6):
        wins, barrier = [], threading.Barrier(3)

        def race(name: str) -> None:
            barrier.wait()
            if store.create_exclusive(f"claims/{round_}", name.encode(), settle_s=0.1):
                wins.append(name)

        threads = [threading.Thread(target=race, args=(f"r{i}",)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1, wins


def test_two_replicas_racing_for_orphans_never_both_run_one(tmp_path):
    store = JobStore(tmp_path)
    runs: list[tuple[str, str]] = []

    def worker(name: str):
        async def work(record: JobRecord, on_progress) -> None:
            runs.append((name, record.job_id))
            await asyncio.sleep(0.005)
        return work

    async def main() -> None:
        a, b = lifecycle(store, worker("a"), replica="a"), lifecycle(store, worker("b"), replica="b")
        for round_ in range(40):
            job = stale_job(store, resumed=round_ % 3)
            await asyncio.gather(a.adopt_orphans(), b.adopt_orphans())
            await settled(a, b)
            assert [j for _, j in runs].count(job.job_id) == 1, f"round {round_}: {runs[-2:]}"
            done = store.load(APP, job.job_id)
            assert done.state == "done" and done.resumed == round_ % 3 + 1
        assert {name for name, _ in runs} <= {"a", "b"}

    asyncio.run(main())


def test_an_owner_that_lost_its_claim_stops(tmp_path):
    store = JobStore(tmp_path)
    forever = asyncio.Event()

    async def work(record, on_progress):
        await forever.wait()

    async def main() -> None:
        slow = lifecycle(store, work)
        record = JobRecord(job_id=new_job_id(), app=APP)
        await slow.submit(record)
        await asyncio.sleep(0.05)
        assert store.claim(APP, record.job_id, 1, "another replica")
        await slow.beat()
        await settled(slow)
        assert store.load(APP, record.job_id).state == "running"  # the new owner's to finish

    asyncio.run(main())


def test_a_slow_owner_never_overwrites_the_new_owners_record(tmp_path):
    """The old owner was only slow: another replica claimed the job and wrote its record. Neither the
    old owner's heartbeat nor its end state may land over that record."""
    store = JobStore(tmp_path)
    release = asyncio.Event()

    async def work(record, on_progress):
        await release.wait()

    async def main() -> None:
        for path in ("heartbeat", "end state"):
            slow = lifecycle(store, work)
            record = JobRecord(job_id=new_job_id(), app=APP)
            await slow.submit(record)
            await asyncio.sleep(0.05)
            assert store.claim(APP, record.job_id, 1, "new owner")
            store.save(JobRecord(job_id=record.job_id, app=APP, state="running", owner="new owner", resumed=1,
                                 stage="the new owner's"))
            if path == "heartbeat":
                await slow.beat()  # sees the claim: stops
            else:
                release.set()  # its work ends before any heartbeat saw the claim: the end state is refused
            await settled(slow)
            release.clear()
            kept = store.load(APP, record.job_id)
            assert (kept.owner, kept.resumed, kept.state, kept.stage) == ("new owner", 1, "running", "the new owner's"), path

    asyncio.run(main())


def test_concurrent_deletes_of_a_running_job_end_it_and_free_the_slot(tmp_path):
    store = JobStore(tmp_path)
    forever = asyncio.Event()

    async def work(record, on_progress):
        await forever.wait()

    async def main() -> None:
        jobs = lifecycle(store, work)
        for _ in range(10):
            record = JobRecord(job_id=new_job_id(), app=APP)
            await jobs.submit(record)
            await asyncio.sleep(0.01)
            outcomes = await asyncio.gather(*(jobs.cancel_or_delete(record.job_id) for _ in range(4)))
            assert set(outcomes) == {"cancelling"}
            await settled(jobs)
            stored = store.load(APP, record.job_id)
            assert stored.state == "cancelled" and stored.error == "cancelled"
            assert not jobs.busy() and not jobs.records and not jobs.cancelling

    asyncio.run(main())


def test_a_delete_racing_completion_leaves_memory_and_store_agreeing(tmp_path):
    store = JobStore(tmp_path)

    async def work(record, on_progress):
        await asyncio.sleep(0.02)

    async def main() -> None:
        jobs = lifecycle(store, work)
        for delay in [i * 0.004 for i in range(12)]:
            record = JobRecord(job_id=new_job_id(), app=APP)
            await jobs.submit(record)
            await asyncio.sleep(delay)
            await asyncio.gather(jobs.cancel_or_delete(record.job_id), jobs.cancel_or_delete(record.job_id))
            await settled(jobs)
            stored = store.load(APP, record.job_id)
            assert stored is None or stored.state in ("done", "cancelled"), stored
            assert not jobs.records and not jobs.tasks

    asyncio.run(main())


def test_a_failed_final_save_frees_the_slot_and_the_job_is_taken_over(tmp_path):
    store = FlakyStore(tmp_path)
    runs = []

    async def work(record, on_progress):
        runs.append(record.job_id)
        store.read_only = len(runs) == 1  # the store fails just as the first run ends

    async def main() -> None:
        jobs = lifecycle(store, work, heartbeat_timeout_s=0.3)
        record = JobRecord(job_id=new_job_id(), app=APP)
        await jobs.submit(record)
        await settled(jobs)
        assert not jobs.records and not jobs.busy()
        assert store.load(APP, record.job_id).state == "running"  # what the store says, nobody runs it
        store.read_only = False
        await asyncio.sleep(0.4)  # its heartbeat goes stale
        await jobs.adopt_orphans()
        await settled(jobs)
        again = store.load(APP, record.job_id)
        assert again.state == "done" and again.resumed == 1 and runs == [record.job_id] * 2

    asyncio.run(main())


def test_stuck_jobs_are_adopted_cancelled_or_failed_never_left(tmp_path):
    store = JobStore(tmp_path)

    async def work(record, on_progress):
        return None

    async def main() -> None:
        jobs = lifecycle(store, work)
        resumable, cancelled, hopeless = stale_job(store), stale_job(store), stale_job(store, resumed=MAX_RESUMES)
        store.request_cancel(APP, cancelled.job_id)
        await jobs.adopt_orphans()
        await settled(jobs)
        assert store.load(APP, resumable.job_id).state == "done"
        assert store.load(APP, cancelled.job_id).state == "cancelled"
        failed = store.load(APP, hopeless.job_id)
        assert failed.state == "failed" and "stopped" in failed.error

    asyncio.run(main())


def test_listings_skip_unreadable_records_and_say_so(tmp_path):
    store = JobStore(tmp_path)
    good = JobRecord(job_id=new_job_id(), app=APP, state="done")
    store.save(good)
    garbage, surrogate = new_job_id(), JobRecord(job_id=new_job_id(), app=APP, settings={"prompt": "\ud800"})
    store.put_bytes(store.job_path(APP, garbage, "job.json"), b"{not json")
    store.save(surrogate)  # json escapes the lone surrogate; it cannot be sent as UTF-8
    jobs = lifecycle(store, None)
    page = jobs.page(limit=10, offset=0)
    assert [j["job_id"] for j in page["jobs"]] == [good.job_id] and page["skipped"] == 2 and page["total"] == 1
    json.dumps(page, ensure_ascii=False).encode()
    for bad in (garbage, surrogate.job_id):  # an unreadable job can still be deleted
        assert asyncio.run(jobs.cancel_or_delete(bad)) == "deleted"
    assert jobs.page(10, 0)["skipped"] == 0


def test_concurrent_deletes_of_a_finished_job_all_succeed(tmp_path):
    store = JobStore(tmp_path)
    for _ in range(5):
        record = JobRecord(job_id=new_job_id(), app=APP, state="done")
        store.save(record)
        for i in range(60):
            store.put_bytes(store.job_path(APP, record.job_id, f"inputs/{i}.png"), b"x")
        errors, barrier = [], threading.Barrier(4)

        def delete() -> None:
            barrier.wait()
            try:
                store.delete_job(APP, record.job_id)
            except Exception as exc:  # noqa: BLE001 - the test reports any
                errors.append(exc)

        threads = [threading.Thread(target=delete) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and store.load(APP, record.job_id) is None


def test_a_read_only_store_refuses_a_new_job_with_a_store_error(tmp_path):
    store = FlakyStore(tmp_path)
    store.read_only = True
    jobs = lifecycle(store, None)
    with pytest.raises(OSError, match="read-only"):  # the routes answer it 503 (services.job_routes)
        asyncio.run(jobs.submit(JobRecord(job_id=new_job_id(), app=APP)))
    assert not jobs.tasks and not jobs.records
