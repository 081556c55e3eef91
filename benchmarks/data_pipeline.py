"""CLV-HD preprocessing benchmark: Ray Data pipeline vs a single-process loop, and memory vs size.

    python -m benchmarks.data_pipeline [--videos 50 --clips-per-video 2 --size 256 --num-cpus 2]

Both sides do the same work per clip: probe + decord decode of the sampled indices + short-side
resize + centre crop + zstd Parquet shards (the loop through `ShardWriter`; the pipeline's tasks
write their own shards with `write_shard`, same settings). The loop calls
`data_pipeline.clips.make_clip` one clip after another in this process; the pipeline is
`data_pipeline.clvhd.run` on a local Ray with `--num-cpus` CPUs. Timings exclude Ray's start
(reported separately); the pipeline's first execution in a fresh Ray ("cold": worker processes
start and import decord/PyAV) is reported apart, then loop and warm pipeline alternate. Memory: the peak of the
summed RSS of this process and every Ray process it started, sampled every 0.1 s, for 50 and
500 clips. Prints a markdown table.

CPU per clip (user + system seconds of this process and all Ray processes, per clip) is
measured too: on a machine whose cores other jobs keep busy, the kernel shares CPU between
sessions (autogroups), so a job's parallel processes cannot take more than its session's share
and wall-clock speed-up measures the neighbours. The projection `cores × loop CPU / Ray CPU` is what the same work would give on free cores; it is labelled as such.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psutil

from data_pipeline.clips import ClipRejected, make_clip
from data_pipeline.clvhd import Config, plan_clips, run
from data_pipeline.manifest import read_manifest
from data_pipeline.shards import ShardWriter
from data_pipeline.synthetic import generate

REAL_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"


class PeakRSS:
    """Peak of the summed RSS of this process and all its descendants (the local Ray)."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _total(self) -> int:
        me = psutil.Process()
        total = 0
        for p in [me, *me.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            time.sleep(self.interval)

    def __enter__(self) -> "PeakRSS":
        self.peak = self._total()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def own_cpu_seconds() -> float:
    """CPU seconds of this process alone: the loop's cost, without the idle Ray next to it."""
    t = psutil.Process().cpu_times()
    return t.user + t.system


def group_cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process and every live descendant (the Ray).

    Ray workers live across runs, so the difference over a run is the run's CPU cost,
    Ray's own processes (raylet, GCS, driver's executor thread) included.
    """
    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def single_process(cfg: Config) -> tuple[float, int]:
    """The baseline: the same decode + crop + shard writing, one clip after another."""
    entries, _ = read_manifest(cfg.manifest)
    writer = ShardWriter(cfg.out, encoded=False, rows_per_shard=cfg.rows_per_shard)
    t0 = time.perf_counter()
    import pyarrow as pa

    from data_pipeline.shards import shard_schema

    names = shard_schema(False).names
    for spec in plan_clips(entries, cfg):
        try:
            clip = make_clip(spec, timeout=cfg.timeout)
        except ClipRejected:
            continue
        frames = clip.pop("frames")
        row = {**clip, "indices": clip["indices"].tolist(), "frames": frames.tobytes(), "shape": list(frames.shape)}
        writer.write_table(pa.Table.from_pylist([{k: row[k] for k in names}], schema=shard_schema(False)))
    writer.close()
    return time.perf_counter() - t0, writer.rows_written


def real_manifest(folder: Path) -> Path | None:
    videos = sorted(REAL_VIDEOS.glob("*.avi"))
    if not videos:
        return None
    manifest = folder / "real.csv"
    manifest.write_text("video,caption\n" + "".join(f"{v},{v.stem} footage\n" for v in videos))
    return manifest


def compare(name: str, manifest: Path, work: Path, cfg_kwargs: dict, rows: list[str], rounds: int) -> None:
    """Pipeline cold once, then `rounds` alternations of loop and warm pipeline; best and median of each.

    Alternating and taking the best run is what makes a ratio meaningful on cores that other
    jobs share: both sides see the same background load over the same minutes.
    """
    import ray

    # warm the loop too: decord/PyAV imports and the page cache, as the warm pipeline has them
    make_clip(plan_clips(read_manifest(str(manifest))[0], Config(manifest="", out="", **cfg_kwargs))[0])
    t0 = time.perf_counter()
    ray.init(num_cpus=cfg_kwargs["num_cpus"], include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t0
    cold = run(Config(manifest=str(manifest), out=str(work / f"{name}-cold"), **cfg_kwargs))
    loops, warms, loads = [], [], []
    loop_cpu, ray_cpu = [], []
    for r in range(rounds):
        c0 = own_cpu_seconds()
        seconds, n = single_process(Config(manifest=str(manifest), out=str(work / f"{name}-loop{r}"), **cfg_kwargs))
        loop_cpu.append(own_cpu_seconds() - c0)
        c1 = group_cpu_seconds()
        warm = run(Config(manifest=str(manifest), out=str(work / f"{name}-warm{r}"), **cfg_kwargs))
        c2 = group_cpu_seconds()
        assert n == cold["clips_written"] == warm["clips_written"], "both sides must write the same clips"
        loops.append(seconds)
        warms.append(warm["seconds"])
        ray_cpu.append(c2 - c1)
        loads.append(os.getloadavg()[0])
    ray.shutdown()
    n = cold["clips_written"]
    best_loop, best_ray = min(loops), min(warms)
    med_loop, med_ray = statistics.median(loops), statistics.median(warms)
    cpu_loop, cpu_ray = statistics.median(loop_cpu) / n, statistics.median(ray_cpu) / n
    # what 2 free cores would give: the loop can use one, the pipeline both, each at its CPU cost per clip
    projected = cfg_kwargs["num_cpus"] * cpu_loop / cpu_ray
    rows.append(f"| {name} | {n} | {n / best_loop:.1f} / {n / med_loop:.1f} | {n / best_ray:.1f} / {n / med_ray:.1f} | "
                f"{n / cold['seconds']:.1f} | **{best_loop / best_ray:.2f}x** / {med_loop / med_ray:.2f}x | "
                f"{1000 * cpu_loop:.0f} / {1000 * cpu_ray:.0f} ms | {projected:.2f}x | "
                f"{ray_start:.1f} s | {min(loads):.0f}-{max(loads):.0f} |")


def memory(manifest: Path, work: Path, cfg_kwargs: dict, rows: list[str]) -> None:
    import ray

    ray.init(num_cpus=cfg_kwargs["num_cpus"], include_dashboard=False, log_to_driver=False)
    run(Config(manifest=str(manifest), out=str(work / "mem-warmup"), **{**cfg_kwargs, "clips_per_video": 1}))
    for per_video in (1, 10):
        with PeakRSS() as peak:
            summary = run(Config(manifest=str(manifest), out=str(work / f"mem-{per_video}"),
                                 **{**cfg_kwargs, "clips_per_video": per_video}))
        rows.append(f"| {summary['clips_written']} | {peak.peak / 2**20:,.0f} MiB | "
                    f"{summary['bytes_written'] / 2**20:,.0f} MiB | {summary['seconds']:.1f} s |")
    ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=50, help="synthetic videos")
    p.add_argument("--clips-per-video", type=int, default=6, help="clips per synthetic video in the speed runs")
    p.add_argument("--real-clips-per-video", type=int, default=24, help="clips cut from each shared video")
    p.add_argument("--rounds", type=int, default=3, help="alternations of loop and pipeline")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--cpus-per-task", type=float, default=0.5, help="Ray CPUs per decode task")
    p.add_argument("--clips-per-task", type=int, default=4, help="clips decoded and written by one Ray task")
    p.add_argument("--skip-memory", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("INKWALK_NO_PROGRESS", "1")
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    work = Path(tempfile.mkdtemp(prefix="inkwalk-bench-data-"))
    try:
        t0 = time.perf_counter()
        manifest = generate(work / "synthetic", clips=args.videos, seed=0, min_frames=48, max_frames=72)
        gen_s = time.perf_counter() - t0
        cfg = dict(frames=8, stride=4, size=args.size, clips_per_video=args.clips_per_video, num_cpus=args.num_cpus,
                   cpus_per_task=args.cpus_per_task, clips_per_task=args.clips_per_task)
        speed = ["| dataset | clips | loop clips/s best / median | Ray warm clips/s best / median | "
                 "Ray cold clips/s | measured speed-up best / median | CPU per clip loop / Ray | "
                 "projected on 2 free cores | Ray start | load avg |", "|---|---|---|---|---|---|---|---|---|---|"]
        compare("synthetic", manifest, work, cfg, speed, args.rounds)
        real = real_manifest(work)
        if real is not None:
            compare("shared/data/videos", real, work, {**cfg, "clips_per_video": args.real_clips_per_video},
                    speed, args.rounds)
        print(f"synthetic data: {args.videos} videos generated in {gen_s:.1f} s; clip = 8 frames, stride 4, "
              f"{args.size}², {args.num_cpus} Ray CPUs, {args.cpus_per_task} CPU per decode task, {args.clips_per_task} clips per task, {args.rounds} rounds, "
              f"os.cpu_count()={os.cpu_count()}\n")
        print("\n".join(speed))
        if not args.skip_memory:
            mem = ["| clips | peak RSS (driver + Ray) | shard bytes | time |", "|---|---|---|---|"]
            memory(manifest, work, cfg, mem)
            print()
            print("\n".join(mem))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
