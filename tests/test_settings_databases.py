"""DATABASES as the environment describes it (config/settings/base.py)."""

from __future__ import annotations

import pytest

from config.settings.base import databases_from_env

PRIMARY = "postgres://app@db1:5432/ucp"
STANDBY = "postgres://app@db2:5432/ucp"


@pytest.fixture
def environment(monkeypatch):
    for name in ("DATABASE_URL", "DATABASE_REPLICA_URL", "DATABASE_POOLER", "CONN_MAX_AGE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_only_a_primary_by_default(environment):
    environment.setenv("DATABASE_URL", PRIMARY)
    databases = databases_from_env("sqlite:///unused")
    assert list(databases) == ["default"]
    assert databases["default"]["HOST"] == "db1"
    assert not databases["default"].get("DISABLE_SERVER_SIDE_CURSORS")


def test_the_replica_mirrors_the_primary_in_tests_and_gives_up_quickly(environment):
    environment.setenv("DATABASE_URL", PRIMARY)
    environment.setenv("DATABASE_REPLICA_URL", STANDBY)
    environment.setenv("CONN_MAX_AGE", "60")
    replica = databases_from_env("sqlite:///unused")["replica"]
    # a standby is read-only and already holds the primary's test database
    assert replica["TEST"] == {"MIRROR": "default"}
    assert replica["OPTIONS"]["connect_timeout"] == 2
    assert replica["CONN_HEALTH_CHECKS"] is True
    assert (replica["HOST"], replica["CONN_MAX_AGE"]) == ("db2", 60)


def test_behind_pgbouncer_nothing_outlives_a_transaction(environment):
    # given: an URL that asks psycopg to prepare statements on the server
    environment.setenv("DATABASE_URL", PRIMARY + "?prepare_threshold=5")
    environment.setenv("DATABASE_REPLICA_URL", STANDBY)
    environment.setenv("DATABASE_POOLER", "pgbouncer")
    databases = databases_from_env("sqlite:///unused")
    for alias in ("default", "replica"):
        # no WITH HOLD cursors, no prepared statements: both live on one server connection
        assert databases[alias]["DISABLE_SERVER_SIDE_CURSORS"] is True
        assert databases[alias]["OPTIONS"]["prepare_threshold"] is None


def test_an_unknown_pooler_is_refused(environment):
    environment.setenv("DATABASE_POOLER", "pgpool")
    with pytest.raises(ValueError, match="pgbouncer"):
        databases_from_env("sqlite:///unused")
