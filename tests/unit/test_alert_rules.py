"""promtool on the alert rules: `promtool check rules` accepts them, and `promtool test rules` runs their unit tests
(tests/alerts/prometheus-rules.test.yml), which hold a firing and a quiet case for every alert."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from ..support.alert_rules import PROMTOOL_TESTS, RULE_FILE, alerts, binary, rule_groups, write_rule_file


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([binary("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def run_unit_tests(directory: Path, groups: list[dict] | None = None) -> subprocess.CompletedProcess:
    write_rule_file(directory, groups)
    shutil.copy(PROMTOOL_TESTS, directory / PROMTOOL_TESTS.name)
    return promtool("test", "rules", PROMTOOL_TESTS.name, cwd=directory)


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    path = write_rule_file(tmp_path)
    result = promtool("check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    """The check above means something: a rule with a PromQL syntax error is refused."""
    groups = copy.deepcopy(rule_groups())
    groups[0]["rules"][0]["expr"] = "sum by (service) (harbour_http_requests_total"
    result = promtool("check", "rules", str(write_rule_file(tmp_path, groups)), cwd=tmp_path)
    assert result.returncode != 0 and "FAILED" in result.stdout + result.stderr


def test_the_unit_tests_of_every_alert_pass(tmp_path: Path) -> None:
    result = run_unit_tests(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    spec = yaml.safe_load(PROMTOOL_TESTS.read_text())
    assert spec["rule_files"] == [RULE_FILE]
    cases = [case for test in spec["tests"] for case in test.get("alert_rule_test", [])]
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert set(alerts()) - firing == set(), "alerts without a firing case"
    assert set(alerts()) - quiet == set(), "alerts without a quiet case"
    assert (firing | quiet) - set(alerts()) == set(), "cases for alerts that do not exist"


def test_an_alert_that_never_fires_fails_its_unit_tests(tmp_path: Path) -> None:
    """Each alert's firing case really depends on its expression: with every expression replaced by one that is
    never true, promtool reports a failure for every alert."""
    groups = copy.deepcopy(rule_groups())
    for group in groups:
        for rule in group["rules"]:
            rule["expr"] = "vector(1) < 0"
    result = run_unit_tests(tmp_path, groups)
    assert result.returncode != 0
    failed = set(re.findall(r"alertname: (\w+),", result.stdout + result.stderr))
    assert failed == set(alerts())
