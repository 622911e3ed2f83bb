"""Where a protected request of ours spends its time: pyinstrument over the in-process views.

    .venv/bin/python -m benchmarks.profile_views [--store memory] [--path /protected] [--requests 3000]

Needs the ``bench`` dependency group (pyinstrument). Builds the same app as ``benchmarks.compare``
(``benchmarks.apps``), signs in through the provider process, then profiles *requests* test-client
requests of the path and prints pyinstrument's call tree, as a share of the total time, for that
number of requests (use ``--path /plain`` for the same app's plain view).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python benchmarks/profile_views.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests
from cryptography.fernet import Fernet

from benchmarks import _common as c
from benchmarks.apps import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", default="ours", choices=["ours", "authlib", "dance"])
    parser.add_argument("--store", default="memory")
    parser.add_argument("--path", default="/protected", choices=["/protected", "/api", "/plain"])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--postgres-url", default=c.POSTGRES_URL)
    parser.add_argument("--redis-url", default=c.REDIS_URL)
    args = parser.parse_args(argv)
    try:
        from pyinstrument import Profiler
    except ImportError:
        c.out("pyinstrument is not installed: .venv/bin/pip install --group bench")
        return 2

    suffix = uuid.uuid4().hex[:10]
    with contextlib.ExitStack() as cleanup:
        provider = c.ProviderProcess()
        cleanup.callback(provider.close)
        tmp = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-profile-"))
        spec = {
            "provider": provider.with_api(provider.api_url),
            "key": Fernet.generate_key().decode(),
            "postgres_url": args.postgres_url,
            "redis_url": args.redis_url,
            "pg_table": f"bench_prof_{suffix}",
            "dance_pg_table": f"bench_prof_dance_{suffix}",
            "redis_prefix": f"bench-prof-{suffix}:",
            "library": args.library,
            "store": args.store,
            "instance_path": tmp,
        }
        if "pg" in args.store:
            cleanup.callback(c.drop_postgres_tables, args.postgres_url, [spec["pg_table"], spec["dance_pg_table"]])
        if args.store == "redis":
            import redis

            client = redis.Redis.from_url(args.redis_url)
            cleanup.callback(client.close)
            cleanup.callback(c.delete_prefix, client, spec["redis_prefix"])
        app = create_app(spec)
        ext = app.extensions.get("oauth2_client")
        if ext is not None:
            cleanup.callback(ext.store.close)
        browser = app.test_client()
        start = browser.get(app.config["BENCH_LOGIN_PATH"])
        answer = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
        location = answer.headers["Location"]
        browser.get(location[location.index("/", len("http://")) :])
        for _ in range(200):  # warm up
            if browser.get(args.path).status_code != 200:
                raise RuntimeError(f"{args.path} did not answer 200")
        profiler = Profiler(interval=0.0001)
        profiler.start()
        for _ in range(args.requests):
            browser.get(args.path)
        profiler.stop()
        c.out(profiler.output_text(unicode=True, color=False, show_all=False, time="percent_of_total"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
