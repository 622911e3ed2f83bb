"""What the benchmarks share: interleaved timing, reporting, the servers they need, the provider
process, gunicorn servers and an HTTP load generator."""

from __future__ import annotations

import contextlib
import gc
import http.client
import importlib.metadata
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# Database 14, not the tests' 15: a million keys there would slow every test's SCAN clean-up.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# -- measuring --------------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    run: Callable[[int], None]  # does *n* operations
    samples: list[float] = field(default_factory=list)  # microseconds per operation, one per round


def interleaved(scenarios: list[Scenario], rounds: int, batch: int, seed: int) -> None:
    """Time *batch* operations of every scenario, once per round, in a new random order each round."""
    order = random.Random(seed)  # noqa: S311 - shuffling, not security
    for scenario in scenarios:  # warm-up: connections, caches, lazy imports
        scenario.run(max(batch // 10, 10))
    for _ in range(rounds):
        todo = scenarios[:]
        order.shuffle(todo)
        for scenario in todo:
            gc.collect()
            started = time.perf_counter()
            scenario.run(batch)
            scenario.samples.append((time.perf_counter() - started) / batch * 1e6)


@dataclass
class TimedScenario:
    """A scenario bounded in time: ``run(seconds)`` returns (operations done, failed ones)."""

    name: str
    run: Callable[[float], tuple[int, int]]
    samples: list[float] = field(default_factory=list)  # operations per second, one per round
    failures: int = 0


def interleaved_timed(scenarios: list[TimedScenario], rounds: int, seconds: float, seed: int) -> None:
    order = random.Random(seed)  # noqa: S311 - shuffling, not security
    for scenario in scenarios:
        scenario.run(min(seconds, 0.3))
    for _ in range(rounds):
        todo = scenarios[:]
        order.shuffle(todo)
        for scenario in todo:
            gc.collect()
            done, failed = scenario.run(seconds)
            scenario.samples.append(done / seconds)
            scenario.failures += failed


def spread(values: list[float], digits: int = 0) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    """Per-round ratios: both sides of a round ran moments apart."""
    return [a / b for a, b in zip(numerators, denominators, strict=True)]


# -- report -----------------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> None:
    """A Markdown table, ready to paste into the README."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    out("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    out("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        out("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    return "unknown"


def machine() -> str:
    return (
        f"{os.cpu_count()} CPUs ({cpu_model()}); {platform.system()} {platform.release()}; "
        f"load average {load_average()}"
    )


PACKAGES = [
    "flask-oauth2-client",
    "Flask",
    "Werkzeug",
    "requests",
    "SQLAlchemy",
    "psycopg",
    "redis",
    "cryptography",
    "gunicorn",
    "Authlib",
    "Flask-Dance",
    "requests-oauthlib",
    "oauthlib",
]


def versions(postgres: str | None, redis_version: str | None, names: list[str] | None = None) -> str:
    found = []
    for name in names or PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{name} {importlib.metadata.version(name)}")
    servers = f"PostgreSQL {postgres or '-'}, Redis {redis_version or '-'}"
    return f"Python {platform.python_version()}; {', '.join(found)}; {servers}"


# -- services -------------------------------------------------------------------------------------


def postgres_available(url: str) -> str | None:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            found = conn.execute(sa.text("SHOW server_version")).scalar()
        engine.dispose()
    except Exception as exc:
        out(f"PostgreSQL at {urlsplit(url).netloc} is not reachable ({type(exc).__name__}): skipped")
        return None
    return str(found).split(" ")[0]


def redis_available(url: str) -> str | None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        found = client.info("server")["redis_version"]
        client.close()
    except Exception as exc:
        out(f"Redis at {urlsplit(url).netloc} is not reachable ({type(exc).__name__}): skipped")
        return None
    return str(found)


def delete_prefix(client: Any, prefix: str) -> None:
    batch = []
    for key in client.scan_iter(match=prefix + "*", count=10_000):
        batch.append(key)
        if len(batch) >= 10_000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)


def drop_postgres_tables(url: str, names: list[str]) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
    finally:
        engine.dispose()


# -- the provider, in a process of its own ------------------------------------------------------------


class ProviderProcess:
    """``python -m benchmarks._provider``: a FakeProvider steered through a pipe."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._provider"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lock = threading.Lock()
        info = self._read()
        self.url: str = info["url"]
        self.client_id: str = info["client_id"]
        self.client_secret: str = info["client_secret"]
        self.api_url: str = info["api_url"]

    def _read(self) -> Any:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the provider process ended")
        reply = json.loads(line)
        if reply.get("error"):
            raise RuntimeError(f"provider: {reply['error']}")
        return reply["result"]

    def command(self, op: str, **arguments: Any) -> Any:
        with self._lock:
            assert self._process.stdin is not None
            self._process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
            self._process.stdin.flush()
            return self._read()

    def calls(self, endpoint: str, grant_type: str | None = None) -> int:
        return int(self.command("calls", endpoint=endpoint, grant_type=grant_type))

    def set(self, name: str, value: Any) -> None:
        self.command("set", name=name, value=value)

    @property
    def info(self) -> dict[str, str]:
        return {"url": self.url, "client_id": self.client_id, "client_secret": self.client_secret}

    def with_api(self, api_url: str) -> dict[str, str]:
        """The provider as the apps see it, with the downstream API their ``/api`` view calls."""
        return {**self.info, "api_url": api_url}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.command("stop")
        with contextlib.suppress(Exception):
            self._process.wait(timeout=5)
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()


# -- gunicorn -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gunicorn:
    """``gunicorn 'benchmarks.apps:from_env()'`` on 127.0.0.1 with the gthread worker."""

    def __init__(self, spec: dict[str, Any], *, workers: int, threads: int, log_dir: str) -> None:
        self.spec = spec
        self.port = free_port()
        self.workers = workers
        self.threads = threads
        name = f"{spec['library']}-{spec.get('store', '')}-{workers}x{threads}"
        self.log_path = os.path.join(log_dir, f"gunicorn-{name}-{self.port}.log")
        env = {**os.environ, "BENCH_APP_SPEC": json.dumps(spec)}
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        with open(self.log_path, "w") as log:
            self._process = subprocess.Popen(  # noqa: S603 - the venv's gunicorn, fixed arguments
                [
                    gunicorn,
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    str(workers),
                    "--worker-class",
                    "gthread",
                    "--threads",
                    str(threads),
                    "--keep-alive",
                    "10",
                    "--backlog",
                    "256",
                    "--graceful-timeout",
                    "3",
                    "--log-level",
                    "warning",
                    "benchmarks.apps:from_env()",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log_path}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/plain")
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer within {timeout} s; see {self.log_path}")

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def hammer(port: int, path: str, cookie: str | None, seconds: float, connections: int) -> tuple[int, int]:
    """GET *path* over *connections* keep-alive connections, each in a thread, for *seconds*.
    Returns (responses, non-200 responses). A connection that breaks is opened again."""
    headers = {"Cookie": cookie} if cookie else {}
    counts = [0] * connections
    failures = [0] * connections
    start = threading.Barrier(connections + 1)
    deadline = [0.0]

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start.wait()
        end = deadline[0]
        done = failed = 0
        while time.perf_counter() < end:
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                done += 1
                if response.status != 200:
                    failed += 1
                if response.will_close:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            except (OSError, http.client.HTTPException):
                failed += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.close()
        counts[i] = done
        failures[i] = failed

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    start.wait()
    for thread in threads:
        thread.join()
    return sum(counts), sum(failures)
