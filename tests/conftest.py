"""Shared fixtures. Flows run against a real FakeProvider on 127.0.0.1 (the ``fake_provider``
fixture of the library's own pytest plugin); the app side runs in Flask's test client."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from typing import TYPE_CHECKING
from typing import Any

import pytest
import requests
from flask import Flask
from helpers import provider_config

from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import Token
from flask_oauth2_client.testing import FakeProvider

if TYPE_CHECKING:
    from playwright.sync_api import Browser

AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(fake_provider: FakeProvider) -> AppFactory:
    """Build a fresh app wired to the fake provider as ``demo``; keyword arguments are extra
    config (``OAUTH2_*`` keys) or ``provider={...}`` overrides of the demo provider's settings."""

    def factory(*, provider: dict[str, Any] | None = None, oauth: OAuth2Client | None = None, **config: Any) -> Flask:
        app = Flask("testapp")
        app.config.update(
            TESTING=True,
            SECRET_KEY="test-secret-key-that-is-long-enough",
            OAUTH2_TOKEN_STORE="memory",
            OAUTH2_PROVIDERS={"demo": provider_config(fake_provider, **(provider or {}))},
        )
        app.config.update(config)
        ext = oauth or OAuth2Client()
        ext.init_app(app)
        app.extensions["test_oauth"] = ext

        @app.get("/")
        def home() -> str:
            return "home"

        @app.get("/protected")
        @ext.token_required("demo")
        def protected(token: Token) -> dict[str, Any]:
            return {"scopes": sorted(token.scopes), "expires_in": token.expires_in}

        @app.get("/api/notes")
        @ext.token_required("demo")
        def notes(token: Token) -> Any:
            answer = requests.get(
                fake_provider.api_url, headers={"Authorization": token.authorization_header}, timeout=5
            )
            return answer.json()

        return app

    return factory


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app()


# -- real PostgreSQL and Redis ------------------------------------------------------------------

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _require(service: str, reachable: bool, where: str) -> None:
    """Skip when a server is missing on a developer's machine; under CI=true, fail instead."""
    if reachable:
        return
    message = f"{service} is not reachable at {where}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI runs on machines that have it")
    pytest.skip(f"{message} (set TEST_{service.upper()}_URL to use another server)")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The URL of a real PostgreSQL database (127.0.0.1:5432, database ``test``)."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        reachable = True
    except Exception:
        reachable = False
    _require("postgres", reachable, "127.0.0.1:5432")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of a real Redis server (127.0.0.1:6379, database 15)."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        reachable = True
    except Exception:
        reachable = False
    _require("redis", reachable, "127.0.0.1:6379")
    return REDIS_URL


@pytest.fixture
def sql_table() -> str:
    """A table name of this test's own (dropped afterwards where a fixture created it)."""
    return "oauth2_tokens_" + uuid.uuid4().hex[:12]


@pytest.fixture
def postgres_store(postgres_url: str, sql_table: str) -> Iterator[Any]:
    from flask_oauth2_client.stores.sql import SQLTokenStore

    store = SQLTokenStore(postgres_url, table=sql_table)
    yield store
    store.table.drop(store.engine, checkfirst=True)
    store.close()


@pytest.fixture
def redis_prefix() -> str:
    return "test-" + uuid.uuid4().hex[:12] + ":"


@pytest.fixture
def redis_store(redis_url: str, redis_prefix: str) -> Iterator[Any]:
    from flask_oauth2_client.stores.redis import RedisTokenStore

    store = RedisTokenStore(redis_url, prefix=redis_prefix)
    yield store
    for key in store.client.scan_iter(match=redis_prefix + "*"):
        store.client.delete(key)
    store.close()


# -- headless Chromium (tests/browser, and the example app against oidc-provider in tests/interop) --
# Debian's /usr/bin/chromium driven by Playwright's sync API; Playwright's own browser downloads are
# never used: ``make browser`` (scripts/ensure-chromium.sh) provides it. Without it the browser tests
# are skipped, except on CI (``CI=true``), where a missing browser is a failure.

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _browser_unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: browser tests must run on CI)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """A headless Chromium for the whole session."""
    if not os.access(CHROMIUM, os.X_OK):
        _browser_unavailable(f"{CHROMIUM} is missing; run `make browser` (scripts/ensure-chromium.sh) to install it")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _browser_unavailable("the playwright package is not installed; run `make install`")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
