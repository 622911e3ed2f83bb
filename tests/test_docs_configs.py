"""The deployment configurations of docs/deployment.rst, run as written.

Each ``docs/examples/deploy_*.py`` is the file the page shows. Here it gets its settings the way
the page says (``FLASK_*`` environment variables), signs a user in at the FakeProvider, serves the
protected view, refreshes the token once, and leaves the token where the page says it is.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from helpers import login

from flask_oauth2_client.testing import FakeProvider

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
PUBLIC_HOST = "app.example.com"


def load_example(name: str) -> ModuleType:
    """Import ``docs/examples/<name>.py`` (not a package) as a module of its own."""
    module_name = f"docs_examples_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # Flask(__name__) looks the module up to find its folder
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, fake_provider: FakeProvider) -> dict[str, str]:
    """The ``FLASK_*`` variables of the pages, pointing provider ``corp`` at the FakeProvider."""
    values = {
        "FLASK_SECRET_KEY": "a-long-random-string-shared-by-every-process",
        "FLASK_OAUTH2_PROVIDERS__corp__client_id": fake_provider.client_id,
        "FLASK_OAUTH2_PROVIDERS__corp__client_secret": fake_provider.client_secret,
        "FLASK_OAUTH2_PROVIDERS__corp__authorize_url": fake_provider.authorize_url,
        "FLASK_OAUTH2_PROVIDERS__corp__token_url": fake_provider.token_url,
        "FLASK_OAUTH2_PROVIDERS__corp__scope": "read write",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def stored_store(app: Flask) -> Any:
    return app.extensions["oauth2_client"].store


def sign_in_and_refresh(client: FlaskClient, provider: FakeProvider) -> None:
    """One login, one protected view, one refresh (the access token lives one second)."""
    provider.access_token_ttl = 1
    response = login(client, provider, name="corp", next_url="/profile")
    assert response.status_code == 302, response.data
    assert response.headers["Location"] == "/profile"
    profile = client.get("/profile")
    assert profile.status_code == 200, profile.data
    assert profile.json == {"scopes": ["read", "write"]}
    time.sleep(0.6)  # past half the token's life: the next request refreshes it
    assert client.get("/profile").status_code == 200
    assert provider.calls("token", grant_type="refresh_token") == 1
    assert client.get("/profile").status_code == 200


# -- one process ----------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["memory", "session"])
def test_one_process(environment: dict[str, str], fake_provider: FakeProvider, store: str) -> None:
    example = load_example("deploy_one_process")
    config = {} if store == "memory" else {"OAUTH2_TOKEN_STORE": "session"}  # "without this line"
    app = example.create_app(config)
    assert type(stored_store(app)).__name__ == {"memory": "MemoryTokenStore", "session": "SessionTokenStore"}[store]
    sign_in_and_refresh(app.test_client(), fake_provider)
    if store == "memory":
        assert len(stored_store(app)) == 1


# -- several workers on one machine -----------------------------------------------------------------


def test_one_machine(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch, fake_provider: FakeProvider, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLASK_OAUTH2_TOKEN_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    example = load_example("deploy_one_machine")
    app = example.create_app(instance_path=str(tmp_path))
    try:
        result = app.test_cli_runner().invoke(args=["oauth2", "init-db"])
        assert result.exit_code == 0, result.output
        assert "'oauth2_tokens' is ready" in result.output
        database = tmp_path / "oauth2_tokens.sqlite3"
        assert database.exists()

        sign_in_and_refresh(app.test_client(), fake_provider)

        with sqlite3.connect(database) as db:
            rows = db.execute("SELECT provider, token FROM oauth2_tokens").fetchall()
        db.close()
        assert [provider for provider, _ in rows] == ["corp"]
        assert not rows[0][1].startswith("{")  # encrypted at rest
        assert (tmp_path / "oauth2_tokens.sqlite3.lock").exists()  # the refresh took the file lock
    finally:
        stored_store(app).close()


# -- several hosts --------------------------------------------------------------------------------


@pytest.fixture
def redis_prefix_cleanup(redis_url: str) -> Iterator[list[str]]:
    """Prefixes whose Redis keys are deleted after the test."""
    import redis

    prefixes: list[str] = []
    yield prefixes
    client = redis.Redis.from_url(redis_url)
    try:
        for prefix in prefixes:
            for key in client.scan_iter(match=prefix + "*"):
                client.delete(key)
    finally:
        client.close()


@pytest.fixture
def postgres_schema_url(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """The PostgreSQL URL with a search path of a new schema of this test's own, so that the
    table the "sql" store creates under its default name (``oauth2_tokens``) is this test's
    alone; the schema is dropped afterwards."""
    import sqlalchemy as sa

    base: str = request.getfixturevalue("postgres_url")
    schema = "docs_" + uuid.uuid4().hex[:12]
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base}?options=-csearch_path%3D{schema}", schema
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql", "redis"])
def test_several_hosts(
    environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    fake_provider: FakeProvider,
    redis_url: str,
    redis_prefix_cleanup: list[str],
    request: pytest.FixtureRequest,
    backend: str,
) -> None:
    # The provider knows the public callback URL only: the redirect URI must come out right
    # through ProxyFix.
    fake_provider.register_client(
        "web-app", "web-secret", redirect_uris=[f"https://{PUBLIC_HOST}/oauth2/corp/callback"]
    )
    new_key, old_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("FLASK_OAUTH2_PROVIDERS__corp__client_id", "web-app")
    monkeypatch.setenv("FLASK_OAUTH2_PROVIDERS__corp__client_secret", "web-secret")
    monkeypatch.setenv("FLASK_REDIS_URL", redis_url)
    monkeypatch.setenv("FLASK_OAUTH2_TOKEN_ENCRYPTION_KEYS", f"{new_key},{old_key}")
    # Keys of this test's own in a Redis database that other tests share.
    unique = uuid.uuid4().hex[:12]
    config = {"SESSION_KEY_PREFIX": f"docs-session-{unique}:"}
    redis_prefix_cleanup.append(config["SESSION_KEY_PREFIX"])
    if backend == "postgresql":
        url, schema = request.getfixturevalue("postgres_schema_url")
        monkeypatch.setenv("FLASK_OAUTH2_TOKEN_STORE", "sql")
        monkeypatch.setenv("FLASK_OAUTH2_TOKEN_STORE_URL", url)
    else:
        monkeypatch.setenv("FLASK_OAUTH2_TOKEN_STORE", "redis")
        monkeypatch.setenv("FLASK_OAUTH2_TOKEN_STORE_URL", redis_url)
        config["OAUTH2_TOKEN_STORE_PREFIX"] = f"docs-{unique}:"
        redis_prefix_cleanup.append(config["OAUTH2_TOKEN_STORE_PREFIX"])

    example = load_example("deploy_several_hosts")
    app = example.create_app(config)
    store = stored_store(app)
    try:
        client = app.test_client()
        # What the load balancer adds to every request it forwards.
        client.environ_base.update(
            HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_HOST=PUBLIC_HOST, HTTP_X_FORWARDED_FOR="203.0.113.7"
        )
        sign_in_and_refresh(client, fake_provider)

        cookie = client.get_cookie("session")
        assert cookie is not None
        assert cookie.secure
        sessions = list(app.config["SESSION_REDIS"].scan_iter(match=config["SESSION_KEY_PREFIX"] + "*"))
        assert len(sessions) == 1  # the session lives in Redis; the cookie holds its id

        if backend == "postgresql":
            assert type(store).__name__ == "SQLTokenStore"
            import sqlalchemy as sa

            table = sa.table("oauth2_tokens", sa.column("provider"), sa.column("token"), schema=schema)
            with store.engine.connect() as conn:
                rows = conn.execute(sa.select(table.c.provider, table.c.token)).all()
            tokens = [token for _, token in rows]
            assert [provider for provider, _ in rows] == ["corp"]
        else:
            assert type(store).__name__ == "RedisTokenStore"
            keys = list(store.client.scan_iter(match=f"{config['OAUTH2_TOKEN_STORE_PREFIX']}token:corp:*"))
            assert len(keys) == 1
            tokens = [store.client.get(keys[0]).decode()]
        # Encrypted at rest, with the first of the keys.
        assert Fernet(new_key).decrypt(tokens[0].encode()).startswith(b"{")
    finally:
        store.close()
        app.config["SESSION_REDIS"].close()
