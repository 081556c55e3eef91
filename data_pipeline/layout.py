"""How a run spreads over the cluster: CPUs and decoder threads per task, and how many tasks.

Derived from the cluster's resources when the run starts (``ray.nodes()``), never hand-tuned
per machine; every value can still be set on the command line. The rules and the measurements
that chose them are in docs/data.md ("Settings derived from the cluster").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Tasks per decode slot. One task per slot leaves cores idle while the slowest task finishes
# (100 clips on 2 cores: 1.33x the loop with 2 tasks, 1.70x with one unit per task); beyond a few
# per slot nothing changed (1,000 clips: 2, 4, 8, 16 tasks within run-to-run noise), and fewer,
# longer tasks keep the number of Ray Data blocks small on big runs. docs/data.md has the table.
WAVES = 4
# Decode tasks with --encode on a CPU-only cluster: they share the CPUs with the encoder actor
# (1 CPU) and must ask for a different amount, or Ray Data fuses decoding into the actor.
ENCODE_CPUS_PER_TASK = 0.5


@dataclass(frozen=True)
class Layout:
    cpus_per_task: float
    threads: int  # decord decoder threads per clip
    tasks: int  # Ray Data blocks, one decode task each
    slots: int  # decode tasks that run at once
    cluster_cpus: float

    def as_dict(self) -> dict:
        return asdict(self)


def node_cpus() -> list[float]:
    """CPUs of every live node of the connected Ray cluster."""
    import ray

    return [float(n["Resources"].get("CPU", 0.0)) for n in ray.nodes() if n.get("Alive")]


def derive_layout(cpus: list[float], units: int, encode: bool = False, cpus_per_task: float | None = None,
                  threads: int | None = None, tasks: int | None = None) -> Layout:
    """The layout for `units` units of work on nodes with `cpus` CPUs each (explicit values win).

    - one decode task per core: with two per core (0.5 CPU each) 1,000 clips ran at 1.52x the
      loop instead of 1.69x, 100 clips at 0.81x instead of 1.70x;
    - fewer units than cores: the spare cores of a node become decord threads of its tasks
      (2 threads: 1.1-1.2x faster on 720p H.264, no gain on 256-px clips, which is why a task
      that shares the machine gets one thread);
    - `WAVES` tasks per slot, whole units each (one unit per task with ``--encode``, so a
      block never splits a unit between the encoder and the writer).
    """
    if sum(cpus) <= 0:  # an autoscaling cluster with no CPU node up yet: the first task asks for one
        cpus = [1.0]
    total = sum(cpus)
    biggest = max(cpus)
    if cpus_per_task is None:
        if encode:
            cpus_per_task = ENCODE_CPUS_PER_TASK
        else:
            spare = int(total // max(units, 1))
            cpus_per_task = float(max(1, min(int(biggest), spare)))
    if threads is None:
        threads = max(1, int(cpus_per_task))
    slots = max(1, sum(int(c // cpus_per_task) for c in cpus))
    if tasks is None:
        tasks = units if encode else min(units, slots * WAVES)
    return Layout(cpus_per_task, threads, max(1, min(tasks, max(units, 1))), slots, total)


def split_evenly(n: int, parts: int) -> list[range]:
    """`parts` consecutive ranges covering 0..n-1, sizes differing by at most one."""
    bounds = [n * i // parts for i in range(parts + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i + 1] > bounds[i]]
