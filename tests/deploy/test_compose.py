"""deploy/compose.yaml wires three real images together: check every link between them, since no
registry is reachable here to pull Prometheus and Grafana and run the stack."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def binds(service: dict) -> dict[str, Path]:
    """Container path -> host path of each bind mount (relative to deploy/); named volumes are
    not bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if not source.startswith((".", "/")):
            continue
        out[target] = (DEPLOY / source).resolve()
    return out


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match[1]) * (60 if match[2] == "m" else 1)


def dockerfile_env(name: str) -> str:
    match = re.search(rf"{name}=(\S+)", (DEPLOY.parent / "Dockerfile").read_text())
    assert match, name
    return match[1]


def test_every_bind_mount_exists_and_the_build_context_has_the_dockerfile() -> None:
    compose = load("compose.yaml")
    for name, service in compose["services"].items():
        for target, source in binds(service).items():
            assert source.exists(), f"{name}: {source} (for {target}) is missing"
    context = (DEPLOY / compose["services"]["tongyeok"]["build"]["context"]).resolve()
    assert (context / "Dockerfile").is_file()


def test_prometheus_scrapes_the_service_and_loads_the_alert_rules() -> None:
    compose = load("compose.yaml")
    prometheus = load("prometheus/prometheus.yml")
    targets = [t for job in prometheus["scrape_configs"] for c in job["static_configs"]
               for t in c["targets"]]  # fmt: skip
    assert targets == [f"tongyeok:{dockerfile_env('TONGYEOK_PORT')}"]
    mounted = binds(compose["services"]["prometheus"])
    for rule_file in prometheus["rule_files"]:
        assert mounted[rule_file] == DEPLOY / "prometheus" / "alerts.yml"


def test_grafana_reads_prometheus_and_the_committed_dashboard() -> None:
    compose = load("compose.yaml")
    grafana = binds(compose["services"]["grafana"])
    provisioning = grafana["/etc/grafana/provisioning"]
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert compose["services"]["prometheus"]["ports"] == ["${PROMETHEUS_HOST_PORT:-9090}:9090"]
    provider = yaml.safe_load((provisioning / "dashboards" / "tongyeok.yaml").read_text())
    dashboards = Path(provider["providers"][0]["options"]["path"])
    assert grafana[str(dashboards)] == DEPLOY / "grafana" / "dashboards"
    home = compose["services"]["grafana"]["environment"][
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"
    ]
    assert (grafana[str(Path(home).parent)] / Path(home).name).is_file()


def test_stop_grace_period_outlasts_the_drain() -> None:
    service = load("compose.yaml")["services"]["tongyeok"]
    drain = float(service["environment"]["TONGYEOK_DRAIN_SECONDS"])
    assert service["stop_signal"] == "SIGTERM"
    assert seconds(service["stop_grace_period"]) > drain
    assert service["read_only"] is True


def test_gpu_override_builds_the_gpu_runtime_and_reserves_the_gpus() -> None:
    service = load("compose.gpu.yaml")["services"]["tongyeok"]
    assert service["build"]["args"]["RUNTIME"] == "gpu"
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


def test_redis_option_points_tongyeok_at_a_persistent_redis() -> None:
    base = load("compose.yaml")["services"]
    assert "redis" not in base and "TONGYEOK_STATE_URL" not in base["tongyeok"]["environment"]
    option = load("compose.redis.yaml")
    url = option["services"]["tongyeok"]["environment"]["TONGYEOK_STATE_URL"]
    assert url == "redis://redis:6379/0" and option["services"]["tongyeok"]["depends_on"] == [
        "redis"
    ]
    redis = option["services"]["redis"]
    assert redis["command"][0] == "redis-server" and "--appendonly" in redis["command"]
    volume, target = redis["volumes"][0].split(":")
    assert target == redis["command"][redis["command"].index("--dir") + 1] == "/data"
    assert volume in option["volumes"] and redis["read_only"] is True
    assert (DEPLOY / "container" / "build-redis.sh").stat().st_mode & 0o111


def test_the_state_directory_is_a_named_volume_on_a_read_only_container() -> None:
    """The image keeps its SQLite state in TONGYEOK_DATA_DIR; on a read-only root filesystem
    only a volume there is writable (without it glossaries and documents answered 503)."""
    compose = load("compose.yaml")
    service = compose["services"]["tongyeok"]
    data_dir = dockerfile_env("TONGYEOK_DATA_DIR")
    named = dict(reversed(v.split(":")[:2]) for v in service["volumes"])
    assert service["read_only"] is True and named[data_dir] in compose["volumes"]
