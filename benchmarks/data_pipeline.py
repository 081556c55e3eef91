"""CLV-HD preprocessing benchmark: where a clip's time goes, Ray Data vs a plain loop, memory vs size.

    python -m benchmarks.data_pipeline [--clips 100,1000 --rounds 3 --num-cpus 2] [--data DIR]

Both sides run the same code per clip: `data_pipeline.unit_work.write_unit` (probe + decord decode of
the sampled indices resized on decode + centre crop + one zstd Parquet row group into the unit's
shard). The loop calls it unit after unit in this process; the pipeline is `data_pipeline.clvhd.run`
on a local Ray with `--num-cpus` CPUs, at its defaults (layout derived from the cluster) and at
other layouts. Both write the same shards, and each round checks they are identical byte for
byte. Ray's start is excluded and reported apart; the pipeline's first execution in a fresh
Ray ("cold": worker processes start and import decord, PyAV, pyarrow) is reported apart, then
the loop and every pipeline setting alternate, `--rounds` times.

Sections printed (markdown):
1. profile: CPU per clip of each stage in one process, and the CPU the pipeline spends beyond
   that, by process (driver, Ray's own processes, workers), from a warm run at defaults;
2. speed: clips/s best / median, speed-up, CPU per clip, and how many cores *other* processes
   used meanwhile (the machine's busy time minus this process tree's: the load average counts
   this benchmark's own processes too);
3. memory: peak summed RSS of this process and every Ray process, per dataset size.
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

from data_pipeline.clvhd import plan_clips, run
from data_pipeline.config import Config
from data_pipeline.layout import WAVES
from data_pipeline.manifest import read_manifest
from data_pipeline.location import Location
from data_pipeline.shards import shard_files
from data_pipeline.synthetic import generate
from data_pipeline.unit_work import write_unit
from data_pipeline.units import plan_units

SETTINGS = dict(frames=8, stride=4, size=256)


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


class CpuMeter:
    """CPU seconds of this process ("driver"), Ray's worker processes and Ray's own processes.

    Sampled per process every 0.2 s in a thread, keeping the last value of processes that have
    exited (Ray ends idle workers), so a difference over a run is that run's CPU.
    """

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self._seen: dict[int, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_forever, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        me = psutil.Process()
        for p in [me, *me.children(recursive=True)]:
            try:
                t = p.cpu_times()
                name = p.cmdline()[0] if p.cmdline() else p.name()
            except psutil.Error:
                continue
            role = "driver" if p.pid == me.pid else "workers" if name.startswith("ray::") and \
                not name.startswith(("ray::_", "ray::Dashboard", "ray::RuntimeEnv")) else "ray system"
            with self._lock:
                self._seen[p.pid] = (role, t.user + t.system)

    def _sample_forever(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def read(self) -> dict[str, float]:
        self._sample()
        out = {"driver": 0.0, "workers": 0.0, "ray system": 0.0}
        with self._lock:
            for role, seconds in self._seen.values():
                out[role] += seconds
        return out

    def total(self) -> float:
        return sum(self.read().values())


def machine_busy() -> float:
    """CPU seconds every process of the machine has used so far."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + t.steal


class Timed:
    """Wall seconds of a block, our CPU seconds, and the cores other processes used meanwhile."""

    def __init__(self, meter: "CpuMeter"):
        self.meter = meter

    def __enter__(self) -> "Timed":
        self._t, self._ours, self._all = time.perf_counter(), self.meter.total(), machine_busy()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._t
        self.cpu = self.meter.total() - self._ours
        self.others = max(0.0, machine_busy() - self._all - self.cpu) / self.seconds


def loop(manifest: Path, out: Path, clips_per_video: int, threads: int = 1) -> float:
    """The baseline: every unit of the plan, one after another, in this process. Returns seconds."""
    cfg = Config(manifest=str(manifest), out=str(out), clips_per_video=clips_per_video, **SETTINGS)
    entries, _ = read_manifest(str(manifest))
    units = plan_units(plan_clips(entries, cfg), cfg.rows_per_shard)
    where = Location.of(str(out))
    t0 = time.perf_counter()
    for unit in units:
        write_unit(unit, where, cfg.timeout, threads)
    return time.perf_counter() - t0


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {Path(f).name: Path(f).read_bytes() for f in shard_files(str(out))}


def profile(manifest: Path, work: Path, clips_per_video: int, rows: list[str]) -> None:
    """CPU per clip of each stage, one process (process_time), and of the per-clip path it replaced."""
    import decord
    import pyarrow as pa

    from data_pipeline.clips import center_crop, make_clip, resize_size, sample_indices
    from data_pipeline.shards import ShardFile, clip_table, shard_schema
    from inkwalk.video import _stream_info, probe, read_frames

    cfg = Config(manifest=str(manifest), out="", clips_per_video=clips_per_video, **SETTINGS)
    specs = plan_clips(read_manifest(str(manifest))[0], cfg)
    cost: dict[str, float] = {}

    def timed(stage, fn):
        c = time.process_time()
        value = fn()
        cost[stage] = cost.get(stage, 0.0) + time.process_time() - c
        return value

    make_clip(specs[0])
    shard = None
    for i, spec in enumerate(specs):
        _, w, h = timed("open: PyAV stream info (is it a video; width, height)", lambda: _stream_info(Path(spec.video)))
        size = resize_size(w, h, spec.size)
        idx = sample_indices(probe(spec.video).frames, spec).tolist()

        # a decord reader keeps decoding ahead in a thread until it is closed: time whole lives of readers
        def open_close() -> None:
            decord.VideoReader(spec.video, ctx=decord.cpu(0), num_threads=1, width=size[0], height=size[1])

        def decode(resize: bool):
            kwargs = {"width": size[0], "height": size[1]} if resize else {}
            return decord.VideoReader(spec.video, ctx=decord.cpu(0), num_threads=1, **kwargs).get_batch(idx).asnumpy()

        timed("open + close: decord VideoReader (frame index, resize set-up)", open_close)
        frames = timed("open + decode the 8 indices resized + close: decord", lambda: decode(True))
        timed("  (the same without resize: decoding alone)", lambda: decode(False))
        crop = timed("centre crop (one copy)", lambda: center_crop(frames, spec.size))
        clip = {"clip_id": spec.clip_id, "video": spec.video, "caption": spec.caption, "indices": idx, "fps": 24.0,
                "frames": crop}
        table = timed("to Arrow: one-row table, frames not copied", lambda: clip_table(clip))
        if i % cfg.rows_per_shard == 0:
            if shard is not None:
                timed("Parquet: open + close a shard of 16 clips (per clip)", shard.close)
            shard = timed("Parquet: open + close a shard of 16 clips (per clip)",
                          lambda: ShardFile(str(work / "profile"), f"part-{i:05d}", encoded=False))
        timed("Parquet: zstd-1 row group into the shard file", lambda: shard.write(table))
        timed("whole clip as the loop runs it (make_clip: the above, one thread for the timeout)",
              lambda: make_clip(spec))
        def before() -> None:
            info = probe(spec.video)
            read_frames(spec.video, idx, size=resize_size(info.width, info.height, spec.size))

        timed("before: probe + read_frames (PyAV opens the file 3 times, decord twice)", before)
        row = {**clip, "frames": crop.tobytes(), "shape": list(crop.shape)}
        timed("before: to Arrow via bytes per row (tobytes + Table.from_pylist)",
              lambda: pa.Table.from_pylist([row], schema=shard_schema(False)))
    shard.close()
    n = len(specs)
    rows.append(f"| **stage (one process, {n} clips)** | **CPU ms per clip** |")
    for stage, seconds in cost.items():
        rows.append(f"| {stage} | {1000 * seconds / n:.1f} |")


def pipeline_overhead(manifest: Path, work: Path, clips_per_video: int, num_cpus: int, meter: CpuMeter,
                      rows: list[str]) -> None:
    """CPU the pipeline spends per clip, by process, against the loop's (both warm)."""
    c0 = psutil.Process().cpu_times()
    seconds = loop(manifest, work / "prof-loop", clips_per_video)
    c1 = psutil.Process().cpu_times()
    before = meter.read()
    summary = run(Config(manifest=str(manifest), out=str(work / "prof-ray"), clips_per_video=clips_per_video,
                         **SETTINGS))
    after = meter.read()
    n = summary["clips_total"]
    loop_cpu = (c1.user + c1.system - c0.user - c0.system) / n
    used = {k: (after[k] - before[k]) / n for k in after}
    rows.append(f"| **the same {n} clips: loop vs pipeline (warm, defaults, {num_cpus} CPUs)** | |")
    rows.append(f"| loop, all of it | {1000 * loop_cpu:.1f} ({n / seconds:.1f} clips/s) |")
    rows.append(f"| pipeline workers (the same work + task/Arrow handling) | {1000 * used['workers']:.1f} |")
    rows.append(f"| pipeline driver (planning, Ray Data's executor, results) | {1000 * used['driver']:.1f} |")
    rows.append(f"| Ray's own processes (raylet, GCS, Ray Data's actors, agents) | {1000 * used['ray system']:.1f} |")
    total = sum(used.values())
    ideal = n / seconds * num_cpus * loop_cpu / total
    rows.append(f"| pipeline total ({n / summary['seconds']:.1f} clips/s; {num_cpus} CPUs at this CPU cost would "
                f"give {ideal:.1f}) | {1000 * total:.1f} |")


def compare(manifest: Path, work: Path, clips_per_video: int, layouts: dict[str, dict], rounds: int,
            meter: CpuMeter, rows: list[str]) -> None:
    """Cold pipeline once, then `rounds` alternations of the loops and every pipeline layout."""
    tag = f"c{clips_per_video}"
    loop(manifest, work / f"{tag}-warm-loop", clips_per_video)  # decord/PyAV imports, page cache
    cold = run(Config(manifest=str(manifest), out=str(work / f"{tag}-cold"), clips_per_video=clips_per_video,
                      **SETTINGS))
    reference = shard_bytes(work / f"{tag}-cold")
    n = cold["clips_total"]
    loops: dict[str, list[float]] = {"loop": [], "loop, decord threads = 2": []}
    ray_s: dict[str, list[float]] = {name: [] for name in layouts}
    cpu: dict[str, list[float]] = {name: [] for name in [*loops, *layouts]}
    others: dict[str, list[float]] = {name: [] for name in [*loops, *layouts]}
    for r in range(rounds):
        for name, threads in (("loop", 1), ("loop, decord threads = 2", 2)):
            out = work / f"{tag}-loop{r}"
            with Timed(meter) as t:
                loops[name].append(loop(manifest, out, clips_per_video, threads))
            cpu[name].append(t.cpu)
            others[name].append(t.others)
            assert shard_bytes(out) == reference, "the loop wrote other shards"
            shutil.rmtree(out)
        for name, layout in layouts.items():
            out = work / f"{tag}-ray{r}"
            with Timed(meter) as t:
                summary = run(Config(manifest=str(manifest), out=str(out), clips_per_video=clips_per_video,
                                     **SETTINGS, **layout))
            cpu[name].append(t.cpu)
            others[name].append(t.others)
            ray_s[name].append(summary["seconds"])
            assert shard_bytes(out) == reference, f"{name} wrote other shards"
            shutil.rmtree(out)
    best_loop = min(loops["loop"])
    med_loop = statistics.median(loops["loop"])
    for name, times in {**loops, **ray_s}.items():
        best, med = min(times), statistics.median(times)
        speed = "1.00x (reference)" if name == "loop" else \
            f"**{best_loop / best:.2f}x** / {med_loop / med:.2f}x"
        cold_col = f"{n / cold['seconds']:.1f}" if name == "defaults (derived)" else ""
        rows.append(f"| {n} | {name} | {n / best:.1f} / {n / med:.1f} | {speed} | {cold_col} | "
                    f"{1000 * statistics.median(cpu[name]) / n:.0f} ms | "
                    f"{statistics.median(others[name]):.2f} (max {max(others[name]):.2f}) |")
    rows.append(f"| {n} | (layout at defaults: {cold['layout']}) | | | | | |")


def memory(manifest: Path, work: Path, sizes: dict[int, int], rows: list[str]) -> None:
    for n, per_video in sizes.items():
        with PeakRSS() as peak:
            summary = run(Config(manifest=str(manifest), out=str(work / f"mem-{n}"), clips_per_video=per_video,
                                 **SETTINGS))
        rows.append(f"| {summary['clips_total']} | {peak.peak / 2**20:,.0f} MiB | "
                    f"{summary['bytes_written'] / 2**20:,.0f} MiB | {summary['seconds']:.1f} s |")
        shutil.rmtree(work / f"mem-{n}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=50, help="synthetic videos (48-72 frames each)")
    p.add_argument("--clips", default="100,1000", help="dataset sizes, in clips (a multiple of --videos)")
    p.add_argument("--rounds", type=int, default=3, help="alternations of loop and pipeline")
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--data", default=None, help="reuse (or create) the synthetic videos in this folder")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-profile", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("INKWALK_NO_PROGRESS", "1")
    meter = CpuMeter()
    import ray
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    work = Path(tempfile.mkdtemp(prefix="inkwalk-bench-data-"))
    data = Path(args.data) if args.data else work / "synthetic"
    manifest = data / "manifest.csv"
    if not manifest.is_file():
        generate(data, clips=args.videos, seed=0, min_frames=48, max_frames=72)
    sizes = {n: n // args.videos for n in (int(c) for c in args.clips.split(","))}
    try:
        t0 = time.perf_counter()
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False,
                 object_store_memory=1_500_000_000)
        ray_start = time.perf_counter() - t0
        print(f"{args.videos} synthetic videos (192x256 ... 320x180, 48-72 frames); clip = 8 frames, stride 4, 256²; "
              f"local Ray with {args.num_cpus} CPUs (start {ray_start:.1f} s, excluded); os.cpu_count()="
              f"{os.cpu_count()}; load average at start {os.getloadavg()[0]:.1f}\n")
        if not args.skip_profile:
            prof = ["| stage | CPU ms per clip |", "|---|---|"]
            small = min(sizes.values())
            profile(manifest, work, small, prof)
            pipeline_overhead(manifest, work, max(sizes.values()), args.num_cpus, meter, prof)
            print("\n".join(prof) + "\n")
        if not args.skip_speed:
            speed = ["| clips | run | clips/s best / median | speed-up vs loop best / median | cold clips/s | "
                     "CPU per clip | cores used by others, median (max) |", "|---|---|---|---|---|---|---|"]
            for n, per_video in sizes.items():
                units = -(-n // Config(manifest="", out="").rows_per_shard)
                layouts = {"defaults (derived)": {}, "--cpus-per-task 0.5": {"cpus_per_task": 0.5},
                           f"--tasks {args.num_cpus} (one wave)": {"tasks": args.num_cpus},
                           f"--tasks {units} (one unit per task)": {"tasks": units}}
                if units <= args.num_cpus * WAVES:  # the derived layout already is one unit per task
                    layouts.pop(f"--tasks {units} (one unit per task)")
                compare(manifest, work, per_video, layouts, args.rounds, meter, speed)
            print("\n".join(speed) + "\n")
        if not args.skip_memory:
            mem = ["| clips | peak RSS (driver + Ray) | shard bytes | time |", "|---|---|---|---|"]
            memory(manifest, work, sizes, mem)
            print("\n".join(mem))
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
