"""Encryption at rest (read back the raw rows and keys), key rotation, and single-flight refresh
with 50 threads for every shared store."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from helpers import aged
from helpers import login

from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import Token
from flask_oauth2_client.crypto import TokenCipher
from flask_oauth2_client.stores.redis import RedisTokenStore
from flask_oauth2_client.stores.sql import SQLTokenStore
from flask_oauth2_client.testing import Fault

SECRET_PARTS = ("at-very-secret", "rt-very-secret", "read:everything")


def secret_token() -> Token:
    return Token.from_response(
        access_token="at-very-secret",
        token_type="Bearer",
        expires_in=3600,
        refresh_token="rt-very-secret",
        scopes=["read:everything"],
    )


def raw_records(store: Any) -> list[str]:
    if isinstance(store, SQLTokenStore):
        with store.engine.connect() as conn:
            return [row.token for row in conn.execute(sa.select(store.table.c.token))]
    return [store.client.get(key).decode() for key in store.client.scan_iter(match=store.prefix + "*")]


def with_cipher(store: Any, keys: list[str]) -> Any:
    if isinstance(store, SQLTokenStore):
        return SQLTokenStore(store.engine, table=store.table.name, cipher=TokenCipher(keys))
    return RedisTokenStore(store.client, prefix=store.prefix, cipher=TokenCipher(keys))


@pytest.fixture(params=["sql-sqlite", "sql-postgresql", "redis"])
def backend(request, tmp_path):
    if request.param == "sql-sqlite":
        store = SQLTokenStore.from_config(instance_path=str(tmp_path))
        yield store
        store.close()
    elif request.param == "sql-postgresql":
        yield request.getfixturevalue("postgres_store")
    else:
        yield request.getfixturevalue("redis_store")


def test_plaintext_without_keys_then_nothing_readable_with_keys(backend):
    token = secret_token()
    backend.set("demo", "u1", token)
    assert any("at-very-secret" in raw for raw in raw_records(backend))  # no keys: plain JSON
    key = Fernet.generate_key().decode()
    encrypted = with_cipher(backend, [key])
    assert encrypted.get("demo", "u1") == token  # old records stay readable
    encrypted.set("demo", "u1", token)  # ...and are encrypted on their next write
    encrypted.set("demo", "u2", token)
    for raw in raw_records(backend):
        for part in SECRET_PARTS:
            assert part not in raw


def test_key_rotation_and_wrong_key(backend, caplog):
    old, new, other = (Fernet.generate_key().decode() for _ in range(3))
    token = secret_token()
    with_cipher(backend, [old]).set("demo", "u1", token)
    rotated = with_cipher(backend, [new, old])
    assert rotated.get("demo", "u1") == token
    before = raw_records(backend)[0]
    rotated.set("demo", "u1", rotated.get("demo", "u1"))
    after = raw_records(backend)[0]
    assert TokenCipher([new]).decrypt(after.encode()) is not None  # re-encrypted with the new key
    assert TokenCipher([new]).decrypt(before.encode()) is None
    with caplog.at_level(logging.WARNING, logger="flask_oauth2_client"):
        assert with_cipher(backend, [other]).get("demo", "u1") is None  # absent, never a crash
    assert "could not be decrypted" in caplog.text
    assert "at-very-secret" not in caplog.text
    assert after not in caplog.text


def test_redis_keys_are_namespaced_and_expire_with_the_token(redis_store):
    redis_store.set("demo", "u:1", Token.from_response(access_token="a", token_type="Bearer", expires_in=120))
    redis_store.set("demo", "u:2", secret_token())
    keys = sorted(k.decode() for k in redis_store.client.scan_iter(match=redis_store.prefix + "*"))
    assert keys == [redis_store.prefix + "token:demo:u:1", redis_store.prefix + "token:demo:u:2"]
    assert 120 < redis_store.client.ttl(keys[0]) <= 180  # no refresh token: gone after expiry
    assert redis_store.client.ttl(keys[1]) == -1  # refreshable: kept


def test_sql_default_is_sqlite_in_the_instance_folder(make_app, fake_provider, tmp_path):
    app = make_app(OAUTH2_TOKEN_STORE="sql")
    app.instance_path = str(tmp_path / "instance")
    store = app.extensions["oauth2_client"].store
    assert isinstance(store, SQLTokenStore)
    assert store.engine.url.database.endswith("oauth2_tokens.sqlite3")
    client = app.test_client()
    login(client, fake_provider)
    assert client.get("/protected").status_code == 200
    store.close()


def test_init_db_command(make_app, postgres_url):
    app = make_app(OAUTH2_TOKEN_STORE="sql", OAUTH2_TOKEN_STORE_URL=postgres_url)
    result = app.test_cli_runner().invoke(args=["oauth2", "init-db"])
    store = app.extensions["oauth2_client"].store
    try:
        assert result.exit_code == 0, result.output
        assert "oauth2_tokens" in result.output
        assert sa.inspect(store.engine).has_table("oauth2_tokens")
    finally:
        store.table.drop(store.engine, checkfirst=True)
        store.close()
    memory_app = make_app()
    result = memory_app.test_cli_runner().invoke(args=["oauth2", "init-db"])
    assert "needs no set-up" in result.output


@pytest.mark.parametrize("threads", [50])
def test_fifty_threads_one_refresh(backend, make_app, fake_provider, threads):
    oauth = OAuth2Client(store=backend, user_id_loader=lambda: "busy-user")
    app = make_app(oauth=oauth)
    login(app.test_client(), fake_provider)
    backend.set("demo", "busy-user", aged(backend.get("demo", "busy-user"), -1))
    fake_provider.set_fault("token", Fault(status=None, delay=0.3, grant_type="refresh_token"))
    barrier = threading.Barrier(threads)
    statuses: list[int] = []

    def hit() -> None:
        client = app.test_client()
        barrier.wait()
        statuses.append(client.get("/api/notes").status_code)

    workers = [threading.Thread(target=hit) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert statuses == [200] * threads
    assert fake_provider.calls("token", grant_type="refresh_token") == 1
    assert fake_provider.is_active(backend.get("demo", "busy-user").access_token)
