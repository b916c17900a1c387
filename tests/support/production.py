"""Production mode in tests: the development cluster's published secrets, and a platform configured for production.

A production-mode platform runs on the test broker and database like the
e2e platform, with ports, databases and consumer groups of its own, secrets
generated for its folder (random, as production's are: nobody else knows
them), an https issuer, `HARBOUR_SANDBOX=false` and no dev-only switch
(`StackConfig(sandbox=False)`).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import yaml

from libs.devstack import StackConfig
from libs.devstack.config import REPO_ROOT

from .consumer_groups import new_group_prefix

DEV_OVERLAY = REPO_ROOT / "deploy" / "k8s" / "overlays" / "dev" / "kustomization.yaml"
# The gateway's public URL in production mode (never fetched: auth's JWKS comes from HARBOUR_AUTH_URL).
ISSUER = "https://id.harbour.test"


def published_dev_secrets() -> dict[str, str]:
    """Every HARBOUR_* value of the development cluster's secretGenerator: public, in this repository."""
    kustomization = yaml.safe_load(DEV_OVERLAY.read_text())
    secrets = {}
    for generator in kustomization["secretGenerator"]:
        for literal in generator.get("literals", []):
            name, _, value = literal.partition("=")
            if name.startswith("HARBOUR_"):
                secrets[name] = value
    return secrets


def production_config(infra, dev_dir: Path) -> StackConfig:
    """A platform in production mode on `infra`: free ports, databases and consumer groups of its own."""
    config = StackConfig.free_ports(dev_dir)
    config.kafka_port = int(infra.kafka_bootstrap.rsplit(":", 1)[1])
    config.mongo_port = int(infra.mongo_uri.split(":")[2].split("/")[0])
    config.db_prefix = f"p{uuid.uuid4().hex[:6]}_"
    config.sandbox = False
    config.extra_env = {"HARBOUR_ISSUER": ISSUER, "HARBOUR_KAFKA_GROUP_PREFIX": new_group_prefix()}
    return config
