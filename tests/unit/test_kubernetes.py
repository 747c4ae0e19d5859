"""deploy/kubernetes cannot be applied here (no cluster): check what can be checked of it.

Every daemon has a Deployment; probes point at endpoints the daemons serve, on the ports the
settings default to; only the gateway is reachable from outside; images and commands are those
of compose.yml; every setting is a known LEDGER_* variable; overlays patch what exists.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ledger.config import Settings
from ledger.daemons.supervisor import DAEMON_ORDER, GRPC_DAEMONS

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
BASE = KUBE / "base"
DAEMONS = (*DAEMON_ORDER, "writer")
#: Idle RSS of each daemon of a running `ledger up` (ps, 2026-12-01, MiB), and the peak of
#: gateway and ingest under bench/bench_ingest.py (the writer: ingest's peak, whose writer tasks
#: did the writing then): the memory requests must cover it.
MEASURED_RSS_MIB = {"gateway": 105, "auth": 83, "ingest": 104, "writer": 104, "query": 81,
                    "analytics": 81, "alerts": 91}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _base() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        docs += _docs(BASE / resource)
    return docs


def _find(kind: str, docs: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in (docs or _base()) if d["kind"] == kind}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "compose.yml").read_text())["services"])


def _config() -> dict[str, str]:
    return dict(_find("ConfigMap")["ledger-config"]["data"])


def _port(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def test_every_base_file_is_a_resource_of_the_kustomization() -> None:
    listed = set(yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_every_daemon_has_a_deployment_with_compose_image_and_command() -> None:
    deployments = _find("Deployment")
    compose = _compose()
    assert set(deployments) == {f"ledger-{name}" for name in DAEMONS}
    for name in DAEMONS:
        container = _container(deployments[f"ledger-{name}"])
        assert container["image"] == compose[name]["image"], name
        assert container["command"] == compose[name]["command"], name


def test_migrate_job_runs_what_compose_runs() -> None:
    job = _find("Job")["ledger-migrate"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == _compose()["migrate"]["command"] == ["ledger", "db", "migrate"]
    assert container["image"] == _compose()["migrate"]["image"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")


def test_grpc_probes_use_the_standard_health_check_on_the_daemon_port() -> None:
    from grpc_health.v1 import health_pb2_grpc

    assert hasattr(health_pb2_grpc, "add_HealthServicer_to_server")  # what rpc/server installs
    deployments = _find("Deployment")
    defaults = Settings()
    config = Settings.from_env(_config())
    for name in GRPC_DAEMONS:
        port = _port(getattr(defaults, f"{name}_listen"))
        assert _port(getattr(config, f"{name}_listen")) == port
        container = _container(deployments[f"ledger-{name}"])
        assert [p["containerPort"] for p in container["ports"]] == [port]
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == port, (name, probe)


def test_gateway_probes_ask_a_route_the_gateway_serves() -> None:
    from ledger.daemons.gateway.routes.health import router

    container = _container(_find("Deployment")["ledger-gateway"])
    port = _port(Settings().gateway_listen)
    assert [p["containerPort"] for p in container["ports"]] == [port]
    paths = {getattr(route, "path", None) for route in router.routes}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == port
        assert container[probe]["httpGet"]["path"] in paths


def test_daemons_without_a_port_have_no_probe_and_no_service() -> None:
    deployments = _find("Deployment")
    services = _find("Service")
    container = _container(deployments["ledger-analytics"])
    assert "ports" not in container and "readinessProbe" not in container
    assert "analytics" not in services and "writer" not in services


def test_writers_are_probed_on_their_health_only_port() -> None:
    # A writer binds LEDGER_INGEST_LISTEN for health checks only: probed, never a Service.
    container = _container(_find("Deployment")["ledger-writer"])
    port = _port(Settings().ingest_listen)
    assert [p["containerPort"] for p in container["ports"]] == [port]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == port, probe


def test_each_service_selects_its_deployment_on_its_port() -> None:
    deployments = _find("Deployment")
    config = Settings.from_env(_config())
    for name, service in _find("Service").items():
        assert service["spec"]["type"] == "ClusterIP"  # exposure is for an Ingress to add
        labels = deployments[f"ledger-{name}"]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        container = _container(deployments[f"ledger-{name}"])
        assert [p["port"] for p in service["spec"]["ports"]] \
            == [p["containerPort"] for p in container["ports"]]
        if name in GRPC_DAEMONS:  # other daemons reach it by the Service name
            port = service["spec"]["ports"][0]["port"]
            assert getattr(config, f"{name}_addr") == f"{name}:{port}"
    assert set(_find("Service")) == {"gateway", *GRPC_DAEMONS}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In"
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def test_network_policies_expose_only_the_gateway() -> None:
    policies = list(_find("NetworkPolicy").values())
    pods = {name: d["spec"]["template"]["metadata"]["labels"]
            for name, d in _find("Deployment").items()}
    pods["ledger-migrate"] = _find("Job")["ledger-migrate"]["spec"]["template"]["metadata"][
        "labels"]
    for name, labels in pods.items():
        selecting = [p for p in policies if _selects(p["spec"]["podSelector"], labels)]
        assert selecting, f"{name} is selected by no NetworkPolicy: it would accept anything"
        rules = [rule for p in selecting for rule in p["spec"].get("ingress", [])]
        open_to_all = [rule for rule in rules if not rule.get("from")]
        if name == "ledger-gateway":
            assert open_to_all and all(
                [port["port"] for port in rule["ports"]] == [8000] for rule in open_to_all)
        else:
            assert not open_to_all, f"{name} accepts connections from anywhere"
            for rule in rules:  # only from Ledger's own pods
                for peer in rule["from"]:
                    assert set(peer) == {"podSelector"}, (name, peer)
                    assert peer["podSelector"]["matchLabels"] \
                        == {"app.kubernetes.io/name": "ledger"}


def test_hpas_scale_gateway_and_ingest() -> None:
    hpas = _find("HorizontalPodAutoscaler")
    deployments = _find("Deployment")
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()}
    assert targets == {"ledger-gateway", "ledger-ingest"}
    for target in targets:
        assert "replicas" not in deployments[target]["spec"]  # the HPA owns it
        assert "cpu" in _container(deployments[target])["resources"]["requests"]


def test_memory_requests_cover_the_measured_rss() -> None:
    units = {"Mi": 1, "Gi": 1024}
    for name, deployment in _find("Deployment").items():
        resources = _container(deployment)["resources"]
        match = re.fullmatch(r"(\d+)(Mi|Gi)", resources["requests"]["memory"])
        assert match, resources
        request = int(match[1]) * units[match[2]]
        assert request >= MEASURED_RSS_MIB[name.removeprefix("ledger-")], name
        assert "memory" in resources["limits"]


def test_every_setting_is_a_known_variable_and_secrets_stay_in_the_secret() -> None:
    config = _config()
    assert Settings.from_env(config).unknown == ()
    example = {}
    for line in (BASE / "secrets.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            example[key] = value
    assert all(value == "" for value in example.values())  # an example, never a real secret
    assert set(example) == {"LEDGER_INTERNAL_TOKEN", "LEDGER_JWT_SECRET",
                            "LEDGER_AUTH_DATABASE_URL", "LEDGER_LOGS_DATABASE_URL",
                            "LEDGER_REDIS_URL"}
    assert not set(example) & set(config)
    generator = yaml.safe_load((BASE / "kustomization.yaml").read_text())["secretGenerator"]
    assert generator == [{"name": "ledger-secrets", "envs": ["secrets.env"]}]
    assert "deploy/kubernetes/base/secrets.env" in (ROOT / ".gitignore").read_text().split()
    for deployment in [*_find("Deployment").values(), _find("Job")["ledger-migrate"]]:
        sources = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"configMapRef": {"name": "ledger-config"}} in sources
        assert {"secretRef": {"name": "ledger-secrets"}} in sources


@pytest.mark.parametrize("overlay", ["small", "large"])
def test_overlay_patches_only_what_the_base_has(overlay: str) -> None:
    folder = KUBE / "overlays" / overlay
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["../../base"]
    base = {(d["kind"], d["metadata"]["name"]): d for d in _base()}
    for patch in kustomization["patches"]:
        for doc in _docs(folder / patch["path"]):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key in base, f"{overlay}/{patch['path']} patches {key}, not in the base"
            if doc["kind"] == "Deployment" and "template" in doc["spec"]:
                names = {c["name"] for c in doc["spec"]["template"]["spec"]["containers"]}
                assert names == {_container(base[key])["name"]}
            if doc["kind"] == "HorizontalPodAutoscaler":
                assert doc["spec"]["minReplicas"] <= doc["spec"]["maxReplicas"]
