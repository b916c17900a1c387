"""deploy/k8s, the Dockerfile and the packaging the image relies on, checked offline.

Every file under deploy/k8s and the rendered base, dev and prod overlays are
validated: the Kubernetes kinds against the Kubernetes JSON schemas
(kubernetes-validate, strict: unknown fields fail), the operators' custom
resources (not in those schemas, listed in CRD_CHECKS) structurally. The
overlays are rendered by the real kustomize built into kubectl (the Makefile's
`.dev/.kubectl` target provides one), then the properties the platform relies
on are asserted: hardened Deployments with both probes, one Ingress for the
gateway only, NetworkPolicies that admit the back-ends' traffic from the
gateway only, a KafkaTopic for every registered topic and its dead-letter twin,
agency users confined to their own topic.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from libs.events.topics import AGENCY_RETENTION_MS, ALL_TOPICS, agency_topic, topic_configs
from services.auth import events as auth_events
from services.formfill import events as formfill_events
from services.notify import events as notify_events
from services.signing import events as signing_events

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.31"  # the oldest Kubernetes the manifests must be valid for
TARGETS = {"base": K8S / "base", "dev": K8S / "overlays" / "dev", "prod": K8S / "overlays" / "prod"}

SERVICES = {"gateway": 8000, "auth": 8001, "formfill": 8002, "notify": 8003, "signing": 8004}
BACKENDS = ("auth", "formfill", "notify", "signing")
DISPATCHER = "notify-dispatcher"  # notify's worker: a Deployment of one, no Ingress, no autoscaler
# Each process's internal /metrics listener (its port + 100): Prometheus's port, never the public one.
METRICS_PORTS = {**{name: port + 100 for name, port in SERVICES.items()}, DISPATCHER: 8113}
KAFKA_CLUSTER = "harbour-kafka"
AGENCY_USER = "agency-transport"
# Secrets every service must get from a Secret (never from the ConfigMap), by service.
SECRET_VARS = {
    "gateway": {"HARBOUR_KAFKA_PASSWORD"},  # it follows the revocations topic
    "auth": {"HARBOUR_MONGO_URI", "HARBOUR_AUTH_HASH_KEY", "HARBOUR_AUTH_KEK", "HARBOUR_ADMIN_TOKEN",
             "HARBOUR_FORMFILL_SEALING_PUBLIC_JWK", "HARBOUR_AUTH_SEALING_KEY", "HARBOUR_NOTIFY_SEALING_PUBLIC_JWK",
             "HARBOUR_KAFKA_PASSWORD"},
    "formfill": {"HARBOUR_MONGO_URI", "HARBOUR_FORMFILL_KEK", "HARBOUR_FORMFILL_SEALING_KEY", "HARBOUR_AUTH_SEALING_PUBLIC_JWK",
                 "HARBOUR_KAFKA_PASSWORD"},
    "notify": {"HARBOUR_MONGO_URI", "HARBOUR_NOTIFY_KEK", "HARBOUR_NOTIFY_SEALING_KEY", "HARBOUR_KAFKA_PASSWORD"},
    "signing": {"HARBOUR_MONGO_URI", "HARBOUR_SIGNING_HSM_PIN", "HARBOUR_SIGNING_KEK", "HARBOUR_AUTH_SEALING_PUBLIC_JWK",
                "HARBOUR_KAFKA_PASSWORD"},
}
# Not secret, but per Deployment: which KafkaUser the pod is.
PER_POD_VALUES = {"HARBOUR_KAFKA_USERNAME"}
ALL_SECRET_VARS = set().union(*SECRET_VARS.values())


# --- custom resources: structural checks (kubernetes-validate skips exactly these) -------------

def _require(doc: dict, *paths: str) -> list[str]:
    missing = []
    for path in paths:
        node = doc
        for key in path.split("."):
            if not isinstance(node, dict) or key not in node:
                missing.append(path)
                break
            node = node[key]
    return missing


def _check_kafka(doc: dict) -> list[str]:
    problems = _require(doc, "spec.kafka.listeners", "spec.kafka.authorization.type", "spec.entityOperator.topicOperator",
                        "spec.entityOperator.userOperator")
    for listener in doc["spec"].get("kafka", {}).get("listeners", []):
        problems += [f"listener {listener.get('name')}: {m}" for m in _require(listener, "name", "port", "type", "tls")]
    return problems


def _check_node_pool(doc: dict) -> list[str]:
    return _require(doc, "spec.replicas", "spec.roles", "spec.storage.type") + _cluster_label(doc)


def _cluster_label(doc: dict) -> list[str]:
    return [] if doc["metadata"].get("labels", {}).get("strimzi.io/cluster") == KAFKA_CLUSTER else [
        f"label strimzi.io/cluster must be {KAFKA_CLUSTER}"]


def _check_topic(doc: dict) -> list[str]:
    return _require(doc, "spec.topicName", "spec.partitions", "spec.replicas", "spec.config") + _cluster_label(doc)


def _check_user(doc: dict) -> list[str]:
    problems = _require(doc, "spec.authentication.type", "spec.authorization.type", "spec.authorization.acls")
    for acl in doc["spec"].get("authorization", {}).get("acls", []):
        problems += _require(acl, "resource.type", "operations")
        if acl.get("resource", {}).get("type") in ("topic", "group"):
            problems += _require(acl, "resource.name", "resource.patternType")
    return problems + _cluster_label(doc)


def _check_mongodb(doc: dict) -> list[str]:
    problems = _require(doc, "spec.members", "spec.type", "spec.version", "spec.security.authentication.modes", "spec.users")
    for user in doc["spec"].get("users", []):
        problems += _require(user, "name", "db", "passwordSecretRef.name", "roles", "scramCredentialsSecretName")
    return problems


def _check_service_monitor(doc: dict) -> list[str]:
    problems = _require(doc, "spec.selector.matchLabels", "spec.endpoints")
    for endpoint in doc["spec"].get("endpoints", []):
        problems += _require(endpoint, "port", "path")
    return problems


def _check_prometheus_rule(doc: dict) -> list[str]:
    problems = _require(doc, "spec.groups")
    for group in doc["spec"].get("groups", []):
        problems += _require(group, "name", "rules")
        for rule in group.get("rules", []):
            problems += _require(rule, "expr")
            if "alert" not in rule and "record" not in rule:
                problems.append(f"{group.get('name')}: a rule is neither an alert nor a recording rule")
    return problems


CRD_CHECKS = {
    ("kafka.strimzi.io/v1beta2", "Kafka"): _check_kafka,
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"): _check_node_pool,
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): _check_topic,
    ("kafka.strimzi.io/v1beta2", "KafkaUser"): _check_user,
    ("mongodbcommunity.mongodb.com/v1", "MongoDBCommunity"): _check_mongodb,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _check_service_monitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): _check_prometheus_rule,  # alerts, kept next to the monitors
}


def validate(doc: dict, where: str) -> None:
    """Fail with every problem of one resource: schema for Kubernetes kinds, structure for the listed CRDs."""
    assert isinstance(doc, dict), f"{where}: not a mapping"
    missing = _require(doc, "apiVersion", "kind", "metadata.name")
    assert not missing, f"{where}: missing {missing}"
    label = f"{where}: {doc['kind']}/{doc['metadata']['name']}"
    check = CRD_CHECKS.get((doc["apiVersion"], doc["kind"]))
    if check is not None:
        assert "spec" in doc, f"{label}: no spec"
        problems = check(doc)
        assert not problems, f"{label}: {problems}"
        return
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(p) for p in error.path)
        pytest.fail(f"{label} is not a valid Kubernetes {K8S_VERSION} object: {path}: {error.message}")
    except kubernetes_validate.SchemaNotFoundError:
        pytest.fail(f"{label}: no Kubernetes schema for {doc['apiVersion']} {doc['kind']}; "
                    "a custom resource must be listed in CRD_CHECKS")


# --- the files as written ---------------------------------------------------------------------

def manifest_files() -> list[Path]:
    """Every resource file; kustomization.yaml files are rendered below, not validated as resources."""
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_file_is_valid(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path}: empty"
    for index, doc in enumerate(docs):
        validate(doc, f"{path.relative_to(ROOT)}#{index}")


def test_the_skipped_kinds_really_have_no_kubernetes_schema() -> None:
    # The CRDs really are unknown to kubernetes-validate (else they should be validated by it).
    for api_version, kind in CRD_CHECKS:
        with pytest.raises(kubernetes_validate.SchemaNotFoundError):
            kubernetes_validate.validate({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}},
                                         K8S_VERSION, strict=True)


def test_every_kustomization_lists_only_existing_files() -> None:
    for kustomization in K8S.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        for entry in spec.get("resources", []) + spec.get("components", []):
            assert (kustomization.parent / entry).exists(), f"{kustomization}: {entry} does not exist"


def test_monitoring_is_its_own_extensible_kustomization() -> None:
    spec = yaml.safe_load((K8S / "base" / "monitoring" / "kustomization.yaml").read_text())
    assert spec["kind"] == "Kustomization"
    # Alerts and dashboards join this list later; the ServiceMonitors are always in it.
    assert "servicemonitors.yaml" in spec["resources"]
    assert "monitoring" in yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())["resources"]


# --- rendering --------------------------------------------------------------------------------

def find_kubectl() -> str | None:
    for candidate in (os.environ.get("KUBECTL"), str(ROOT / ".dev" / "bin" / "kubectl"), shutil.which("kubectl")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    kubectl = find_kubectl()
    if kubectl is None:
        pytest.fail("no kubectl to render deploy/k8s with: run `make .dev/.kubectl` (or set KUBECTL)")
    out = {}
    for name, folder in TARGETS.items():
        result = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"kustomize {name} failed: {result.stderr}"
        out[name] = [d for d in yaml.safe_load_all(result.stdout) if d is not None]
    return out


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def config_map(docs: list[dict]) -> dict[str, str]:
    maps = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith("harbour-config")]
    assert len(maps) == 1
    return maps[0]["data"]


@pytest.mark.parametrize("target", TARGETS)
def test_rendered_output_is_valid(rendered, target: str) -> None:
    docs = rendered[target]
    for index, doc in enumerate(docs):
        validate(doc, f"{target}#{index}")
    keys = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs]
    assert len(keys) == len(set(keys)), "a resource is rendered twice"


@pytest.mark.parametrize("target", TARGETS)
def test_everything_lands_in_one_namespace(rendered, target: str) -> None:
    docs = rendered[target]
    (namespace,) = of_kind(docs, "Namespace")
    expected = {"base": "harbour", "dev": "harbour-dev", "prod": "harbour"}[target]
    assert namespace["metadata"]["name"] == expected
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {expected}


# --- the services -----------------------------------------------------------------------------

def assert_hardened(name: str, pod: dict, container: dict) -> None:
    resources = container["resources"]
    for part in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[part]), f"{name}: {part}"

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert context["seccompProfile"]["type"] == "RuntimeDefault"
    (tmp,) = [m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp), "/tmp is an emptyDir"


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_a_hardened_deployment(rendered, target: str, service: str) -> None:
    docs = rendered[target]
    deployment = named(docs, "Deployment", service)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == [f"services.{service}"]
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http", SERVICES[service]), ("metrics", METRICS_PORTS[service])]

    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ("http", SERVICES[service])

    assert_hardened(service, pod, container)

    image = container["image"]
    assert image.split("/")[-1].startswith("harbour-id:") and not image.endswith(":latest")
    if target == "prod":
        assert "/" in image, "production pulls from a registry"

    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": service}
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert "replicas" not in deployment["spec"], "the HorizontalPodAutoscaler owns the replica count"


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_a_service_autoscaler_and_disruption_budget(rendered, target: str, service: str) -> None:
    docs = rendered[target]
    svc = named(docs, "Service", service)
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": service}
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
        ("http", SERVICES[service], "http"), ("metrics", METRICS_PORTS[service], "metrics")]
    assert svc["spec"].get("type", "ClusterIP") == "ClusterIP", "only the Ingress is exposed"

    hpa = named(docs, "HorizontalPodAutoscaler", service)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    if target == "prod":
        assert hpa["spec"]["minReplicas"] >= 2, "production survives the loss of a pod"

    pdb = named(docs, "PodDisruptionBudget", service)
    assert pdb["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": service}


@pytest.mark.parametrize("target", TARGETS)
def test_configuration_comes_from_the_config_map_and_secrets_from_secrets(rendered, target: str) -> None:
    docs = rendered[target]
    data = config_map(docs)
    assert all(key.startswith("HARBOUR_") for key in data)
    assert not ALL_SECRET_VARS & set(data), "a secret variable is in the ConfigMap"
    assert data["HARBOUR_KAFKA_CREATE_TOPICS"] == "false"
    assert data["HARBOUR_KAFKA_BOOTSTRAP"].startswith(f"{KAFKA_CLUSTER}-kafka-bootstrap:")
    assert data["HARBOUR_ISSUER"].startswith("https://")
    assert data["HARBOUR_SIGNING_PKCS11_MODULE"]
    for service, port in SERVICES.items():
        assert data[f"HARBOUR_{service.upper()}_HOST"] == "0.0.0.0"
        assert data[f"HARBOUR_{service.upper()}_PORT"] == str(port)
    for upstream in BACKENDS:
        assert data[f"HARBOUR_{upstream.upper()}_URL"] == f"http://{upstream}:{SERVICES[upstream]}"
    assert data["HARBOUR_SANDBOX"] == ("true" if target == "dev" else "false")

    for service in SERVICES:
        container = named(docs, "Deployment", service)["spec"]["template"]["spec"]["containers"][0]
        assert [ref["configMapRef"]["name"] for ref in container["envFrom"]] == [
            d["metadata"]["name"] for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith("harbour-config")]
        env = {e["name"]: e for e in container.get("env", []) if e["name"] not in PER_POD_VALUES}
        assert set(env) == SECRET_VARS[service], service
        for name, entry in env.items():
            assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], f"{service}: {name} must come from a Secret"


@pytest.mark.parametrize("target", ["base", "prod"])
def test_no_secret_values_outside_dev(rendered, target: str) -> None:
    assert not of_kind(rendered[target], "Secret"), "Secrets are created by ops, never applied from the repo"


def test_dev_secrets_are_generated_with_obviously_dev_values(rendered) -> None:
    docs = rendered["dev"]
    secrets = {d["metadata"]["name"]: d for d in of_kind(docs, "Secret")}
    referenced = set()
    for service in SERVICES:
        for entry in named(docs, "Deployment", service)["spec"]["template"]["spec"]["containers"][0].get("env", []):
            if entry["name"] in PER_POD_VALUES:
                continue
            ref = entry["valueFrom"]["secretKeyRef"]
            if ref["name"].startswith("harbour-mongodb-") or entry["name"] == "HARBOUR_KAFKA_PASSWORD":
                continue  # written by the MongoDB operator / by Strimzi's User Operator
            referenced.add(ref["name"])
            assert ref["key"] in secrets[ref["name"]]["data"], f"{ref} missing from the dev Secret"
    for user in named(docs, "MongoDBCommunity", "harbour-mongodb")["spec"]["users"]:
        referenced.add(user["passwordSecretRef"]["name"])
    assert referenced == set(secrets)
    for secret in secrets.values():
        for key, encoded in secret["data"].items():
            assert is_obviously_dev(key, base64.b64decode(encoded).decode()), f"{secret['metadata']['name']}: {key}"


# Each dev sealing pair's private scalar is SHA-256 of a public string.
DEV_SEALING_SEEDS = {
    "HARBOUR_FORMFILL_SEALING_KEY": b"harbour-id DEV ONLY sealing key: public, never use outside dev",
    "HARBOUR_FORMFILL_SEALING_PUBLIC_JWK": b"harbour-id DEV ONLY sealing key: public, never use outside dev",
    "HARBOUR_AUTH_SEALING_KEY": b"harbour-id DEV ONLY auth sealing key: public, never use outside dev",
    "HARBOUR_AUTH_SEALING_PUBLIC_JWK": b"harbour-id DEV ONLY auth sealing key: public, never use outside dev",
    "HARBOUR_NOTIFY_SEALING_KEY": b"harbour-id DEV ONLY notify sealing key: public, never use outside dev",
    "HARBOUR_NOTIFY_SEALING_PUBLIC_JWK": b"harbour-id DEV ONLY notify sealing key: public, never use outside dev",
}


def is_obviously_dev(key: str, value: str) -> bool:
    """Marked DEV-ONLY (in clear or inside the base64url key material), or the sealing pair derived from a public string."""
    if "DEV-ONLY" in value:
        return True
    if key in DEV_SEALING_SEEDS:
        d = int.from_bytes(hashlib.sha256(DEV_SEALING_SEEDS[key]).digest(), "big")
        public = ec.derive_private_key(d, ec.SECP256R1()).public_key().public_numbers()
        jwk = json.loads(value)
        expected_x = base64.urlsafe_b64encode(public.x.to_bytes(32, "big")).rstrip(b"=").decode()
        return jwk["x"] == expected_x and ("d" not in jwk or decode_b64url(jwk["d"]) == d.to_bytes(32, "big"))
    material = [entry.split(":", 1)[-1] for entry in value.split(",")]
    return all(b"DEV-ONLY" in decode_b64url(m) for m in material)


def decode_b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def test_mongo_users_match_the_services_databases_and_uris(rendered) -> None:
    docs = rendered["prod"]
    mongo = named(docs, "MongoDBCommunity", "harbour-mongodb")
    assert mongo["spec"]["members"] == 3 and mongo["spec"]["type"] == "ReplicaSet"
    data = config_map(docs)
    users = {u["name"]: u for u in mongo["spec"]["users"]}
    assert set(users) == set(BACKENDS)
    for service in BACKENDS:
        user = users[service]
        assert user["roles"] == [{"name": "readWrite", "db": data[f"HARBOUR_{service.upper()}_DB"]}]
        env = {e["name"]: e for e in named(docs, "Deployment", service)["spec"]["template"]["spec"]["containers"][0]["env"]}
        ref = env["HARBOUR_MONGO_URI"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": user["connectionStringSecretName"], "key": "connectionString.standard"}


# --- the edge and the network -----------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_only_the_gateway_has_an_ingress_and_it_has_tls(rendered, target: str) -> None:
    docs = rendered[target]
    (ingress,) = of_kind(docs, "Ingress")
    backends = {path["backend"]["service"]["name"]
                for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]}
    assert backends == {"gateway"}
    hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    assert hosts and hosts <= {h for tls in ingress["spec"]["tls"] for h in tls["hosts"]}
    assert all(tls["secretName"] for tls in ingress["spec"]["tls"])
    assert data_issuer_host(docs) in hosts
    paths = [path["path"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert "/" not in paths and not any(p.startswith(("/metrics", "/healthz", "/readyz")) for p in paths), \
        "operational endpoints stay inside the cluster"
    assert not [d for d in of_kind(docs, "Service") if d["spec"].get("type") in ("LoadBalancer", "NodePort")]


def data_issuer_host(docs: list[dict]) -> str:
    return config_map(docs)["HARBOUR_ISSUER"].removeprefix("https://").split("/")[0]


def selects(selector: dict, labels: dict) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def pod_labels(docs: list[dict], service: str) -> dict:
    return named(docs, "Deployment", service)["spec"]["template"]["metadata"]["labels"]


def policies_for(docs: list[dict], labels: dict, policy_type: str) -> list[dict]:
    return [p for p in of_kind(docs, "NetworkPolicy")
            if selects(p["spec"]["podSelector"], labels) and policy_type in p["spec"].get("policyTypes", ["Ingress"])]


def ingress_peers(policies: list[dict]) -> list[dict]:
    peers = []
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), f"{policy['metadata']['name']}: an ingress rule without `from` admits everyone"
            assert rule.get("ports"), f"{policy['metadata']['name']}: an ingress rule without ports"
            peers += rule["from"]
    return peers


PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
              "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("service", BACKENDS)
def test_backends_take_traffic_from_the_gateway_only(rendered, target: str, service: str) -> None:
    docs = rendered[target]
    policies = policies_for(docs, pod_labels(docs, service), "Ingress")
    assert policies, f"no NetworkPolicy isolates {service}"
    gateway = pod_labels(docs, "gateway")
    allowed_pods = [gateway] + ([pod_labels(docs, "formfill")] if service == "auth" else [])  # formfill: auth's JWKS
    for peer in ingress_peers(policies):
        if peer == PROMETHEUS:
            continue  # scrapes /metrics
        assert set(peer) == {"podSelector"}, f"{service}: {peer} reaches beyond the namespace"
        admitted = [name for name in SERVICES if selects(peer["podSelector"], pod_labels(docs, name))]
        assert admitted and all(pod_labels(docs, n) in allowed_pods for n in admitted), f"{service} admits {admitted}"
        assert peer["podSelector"], "an empty podSelector admits every pod"
    gateway_peers = [p for p in ingress_peers(policies) if "podSelector" in p and set(p) == {"podSelector"}
                     and selects(p["podSelector"], gateway)]
    assert gateway_peers, f"{service} must admit the gateway"


@pytest.mark.parametrize("target", TARGETS)
def test_the_gateway_takes_traffic_from_the_ingress_controller(rendered, target: str) -> None:
    docs = rendered[target]
    peers = ingress_peers(policies_for(docs, pod_labels(docs, "gateway"), "Ingress"))
    assert peers
    for peer in peers:
        if peer == PROMETHEUS:
            continue
        assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ingress-nginx"}
        assert peer["podSelector"]["matchLabels"]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("service", SERVICES)
def test_egress_goes_only_to_kafka_mongodb_dns_and_jwks(rendered, target: str, service: str) -> None:
    docs = rendered[target]
    policies = policies_for(docs, pod_labels(docs, service), "Egress")
    assert policies, f"no NetworkPolicy limits {service}'s egress"
    kafka = {"strimzi.io/cluster": KAFKA_CLUSTER, "strimzi.io/broker-role": "true"}
    mongo = {"app": "harbour-mongodb-svc"}
    dns = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
           "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    destinations = set()
    for policy in policies:
        for rule in policy["spec"].get("egress", []):
            assert rule.get("to") and rule.get("ports"), f"{policy['metadata']['name']}: open egress rule"
            for peer in rule["to"]:
                assert "ipBlock" not in peer
                if peer == dns:
                    destinations.add("dns")
                    continue
                assert set(peer) == {"podSelector"}, peer
                labels = peer["podSelector"]["matchLabels"]
                if labels == kafka:
                    destinations.add("kafka")
                elif labels == mongo:
                    destinations.add("mongodb")
                else:
                    (upstream,) = [n for n in SERVICES if selects(peer["podSelector"], pod_labels(docs, n))]
                    destinations.add(upstream)
    expected = {
        "gateway": {"dns", "kafka", *BACKENDS},  # kafka: it follows the revocations topic
        "auth": {"dns", "kafka", "mongodb"},
        "formfill": {"dns", "kafka", "mongodb", "auth"},  # auth's JWKS
        "notify": {"dns", "kafka", "mongodb"},
        "signing": {"dns", "kafka", "mongodb"},
    }[service]
    assert destinations == expected


@pytest.mark.parametrize("target", TARGETS)
def test_services_reach_kafka_only_as_their_own_user_over_tls(rendered, target: str) -> None:
    docs = rendered[target]
    kafka = named(docs, "Kafka", KAFKA_CLUSTER)
    listeners = kafka["spec"]["kafka"]["listeners"]
    assert all(l["tls"] is True and l["authentication"]["type"] in ("tls", "scram-sha-512") for l in listeners), \
        "every listener encrypts and authenticates"
    assert "ANONYMOUS" not in kafka["spec"]["kafka"]["authorization"].get("superUsers", [])
    data = config_map(docs)
    bootstrap_port = int(data["HARBOUR_KAFKA_BOOTSTRAP"].rsplit(":", 1)[1])
    (listener,) = [l for l in listeners if l["port"] == bootstrap_port]
    assert listener["authentication"]["type"] == "scram-sha-512" and listener["type"] == "internal"
    assert data["HARBOUR_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and data["HARBOUR_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    (peer,) = listener["networkPolicyPeers"]
    admitted = {n for n in [*SERVICES, DISPATCHER] if selects(peer["podSelector"], pod_labels(docs, n))}
    assert admitted == {*BACKENDS, DISPATCHER, "gateway"}

    users = {u["metadata"]["name"]: u for u in of_kind(docs, "KafkaUser")}
    for name in [*BACKENDS, DISPATCHER, "gateway"]:
        pod = named(docs, "Deployment", name)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e for e in container["env"]}
        username = env["HARBOUR_KAFKA_USERNAME"]["value"]
        assert username == f"harbour-{name.removesuffix('-dispatcher')}", name  # the dispatcher is notify's user
        assert users[username]["spec"]["authentication"]["type"] == "scram-sha-512"
        # Strimzi writes the user's password into a Secret named after the user.
        assert env["HARBOUR_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": username, "key": "password"}
        # The cluster CA, mounted read-only where HARBOUR_KAFKA_CA_FILE points.
        (mount,) = [m for m in container["volumeMounts"] if data["HARBOUR_KAFKA_CA_FILE"].startswith(m["mountPath"] + "/")]
        assert mount.get("readOnly") is True
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        assert volume["secret"]["secretName"] == f"{KAFKA_CLUSTER}-cluster-ca-cert"
        assert data["HARBOUR_KAFKA_CA_FILE"].removeprefix(mount["mountPath"] + "/") in [i["path"] for i in volume["secret"]["items"]]
    # The gateway only reads the revocations topic (every instance whole, no consumer group): nothing else.
    gateway_acls = users["harbour-gateway"]["spec"]["authorization"]["acls"]
    assert [(a["resource"]["type"], a["resource"]["name"], a["resource"]["patternType"]) for a in gateway_acls] == \
        [("topic", "revocations", "literal")]
    assert set(gateway_acls[0]["operations"]) == {"Read", "Describe"}


# --- Kafka topics and users -------------------------------------------------------------------

def expected_topics() -> dict[str, int]:
    topics = {}
    for topic in ALL_TOPICS:
        topics[topic.name] = topic.partitions
        topics[topic.dlq] = 1  # dead-letter twins have one partition (libs/events/kafka.py, docs/events.md)
    return topics


def expected_retention() -> dict[str, int]:
    """The registry's retention of every topic and dead-letter twin (what a locally created topic gets too)."""
    return {name: int(config["retention.ms"]) for topic in ALL_TOPICS for name, config in topic_configs(topic).items()}


@pytest.mark.parametrize("target", TARGETS)
def test_every_topic_and_its_dead_letter_twin_is_a_kafka_topic(rendered, target: str) -> None:
    docs = rendered[target]
    topics = {d["spec"]["topicName"]: d for d in of_kind(docs, "KafkaTopic")}
    for name, partitions in expected_topics().items():
        assert name in topics, f"no KafkaTopic for {name}"
        spec = topics[name]["spec"]
        assert spec["partitions"] == partitions, name
        assert spec["replicas"] == 3, name
        assert int(spec["config"]["min.insync.replicas"]) == 2, name
        assert int(spec["config"]["retention.ms"]) == expected_retention()[name], f"{name}: retention differs from libs/events/topics.py"
    extra = set(topics) - set(expected_topics())
    assert all(t.startswith("agency.") and t.endswith(".events") for t in extra), extra
    for doc in of_kind(docs, "KafkaTopic"):
        assert doc["spec"]["replicas"] == 3 and int(doc["spec"]["config"]["min.insync.replicas"]) == 2
    pools = of_kind(docs, "KafkaNodePool")
    assert sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"]) == 3


def acl_index(user: dict) -> dict[tuple[str, str, str], set[str]]:
    index: dict[tuple[str, str, str], set[str]] = {}
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        key = (resource["type"], resource.get("name", ""), resource.get("patternType", "literal"))
        index.setdefault(key, set()).update(acl["operations"])
    return index


def test_the_agency_user_reads_only_its_own_topic(rendered) -> None:
    docs = rendered["prod"]
    user = named(docs, "KafkaUser", AGENCY_USER)
    client_id = user["metadata"]["annotations"]["harbour.id/client-id"]
    own_topic = agency_topic(client_id)
    acls = user["spec"]["authorization"]["acls"]
    assert acls
    for acl in acls:
        resource = acl["resource"]
        assert acl.get("type", "allow") == "allow"
        assert set(acl["operations"]) <= {"Read", "Describe"}, acl
        if resource["type"] == "topic":
            assert (resource["name"], resource["patternType"]) == (own_topic, "literal"), acl
        elif resource["type"] == "group":
            assert (resource["name"], resource["patternType"]) == (client_id, "prefix"), acl
        else:
            pytest.fail(f"unexpected ACL resource {resource}")
    assert ("topic", own_topic, "literal") in acl_index(user)
    assert user["spec"]["authentication"]["type"] == "tls"
    topic = next(d for d in of_kind(docs, "KafkaTopic") if d["spec"]["topicName"] == own_topic)
    assert topic["spec"]["replicas"] == 3
    assert int(topic["spec"]["config"]["retention.ms"]) == AGENCY_RETENTION_MS  # what the outbox creates locally


def test_agency_users_are_only_in_the_overlays(rendered) -> None:
    assert not [u for u in of_kind(rendered["base"], "KafkaUser") if u["metadata"]["name"].startswith("agency-")]


def test_service_kafka_users_have_what_their_service_needs(rendered) -> None:
    docs = rendered["prod"]
    known = set(expected_topics())
    consumes = {
        "auth": ({"approvals.requested"}, auth_events.CONSUMER_GROUP),
        "formfill": (set(formfill_events.CONSUMED), formfill_events.CONSUMER_GROUP),
        "signing": (set(signing_events.CONSUMED), signing_events.CONSUMER_GROUP),
        "notify": (set(notify_events.CONSUMED), notify_events.CONSUMER_GROUP),
    }
    dispatch = {"notifications.requested", "notifications.priority"}  # notify's own, between its API and dispatcher
    publishes = {"auth": {t.name for t in auth_events.TOPICS}, "formfill": {"approvals.requested", "audit.events"},
                 "notify": {"audit.events"} | dispatch, "signing": {"approvals.requested", "audit.events", "signing.events"}}
    for service in BACKENDS:
        user = named(docs, "KafkaUser", f"harbour-{service}")
        index = acl_index(user)
        for (kind, name, pattern), operations in index.items():
            assert kind in ("topic", "group"), f"{service}: {kind} ACL (no cluster or transactional-id rights)"
            if kind == "topic" and pattern == "literal":
                assert name in known, f"{service}: ACL on unknown topic {name}"
            if kind == "topic" and pattern == "prefix":
                assert service in ("formfill", "signing", "auth", "notify") and name == "agency.", f"{service}: prefix ACL {name}"
        for topic in publishes[service]:
            assert {"Write", "Describe"} <= index[("topic", topic, "literal")], f"{service} publishes {topic}"
        groups = [name for (kind, name, pattern) in index if kind == "group"]
        assert groups == [service] and index[("group", service, "prefix")] >= {"Read"}
        if service in consumes:
            topics, group = consumes[service]
            assert group.startswith(service)
            for topic in topics:
                assert "Read" in index[("topic", topic, "literal")], f"{service} consumes {topic}"
                assert "Write" in index[("topic", f"{topic}.dlq", "literal")], f"{service} dead-letters {topic}"
    assert {"Write"} <= acl_index(named(docs, "KafkaUser", "harbour-formfill"))[("topic", "agency.", "prefix")]
    # The platform's audit trail is read by signing's ledger alone: every service writes to it, none other reads it.
    readers = [service for service in BACKENDS
               if "Read" in acl_index(named(docs, "KafkaUser", f"harbour-{service}")).get(("topic", "audit.events", "literal"), ())]
    assert readers == ["signing"]


# --- notify's dispatcher ----------------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_the_dispatcher_runs_as_exactly_one_hardened_pod(rendered, target: str) -> None:
    docs = rendered[target]
    deployment = named(docs, "Deployment", DISPATCHER)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["services.notify.dispatcher"]
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http", 8013), ("metrics", 8113)]
    assert config_map(docs)["HARBOUR_NOTIFY_DISPATCHER_PORT"] == "8013"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert_hardened(DISPATCHER, pod, container)
    # One replica, never two side by side: it assigns itself every partition (docs/operations.md).
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    assert not [h for h in of_kind(docs, "HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == DISPATCHER]
    # notify's database and keys, from Secrets.
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}
    notify = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
              for e in named(docs, "Deployment", "notify")["spec"]["template"]["spec"]["containers"][0]["env"] if "valueFrom" in e}
    # All but notify's private sealing key: only the API process's consumer opens what auth seals to notify.
    assert notify.pop("HARBOUR_NOTIFY_SEALING_KEY", None) is not None and "HARBOUR_NOTIFY_SEALING_KEY" not in secrets
    assert secrets == notify


@pytest.mark.parametrize("target", TARGETS)
def test_the_dispatcher_takes_only_prometheus_and_calls_back_only_public_https(rendered, target: str) -> None:
    docs = rendered[target]
    labels = pod_labels(docs, DISPATCHER)
    assert all(peer == PROMETHEUS for peer in ingress_peers(policies_for(docs, labels, "Ingress")))
    assert policies_for(docs, labels, "Ingress"), "the dispatcher's ingress is not isolated"
    kafka = {"strimzi.io/cluster": KAFKA_CLUSTER, "strimzi.io/broker-role": "true"}
    reached, public = set(), []
    for policy in policies_for(docs, labels, "Egress"):
        for rule in policy["spec"].get("egress", []):
            assert rule.get("to") and rule.get("ports"), f"{policy['metadata']['name']}: open egress rule"
            for peer in rule["to"]:
                if "ipBlock" in peer:
                    public.append((peer["ipBlock"], rule["ports"]))
                elif peer.get("podSelector", {}).get("matchLabels") == kafka:
                    reached.add("kafka")
                elif peer.get("podSelector", {}).get("matchLabels") == {"app": "harbour-mongodb-svc"}:
                    reached.add("mongodb")
                elif peer.get("podSelector", {}).get("matchLabels") == {"k8s-app": "kube-dns"}:
                    reached.add("dns")
                else:
                    raise AssertionError(f"unexpected egress peer {peer}")
    assert reached == {"kafka", "mongodb", "dns"}
    # Agencies' callback URLs (https) and the operator's SMTP relay (submission, 587) on public addresses; never the
    # cluster, the nodes or the metadata service.
    ((block, ports),) = public
    assert block["cidr"] == "0.0.0.0/0" and ports == [{"port": 443, "protocol": "TCP"}, {"port": 587, "protocol": "TCP"}]
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8"} <= set(block["except"])
    service = named(docs, "Service", DISPATCHER)
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    monitor = named(docs, "ServiceMonitor", DISPATCHER)
    assert selects(monitor["spec"]["selector"], service["metadata"]["labels"])
    assert not [i for i in of_kind(docs, "Ingress") for r in i["spec"]["rules"] for p in r["http"]["paths"]
                if p["backend"]["service"]["name"] == DISPATCHER]


# --- monitoring -------------------------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_every_service_has_a_service_monitor(rendered, target: str) -> None:
    docs = rendered[target]
    for service in (*SERVICES, DISPATCHER):
        monitor = named(docs, "ServiceMonitor", service)
        assert selects(monitor["spec"]["selector"], named(docs, "Service", service)["metadata"]["labels"])
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        assert endpoint["port"] in [p["name"] for p in named(docs, "Service", service)["spec"]["ports"]]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("process", [*SERVICES, DISPATCHER])
def test_prometheus_scrapes_the_internal_metrics_port_and_nothing_else_reaches_it(rendered, target: str, process: str) -> None:
    docs = rendered[target]
    env_name = process.upper().replace("-", "_")
    settings = config_map(docs)
    assert settings[f"HARBOUR_{env_name}_METRICS_PORT"] == str(METRICS_PORTS[process])
    assert settings["HARBOUR_METRICS_HOST"] == "0.0.0.0"  # inside the pod; the NetworkPolicy is what keeps it internal
    (endpoint,) = named(docs, "ServiceMonitor", process)["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    public_port = SERVICES.get(process, 8013)
    for policy in policies_for(docs, pod_labels(docs, process), "Ingress"):
        for rule in policy["spec"].get("ingress", []):
            ports = {p["port"] for p in rule["ports"]}
            if PROMETHEUS in rule["from"]:
                assert rule["from"] == [PROMETHEUS] and ports == {METRICS_PORTS[process]}, f"{process}: Prometheus beyond /metrics"
            else:
                assert METRICS_PORTS[process] not in ports, f"{process}: the metrics port is open to {rule['from']}"
                assert ports == {public_port}


# --- the image --------------------------------------------------------------------------------

def test_dockerfile_builds_one_non_root_image_without_dev_extras() -> None:
    text = (ROOT / "Dockerfile").read_text()
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    froms = [line for line in instructions if line.startswith("FROM ")]
    assert froms and all(line.split()[1] == "python:3.11-slim" for line in froms)
    runs = " ".join(line for line in instructions if line.startswith("RUN "))
    assert "pip install ." in runs and "[test]" not in runs and "-e " not in runs
    users = [line for line in instructions if line.startswith("USER ")]
    assert users and users[-1].split()[1].split(":")[0] not in ("0", "root")
    assert instructions[-2:] == ['ENTRYPOINT ["python", "-m"]', 'CMD ["services.gateway"]']
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", ".dev", "tests"} <= ignored
    assert not {"libs", "services", "clients", "pyproject.toml", "README.md"} & ignored


def test_the_package_carries_every_non_python_file_the_services_read() -> None:
    """`pip install .` (the image) keeps only files that pyproject's package-data names."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = config["tool"]["setuptools"].get("package-data", {})
    for top in ("libs", "services", "clients"):
        for path in (ROOT / top).rglob("*"):
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            covered = False
            for package, patterns in package_data.items():
                base = ROOT.joinpath(*package.split("."))
                if base in path.parents:
                    relative = str(path.relative_to(base))
                    covered = covered or any(fnmatch.fnmatch(relative, pattern) for pattern in patterns)
            assert covered, f"{path.relative_to(ROOT)} would be missing from the image: add it to package-data"
