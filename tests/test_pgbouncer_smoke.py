"""Smoke tests of gunicorn behind PgBouncer in transaction pooling mode, over HTTP.

    scripts/pgbouncer.sh start && eval "$(scripts/pgbouncer.sh env)"
    .venv/bin/python -m pytest -m pgbouncer; scripts/pgbouncer.sh stop

A database of their own is created, migrated and seeded (seed_demo) directly on the
upstream server, as a deployment runs its migrations against the primary; gunicorn then
serves the portal with DATABASE_URL pointing at PgBouncer and DATABASE_POOLER=pgbouncer.
PgBouncer gives that database fewer server connections than gunicorn has threads, so
consecutive transactions of one Django connection land on different server connections:
anything that relied on session state would break here.
"""

from __future__ import annotations

import csv
import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import requests

pytestmark = pytest.mark.pgbouncer

ROOT = Path(__file__).resolve().parent.parent
# Its own database on the upstream server; helpers sharing a server give each run its own.
DB_NAME = os.environ.get("UCP_PGBOUNCER_TEST_DB", "ucp_pgbouncer_smoke")
PASSWORD = "demo-pass-2026"  # seed_demo's
GUNICORN_THREADS = 2 * 4  # workers × threads, more than the pool's server connections


def _url(base: str, database: str) -> str:
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(base)._replace(path=f"/{database}"))


def _manage(*args: str, env: dict) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bouncer_admin(sql: str) -> list[dict]:
    """Rows of a command of PgBouncer's admin console (simple query protocol only)."""
    url = _url(os.environ["PGBOUNCER_URL"], "pgbouncer")
    with psycopg.connect(url, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        cursor = conn.execute(sql)
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def pool_stats() -> dict:
    return next(r for r in bouncer_admin("SHOW STATS") if r["database"] == DB_NAME)


@pytest.fixture(scope="session")
def portal():
    """gunicorn on a free port behind PgBouncer; yields (base URL, API key)."""
    upstream = os.environ.get("PGBOUNCER_UPSTREAM", "postgres://postgres@127.0.0.1:5432")
    with psycopg.connect(_url(upstream, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    base_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DEBUG": "False",
        "PYTHONWARNINGS": "ignore",
    }
    base_env.pop("DATABASE_REPLICA_URL", None)
    direct = {**base_env, "DATABASE_URL": _url(upstream, DB_NAME)}
    _manage("migrate", "--no-input", "-v", "0", env=direct)
    _manage("seed_demo", env=direct)
    bounced = {
        **base_env,
        "DATABASE_URL": _url(os.environ["PGBOUNCER_URL"], DB_NAME),
        "DATABASE_POOLER": "pgbouncer",
    }
    key = _manage("create_api_key", "--company", "acme", "--name", "smoke", env=bounced)
    key = key.strip().splitlines()[-1]
    port = _free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "gunicorn", "config.wsgi:application"),
            *("--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4"),
            *("--log-level", "warning", "--error-logfile", "-"),
        ],
        cwd=ROOT,
        env=bounced,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                requests.get(f"{base}/accounts/login/", timeout=2)
                break
            except requests.ConnectionError:
                assert server.poll() is None, server.stdout.read()
                time.sleep(0.25)
        yield base, key
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0]
        with psycopg.connect(_url(upstream, "postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    assert "Traceback" not in log, log


@pytest.fixture
def api(portal):
    base, key = portal
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    return base, session


def events(n: int, prefix: str) -> list[dict]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    sms = {"office": "austin", "service": "sms", "quantity": "1", "occurred_at": now}
    return [{"id": f"{prefix}-{i}", **sms} for i in range(n)]


def test_pgbouncer_pools_by_transaction(portal):
    pools = [r for r in bouncer_admin("SHOW POOLS") if r["database"] == DB_NAME]
    assert pools and {p["pool_mode"] for p in pools} == {"transaction"}


def test_the_portal_pages_answer_through_pgbouncer(portal):
    base, _ = portal
    browser = requests.Session()
    login_page = browser.get(f"{base}/accounts/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
    logged_in = browser.post(
        f"{base}/accounts/login/",
        data={"username": "acme-admin", "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/accounts/login/"},
        timeout=10,
    )
    assert logged_in.status_code == 200 and "/accounts/login/" not in logged_in.url
    before = pool_stats()["total_xact_count"]
    for path in ("/", "/balance/", "/usage/", "/usage/?page=2", "/offices/austin/"):
        page = browser.get(f"{base}{path}", timeout=30)
        assert page.status_code == 200, path
        assert "Acme" in page.text, path
    export = browser.get(f"{base}/usage/export.csv", timeout=60)
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert len(rows) > 100 and {r["office"] for r in rows} >= {"Austin", "Berlin"}
    # and every one of those went through PgBouncer
    assert pool_stats()["total_xact_count"] > before


def test_the_api_charges_and_reads_through_pgbouncer(api):
    base, session = api
    batch = events(200, f"batch-{uuid.uuid4().hex[:8]}")
    charged = session.post(f"{base}/api/v1/usage-events", json={"events": batch}, timeout=60)
    assert charged.status_code == 200 and charged.json()["charged"] == 200
    again = session.post(f"{base}/api/v1/usage-events", json={"events": batch}, timeout=60)
    assert again.status_code == 200 and again.json()["duplicates"] == 200
    assert session.get(f"{base}/api/v1/balance", timeout=10).status_code == 200
    # the new events come back, page by page (keyset cursor)
    seen, cursor = set(), None
    while len(seen) < 200:
        query = {"office": "austin", "limit": 150, **({"cursor": cursor} if cursor else {})}
        page = session.get(f"{base}/api/v1/usage-events", params=query, timeout=30).json()
        seen |= {r["id"] for r in page["results"]} & {e["id"] for e in batch}
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == {e["id"] for e in batch}


def test_concurrent_clients_share_fewer_server_connections_than_threads(api, portal):
    base, session = api
    prefix = f"conc-{uuid.uuid4().hex[:8]}"

    def client(n: int) -> list[int]:
        statuses = []
        for i in range(6):
            if i % 3 == 0:
                r = session.get(f"{base}/api/v1/usage-events?limit=50", timeout=60)
            elif i % 3 == 1:
                r = session.get(f"{base}/api/v1/balance", timeout=60)
            else:
                body = {"events": events(1, f"{prefix}-{n}-{i}")}
                r = session.post(f"{base}/api/v1/usage-events", json=body, timeout=60)
            statuses.append(r.status_code)
        return statuses

    before = pool_stats()["total_xact_count"]
    with ThreadPoolExecutor(max_workers=2 * GUNICORN_THREADS) as pool:
        statuses = [s for result in pool.map(client, range(2 * GUNICORN_THREADS)) for s in result]
    assert set(statuses) == {200}
    # many more transactions than server connections: they were shared transaction by
    # transaction (at most the pool size, whatever gunicorn's 8 threads wanted)
    servers = [r for r in bouncer_admin("SHOW SERVERS") if r["database"] == DB_NAME]
    config = {r["key"]: r["value"] for r in bouncer_admin("SHOW CONFIG")}
    pool_size = int(config["default_pool_size"])
    assert 1 <= len(servers) <= pool_size < GUNICORN_THREADS
    assert pool_stats()["total_xact_count"] - before >= len(statuses)
    # and the books still balance (SPEC §6), checked directly on the server
    upstream = os.environ.get("PGBOUNCER_UPSTREAM", "postgres://postgres@127.0.0.1:5432")
    env = {**os.environ, "DATABASE_URL": _url(upstream, DB_NAME), "PYTHONWARNINGS": "ignore"}
    env.pop("DATABASE_REPLICA_URL", None)
    _manage("check_ledger", env=env)
