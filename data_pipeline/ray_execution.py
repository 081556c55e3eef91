"""Running the planned units on Ray Data: connect, build the dataset graph, collect one row per unit.

One task per block of whole units decodes its clips and streams them into their shards; with
``--encode`` an actor pool (one per GPU when the cluster has GPUs) adds VAE latents and CLIP text
embeddings between decoding and writing. Errors a worker raised for the user come back as one
`PipelineError` line.
"""

from __future__ import annotations

import json
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

from data_pipeline.config import Config, PipelineError
from data_pipeline.layout import Layout, derive_layout, node_cpus, split_evenly
from data_pipeline.location import Location
from data_pipeline.unit_work import decode_and_write, decode_units, write_encoded
from data_pipeline.units import Unit, sampling_of, units_table
from inkwalk.errors import InkwalkError


def connect(cfg: Config) -> bool:
    """Use the running Ray (``RAY_ADDRESS`` / ``--address``) or start a local one; True if started here."""
    import ray

    if ray.is_initialized():
        return False
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
    else:
        root = str(Path(__file__).resolve().parents[1])
        pythonpath = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        ray.init(num_cpus=cfg.num_cpus, include_dashboard=False,
                 runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
    return True


def _user_error(exc: BaseException) -> InkwalkError | None:
    """The InkwalkError a Ray worker raised, found inside Ray's wrappers, as a plain one-line error.

    An actor that fails in ``__init__`` reaches the driver as ActorDiedError, which keeps the
    original error only as text: the encoder's EncoderSetupError line is taken from it.
    """
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, InkwalkError):
            return PipelineError(current.args[0] if current.args else str(current))
        current = getattr(current, "cause", None) or current.__cause__ or current.__context__
    found = re.findall(r"EncoderSetupError: (.+)", str(exc))
    return PipelineError(found[-1]) if found else None


# Ray Data's default backpressure (its resource budgets) starts every execution with one task at
# a time: the cluster's CPUs reach its budget only after a first refresh, up to a second later,
# and later tasks start a scheduling step apart. Without --encode the tasks return a few bytes per
# unit and write the frames themselves, so there is nothing to hold back: the budgets are turned
# off for that dataset (on 2 idle cores, 8 tasks of 0.5 s: 3.1 s with them, 2.1 s without).
BACKPRESSURE_POLICIES = "backpressure_policies.enabled"
_UNSET = object()


@contextmanager
def _new_datasets_with(config: dict, **attributes):
    """DataContext settings for the datasets created inside (each copies the current context)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    saved_config = {k: ctx.get_config(k, _UNSET) for k in config}
    saved_attributes = {k: getattr(ctx, k) for k in attributes}
    for k, v in config.items():
        ctx.set_config(k, v)
    for k, v in attributes.items():
        setattr(ctx, k, v)
    try:
        yield
    finally:
        for k, v in saved_config.items():
            ctx.remove_config(k) if v is _UNSET else ctx.set_config(k, v)
        for k, v in saved_attributes.items():
            setattr(ctx, k, v)


def build_dataset(units: list[Unit], layout: Layout, cfg: Config, out: Location):
    """The lazy Ray Data pipeline: one block of whole units per task -> (encoder actors) -> shards.

    Each block is an Arrow table of clip specs; each task streams its units' clips into their
    shards and returns one small row per unit, so no frames reach the driver.
    """
    import ray
    import ray.data

    sampling = sampling_of(units[0].specs[0])
    blocks = [units_table([units[i] for i in part]) for part in split_evenly(len(units), layout.tasks)]
    decode_args = {"sampling": sampling, "timeout": cfg.timeout, "threads": layout.threads}
    if not cfg.encode:
        with _new_datasets_with({BACKPRESSURE_POLICIES: []}):
            ds = ray.data.from_arrow(blocks)
        return ds.map_batches(decode_and_write, batch_format="pyarrow", batch_size=None,
                              num_cpus=layout.cpus_per_task, fn_kwargs={**decode_args, "out": out})
    from data_pipeline.encode import ClipEncoder

    gpus = cfg.gpus_per_encoder
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    encoders = cfg.encoders or max(1, int(ray.cluster_resources().get("GPU", 0) // gpus) if gpus else 1)
    with _new_datasets_with({}, target_max_block_size=None):  # a block is one unit from decoding to writing
        ds = ray.data.from_arrow(blocks)
    ds = ds.map_batches(decode_units, batch_format="pyarrow", batch_size=None, num_cpus=layout.cpus_per_task,
                        fn_kwargs=decode_args)
    ds = ds.map_batches(ClipEncoder, batch_format="pyarrow", batch_size=None,
                        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=encoders),
                        num_cpus=cfg.cpus_per_encoder, num_gpus=gpus, fn_constructor_kwargs={"models_dir": cfg.models})
    # written after the encoder so the shards hold the latents; frames travel only task -> actor -> task
    return ds.map_batches(write_encoded, batch_format="pyarrow", batch_size=None, num_cpus=layout.cpus_per_task,
                          fn_kwargs={"out": out})


def execute(units: list[Unit], cfg: Config, out: Location) -> tuple[dict[int, tuple[int, int, list]], dict, float]:
    """Run the units on Ray: ({index: (clips, bytes, rejects)}, the layout used, Ray start seconds)."""
    from inkwalk.progress import progress

    t0 = time.perf_counter()
    we_started = connect(cfg)
    ray_start_s = time.perf_counter() - t0
    import ray
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = os.environ.get("INKWALK_NO_PROGRESS") != "1"
    results: dict[int, tuple[int, int, list]] = {}
    size_of = {u.index: len(u.specs) for u in units}
    bar = progress(total=sum(size_of.values()), desc="clips", unit="clip")
    try:
        layout = derive_layout(node_cpus(), len(units), cfg.encode, cfg.cpus_per_task, cfg.decode_threads, cfg.tasks)
        for batch in build_dataset(units, layout, cfg, out).iter_batches(batch_format="pyarrow", batch_size=None):
            for row in batch.to_pylist():
                results[row["unit"]] = (row["clips"], row["bytes"], json.loads(row["rejects"]))
                bar.update(size_of[row["unit"]])
    except Exception as exc:
        user_error = _user_error(exc)
        if user_error is None:
            raise
        raise user_error from None
    finally:
        bar.close()
        if we_started:
            ray.shutdown()
    return results, layout.as_dict(), ray_start_s
