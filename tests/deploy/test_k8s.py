"""Kubernetes manifests build with kustomize, validate strictly, and agree with the service."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from service.settings import Settings
from tests.deploy.test_monitoring import exported_series

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


def build(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl not found (see the test command in README.md)"
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / overlay)], check=True, capture_output=True, text=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.mark.parametrize("overlay", ["base", "overlays/cpu", "overlays/cpu-redis"])
def test_manifests_validate_strictly(overlay: str, tmp_path: Path) -> None:
    docs = build(overlay)
    rendered = tmp_path / "all.yaml"
    rendered.write_text(yaml.safe_dump_all(docs))
    validate = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run(
        [str(validate), "--strict", str(rendered)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = {d["kind"] for d in docs}
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "ConfigMap",
    } <= kinds


def deployment(overlay: str) -> dict:
    return next(d for d in build(overlay) if d["kind"] == "Deployment")


def test_deployment_agrees_with_the_service() -> None:
    spec = deployment("base")["spec"]["template"]["spec"]
    container = spec["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    drain = float(env["TONGYEOK_DRAIN_SECONDS"])
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pause >= 3  # endpoints drop the pod before SIGTERM starts the drain
    assert spec["terminationGracePeriodSeconds"] > pause + drain  # the drain ends before SIGKILL
    assert set(env) <= {f"TONGYEOK_{name.upper()}" for name in Settings.model_fields}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    hpa = next(d for d in build("base") if d["kind"] == "HorizontalPodAutoscaler")
    metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
    assert metric in exported_series()


def test_cpu_overlay_drops_the_gpu() -> None:
    container = deployment("overlays/cpu")["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert {"name": "TONGYEOK_DEVICE", "value": "cpu"} in container["env"]
    assert container["image"].endswith(":cpu")


def test_redis_option_adds_one_redis_and_leaves_the_hpa_alone() -> None:
    plain, with_redis = build("overlays/cpu"), build("overlays/cpu-redis")
    added = {(d["kind"], d["metadata"]["name"]) for d in with_redis} - {
        (d["kind"], d["metadata"]["name"]) for d in plain
    }
    assert added == {
        ("Deployment", "tongyeok-redis"),
        ("Service", "tongyeok-redis"),
        ("PersistentVolumeClaim", "tongyeok-redis"),
    }
    hpa = [d for d in with_redis if d["kind"] == "HorizontalPodAutoscaler"]
    assert hpa == [d for d in plain if d["kind"] == "HorizontalPodAutoscaler"]
    assert hpa[0]["spec"]["scaleTargetRef"]["name"] == "tongyeok"
    env = deployment("overlays/cpu-redis")["spec"]["template"]["spec"]["containers"][0]["env"]
    url = next(e["value"] for e in env if e["name"] == "TONGYEOK_STATE_URL")
    service = next(
        d
        for d in with_redis
        if d["kind"] == "Service" and d["metadata"]["name"] == "tongyeok-redis"
    )
    assert url == f"redis://tongyeok-redis:{service['spec']['ports'][0]['port']}/0"
    redis = next(
        d for d in with_redis if d["kind"] == "Deployment" and d["metadata"]["name"] != "tongyeok"
    )
    assert redis["spec"]["replicas"] == 1 and redis["spec"]["strategy"]["type"] == "Recreate"
    # the tongyeok Service selects its own pods only, not Redis's
    tongyeok = next(
        d for d in with_redis if d["kind"] == "Service" and d["metadata"]["name"] == "tongyeok"
    )
    labels = redis["spec"]["template"]["metadata"]["labels"]
    assert not tongyeok["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
