"""What a DPoP proof costs per API call, as a ratio to a plain bearer call (issue 7).

Two tokens for the same user at the same FakeProvider, one bearer and one DPoP-bound, and one
``GET`` of its notes API per call through ``oauth.session()`` (a pooled connection, the proof made
and checked on every call). Also the proof alone (``Token.request_headers``) against the bearer
header alone. Rounds interleaved, medians and min-max.

    .venv/bin/python -m benchmarks.bench_dpop [--quick]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable

from flask import Flask

from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import Token
from flask_oauth2_client.keys import ClientKey
from flask_oauth2_client.testing import FakeProvider


def timed(batch: Callable[[], None], count: int) -> float:
    gc.collect()
    start = time.perf_counter()
    for _ in range(count):
        batch()
    return (time.perf_counter() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="7 rounds of 100 calls instead of 15 of 300")
    args = parser.parse_args()
    rounds, count = (7, 100) if args.quick else (15, 300)

    provider = FakeProvider(dpop=True).start()
    try:
        app = Flask("bench_dpop")
        app.config.update(
            SECRET_KEY="k" * 32,
            OAUTH2_TOKEN_STORE="memory",
            OAUTH2_PROVIDERS={
                kind: {
                    "client_id": provider.client_id,
                    "client_secret": provider.client_secret,
                    "authorize_url": provider.authorize_url,
                    "token_url": provider.token_url,
                    "scope": "read",
                    "dpop": kind == "dpop",
                }
                for kind in ("bearer", "dpop")
            },
        )
        oauth = OAuth2Client(app, user_id_loader=lambda: "bench-user")
        store = app.extensions["oauth2_client"].store
        key = ClientKey.generate("ES256")
        bearer = provider.issue_token(user="alice", scopes=["read"])["access_token"]
        bound = provider.issue_token(user="alice", scopes=["read"], dpop_jkt=key.thumbprint)["access_token"]
        store.set("bearer", "bench-user", Token(access_token=bearer, scopes=frozenset({"read"})))
        store.set(
            "dpop",
            "bench-user",
            Token(access_token=bound, token_type="DPoP", scopes=frozenset({"read"}), dpop_jwk=key.private_jwk()),
        )
        url = provider.api_url

        def call(kind: str) -> Callable[[], None]:
            def batch() -> None:
                with app.test_request_context("/"):
                    answer = oauth.session(kind).get(url)
                    assert answer.status_code == 200, answer.text

            return batch

        bearer_token = store.get("bearer", "bench-user")
        dpop_token = store.get("dpop", "bench-user")
        assert bearer_token is not None
        assert dpop_token is not None
        scenarios: dict[str, Callable[[], None]] = {
            "API call, bearer": call("bearer"),
            "API call, DPoP": call("dpop"),
            "headers only, bearer": lambda: bearer_token.request_headers("GET", url),
            "headers only, DPoP proof": lambda: dpop_token.request_headers("GET", url),
        }
        results: dict[str, list[float]] = {name: [] for name in scenarios}
        for run in scenarios.values():
            run()  # warm-up
        order = list(scenarios)
        rng = random.Random(6)  # noqa: S311 - the order of rounds, not a secret
        for _ in range(rounds):
            rng.shuffle(order)
            for name in order:
                results[name].append(timed(scenarios[name], count))
    finally:
        provider.stop()

    def row(name: str, base: str) -> str:
        ratios = [b / x for b, x in zip(results[base], results[name], strict=True)]
        values = results[name]
        return (
            f"| {name:<24} | {statistics.median(values):7.1f} ({min(values):.1f}-{max(values):.1f}) "
            f"| {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |"
        )

    lines = [
        f"µs per call, median (min-max) of {rounds} rounds of {count}; ratio = bearer time / this time",
        "| scenario                 | µs/call               | ratio to bearer   |",
        "|--------------------------|-----------------------|-------------------|",
        row("API call, bearer", "API call, bearer"),
        row("API call, DPoP", "API call, bearer"),
        row("headers only, bearer", "headers only, bearer"),
        row("headers only, DPoP proof", "headers only, bearer"),
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
