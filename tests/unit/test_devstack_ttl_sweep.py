"""The local database removes TTL-expired documents at MongoDB's interval (60 s), not every second."""

from __future__ import annotations

from libs.devstack import DevStack, StackConfig


def _sweep_argument(config: StackConfig) -> float:
    argv = DevStack(config).mongo_spec().argv
    return float(argv[argv.index("--ttl-sweep-s") + 1])


def test_the_dev_database_sweeps_ttl_collections_every_60_seconds(tmp_path, monkeypatch):
    monkeypatch.delenv("HARBOUR_MONGO_TTL_SWEEP_S", raising=False)
    assert _sweep_argument(StackConfig(dev_dir=tmp_path)) == 60.0
    assert _sweep_argument(StackConfig.free_ports(tmp_path)) == 60.0


def test_the_sweep_interval_is_a_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("HARBOUR_MONGO_TTL_SWEEP_S", "5")
    assert _sweep_argument(StackConfig(dev_dir=tmp_path)) == 5.0
