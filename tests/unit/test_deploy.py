"""The deployment files say what docs/scale-out.md promises (they are not run here: no
Docker daemon, no Kubernetes cluster; nginx.conf is, by tests/e2e/test_scale_out.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _manifests() -> dict[str, dict[str, Any]]:
    documents = yaml.safe_load_all((DEPLOY / "kubernetes" / "rt-server.yaml").read_text())
    return {document["kind"]: document for document in documents}


def test_the_image_is_slim_non_root_and_runs_rt_server() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "FROM python:3.12-slim" in dockerfile
    assert "USER 10001" in dockerfile
    assert 'ENTRYPOINT ["rt-server"]' in dockerfile


def test_compose_runs_three_instances_behind_nginx_on_redis_and_postgres() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"rt1", "rt2", "rt3", "nginx", "redis", "postgres"} <= set(services)
    for name in ("rt1", "rt2", "rt3"):
        env = services[name]["environment"]
        assert env["INSTANCE_ID"] == name
        assert env["REDIS_URL"].startswith("redis://redis")
        assert env["DATABASE_URL"].startswith("postgresql://")
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]


def test_the_deployment_probes_drains_and_waits_longer_than_the_grace() -> None:
    manifests = _manifests()
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert "preStop" in container["lifecycle"]
    assert pod["terminationGracePeriodSeconds"] > float(env["SHUTDOWN_GRACE_SECONDS"]) + 5
    assert manifests["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    [metric] = manifests["HorizontalPodAutoscaler"]["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == "rt_sessions_active"
