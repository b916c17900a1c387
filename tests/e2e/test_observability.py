"""Every alert rule and dashboard panel names only metrics the running services really export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from libs.devstack import SERVICES
from libs.devstack.config import WORKERS

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "k8s" / "base" / "monitoring" / "prometheus-rules.yaml"
DASHBOARD = ROOT / "deploy" / "k8s" / "base" / "monitoring" / "grafana-dashboard.json"
METRIC = re.compile(r"\bharbour_[a-z0-9_]+")
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def exported(platform) -> set[str]:
    names: set[str] = set()
    for service in (*SERVICES, *WORKERS):
        response = requests.get(platform.stack.config.metrics_url(service), timeout=10)
        assert response.status_code == 200, service
        for family in text_string_to_metric_families(response.text):
            names.add(family.name)
            names.update(sample.name for sample in family.samples)
    return names


def base_name(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def rule_expressions() -> dict[str, str]:
    document = yaml.safe_load(RULES.read_text())
    return {rule["alert"]: rule["expr"] for group in document["spec"]["groups"] for rule in group["rules"]}


def panel_expressions() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {f"{panel['title']} [{target['refId']}]": target["expr"]
            for panel in dashboard["panels"] for target in panel.get("targets", [])}


def test_rules_and_panels_name_only_exported_metrics(platform):
    names = exported(platform)
    known = names | {base_name(n) for n in names}
    expressions = {**rule_expressions(), **panel_expressions()}
    assert len(rule_expressions()) >= 8 and len(panel_expressions()) >= 15
    unknown = {where: sorted(m for m in set(METRIC.findall(expr)) if m not in known and base_name(m) not in known)
               for where, expr in expressions.items()}
    assert not {k: v for k, v in unknown.items() if v}, "metrics no service exports"


def test_every_alert_has_a_runbook_entry():
    operations = (ROOT / "docs" / "operations.md").read_text()
    for alert in rule_expressions():
        assert f"### {alert}" in operations, alert


def test_metrics_are_served_on_each_process_internal_port_never_on_its_public_one(platform):
    config = platform.stack.config
    public = requests.get(platform.gateway + "/metrics", timeout=10)
    assert public.status_code == 404 and public.headers["Content-Type"].startswith("application/problem+json")
    assert "harbour_" not in public.text
    for name in (*SERVICES, *WORKERS):
        base = config.service_url(name) if name in SERVICES else config.worker_url(name)
        assert requests.get(base + "/metrics", timeout=10).status_code == 404, name
        internal = requests.get(config.metrics_url(name), timeout=10)
        assert internal.status_code == 200, name
        assert internal.headers["Content-Type"].startswith("text/plain; version="), name
        assert "harbour_http_requests" in {f.name for f in text_string_to_metric_families(internal.text)}, name
