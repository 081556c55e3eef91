"""Shared fixtures: offline hub, one local Ray per session, tiny models written once per session."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("INKWALK_NO_PROGRESS", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# Ray workers must import the project, not the test folder (STACK.md pitfall 6).
# The tiny ConCLVD bundle fixture, shared by the ConCLVD test modules.
pytest_plugins = ["conclvd_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)


# What a test needs when it uses one of these fixtures. Without the marker, `-m "not ray"` (the fast
# subset) would still start Ray, so collection refuses such a test.
MARKER_OF_FIXTURE = {"ray_session": "ray", "browser": "browser", "real_sr": "network"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = [f"{item.nodeid} uses the fixture {fixture} but is not marked `{marker}`"
               for item in items for fixture, marker in MARKER_OF_FIXTURE.items()
               if fixture in getattr(item, "fixturenames", ()) and item.get_closest_marker(marker) is None]
    if missing:
        raise pytest.UsageError("\n".join(missing))


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny convolutions on a busy 2-core box: OpenMP threads spin against each other (30-100x
    slower with 2 threads), so every in-process test runs torch on one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """A models folder with tiny random checkpoints of every model, in the real on-disk formats."""
    from inkwalk.tiny_models import make_tiny

    root = tmp_path_factory.mktemp("tiny-models")
    make_tiny(root)
    return root


@pytest.fixture(scope="session")
def ray_session(request):
    """One local 2-CPU Ray for the whole test session (starting Ray costs seconds). Its session
    folder is removed when every test passed, else kept for Ray's logs and named."""
    import ray

    temp = None
    if not ray.is_initialized():
        # a private temp dir: never join another Ray on a shared machine (its `ray start`
        # address file lives in the default temp dir); a bounded object store for the same reason
        temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
        ray.init(address="local", _temp_dir=temp,
                 object_store_memory=1_500_000_000,
                 num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "INKWALK_NO_PROGRESS": "1"}},
                 _system_config={"metrics_report_interval_ms": 1000})
    yield ray
    ray.shutdown(wait_for_processes=True)
    if temp and request.session.testsfailed:
        print(f"\nRay's session folder, with its logs, is kept in {temp}")
    elif temp:
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def serve_shut_down_after_each_module():
    """Each module starts Serve with its own HTTP options; one that left Serve running (e.g. `serve.run`
    without `serve.start`, then `serve.delete`) would keep its proxy port for the next module, whose
    `serve.start(http_options=...)` is then ignored."""
    yield
    import sys

    if "ray.serve" in sys.modules:
        import ray

        if ray.is_initialized():
            from ray import serve

            serve.shutdown()
