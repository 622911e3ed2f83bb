"""How much the token stores cost: see benchmarks/README.md.

    .venv/bin/python -m benchmarks.bench_stores [--quick]

1. A protected view (``@oauth.token_required``) with a valid token, per store, through Flask's test
   client, against a bare Flask view timed in the same rounds.
2. ``store.get`` with 1,000 and with 1,000,000 stored tokens (100,000 with ``--quick``), for the
   ``sql`` store on PostgreSQL and the ``redis`` store, next to a floor: the same lookup without
   the store (one held PostgreSQL connection outside a transaction; a bare Redis GET).

Rounds are interleaved (every scenario once per round, in a shuffled order), so that a slow moment
of the machine hits all scenarios alike; each result is the median and the min-max of the rounds.
PostgreSQL and Redis are the test servers (see tests/conftest.py); a missing one is skipped. The
benchmark's own table and key prefix are removed at the end, also after an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as a file: python benchmarks/bench_stores.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient

from benchmarks._common import POSTGRES_URL
from benchmarks._common import REDIS_URL
from benchmarks._common import Scenario
from benchmarks._common import delete_prefix
from benchmarks._common import interleaved
from benchmarks._common import machine
from benchmarks._common import out
from benchmarks._common import postgres_available
from benchmarks._common import ratios
from benchmarks._common import redis_available
from benchmarks._common import spread
from benchmarks._common import table
from benchmarks._common import versions
from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import Token
from flask_oauth2_client.crypto import TokenCipher
from flask_oauth2_client.testing import FakeProvider

TARGET_VIEW = {"memory": 0.95, "session": 0.95}  # others: 0.80; against the plain view of the same app
TARGET_LOOKUP = 2.0
STORE_PACKAGES = ["flask-oauth2-client", "Flask", "Werkzeug", "SQLAlchemy", "psycopg", "redis", "cryptography"]


# -- 1. a protected view per store ----------------------------------------------------------------------


def provider_settings(provider: FakeProvider) -> dict[str, Any]:
    return {
        "demo": {
            "client_id": provider.client_id,
            "client_secret": provider.client_secret,
            "authorize_url": provider.authorize_url,
            "token_url": provider.token_url,
            "scope": "read write",
        }
    }


def store_app(provider: FakeProvider, key: str, instance_path: str, store: Any = None, **config: Any) -> Flask:
    app = Flask("bench", instance_path=instance_path)
    app.config.update(
        SECRET_KEY="benchmark-secret-key",
        OAUTH2_PROVIDERS=provider_settings(provider),
        OAUTH2_TOKEN_ENCRYPTION_KEYS=key,  # as docs/deployment.rst recommends
        **config,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cookie-session warning of the session store
        oauth = OAuth2Client(app, store=store)

    @app.get("/protected")
    @oauth.token_required("demo")
    def protected(token: Token) -> str:
        return "ok"

    @app.get("/plain")
    def plain() -> str:
        return "ok"

    return app


def signed_in_client(app: Flask, provider: FakeProvider) -> FlaskClient:
    client = app.test_client()
    start = client.get("/oauth2/demo/login", query_string={"next": "/protected"})
    answer = requests.get(start.headers["Location"], allow_redirects=False, timeout=5)
    parts = urlsplit(answer.headers["Location"])
    done = client.get(f"{parts.path}?{parts.query}")
    if done.status_code != 302 or client.get("/protected").status_code != 200:
        raise RuntimeError(f"sign-in failed: {done.status_code} {done.data[:200]!r}")
    return client


def requester(client: FlaskClient, path: str) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code}")

    return run


def bench_views(
    args: argparse.Namespace, cleanup: contextlib.ExitStack, postgres: str | None, redis_version: str | None
) -> list[list[str]]:
    provider = cleanup.enter_context(FakeProvider())
    key = Fernet.generate_key().decode()
    instance = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-stores-"))
    apps: dict[str, Flask] = {
        "memory": store_app(provider, key, instance, OAUTH2_TOKEN_STORE="memory"),
        "session (cookie)": store_app(provider, key, instance, OAUTH2_TOKEN_STORE="session"),
        "sql, SQLite": store_app(provider, key, instance, OAUTH2_TOKEN_STORE="sql"),
    }
    suffix = uuid.uuid4().hex[:10]
    if postgres:
        from flask_oauth2_client.stores.sql import SQLTokenStore

        table = SQLTokenStore(args.postgres_url, cipher=TokenCipher([key]), table=f"bench_view_{suffix}")
        cleanup.callback(table.close)
        cleanup.callback(lambda: table.table.drop(table.engine, checkfirst=True))
        apps["sql, PostgreSQL"] = store_app(provider, key, instance, store=table)
    if redis_version:
        prefix = f"bench-view-{suffix}:"
        app = store_app(
            provider,
            key,
            instance,
            OAUTH2_TOKEN_STORE="redis",
            OAUTH2_TOKEN_STORE_URL=args.redis_url,
            OAUTH2_TOKEN_STORE_PREFIX=prefix,
        )
        redis_store = app.extensions["oauth2_client"].store
        cleanup.callback(redis_store.close)
        cleanup.callback(lambda: delete_prefix(redis_store.client, prefix))
        apps["redis"] = app
    for app in apps.values():
        cleanup.callback(app.extensions["oauth2_client"].store.close)

    bare = Flask("bare")

    @bare.get("/")
    def bare_view() -> str:
        return "ok"

    baseline = Scenario("bare Flask view", requester(bare.test_client(), "/"))
    protected: dict[str, Scenario] = {}
    plain: dict[str, Scenario] = {}
    for name, app in apps.items():
        client = signed_in_client(app, provider)
        protected[name] = Scenario(name, requester(client, "/protected"))
        plain[name] = Scenario(name + " (plain view)", requester(client, "/plain"))
    scenarios = [baseline, *protected.values(), *plain.values()]
    out(f"protected views: {len(scenarios)} scenarios x {args.rounds} rounds x {args.requests} requests ...")
    interleaved(scenarios, args.rounds, args.requests, seed=1)

    rows = [["bare Flask view (no extension)", spread(baseline.samples), "1.00", "", "", ""]]
    for name, scenario in protected.items():
        vs_bare = ratios(baseline.samples, scenario.samples)
        vs_plain = ratios(plain[name].samples, scenario.samples)
        target = TARGET_VIEW.get(name.split(" ")[0], 0.80)
        rows.append(
            [
                name,
                spread(scenario.samples),
                spread(vs_bare, 2),
                spread(vs_plain, 2),
                f">= {target:.2f}",
                "met" if statistics.median(vs_plain) >= target else "MISSED",
            ]
        )
    return rows


# -- 2. lookups with many stored tokens ------------------------------------------------------------------


def sample_token() -> Token:
    now = datetime.now(timezone.utc)
    return Token(
        access_token="a" * 40,
        token_type="Bearer",
        expires_at=now + timedelta(hours=1),
        refresh_token="r" * 40,
        scopes=frozenset({"read", "write"}),
        issued_at=now,
    )


def load_postgres(store: Any, count: int, raw: str) -> None:
    """INSERT ... SELECT over generate_series: one statement, no client round trips per row."""
    import sqlalchemy as sa

    store.create_table()
    series = sa.func.generate_series(1, count).table_valued("n").render_derived()
    now = datetime.now(timezone.utc)
    rows = sa.select(
        sa.literal("demo"),
        sa.literal("user-") + sa.cast(series.c.n, sa.String),
        sa.literal(raw),
        sa.literal(now + timedelta(hours=1)),
        sa.literal(now),
    ).select_from(series)
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(store.table).from_select(["provider", "user_id", "token", "expires_at", "updated_at"], rows)
        )
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'ANALYZE "{store.table.name}"'))


def load_redis(store: Any, count: int, raw: str) -> None:
    """SET in pipelines of 10,000 commands: one round trip per batch."""
    for start in range(1, count + 1, 10_000):
        pipe = store.client.pipeline(transaction=False)
        for n in range(start, min(start + 10_000, count + 1)):
            pipe.set(store.key("demo", f"user-{n}"), raw)
        pipe.execute()


def getter(store: Any, count: int, seed: int) -> Callable[[int], None]:
    pick = random.Random(seed)  # noqa: S311 - which user to look up, not security

    def run(n: int) -> None:
        for _ in range(n):
            if store.get("demo", f"user-{pick.randint(1, count)}") is None:
                raise RuntimeError("a stored token was not found")

    return run


def postgres_floor(store: Any, count: int, seed: int, cleanup: contextlib.ExitStack) -> Callable[[int], None]:
    """The same SELECT and JSON parsing on one held connection, outside a transaction: what a
    lookup costs without the pool check-out, the pre-ping and the BEGIN/ROLLBACK around it."""
    import sqlalchemy as sa

    pick = random.Random(seed)  # noqa: S311 - which user to look up, not security
    conn = cleanup.enter_context(store.engine.connect().execution_options(isolation_level="AUTOCOMMIT"))
    t = store.table
    query = sa.select(t.c.token).where(t.c.provider == "demo", t.c.user_id == sa.bindparam("user_id"))

    def run(n: int) -> None:
        for _ in range(n):
            raw = conn.execute(query, {"user_id": f"user-{pick.randint(1, count)}"}).scalar_one_or_none()
            Token.from_json(raw)

    return run


def redis_floor(store: Any, count: int, seed: int) -> Callable[[int], None]:
    """A bare GET of the same keys with the same client, and the JSON parsing."""
    pick = random.Random(seed)  # noqa: S311 - which user to look up, not security

    def run(n: int) -> None:
        for _ in range(n):
            Token.from_json(store.client.get(store.key("demo", f"user-{pick.randint(1, count)}")))

    return run


def bench_lookups(
    args: argparse.Namespace, cleanup: contextlib.ExitStack, postgres: str | None, redis_version: str | None
) -> list[list[str]]:
    raw = sample_token().to_json()  # unencrypted: the lookup itself, not Fernet, is measured
    small, large = 1_000, args.large
    suffix = uuid.uuid4().hex[:10]
    pairs: list[tuple[str, Scenario, Scenario, Scenario]] = []
    if postgres:
        from flask_oauth2_client.stores.sql import SQLTokenStore

        for count in (small, large):
            store = SQLTokenStore(args.postgres_url, table=f"bench_lookup_{count}_{suffix}")
            cleanup.callback(store.close)
            cleanup.callback(lambda store=store: store.table.drop(store.engine, checkfirst=True))
            started = time.perf_counter()
            load_postgres(store, count, raw)
            out(f"PostgreSQL: {count:,} tokens loaded in {time.perf_counter() - started:.1f} s")
            if count == small:
                pg_small = Scenario(f"sql, PostgreSQL, {count:,}", getter(store, count, seed=2))
            else:
                pg_large = Scenario(f"sql, PostgreSQL, {count:,}", getter(store, count, seed=3))
                pg_floor = Scenario("PostgreSQL floor", postgres_floor(store, count, 3, cleanup))
        pairs.append(("sql, PostgreSQL", pg_small, pg_large, pg_floor))
    if redis_version:
        from flask_oauth2_client.stores.redis import RedisTokenStore

        for count in (small, large):
            prefix = f"bench-lookup-{count}-{suffix}:"
            store = RedisTokenStore(args.redis_url, prefix=prefix)
            cleanup.callback(store.close)
            cleanup.callback(lambda store=store, prefix=prefix: delete_prefix(store.client, prefix))
            started = time.perf_counter()
            load_redis(store, count, raw)
            out(f"Redis: {count:,} tokens loaded in {time.perf_counter() - started:.1f} s")
            if count == small:
                redis_small = Scenario(f"redis, {count:,}", getter(store, count, seed=4))
            else:
                redis_large = Scenario(f"redis, {count:,}", getter(store, count, seed=5))
                redis_floor_ = Scenario("Redis floor", redis_floor(store, count, seed=5))
        pairs.append(("redis", redis_small, redis_large, redis_floor_))
    if not pairs:
        return []
    scenarios = [scenario for _, *three in pairs for scenario in three]
    out(f"lookups: {len(scenarios)} scenarios x {args.rounds} rounds x {args.lookups} lookups ...")
    interleaved(scenarios, args.rounds, args.lookups, seed=6)
    rows = []
    for name, few, many, floor in pairs:
        growth = ratios(many.samples, few.samples)
        rows.append(
            [
                name,
                spread(few.samples),
                spread(many.samples),
                spread(growth, 2),
                f"<= {TARGET_LOOKUP:.1f}",
                "met" if statistics.median(growth) <= TARGET_LOOKUP else "MISSED",
                spread(floor.samples),
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, 100,000 instead of 1,000,000 tokens")
    parser.add_argument("--postgres-url", default=POSTGRES_URL, help="default: $BENCH_POSTGRES_URL or %(default)s")
    parser.add_argument("--redis-url", default=REDIS_URL, help="default: $BENCH_REDIS_URL or %(default)s")
    args = parser.parse_args(argv)
    args.rounds = 7 if args.quick else 15
    args.requests = 200 if args.quick else 500
    args.lookups = 300 if args.quick else 1000
    args.large = 100_000 if args.quick else 1_000_000

    started = time.perf_counter()
    out(f"machine: {machine()}")
    postgres = postgres_available(args.postgres_url)
    redis_version = redis_available(args.redis_url)
    out(versions(postgres, redis_version, STORE_PACKAGES))
    with contextlib.ExitStack() as cleanup:
        view_rows = bench_views(args, cleanup, postgres, redis_version)
        lookup_rows = bench_lookups(args, cleanup, postgres, redis_version)
        out("cleaning up ...")
    out()
    out(f"Protected view, µs per request: median (min-max) of {args.rounds} rounds of {args.requests} requests")
    out()
    table(
        ["store", "µs/request", "ratio to bare view", "ratio to plain view, same app", "target", "verdict"],
        view_rows,
    )
    if lookup_rows:
        out()
        out(f"store.get, µs per lookup: median (min-max) of {args.rounds} rounds of {args.lookups} lookups")
        out()
        table(
            [
                "store",
                "1,000 tokens",
                f"{args.large:,} tokens",
                f"{args.large:,} / 1,000",
                "target",
                "verdict",
                f"floor, {args.large:,} tokens",
            ],
            lookup_rows,
        )
    out()
    out(f"total time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
