"""Cluster files validated offline: Ray's own cluster schema, Serve's config schema, KubeRay fields."""

from __future__ import annotations

import copy
import importlib.util
import re
import shlex
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
sys.path.insert(0, str(CLUSTER))
import render_rayservice  # noqa: E402


def pinned_ray() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(re.search(r"==([\d.]+)", d).group(1) for d in deps if d.startswith("ray["))


def load(path: Path):
    """The first YAML document of a file (the RayService / RayJob of a KubeRay manifest)."""
    return next(yaml.safe_load_all(path.read_text()))


KUBERAY = ["rayservice.yaml", "rayjob-preprocess.yaml", "rayjob-train.yaml"]


@pytest.mark.parametrize("name", ["aws-gpu.yaml", "onprem-3090.yaml"])
def test_cluster_yaml_passes_rays_own_schema(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load(CLUSTER / name)
    validate_config(prepare_config(copy.deepcopy(config)))
    assert config["docker"]["image"].startswith(f"rayproject/ray:{pinned_ray()}-")
    starts = " ".join(config["head_start_ray_commands"] + config["worker_start_ray_commands"])
    assert "RAY_AUTH_MODE=token" in starts
    assert "--dashboard-host=127.0.0.1" in starts  # the dashboard and Jobs API stay private


def test_aws_exposes_only_ssh():
    permissions = load(CLUSTER / "aws-gpu.yaml")["provider"]["security_group"]["IpPermissions"]
    assert [(p["FromPort"], p["ToPort"]) for p in permissions] == [(22, 22)]


def _node_resources() -> set[str]:
    aws = load(CLUSTER / "aws-gpu.yaml")
    names = {r for t in aws["available_node_types"].values() for r in t.get("resources", {})}
    onprem = " ".join(load(CLUSTER / "onprem-3090.yaml")["worker_start_ray_commands"])
    assert all(f'"{r}"' in onprem for r in names - {"ingress", "preprocess"})
    return names


SERVE_CONFIGS = ["serve_config.yaml", "serve_config.cpu.yaml"]


@pytest.mark.parametrize("name", SERVE_CONFIGS)
def test_serve_config_passes_serve_schema(name):
    from ray.serve.schema import ServeDeploySchema

    config = load(CLUSTER / name)
    schema = ServeDeploySchema.model_validate(config)
    assert {app.name for app in schema.applications} >= {"artwalks", "conclvd"}
    for app in schema.applications:
        path = app.import_path
        module = path.split(":")[0] if ":" in path else path.rsplit(".", 1)[0]
        assert importlib.util.find_spec(module) is not None, app.import_path


def test_gpu_serve_config_routes_work_to_existing_node_types():
    """Every custom resource a GPU deployment asks for is offered by some node type."""
    offered = _node_resources()
    config = load(CLUSTER / "serve_config.yaml")
    asked = set()
    for app in config["applications"]:
        for dep in app.get("deployments", []):
            asked |= set((dep.get("ray_actor_options") or {}).get("resources", {}))
    assert asked and asked <= offered


def test_rayservice_is_generated_from_the_serve_config():
    text = (CLUSTER / "kuberay" / "rayservice.yaml").read_text()
    assert text == render_rayservice.render(), "run: python cluster/render_rayservice.py"
    service = load(CLUSTER / "kuberay" / "rayservice.yaml")
    assert yaml.safe_load(service["spec"]["serveConfigV2"]) == load(CLUSTER / "serve_config.yaml")


@pytest.mark.parametrize("name", SERVE_CONFIGS)
def test_serve_binds_loopback_unless_opened_on_purpose(name):
    """Serve's own config default is 0.0.0.0 (ray.serve.schema.HTTPOptionsSchema): every shipped
    config sets loopback explicitly, and says how to open it."""
    text = (CLUSTER / name).read_text()
    assert load(CLUSTER / name)["http_options"]["host"] == "127.0.0.1"
    assert re.search(r"#.*0\.0\.0\.0", text)  # a comment says how to open it


@pytest.mark.parametrize("name", KUBERAY)
def test_kuberay_pods_admit_only_ray_and_the_operator(name):
    """The dashboard runs code on the cluster: it needs the Ray token, and the NetworkPolicy shipped
    with every KubeRay manifest admits only Ray's own pods and, on the dashboard port only, the
    KubeRay operator and RayJob submitters. Serve and metrics stay closed until opened on purpose."""
    documents = list(yaml.safe_load_all((CLUSTER / "kuberay" / name).read_text()))
    policies = [d for d in documents if d["kind"] == "NetworkPolicy"]
    assert policies == [render_rayservice.network_policy()]
    spec = policies[0]["spec"]
    ray_pods = {"matchLabels": {"ray.io/is-ray-node": "yes"}}
    assert spec["podSelector"] == ray_pods and spec["policyTypes"] == ["Ingress"]
    for rule in spec["ingress"]:
        if rule["from"] != [{"podSelector": ray_pods}]:  # anyone but Ray's pods: the dashboard port only
            assert rule["ports"] == [{"protocol": "TCP", "port": 8265}]
    cluster = documents[0]["spec"].get("rayClusterConfig") or documents[0]["spec"]["rayClusterSpec"]
    assert cluster["authOptions"]["mode"] == "token"
    assert cluster["headGroupSpec"].get("serviceType", "ClusterIP") == "ClusterIP"


def _check_raycluster_spec(spec: dict) -> None:
    assert spec["rayVersion"] == pinned_ray()
    assert spec["authOptions"]["mode"] == "token"
    head = spec["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"
    groups = [head] + spec["workerGroupSpecs"]
    for group in groups:
        containers = group["template"]["spec"]["containers"]
        assert containers and all(c["name"] and c["image"] for c in containers)
        assert isinstance(group["rayStartParams"], dict)
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())
    for group in spec["workerGroupSpecs"]:
        assert group["groupName"] and 0 <= group["minReplicas"] <= group["maxReplicas"]


def test_kuberay_manifests_have_required_fields():
    service = load(CLUSTER / "kuberay" / "rayservice.yaml")
    assert (service["apiVersion"], service["kind"]) == ("ray.io/v1", "RayService")
    _check_raycluster_spec(service["spec"]["rayClusterConfig"])
    for name in ["rayjob-preprocess.yaml", "rayjob-train.yaml"]:
        job = load(CLUSTER / "kuberay" / name)
        assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
        assert job["spec"]["shutdownAfterJobFinishes"] is True
        _check_raycluster_spec(job["spec"]["rayClusterSpec"])
        argv = shlex.split(job["spec"]["entrypoint"])
        assert argv[:2] == ["python", "-m"] and importlib.util.find_spec(argv[2]) is not None
        _entrypoint_arguments_parse(argv[2], argv[3:])


def _entrypoint_arguments_parse(module: str, args: list[str]) -> None:
    """The RayJobs' command lines are accepted by the programs they run."""
    if module == "data_pipeline.clvhd":
        from data_pipeline.clvhd import build_parser

        build_parser().parse_args(args)
    elif module == "training.train_conclvd":
        from training.config import load_config

        assert args[0] == "--config"
        cfg = load_config(ROOT / args[1], args[2:])
        assert cfg["scaling"]["num_workers"] == 4 and cfg["scaling"]["use_gpu"] is True
    else:
        raise AssertionError(f"unexpected entrypoint module {module}")


def test_dockerfile_uses_pinned_ray_image():
    first = (CLUSTER / "Dockerfile").read_text().splitlines()
    assert f"FROM rayproject/ray:{pinned_ray()}-py311-gpu" in first


def test_doc_examples_that_talk_to_a_cluster_carry_its_token():
    """Ray 2.60 clusters run token authentication: `ray job submit` / `serve deploy` / a command with
    RAY_ADDRESS without RAY_AUTH_MODE=token fail with "Missing authentication token" (checked against
    a local Ray)."""
    blocks = 0
    for doc in sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]:
        for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", doc.read_text(), flags=re.S):
            if re.search(r"^\s*(\S+=\S+\s+)*(ray job submit|serve deploy)|RAY_ADDRESS=\S+ inkwalk", block, flags=re.M):
                blocks += 1
                assert "RAY_AUTH_MODE=token" in block, f"{doc.name}: {block[:120]}"
    assert blocks >= 4
