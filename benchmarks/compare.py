"""flask-oauth2-client side by side with a bare Flask view, Authlib's Flask client and Flask-Dance.

    .venv/bin/pip install --group bench                  # Authlib, Flask-Dance, pyinstrument
    .venv/bin/python -m benchmarks.compare [--quick]     # or: make bench

What it measures (see benchmarks/README.md for the method and the results):

a. a protected view with a valid token, per store, through Flask's test client and over HTTP
   (gunicorn on 127.0.0.1, a keep-alive load generator bounded in time);
b. a protected view that calls a downstream API (the provider's /api/notes) through the
   library's own HTTP session;
c. login + callback round trips per second against FakeProvider;
d. 50 concurrent requests of one user on an expired token, the provider rotating refresh tokens:
   refresh calls at the provider, failed requests, whether the user is still logged in after;
e. session cookie bytes after 1, 5 and 20 started logins, and which of those tabs can complete;
f. token lookup with 1,000 vs 1,000,000 stored tokens (``bench_stores.bench_lookups``).

Every measurement is interleaved: each round runs every scenario once, in a new random order, so
a slow moment of the machine hits all alike; ratios are computed per round, then summarised as a
median and min-max. Two baselines for each protected view: the *bare app* (a Flask app with only
a view and no cookie) and the *plain view, same app* (an undecorated view of the same app sent
the same session cookie). Targets are judged against the plain view of the same app.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import logging
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as a file: python benchmarks/compare.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient

from benchmarks import _common as c
from benchmarks.apps import create_app

TARGET_VIEW = {"memory": 0.95, "session": 0.95}  # sql and redis: 0.80
TARGET_VIEW_OTHER = 0.80
TARGET_API = 2.0  # our ratio / the best competitor's ratio
TARGET_LOGIN = 1.1  # our flows/s / the best competitor's flows/s
TARGET_COOKIE = 1536  # bytes after 20 started logins
BURST = 50

LABELS = {
    ("ours", "memory"): "ours, memory",
    ("ours", "session"): "ours, session (cookie)",
    ("ours", "sql-sqlite"): "ours, sql SQLite",
    ("ours", "sql-pg"): "ours, sql PostgreSQL",
    ("ours", "redis"): "ours, redis",
    ("authlib", "dict"): "Authlib, dict",
    ("authlib", "session"): "Authlib, session (cookie)",
    ("dance", "session"): "Flask-Dance, session (cookie)",
    ("dance", "sqla-sqlite"): "Flask-Dance, SQLAlchemy SQLite",
    ("dance", "sqla-pg"): "Flask-Dance, SQLAlchemy PostgreSQL",
}
ALL_CONFIGS = list(LABELS)


@dataclass
class Mode:
    rounds: int  # in-process rounds
    requests: int  # per in-process batch (a)
    api_requests: int  # per in-process batch (b)
    flows: int  # per batch (c)
    http_rounds: int
    http_seconds: float  # per scenario per round
    http_connections: int
    bursts: int  # runs of (d)
    lookups: int
    large: int


QUICK = Mode(5, 200, 40, 15, 2, 0.5, 4, 2, 300, 100_000)
FULL = Mode(11, 500, 150, 40, 5, 3.0, 4, 5, 1000, 1_000_000)


def label(config: tuple[str, str]) -> str:
    return LABELS[config]


def is_ours(config: tuple[str, str]) -> bool:
    return config[0] == "ours"


# -- the apps -------------------------------------------------------------------------------------------


class Bench:
    """The provider process, the spec shared by every app, and the clean-up."""

    def __init__(self, args: argparse.Namespace, cleanup: contextlib.ExitStack) -> None:
        self.args = args
        self.mode: Mode = args.mode
        self.cleanup = cleanup
        self.provider = c.ProviderProcess()
        cleanup.callback(self.provider.close)
        self.tmp = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-compare-"))
        suffix = uuid.uuid4().hex[:10]
        self.base_spec: dict[str, Any] = {
            "provider": self.provider.info,
            "key": Fernet.generate_key().decode(),
            "postgres_url": args.postgres_url,
            "redis_url": args.redis_url,
            "pg_table": f"bench_cmp_{suffix}",
            "dance_pg_table": f"bench_cmp_dance_{suffix}",
            "redis_prefix": f"bench-cmp-{suffix}:",
        }
        if args.postgres:
            cleanup.callback(
                c.drop_postgres_tables,
                args.postgres_url,
                [self.base_spec["pg_table"], self.base_spec["dance_pg_table"]],
            )
        if args.redis_version:
            import redis

            client = redis.Redis.from_url(args.redis_url)
            cleanup.callback(client.close)
            cleanup.callback(c.delete_prefix, client, self.base_spec["redis_prefix"])
        self.http = requests.Session()  # the browser's connection to the provider
        cleanup.callback(self.http.close)
        self._apps: dict[tuple[str, str], Flask] = {}

    def spec(self, config: tuple[str, str], where: str) -> dict[str, Any]:
        """In process, ``/api`` calls the tiny resource server (what the client spends shows);
        over HTTP, the provider's ``/api/notes``, which refuses an expired token (section d)."""
        library, store = config
        provider = self.provider.with_api(self.provider.api_url) if where == "inproc" else self.provider.info
        return {
            **self.base_spec,
            "provider": provider,
            "library": library,
            "store": store,
            "instance_path": f"{self.tmp}/{where}-{library}-{store}",
        }

    def app(self, config: tuple[str, str]) -> Flask:
        """The in-process app of *config* (one per config, shared by the sections)."""
        if config not in self._apps:
            app = create_app(self.spec(config, "inproc"))
            app.logger.setLevel(logging.CRITICAL)  # the competitors' expected failures (section e) log tracebacks
            ext = app.extensions.get("oauth2_client")
            if ext is not None:
                self.cleanup.callback(ext.store.close)
            engine = app.extensions.get("bench_dance_engine")
            if engine is not None:
                self.cleanup.callback(engine.dispose)
            self._apps[config] = app
        return self._apps[config]

    def bare(self) -> Flask:
        token = self.provider.command("issue_token")["access_token"]
        provider = self.provider.with_api(self.provider.api_url)
        return create_app({**self.base_spec, "provider": provider, "library": "bare", "api_token": token})

    def complete(self, client: FlaskClient, authorize_url: str) -> Any:
        """The browser at the provider (auto-approved) and back at the app's callback."""
        answer = self.http.get(authorize_url, allow_redirects=False, timeout=10)
        parts = urlsplit(answer.headers["Location"])
        return client.get(f"{parts.path}?{parts.query}")

    def login(self, client: FlaskClient, app: Flask) -> Any:
        start = client.get(app.config["BENCH_LOGIN_PATH"])
        if start.status_code != 302:
            raise RuntimeError(f"login did not redirect: {start.status_code}")
        return self.complete(client, start.headers["Location"])

    def signed_in(self, config: tuple[str, str]) -> FlaskClient:
        app = self.app(config)
        client = app.test_client()
        done = self.login(client, app)
        if not succeeded(done) or client.get("/protected").status_code != 200:
            raise RuntimeError(f"{label(config)}: sign-in failed: {done.status_code} {done.data[:200]!r}")
        return client


def succeeded(callback_response: Any) -> bool:
    location = callback_response.headers.get("Location", "")
    return bool(callback_response.status_code == 302 and urlsplit(location).path == "/protected")


def requester(client: FlaskClient, path: str) -> Any:
    def run(n: int) -> None:
        for _ in range(n):
            response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code}")

    return run


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def med(values: list[float]) -> float:
    return statistics.median(values)


# -- a/b. protected views, in process -------------------------------------------------------------------


def bench_views_inprocess(bench: Bench, configs: list[tuple[str, str]], path: str) -> dict[str, Any]:
    """*path* (``/protected`` or ``/api``) and ``/plain`` of every config, the bare app's
    ``/plain`` (and its ``/api`` floor), through the test client."""
    mode = bench.mode
    batch = mode.requests if path == "/protected" else mode.api_requests
    bare = bench.bare()
    baseline = c.Scenario("bare app", requester(bare.test_client(), "/plain"))
    scenarios = [baseline]
    floor = None
    if path == "/api":
        floor = c.Scenario("bare app + pooled requests.get", requester(bare.test_client(), "/api"))
        scenarios.append(floor)
    views: dict[tuple[str, str], tuple[c.Scenario, c.Scenario]] = {}
    for config in configs:
        client = bench.signed_in(config)
        views[config] = (
            c.Scenario(label(config), requester(client, path)),
            c.Scenario(label(config) + " (plain)", requester(client, "/plain")),
        )
        scenarios.extend(views[config])
    c.out(f"{path} in process: {len(scenarios)} scenarios x {mode.rounds} rounds x {batch} requests ...")
    c.interleaved(scenarios, mode.rounds, batch, seed=1 if path == "/protected" else 2)
    return {"baseline": baseline, "floor": floor, "views": views}


def view_rows(result: dict[str, Any], unit: str, judge: bool) -> list[list[str]]:
    baseline: c.Scenario = result["baseline"]
    rows = [["bare app (a view, no cookie)", c.spread(baseline.samples), "", "1.00", "", "", ""]]
    floor = result.get("floor")
    if floor is not None:
        rows.append(
            [
                "bare app + one pooled requests.get",
                c.spread(floor.samples),
                "",
                c.spread(c.ratios(baseline.samples, floor.samples), 2),
                "",
                "",
                "",
            ]
        )
    for config, (view, plain) in result["views"].items():
        vs_plain = c.ratios(plain.samples, view.samples)
        target, outcome = "", ""
        if judge and is_ours(config):
            wanted = TARGET_VIEW.get(config[1], TARGET_VIEW_OTHER)
            target, outcome = f">= {wanted:.2f}", verdict(med(vs_plain) >= wanted)
        rows.append(
            [
                label(config),
                c.spread(view.samples),
                c.spread(plain.samples),
                c.spread(c.ratios(baseline.samples, view.samples), 2),
                c.spread(vs_plain, 2),
                target,
                outcome,
            ]
        )
    return rows


def api_verdicts(result: dict[str, Any]) -> list[list[str]]:
    """Each of our rows against the best competitor, both as ratios to their own app's plain view."""
    views = result["views"]
    rounds = len(result["baseline"].samples)
    competitors = [cfg for cfg in views if not is_ours(cfg)]
    if not competitors:
        return []
    best_by_round = [
        max(views[cfg][1].samples[i] / views[cfg][0].samples[i] for cfg in competitors) for i in range(rounds)
    ]
    rows = []
    for config, (view, plain) in views.items():
        if not is_ours(config):
            continue
        ours = c.ratios(plain.samples, view.samples)
        factor = c.ratios(ours, best_by_round)
        rows.append([label(config), c.spread(factor, 2), f">= {TARGET_API:.1f}", verdict(med(factor) >= TARGET_API)])
    return rows


# -- c. login + callback ----------------------------------------------------------------------------------


def bench_logins(bench: Bench, configs: list[tuple[str, str]]) -> list[list[str]]:
    mode = bench.mode
    scenarios: dict[tuple[str, str], c.Scenario] = {}
    for config in configs:
        app = bench.app(config)

        def run(n: int, app: Flask = app, config: tuple[str, str] = config) -> None:
            for _ in range(n):
                client = app.test_client()  # a new browser each time
                if not succeeded(bench.login(client, app)):
                    raise RuntimeError(f"{label(config)}: a login failed")

        scenarios[config] = c.Scenario(label(config), run)
    c.out(f"login + callback: {len(scenarios)} scenarios x {mode.rounds} rounds x {mode.flows} flows ...")
    c.interleaved(list(scenarios.values()), mode.rounds, mode.flows, seed=3)
    competitors = [s for cfg, s in scenarios.items() if not is_ours(cfg)]
    best = [min(s.samples[i] for s in competitors) for i in range(mode.rounds)] if competitors else []
    rows = []
    for config, scenario in scenarios.items():
        per_second = [1e6 / us for us in scenario.samples]
        target, outcome, factor = "", "", ""
        if is_ours(config) and best:
            vs_best = c.ratios(best, scenario.samples)
            factor = c.spread(vs_best, 2)
            target, outcome = f">= {TARGET_LOGIN:.1f}", verdict(med(vs_best) >= TARGET_LOGIN)
        rows.append([label(config), c.spread(per_second), c.spread(scenario.samples), factor, target, outcome])
    return rows


# -- e. many tabs ---------------------------------------------------------------------------------------


def cookie_bytes(client: FlaskClient) -> int:
    cookie = client.get_cookie("session")
    return 0 if cookie is None else len("session=") + len(cookie.value)


def ranges(indices: list[int]) -> str:
    if not indices:
        return "none"
    parts, start, prev = [], indices[0], indices[0]
    for i in [*indices[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ", ".join(parts)


def bench_tabs(bench: Bench, configs: list[tuple[str, str]]) -> list[list[str]]:
    logging.getLogger("flask_oauth2_client").setLevel(logging.CRITICAL)  # the refused tabs, on purpose
    rows = []
    for config in configs:
        app = bench.app(config)
        for n in (1, 5, 20):
            completed = {}
            size = 0
            for order in ("oldest first", "newest first"):
                client = app.test_client()
                urls = [client.get(app.config["BENCH_LOGIN_PATH"]).headers["Location"] for _ in range(n)]
                size = cookie_bytes(client)
                tabs = list(range(1, n + 1))
                if order == "newest first":
                    tabs.reverse()
                done = [tab for tab in tabs if succeeded(bench.complete(client, urls[tab - 1]))]
                completed[order] = ranges(sorted(done)) + f" ({len(done)}/{n})"
            target, outcome = "", ""
            if n == 20 and is_ours(config):
                target, outcome = f"<= {TARGET_COOKIE}", verdict(size <= TARGET_COOKIE)
            rows.append(
                [
                    label(config),
                    str(n),
                    str(size),
                    completed["oldest first"],
                    completed["newest first"],
                    target,
                    outcome,
                ]
            )
    return rows


# -- HTTP: gunicorn servers ---------------------------------------------------------------------------------


def start_servers(bench: Bench, wanted: list[tuple[tuple[str, str] | None, int, int]]) -> dict[Any, c.Gunicorn]:
    """One gunicorn per (config, workers, threads); ``None`` is the bare app. Started together."""
    servers: dict[Any, c.Gunicorn] = {}
    for config, workers, threads in wanted:
        if config is None:
            token = bench.provider.command("issue_token")["access_token"]
            spec = {**bench.base_spec, "library": "bare", "api_token": token}
        else:
            spec = bench.spec(config, f"http{workers}x{threads}")
        server = c.Gunicorn(spec, workers=workers, threads=threads, log_dir=bench.tmp)
        bench.cleanup.callback(server.close)
        servers[(config, workers, threads)] = server
    for server in servers.values():
        server.wait_ready()
    return servers


def http_login(bench: Bench, server: c.Gunicorn) -> str:
    """Sign in through the real server; returns the ``Cookie`` header value to send."""
    browser = requests.Session()
    start = browser.get(server.base + _login_path(server), allow_redirects=False, timeout=10)
    if start.status_code != 302:
        raise RuntimeError(f"{server.log_path}: login answered {start.status_code}")
    answer = bench.http.get(start.headers["Location"], allow_redirects=False, timeout=10)
    done = browser.get(answer.headers["Location"], allow_redirects=False, timeout=30)
    if done.status_code != 302 or urlsplit(done.headers.get("Location", "")).path != "/protected":
        raise RuntimeError(f"{server.log_path}: callback answered {done.status_code} {done.text[:200]!r}")
    cookie = browser.cookies.get("session")
    browser.close()
    return f"session={cookie}"


def _login_path(server: c.Gunicorn) -> str:
    library = server.spec["library"]
    return {"ours": "/oauth2/demo/login?next=/protected", "authlib": "/login", "dance": "/login/demo"}[library]


def bench_views_http(bench: Bench, servers: dict[Any, c.Gunicorn], configs: list[tuple[str, str]]) -> list[list[str]]:
    mode = bench.mode
    threads = 50
    bare = servers[(None, 1, threads)]
    baseline = c.TimedScenario("bare app", lambda s: c.hammer(bare.port, "/plain", None, s, mode.http_connections))
    scenarios = [baseline]
    views: dict[tuple[str, str], tuple[c.TimedScenario, c.TimedScenario]] = {}
    for config in configs:
        server = servers[(config, 1, threads)]
        cookie = http_login(bench, server)

        def hit(path: str, server: c.Gunicorn = server, cookie: str = cookie) -> Any:
            return lambda s: c.hammer(server.port, path, cookie, s, mode.http_connections)

        views[config] = (
            c.TimedScenario(label(config), hit("/protected")),
            c.TimedScenario(label(config) + " (plain)", hit("/plain")),
        )
        scenarios.extend(views[config])
    c.out(
        f"/protected over HTTP: {len(scenarios)} scenarios x {mode.http_rounds} rounds x {mode.http_seconds} s, "
        f"{mode.http_connections} keep-alive connections ..."
    )
    c.interleaved_timed(scenarios, mode.http_rounds, mode.http_seconds, seed=4)
    rows = [["bare app (a view, no cookie)", c.spread(baseline.samples), "", "1.00", "", "", "", ""]]
    for config, (view, plain) in views.items():
        vs_plain = c.ratios(view.samples, plain.samples)
        target, outcome = "", ""
        if is_ours(config):
            wanted = TARGET_VIEW.get(config[1], TARGET_VIEW_OTHER)
            target, outcome = f">= {wanted:.2f}", verdict(med(vs_plain) >= wanted)
        rows.append(
            [
                label(config),
                c.spread(view.samples),
                c.spread(plain.samples),
                c.spread(c.ratios(view.samples, baseline.samples), 2),
                c.spread(vs_plain, 2),
                str(view.failures + plain.failures),
                target,
                outcome,
            ]
        )
    return rows


# -- d. 50 concurrent requests on an expired token --------------------------------------------------------------


def burst(port: int, path: str, cookie: str, count: int) -> tuple[list[int], str]:
    """*count* requests at once, one connection each, released by a barrier. Returns the statuses
    and the cookie a browser would keep: the session cookie of the last response that set one."""
    statuses: list[int] = [0] * count
    cookies: list[tuple[float, str]] = []
    lock = threading.Lock()
    gate = threading.Barrier(count)

    def one(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.connect()
            gate.wait()
            conn.request("GET", path, headers={"Cookie": cookie})
            response = conn.getresponse()
            response.read()
            statuses[i] = response.status
            for header in response.msg.get_all("Set-Cookie") or []:
                if header.startswith("session="):
                    with lock:
                        cookies.append((time.perf_counter(), header.split(";", 1)[0]))
        except (OSError, http.client.HTTPException):
            statuses[i] = -1
        finally:
            conn.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    kept = max(cookies)[1] if cookies else cookie
    return statuses, kept


def still_logged_in(port: int, cookie: str) -> bool:
    if cookie in ("", "session="):
        return False
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/api", headers={"Cookie": cookie})
        response = conn.getresponse()
        response.read()
        return response.status == 200
    finally:
        conn.close()


def bench_refresh(
    bench: Bench, servers: dict[Any, c.Gunicorn], cases: list[tuple[tuple[str, str], int, int]]
) -> list[list[str]]:
    mode = bench.mode
    results: dict[Any, dict[str, list[Any]]] = {
        case: {"refreshes": [], "failed": [], "in": [], "statuses": []} for case in cases
    }
    c.out(f"{BURST} concurrent requests on an expired token: {len(cases)} cases x {mode.bursts} runs ...")
    for _ in range(mode.bursts):
        bench.provider.set("access_token_ttl", 3)
        cookies = {case: http_login(bench, servers[case]) for case in cases}
        bench.provider.set("access_token_ttl", 3600)
        time.sleep(3.5)  # every library now sees an expired token (Authlib and ours also refresh early)
        for case in cases:
            server = servers[case]
            before = bench.provider.calls("token", grant_type="refresh_token")
            statuses, kept = burst(server.port, "/api", cookies[case], BURST)
            after = bench.provider.calls("token", grant_type="refresh_token")
            results[case]["refreshes"].append(after - before)
            results[case]["failed"].append(sum(1 for s in statuses if s != 200))
            results[case]["statuses"].extend(s for s in statuses if s != 200)
            results[case]["in"].append(still_logged_in(server.port, kept))
    rows = []
    for (config, workers, threads), found in results.items():
        refreshes, failed, logged_in = found["refreshes"], found["failed"], found["in"]
        ok = is_ours(config) and all(r == 1 for r in refreshes) and not any(failed) and all(logged_in)
        rows.append(
            [
                label(config),
                f"{workers} x {threads}",
                c.spread([float(r) for r in refreshes]),
                c.spread([float(f) for f in failed]),
                ", ".join(f"{status}: {n}" for status, n in sorted(Counter(found["statuses"]).items())) or "-",
                f"{sum(logged_in)}/{len(logged_in)}",
                "1, 0, yes" if is_ours(config) else "",
                verdict(ok) if is_ours(config) else "",
            ]
        )
    return rows


# -- main -----------------------------------------------------------------------------------------------


def competitors_installed() -> list[str]:
    missing = [
        name
        for name, module in (("Authlib", "authlib"), ("Flask-Dance", "flask_dance"))
        if importlib.util.find_spec(module) is None
    ]
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="fewer and shorter rounds, 100,000 tokens: under 2 minutes"
    )
    parser.add_argument("--postgres-url", default=c.POSTGRES_URL, help="default: $BENCH_POSTGRES_URL or %(default)s")
    parser.add_argument("--redis-url", default=c.REDIS_URL, help="default: $BENCH_REDIS_URL or %(default)s")
    parser.add_argument("--only", default="abcdef", help="sections to run, e.g. 'ae' (default: all of abcdef)")
    parser.add_argument("--ours-only", action="store_true", help="run without Authlib and Flask-Dance")
    args = parser.parse_args(argv)
    args.mode = QUICK if args.quick else FULL

    missing = [] if args.ours_only else competitors_installed()
    if missing:
        c.out(
            f"{' and '.join(missing)} not installed: they are benchmark-only dependencies. Install them with\n\n"
            "    .venv/bin/pip install --group bench\n\n"
            "or run without the competitors: .venv/bin/python -m benchmarks.compare --ours-only"
        )
        return 2

    started = time.perf_counter()
    c.out(f"machine: {c.machine()}")
    args.postgres = c.postgres_available(args.postgres_url)
    args.redis_version = c.redis_available(args.redis_url)
    c.out(c.versions(args.postgres, args.redis_version))

    def usable(config: tuple[str, str]) -> bool:
        if args.ours_only and not is_ours(config):
            return False
        if config[1] in ("sql-pg", "sqla-pg") and not args.postgres:
            return False
        return not (config[1] == "redis" and not args.redis_version)

    configs = [cfg for cfg in ALL_CONFIGS if usable(cfg)]
    session_like = [
        cfg
        for cfg in configs
        if cfg
        in {
            ("ours", "memory"),
            ("ours", "session"),
            ("authlib", "dict"),
            ("authlib", "session"),
            ("dance", "session"),
            ("dance", "sqla-sqlite"),
        }
    ]
    api_configs = session_like if args.quick else configs
    http_configs = configs
    mode: Mode = args.mode
    reports: list[tuple[str, list[str], list[list[str]]]] = []
    with contextlib.ExitStack() as cleanup:
        bench = Bench(args, cleanup)
        if "a" in args.only:
            result = bench_views_inprocess(bench, configs, "/protected")
            reports.append(
                (
                    f"a. Protected view, in process (Flask test client): µs per request, median (min-max) of "
                    f"{mode.rounds} rounds of {mode.requests} requests; ratios per round (higher is better)",
                    [
                        "app",
                        "µs/request",
                        "plain view, same app",
                        "ratio to bare app",
                        "ratio to plain view, same app",
                        "target",
                        "verdict",
                    ],
                    view_rows(result, "µs", judge=True),
                )
            )
        if "b" in args.only:
            result = bench_views_inprocess(bench, api_configs, "/api")
            reports.append(
                (
                    f"b. Protected view calling the provider's API, in process: µs per request, median (min-max) "
                    f"of {mode.rounds} rounds of {mode.api_requests} requests",
                    [
                        "app",
                        "µs/request",
                        "plain view, same app",
                        "ratio to bare app",
                        "ratio to plain view, same app",
                        "",
                        "",
                    ],
                    view_rows(result, "µs", judge=False),
                )
            )
            rows = api_verdicts(result)
            if rows:
                reports.append(
                    (
                        "b. Our ratio to the plain view divided by the best competitor's (per round)",
                        ["app", "ours / best competitor", "target", "verdict"],
                        rows,
                    )
                )
        if "c" in args.only:
            login_configs = [cfg for cfg in session_like if cfg != ("dance", "sqla-sqlite")] + (
                [cfg for cfg in configs if cfg in {("ours", "sql-sqlite"), ("ours", "redis")}] if not args.quick else []
            )
            reports.append(
                (
                    f"c. Login + callback against FakeProvider, in process: median (min-max) of {mode.rounds} rounds "
                    f"of {mode.flows} flows, each a new browser",
                    ["app", "flows/s", "µs/flow", "ours / best competitor", "target", "verdict"],
                    bench_logins(bench, login_configs),
                )
            )
        if "e" in args.only:
            tab_configs = [
                cfg
                for cfg in configs
                if cfg in {("ours", "memory"), ("ours", "session"), ("authlib", "session"), ("dance", "session")}
            ]
            reports.append(
                (
                    "e. Session cookie after N started logins (login route hit N times, none completed), and the tabs "
                    "whose callback then succeeds, completed one after the other",
                    [
                        "app",
                        "logins started",
                        "cookie bytes",
                        "tabs completed, oldest first",
                        "newest first",
                        "target",
                        "verdict",
                    ],
                    bench_tabs(bench, tab_configs),
                )
            )
        if "a" in args.only or "d" in args.only:
            wanted: list[tuple[tuple[str, str] | None, int, int]] = [(None, 1, 50)]
            wanted += [(cfg, 1, 50) for cfg in configs]
            multi = [cfg for cfg in configs if cfg in {("ours", "sql-pg"), ("ours", "redis"), ("ours", "sql-sqlite")}]
            if "d" in args.only:
                wanted += [(cfg, 4, 13) for cfg in multi]
            c.out(f"starting {len(wanted)} gunicorn servers ...")
            servers = start_servers(bench, wanted)
            if "a" in args.only:
                reports.append(
                    (
                        f"a. Protected view over HTTP (gunicorn, 1 worker, gthread, 50 threads; "
                        f"{mode.http_connections} keep-alive connections): requests/s, median (min-max) of "
                        f"{mode.http_rounds} rounds of {mode.http_seconds} s",
                        [
                            "app",
                            "requests/s",
                            "plain view, same app",
                            "ratio to bare app",
                            "ratio to plain view, same app",
                            "non-200",
                            "target",
                            "verdict",
                        ],
                        bench_views_http(bench, servers, http_configs),
                    )
                )
            if "d" in args.only:
                cases = [(cfg, 1, 50) for cfg in configs] + [(cfg, 4, 13) for cfg in multi]
                reports.append(
                    (
                        f"d. {BURST} concurrent requests of one user to /api on an expired token, refresh tokens "
                        f"rotating; median (min-max) of {mode.bursts} runs",
                        [
                            "app",
                            "gunicorn workers x threads",
                            "refresh calls",
                            "failed requests",
                            "their statuses, all runs",
                            "still logged in",
                            "target",
                            "verdict",
                        ],
                        bench_refresh(bench, servers, cases),
                    )
                )
        if "f" in args.only:
            from benchmarks.bench_stores import bench_lookups

            args.rounds, args.lookups, args.large = mode.rounds, mode.lookups, mode.large
            rows = bench_lookups(args, cleanup, args.postgres, args.redis_version)
            if rows:
                reports.append(
                    (
                        f"f. store.get, µs per lookup: median (min-max) of {mode.rounds} rounds "
                        f"of {mode.lookups} lookups",
                        [
                            "store",
                            "1,000 tokens",
                            f"{mode.large:,} tokens",
                            f"{mode.large:,} / 1,000",
                            "target",
                            "verdict",
                            f"floor, {mode.large:,} tokens",
                        ],
                        rows,
                    )
                )
        c.out("cleaning up ...")
    for title, header, rows in reports:
        c.out()
        c.out(title)
        c.out()
        c.table(header, rows)
    c.out()
    c.out(f"load average after the run: {c.load_average()}")
    c.out(f"total time: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
