"""Ingestion throughput: batches (issue 6 §1) and single events (§2).

Each path gets its own fresh company (same offices, plan, pool and events), so the three
runs write identical rows: the raw-SQL baseline, the service called in-process, and the
HTTP API served by gunicorn.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import queue
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from bench.common import Result, bench_care_user, company_build, company_drop, raw_connect
from bench.dataset import TRAFFIC

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "bench-ingest-"
PLACES = Decimal("0.0001")
POOL_CREDITS = Decimal("3000000")


# ---------------------------------------------------------------------------- events


def make_events(count: int, offices: int, *, tag: str) -> list[dict]:
    """`count` events as the API receives them (JSON-ready), spread over the offices,
    the service mix of real traffic, and the last two days."""
    rnd = random.Random(f"events-{count}-{offices}")  # noqa: S311 - reproducible test data
    codes = list(TRAFFIC)
    weights = [TRAFFIC[c][0] for c in codes]
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    events = []
    for n in range(count):
        code = rnd.choices(codes, weights=weights)[0]
        _, low, high = TRAFFIC[code]
        events.append(
            {
                "id": f"{tag}-{n:07d}",
                "office": f"o{n % offices:03d}",
                "service": code,
                "quantity": rnd.randint(low, high),
                "occurred_at": (now - dt.timedelta(seconds=rnd.randint(0, 2 * 86400))).isoformat(),
                "user": f"user{n % 97}",
                "number": f"+1555{n % 10_000_000:07d}",
                "metadata": {},
            }
        )
    return events


def to_service_events(events: list[dict]):
    from usage.events import UsageEvent

    return [
        UsageEvent(
            external_id=e["id"],
            office=e["office"],
            service=e["service"],
            quantity=Decimal(e["quantity"]),
            occurred_at=dt.datetime.fromisoformat(e["occurred_at"]),
            user_label=e["user"],
            phone_number=e["number"],
            metadata=e["metadata"],
        )
        for e in events
    ]


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# ---------------------------------------------------------------------------- drivers


def drive(jobs: list, clients: int, work, *, setup=None, teardown=None) -> tuple[float, list]:
    """Run `work(state, job)` for every job on `clients` threads; wall seconds, errors."""
    todo: queue.Queue = queue.Queue()
    for job in jobs:
        todo.put(job)
    errors: list = []
    barrier = threading.Barrier(clients + 1)

    def worker():
        state = setup() if setup else None
        barrier.wait()
        try:
            while True:
                try:
                    job = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    work(state, job)
                except Exception as exc:  # noqa: BLE001 - reported, not hidden
                    errors.append(repr(exc)[:300])
        finally:
            if teardown:
                teardown(state)

    return _run_threads(clients, worker, barrier), errors


def _run_threads(clients: int, worker, barrier) -> float:
    """Start `clients` threads of `worker`, release them together; the wall time they take."""
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def drive_for(seconds: float, clients: int, work, *, setup=None, teardown=None):
    """Every client repeats `work(state, n)` until `seconds` have passed; (wall, done, errors)."""
    stop = time.perf_counter() + seconds
    counter = iter(range(10**12))
    lock = threading.Lock()
    done = [0]
    errors: list = []
    barrier = threading.Barrier(clients + 1)

    def worker():
        state = setup() if setup else None
        barrier.wait()
        try:
            while time.perf_counter() < stop:
                with lock:
                    n = next(counter)
                try:
                    work(state, n)
                    with lock:
                        done[0] += 1
                except Exception as exc:  # noqa: BLE001 - reported, not hidden
                    errors.append(repr(exc)[:300])
        finally:
            if teardown:
                teardown(state)

    return _run_threads(clients, worker, barrier), done[0], errors


def drive_processes(clients: int, work, *, setup, jobs=None, seconds=None, start=0):
    """Like drive()/drive_for(), but each client is a forked process, as gunicorn workers
    are: Python threads would share one GIL, and a thread holding the pool's row lock
    would wait for the GIL between statements, which no real deployment does.

    With `jobs`, client i does jobs[i::clients]; with `seconds`, each repeats
    work(state, n) with its own n (start + i, + clients, …) until time is up.
    Returns (wall, done, errors)."""
    import multiprocessing

    from django.db import connections

    connections.close_all()  # children open their own connections
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(clients + 1)
    results = ctx.Queue()

    def child(index: int) -> None:
        done, errors = 0, []
        try:
            state = setup()
            barrier.wait()
            started = time.perf_counter()
            if jobs is not None:
                for job in jobs[index::clients]:
                    try:
                        work(state, job)
                        done += 1
                    except Exception as exc:  # noqa: BLE001 - reported, not hidden
                        errors.append(repr(exc)[:300])
            else:
                n = start + index
                while time.perf_counter() - started < seconds:
                    try:
                        work(state, n)
                        done += 1
                    except Exception as exc:  # noqa: BLE001
                        errors.append(repr(exc)[:300])
                    n += clients
            results.put((time.perf_counter() - started, done, errors[:5]))
        except Exception as exc:  # noqa: BLE001
            results.put((0.0, 0, [repr(exc)[:300]]))
        finally:
            results.close()
            results.join_thread()  # flush the result before the hard exit below
            os._exit(0)  # skip the parent's atexit handlers and inherited connections

    procs = [ctx.Process(target=child, args=(i,)) for i in range(clients)]
    for proc in procs:
        proc.start()
    barrier.wait()
    outcomes = [results.get(timeout=1800) for _ in procs]
    for proc in procs:
        proc.join()
    wall = max(o[0] for o in outcomes)
    return wall, sum(o[1] for o in outcomes), [e for o in outcomes for e in o[2]]


def _django_state():
    return None


# ---------------------------------------------------------------------------- raw SQL


class RawIngest:
    """The baseline: the same records, allowance rows, balance updates and ledger entries
    the service writes, with hand-written SQL on one psycopg connection per client, one
    transaction per batch, the same locks in the same order (company FOR SHARE →
    accounts FOR UPDATE in pk order → allowance rows FOR UPDATE in pk order)."""

    def __init__(self, company_id: int):
        self.company_id = company_id

    def connect(self):
        return raw_connect()

    def ingest(self, conn, events: list[dict]) -> None:
        cid = self.company_id
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "SELECT pooling_enabled FROM offices_company WHERE id = %s FOR SHARE", [cid]
            )
            (pooling,) = cur.fetchone()
            cur.execute(
                "SELECT o.slug, o.id, p.included_standard, p.included_ai_agent "
                "FROM offices_office o JOIN offices_plan p ON p.id = o.plan_id "
                "WHERE o.company_id = %s AND o.slug = ANY(%s)",
                [cid, list({e["office"] for e in events})],
            )
            offices = {slug: (pk, std, ai) for slug, pk, std, ai in cur.fetchall()}
            cur.execute(
                "SELECT a.office_id, ad.included_standard * a.quantity, "
                "ad.included_ai_agent * a.quantity FROM offices_officeaddon a "
                "JOIN offices_addon ad ON ad.id = a.addon_id WHERE a.office_id = ANY(%s)",
                [[pk for pk, _, _ in offices.values()]],
            )
            extra = defaultdict(lambda: [Decimal(0), Decimal(0)])
            for office_id, std, ai in cur.fetchall():
                extra[office_id][0] += std
                extra[office_id][1] += ai
            cur.execute(
                "SELECT code, id, rate, credit_kind FROM usage_service "
                "WHERE active AND code = ANY(%s)",
                [list({e["service"] for e in events})],
            )
            services = {code: (pk, rate, kind) for code, pk, rate, kind in cur.fetchall()}
            # The charged ids: from the guard table (usage_usagekey) where the schema has
            # one, as the service does; else from the records' unique key.
            cur.execute("SELECT to_regclass('usage_usagekey') IS NOT NULL")
            guard = cur.fetchone()[0]
            cur.execute(
                "SELECT external_id FROM "
                + ("usage_usagekey" if guard else "usage_usagerecord")
                + " WHERE company_id = %s AND external_id = ANY(%s)",
                [cid, [e["id"] for e in events]],
            )
            seen = {r[0] for r in cur.fetchall()}
            fresh = [e for e in events if e["id"] not in seen]
            if not fresh:
                return
            rated = []
            for e in fresh:
                office_id, std, ai = offices[e["office"]]
                service_id, rate, kind = services[e["service"]]
                quantity = Decimal(e["quantity"]).quantize(PLACES)
                cost = (quantity * rate).quantize(PLACES, rounding=ROUND_HALF_UP)
                occurred = dt.datetime.fromisoformat(e["occurred_at"])
                period = occurred.astimezone(dt.UTC).date().replace(day=1)
                included = (std + extra[office_id][0]) if kind == "standard" else (
                    ai + extra[office_id][1]
                )  # fmt: skip
                rated.append((e, office_id, service_id, rate, kind, quantity, cost, occurred,
                              period, included))  # fmt: skip
            kinds = {r[4] for r in rated}
            wanted = []
            if "ai_agent" in kinds:
                wanted.append("ai_agent")
            if "standard" in kinds and pooling:
                wanted.append("pool")
            cur.execute(
                "SELECT id, kind, office_id, balance FROM credits_account "
                "WHERE company_id = %s AND (kind = ANY(%s) OR (kind = 'wallet' AND %s "
                "AND office_id = ANY(%s))) ORDER BY id FOR UPDATE",
                [cid, wanted, not pooling, list({r[1] for r in rated})],
            )
            accounts = {}
            for pk, kind, office_id, bal in cur.fetchall():
                accounts[("wallet", office_id) if kind == "wallet" else (kind, None)] = [pk, bal]
            keys = sorted({(r[1], r[4], r[8]) for r in rated})
            included_of = {(r[1], r[4], r[8]): r[9] for r in rated}
            cur.executemany(
                "INSERT INTO credits_allowance (office_id, company_id, kind, period, included, "
                "used, cost_total, pool_drawn, wallet_drawn, ai_drawn, uncovered, events) "
                "VALUES (%s, %s, %s, %s, %s, 0, 0, 0, 0, 0, 0, 0) "
                "ON CONFLICT (office_id, kind, period) DO NOTHING",
                [(o, cid, k, p, included_of[(o, k, p)]) for o, k, p in keys],
            )
            cur.execute(
                "SELECT id, office_id, kind, period, included, used, cost_total, pool_drawn, "
                "wallet_drawn, ai_drawn, uncovered, events FROM credits_allowance "
                "WHERE (office_id, kind, period) IN (SELECT * FROM unnest(%s::bigint[], "
                "%s::text[], %s::date[])) ORDER BY id FOR UPDATE",
                [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]],
            )
            allowances = {(r[1], r[2], r[3]): list(r) for r in cur.fetchall()}
            batch = uuid.uuid4()
            drawn = defaultdict(lambda: Decimal(0))
            counts = defaultdict(int)
            out = io.StringIO()
            for e, office_id, service_id, rate, kind, quantity, cost, occurred, period, _ in rated:
                row = allowances[(office_id, kind, period)]
                from_allowance = min(cost, max(row[4] - row[5], Decimal(0)))
                if kind == "ai_agent":
                    key, column = ("ai_agent", None), 9
                elif pooling:
                    key, column = ("pool", None), 7
                else:
                    key, column = ("wallet", office_id), 8
                account = accounts[key]
                funded = min(cost - from_allowance, max(account[1], Decimal(0)))
                uncovered = cost - from_allowance - funded
                account[1] -= funded
                drawn[account[0]] += funded
                counts[account[0]] += 1
                row[5] += from_allowance
                row[6] += cost
                row[column] += funded
                row[10] += uncovered
                row[11] += 1
                parts = [Decimal(0)] * 3
                parts[column - 7] = funded
                out.write(
                    f"{cid}\t{office_id}\t{service_id}\t{e['id']}\t{kind}\t{quantity}\t{rate}\t"
                    f"{cost}\t{occurred.isoformat()}\t{period}\t{from_allowance}\t{parts[0]}\t"
                    f"{parts[1]}\t{parts[2]}\t{uncovered}\t{'t' if pooling else 'f'}\t"
                    f"{account[0]}\t{account[1]}\t{e['user']}\t{e['number']}\t"
                    f"{json.dumps(e['metadata'])}\t{batch}\t\\N\tnow\n"
                )
            with cur.copy(
                "COPY usage_usagerecord (company_id, office_id, service_id, external_id, "
                "credit_kind, quantity, rate, cost, occurred_at, period, allowance_part, "
                "pool_part, wallet_part, ai_part, uncovered, pooling_on, funding_account_id, "
                "funding_balance_after, user_label, phone_number, metadata, batch, "
                "created_by_id, created_at) FROM STDIN"
            ) as copy:
                copy.write(out.getvalue())
            if guard:
                cur.execute(
                    "INSERT INTO usage_usagekey (company_id, external_id, record_id, "
                    "occurred_at) SELECT company_id, external_id, id, occurred_at "
                    "FROM usage_usagerecord WHERE batch = %s",
                    [batch],
                )
            for pk, balance in accounts.values():
                if drawn[pk]:
                    cur.execute(
                        "UPDATE credits_account SET balance = %s, updated_at = now() WHERE id = %s",
                        [balance, pk],
                    )
                    cur.execute(
                        "INSERT INTO credits_ledgerentry (account_id, company_id, entry_type, "
                        "amount, balance_after, reference, idempotency_key, usage_batch, memo, "
                        "created_at) VALUES (%s, %s, 'usage', %s, %s, %s, '', %s, %s, now())",
                        [pk, cid, -drawn[pk], balance, f"usage-batch:{batch}", batch,
                         f"Usage: {counts[pk]} event{'' if counts[pk] == 1 else 's'}"],
                    )  # fmt: skip
            cur.execute(
                "UPDATE credits_allowance a SET used = v.used, cost_total = v.cost, "
                "pool_drawn = v.pool, wallet_drawn = v.wallet, ai_drawn = v.ai, "
                "uncovered = v.unc, events = v.n FROM unnest(%s::bigint[], %s::numeric[], "
                "%s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[], "
                "%s::int[]) AS v(id, used, cost, pool, wallet, ai, unc, n) WHERE a.id = v.id",
                [[r[i] for r in allowances.values()] for i in (0, 5, 6, 7, 8, 9, 10, 11)],
            )


# ---------------------------------------------------------------------------- HTTP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """gunicorn serving config.wsgi on 127.0.0.1, production-like (DEBUG off)."""

    def __init__(self, workers: int):
        self.workers = workers
        self.port = _free_port()
        self.proc = None

    def __enter__(self):
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings.local",
            DEBUG="False",
            CONN_MAX_AGE="600",
            ALLOWED_HOSTS="127.0.0.1,localhost",
        )
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.proc = subprocess.Popen(
            [str(gunicorn), "config.wsgi", "-w", str(self.workers), "-b",
             f"127.0.0.1:{self.port}", "--timeout", "120", "--log-level", "warning"],
            cwd=ROOT, env=env,
        )  # fmt: skip
        print(f"  gunicorn: {self.workers} workers on 127.0.0.1:{self.port}", flush=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("gunicorn exited at start-up") from None
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start in 30 s")

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def api_key_for(slug: str) -> str:
    """A fresh API key through the documented command (its last output line is the key)."""
    out = io.StringIO()
    from django.core.management import call_command

    call_command("create_api_key", company=slug, stdout=out)
    lines = [line.strip() for line in out.getvalue().splitlines() if line.strip()]
    return lines[-1]


def _body(events: list[dict]) -> bytes:
    return json.dumps({"events": events}).encode()


def http_poster(base_url: str, key: str):
    """(setup, post): a keep-alive session per client; post(session, body) sends one
    encoded batch (see _body) and raises unless it was charged."""
    import requests

    def setup():
        session = requests.Session()
        session.headers.update({"Authorization": f"Bearer {key}"})
        return session

    def post(session, body: bytes) -> None:
        response = session.post(
            f"{base_url}/api/v1/usage-events",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        if response.status_code not in (200, 201):
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")

    return setup, post


# ---------------------------------------------------------------------------- checks


def _charged(slug: str) -> int:
    with raw_connect() as conn:
        return conn.execute(
            "SELECT count(*) FROM usage_usagerecord u JOIN offices_company c "
            "ON c.id = u.company_id WHERE c.slug = %s",
            [slug],
        ).fetchone()[0]


def _fresh_company(tag: str, offices: int):
    slug = f"{PREFIX}{tag}"
    company_drop(slug)
    # No included allowance: every standard event draws on the one shared pool.
    return company_build(
        slug=slug, offices=offices, pooling=True, pool_credits=POOL_CREDITS, included=False
    )


def _unavailable(name: str, exc: Exception, target: str, unit: str) -> Result:
    return Result(
        name, None, unit, target=target, passed=False, note=f"not measured: {exc!r}"[:300]
    )


# ---------------------------------------------------------------------------- benchmarks


def batch_benchmarks(config: dict) -> list[Result]:
    """§1: 200,000 events in batches of 1000 across 20 offices, pooling on.

    Each path (raw SQL, the service in-process, the HTTP API) charges all the events into
    its own company. The load of a shared machine drifts, so the paths take turns: the
    batches are split into rounds and every round runs the three paths back to back; each
    path's rate is its events over the sum of its rounds' wall times."""
    from usage.services import usage_ingest

    count, size, offices = config["batch_events"], config["batch_size"], config["batch_offices"]
    clients, rounds = config["workers"], config.get("batch_rounds", 4)
    events = make_events(count, offices, tag="b")
    batches = chunks(events, size)
    print(f"batch ingestion: {count:,} events, batches of {size}, {offices} offices, "
          f"{clients} concurrent clients, {rounds} rounds", flush=True)  # fmt: skip
    per_round = -(-len(batches) // rounds)
    turns = [batches[i : i + per_round] for i in range(0, len(batches), per_round)]

    raw_company = _fresh_company("raw", offices)
    raw = RawIngest(raw_company.pk)
    svc_company = _fresh_company("svc", offices)
    service_batches = [to_service_events(b) for b in batches]
    service_turns = [service_batches[i : i + per_round] for i in range(0, len(batches), per_round)]
    seconds = {"raw": 0.0, "service": 0.0, "http": 0.0}
    errors = {"raw": [], "service": [], "http": []}
    http_error = None
    server = None
    if config["http"]:
        try:
            http_company = _fresh_company("http", offices)
            key = api_key_for(http_company.slug)
            server = Gunicorn(config["workers"]).__enter__()
            setup, post = http_poster(server.url, key)
            # Bodies are encoded before the clock starts: the client's JSON work is not
            # the server's. The first batch warms up imports and connections, untimed.
            bodies = [_body(b) for b in batches]
            post(setup(), bodies[0])
            body_turns = [bodies[i : i + per_round] for i in range(0, len(batches), per_round)]
            body_turns[0] = body_turns[0][1:]
        except Exception as exc:  # noqa: BLE001 - an unavailable API is reported, not fatal
            http_error = exc
    try:
        for turn in range(len(turns)):
            wall, _, errs = drive_processes(
                clients, lambda conn, b: raw.ingest(conn, b), setup=raw.connect, jobs=turns[turn]
            )
            seconds["raw"] += wall
            errors["raw"] += errs
            wall, _, errs = drive_processes(
                clients,
                lambda _s, b: usage_ingest(company=svc_company, events=b),
                setup=_django_state,
                jobs=service_turns[turn],
            )
            seconds["service"] += wall
            errors["service"] += errs
            if server is not None and http_error is None:
                wall, errs = drive(body_turns[turn], clients, post, setup=setup)
                seconds["http"] += wall
                errors["http"] += errs
            print(f"  round {turn + 1}/{len(turns)}: raw {seconds['raw']:.1f} s, "
                  f"service {seconds['service']:.1f} s, HTTP {seconds['http']:.1f} s "
                  "(cumulative)", flush=True)  # fmt: skip
    finally:
        if server is not None:
            server.__exit__(None, None, None)

    assert _charged(raw_company.slug) == count, errors["raw"][:3]
    baseline = count / seconds["raw"]
    print(f"  raw SQL: {baseline:,.0f} events/s ({seconds['raw']:.1f} s)", flush=True)
    rate = count / seconds["service"]
    measured = rate if not errors["service"] else None
    print(f"  service: {rate:,.0f} events/s ({seconds['service']:.1f} s)", flush=True)
    results = [
        Result(
            f"batch ingest, service ({clients} processes)", measured, "ev/s", baseline,
            target="≥ 25% of raw", passed=measured is not None and measured >= 0.25 * baseline,
            details={"seconds": seconds["service"], "clients": clients, "rounds": len(turns),
                     "errors": errors["service"][:5]},
        )
    ]  # fmt: skip
    if config["http"]:
        floor = config.get("http_target", 10_000)
        name, target = "batch ingest, HTTP API", f"≥ {floor:,} ev/s and ≥ 25% of raw"
        if http_error is not None:
            results.append(_unavailable(name, http_error, target, "ev/s"))
        else:
            sent = count - len(batches[0])
            rate = sent / seconds["http"]
            measured = rate if not errors["http"] else None
            print(f"  HTTP: {rate:,.0f} events/s ({seconds['http']:.1f} s), "
                  f"{len(errors['http'])} errors", flush=True)  # fmt: skip
            results.append(
                Result(
                    name, measured, "ev/s", baseline, target=target,
                    passed=measured is not None and measured >= max(floor, 0.25 * baseline),
                    details={"seconds": seconds["http"], "workers": config["workers"],
                             "clients": clients, "rounds": len(turns),
                             "errors": errors["http"][:5]},
                    note=f"gunicorn workers: {config['workers']}"
                    + (f"; errors: {errors['http'][0]}" if errors["http"] else ""),
                )
            )  # fmt: skip
    checked = [svc_company] + ([http_company] if config["http"] and http_error is None else [])
    results.append(ledger_result("check_ledger after batch ingestion", checked))
    company_drop(PREFIX)
    return results


def ledger_result(name: str, companies) -> Result:
    """`manage.py check_ledger --company …` on the companies the service and the API
    charged (the raw-SQL baseline is not the product: it keeps no day rollups)."""
    from bench.dataset import ledger_violations, steady_state

    # Statistics first (what autovacuum does, later): with the ones from before the
    # ingestion the planner expects no rows of these companies, and check_ledger's
    # per-day rollup comparison runs as a nested loop per record (minutes, not seconds).
    steady_state()
    started = time.perf_counter()
    violations = ledger_violations([c.pk for c in companies])
    seconds = time.perf_counter() - started
    slugs = ", ".join(c.slug for c in companies)
    print(f"  {name} ({slugs}): {len(violations)} violation(s), {seconds:.1f} s", flush=True)
    for line in violations[:10]:
        print(f"    {line}", flush=True)
    return Result(
        name, len(violations), "violations", target="0 violations", passed=not violations,
        details={"companies": slugs, "violations": violations[:20], "seconds": seconds},
        note=violations[0][:200] if violations else f"clean: {slugs}",
    )  # fmt: skip


def _controls_configure(company) -> None:
    """SPEC §8 on every balance of `company`: a recharge rule (below 1,000 add 500, three
    times a month), a pool cap per office (room to spare) and a default warning threshold
    (half the pool: it crosses once, so an alert opens and is queued mid-run)."""
    from credits.controls import alert_threshold_set, pool_cap_set, recharge_rule_set
    from credits.models import Account

    care = bench_care_user()
    for account in Account.objects.filter(company=company).order_by("pk"):
        recharge_rule_set(
            company=company, account=account, threshold="1000", amount="500", actor=care
        )
    for office in company.offices.order_by("pk"):
        pool_cap_set(company=company, office=office, cap="1000000", actor=care)
    alert_threshold_set(company=company, value=str(POOL_CREDITS - 50_000), actor=care)


def controls_benchmarks(config: dict) -> list[Result]:
    """Issue 11: the batch ingestion of `batch_benchmarks` (service path) into a company
    with recharge rules, pool caps and warning thresholds on every balance, beside the
    same batches into a company without them; the two take turns in rounds."""
    from usage.services import usage_ingest

    count, size, offices = config["batch_events"], config["batch_size"], config["batch_offices"]
    clients, rounds = config["workers"], config.get("batch_rounds", 4)
    batches = [to_service_events(b) for b in chunks(make_events(count, offices, tag="c"), size)]
    print(f"batch ingestion with money controls: {count:,} events, batches of {size}, "
          f"{offices} offices, {clients} clients, {rounds} rounds", flush=True)  # fmt: skip
    per_round = -(-len(batches) // rounds)
    turns = [batches[i : i + per_round] for i in range(0, len(batches), per_round)]
    plain = _fresh_company("plain", offices)
    controlled = _fresh_company("ctl", offices)
    _controls_configure(controlled)
    seconds = {"plain": 0.0, "controls": 0.0}
    errors = {"plain": [], "controls": []}
    for turn in range(len(turns)):
        for label, company in (("plain", plain), ("controls", controlled)):
            wall, _, errs = drive_processes(
                clients,
                lambda _s, b, company=company: usage_ingest(company=company, events=b),
                setup=_django_state,
                jobs=turns[turn],
            )
            seconds[label] += wall
            errors[label] += errs
        print(f"  round {turn + 1}/{len(turns)}: without {seconds['plain']:.1f} s, "
              f"with controls {seconds['controls']:.1f} s (cumulative)", flush=True)  # fmt: skip
    assert _charged(plain.slug) == count, errors["plain"][:3]
    assert _charged(controlled.slug) == count, errors["controls"][:3]
    baseline = count / seconds["plain"]
    rate = count / seconds["controls"]
    measured = rate if not errors["controls"] else None
    print(f"  without controls: {baseline:,.0f} events/s; with: {rate:,.0f} events/s "
          f"({rate / baseline:.0%})", flush=True)  # fmt: skip
    checked = ledger_result("check_ledger after controls ingestion", [plain, controlled])
    company_drop(PREFIX)
    return [
        checked,
        Result(
            f"batch ingest with money controls ({clients} processes)", measured, "ev/s",
            baseline, target="≥ 90% of the same without",
            passed=measured is not None and measured >= 0.9 * baseline,
            details={"seconds": seconds, "clients": clients, "rounds": len(turns),
                     "errors": errors["controls"][:5]},
        )
    ]  # fmt: skip


def single_benchmarks(config: dict) -> list[Result]:
    """§2: 8 concurrent clients, one event per request, one shared pool."""
    from usage.services import usage_ingest

    clients, seconds = config["single_clients"], config["single_seconds"]
    offices = config["batch_offices"]
    pool = make_events(200_000, offices, tag="s")
    print(f"single-event ingestion: {clients} clients, {seconds:.0f} s per path", flush=True)
    results = []

    # The load of a shared machine drifts: alternate short rounds of the two paths and
    # compare the totals, so both see the same conditions.
    rounds = 4
    raw_company = _fresh_company("single-raw", offices)
    raw = RawIngest(raw_company.pk)
    company = _fresh_company("single-svc", offices)
    service_events = to_service_events(pool)
    totals = {"raw": [0.0, 0], "service": [0.0, 0]}
    errors: list = []
    per_round = len(pool) // rounds
    for r in range(rounds):
        wall, done, _ = drive_processes(
            clients, lambda conn, n: raw.ingest(conn, [pool[n]]), setup=raw.connect,
            seconds=seconds / rounds, start=r * per_round,
        )  # fmt: skip
        totals["raw"][0] += wall
        totals["raw"][1] += done
        wall, done, errs = drive_processes(
            clients,
            lambda _s, n: usage_ingest(company=company, events=[service_events[n]]),
            setup=_django_state,
            seconds=seconds / rounds,
            start=r * per_round,
        )
        totals["service"][0] += wall
        totals["service"][1] += done
        errors += errs
    baseline = totals["raw"][1] / totals["raw"][0]
    rate = totals["service"][1] / totals["service"][0]
    measured = rate if not errors else None
    wall, done = totals["service"]
    print(f"  raw SQL: {baseline:,.0f} events/s", flush=True)
    print(f"  service: {rate:,.0f} events/s, {len(errors)} errors", flush=True)
    results.append(
        Result(
            f"single-event ingest, service ({clients} processes)", measured, "ev/s", baseline,
            target="≥ 50% of raw", passed=measured is not None and measured >= 0.5 * baseline,
            details={"seconds": wall, "events": done, "errors": errors[:5]},
        )
    )  # fmt: skip

    if config["http"]:
        name = "single-event ingest, HTTP API (8 clients)"
        try:
            company = _fresh_company("single-http", offices)
            key = api_key_for(company.slug)
            with Gunicorn(config["workers"]) as server:
                setup, post = http_poster(server.url, key)
                post(setup(), _body([pool[-1]]))  # warm-up
                wall, done, errors = drive_for(
                    seconds, clients, lambda s, n: post(s, _body([pool[n]])), setup=setup
                )
            measured = done / wall if not errors else None
            print(f"  HTTP: {done / wall:,.0f} events/s, {len(errors)} errors", flush=True)
            results.append(
                Result(
                    name, measured, "ev/s", baseline, target="≥ 50% of raw",
                    passed=measured is not None and measured >= 0.5 * baseline,
                    details={"seconds": wall, "events": done, "workers": config["workers"],
                             "errors": errors[:5]},
                    note=f"gunicorn workers: {config['workers']}"
                    + (f"; errors: {errors[0]}" if errors else ""),
                )
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001
            results.append(_unavailable(name, exc, "≥ 50% of raw", "ev/s"))
    company_drop(PREFIX)
    return results
