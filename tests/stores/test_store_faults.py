"""The token store becomes unreachable while the app runs (a TcpProxy between the app and the real
PostgreSQL / Redis is paused), or was never reachable: requests get a 503 ``store_unavailable``,
never a 500 or a traceback, and once the store is back nothing stored before the outage is lost."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import sqlalchemy as sa
from flask.testing import FlaskClient
from helpers import aged
from helpers import login
from helpers import provider_answer
from tcp_proxy import TcpProxy

from flask_oauth2_client import OAuth2Client
from flask_oauth2_client.stores.redis import RedisTokenStore
from flask_oauth2_client.stores.sql import SQLTokenStore
from flask_oauth2_client.testing import FakeProvider

USER = "fault-user"
JSON = {"Accept": "application/json"}


@dataclass
class Faulty:
    kind: str
    proxy: TcpProxy
    store: Any  # reaches the server through the proxy
    direct: Any  # the same data, straight to the server (to look behind the app's back)


@pytest.fixture(params=["sql-postgresql", "redis"])
def faulty(request: pytest.FixtureRequest) -> Iterator[Faulty]:
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        parts = urlsplit(url)
        prefix = "test-faults-" + uuid.uuid4().hex[:12] + ":"
        proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379).start()
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
        # from_url, as the store itself does: that client does not retry with backoff. (A client
        # built as redis.Redis(host=...) retries 10 times, ~3-5 s per command while Redis is down.)
        via_proxy = redis.Redis.from_url(
            parts._replace(netloc=netloc).geturl(), socket_timeout=1, socket_connect_timeout=1
        )
        # lock_ttl short too: a lock left behind by an outage lives that long.
        store: Any = RedisTokenStore(via_proxy, prefix=prefix, lock_ttl=3)
        direct: Any = RedisTokenStore(url, prefix=prefix)
    else:
        url = sa.make_url(request.getfixturevalue("postgres_url"))
        table = "oauth2_faults_" + uuid.uuid4().hex[:12]
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
        proxied = url.set(host="127.0.0.1", port=proxy.port).update_query_dict({"connect_timeout": "2"})
        store = SQLTokenStore(proxied.render_as_string(hide_password=False), table=table)
        direct = SQLTokenStore(url.render_as_string(hide_password=False), table=table)
    try:
        yield Faulty(request.param, proxy, store, direct)
    finally:
        proxy.stop()
        store.close()
        if request.param == "redis":
            for key in direct.client.scan_iter(match=direct.prefix + "*"):
                direct.client.delete(key)
        else:
            direct.table.drop(direct.engine, checkfirst=True)
        direct.close()


@pytest.fixture
def app(make_app: Any, faulty: Faulty) -> Any:
    return make_app(oauth=OAuth2Client(store=faulty.store, user_id_loader=lambda: USER), OAUTH2_REFRESH_LOCK_TIMEOUT=1)


def assert_store_unavailable(client: FlaskClient, path: str = "/protected") -> None:
    answer = client.get(path, headers=JSON)
    assert answer.status_code == 503, answer.data
    assert answer.get_json()["error"] == "store_unavailable"
    assert answer.headers["Retry-After"]
    page = client.get(path)  # a browser gets a short page, not a traceback
    assert page.status_code == 503
    assert b"Traceback" not in page.data
    assert b"store_unavailable" in page.data


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info], "an error was logged with a traceback"


def test_outage_gives_503_and_loses_nothing(
    app: Any, faulty: Faulty, fake_provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = app.test_client()
    assert login(client, fake_provider).status_code == 302
    assert client.get("/protected").status_code == 200
    before = faulty.direct.get("demo", USER)
    assert before is not None

    faulty.proxy.pause()
    started = time.monotonic()
    assert_store_unavailable(client)
    assert_store_unavailable(client, "/api/notes")
    # The provider accepts a new login, but its token cannot be stored: 503, not a 500.
    callback = client.get(provider_answer(client, fake_provider), headers=JSON)
    assert callback.status_code == 503, callback.data
    assert callback.get_json()["error"] == "store_unavailable"
    assert time.monotonic() - started < 10  # fails fast: short timeouts, refused connections
    assert faulty.proxy.refused > 0  # the app really did try, and was turned away
    no_tracebacks(caplog)

    faulty.proxy.resume()
    assert client.get("/protected").status_code == 200  # the pool reconnects by itself
    after = faulty.direct.get("demo", USER)
    assert after == before  # the token stored before the outage is intact
    notes = client.get("/api/notes")
    assert notes.status_code == 200
    assert notes.get_json()["user"] == "alice"


@pytest.mark.parametrize("next_request", ["same-process", "other-process"])
def test_store_lost_while_the_refreshed_token_is_written(
    next_request: str,
    app: Any,
    make_app: Any,
    faulty: Faulty,
    fake_provider: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The provider rotates the refresh token, then the store goes away before the new token is
    written: the request reports 503 (no silent loss). What happens next depends on where the
    user's next request lands (see the end)."""
    client = app.test_client()
    assert login(client, fake_provider).status_code == 302
    old = aged(faulty.direct.get("demo", USER), -5)  # expired: must be refreshed to be used
    faulty.direct.set("demo", USER, old)

    provider_client = app.extensions["oauth2_client"].clients["demo"]
    real_refresh = provider_client.refresh
    issued: list[Any] = []

    def refresh_then_outage(*args: Any, **kwargs: Any) -> Any:
        fresh = real_refresh(*args, **kwargs)  # the provider has rotated the refresh token...
        issued.append(fresh)
        faulty.proxy.pause()  # ...and the store goes away before the library writes it
        return fresh

    monkeypatch.setattr(provider_client, "refresh", refresh_then_outage)
    answer = client.get("/api/notes", headers=JSON)
    assert answer.status_code == 503, answer.data
    assert answer.get_json()["error"] == "store_unavailable"
    monkeypatch.undo()
    faulty.proxy.resume()
    errors = [r for r in caplog.records if r.name == "flask_oauth2_client" and r.levelno >= logging.ERROR]
    assert errors, "an unstored refreshed token must at least be logged as an error"
    no_tracebacks(caplog)

    (fresh,) = issued
    assert fake_provider.calls("token", grant_type="refresh_token") == 1
    assert not fake_provider.is_active(old.refresh_token)  # spent by the rotation
    assert fake_provider.is_active(fresh.refresh_token)
    assert faulty.direct.get("demo", USER) == old  # the store still has the spent one

    lock_key = f"{faulty.direct.prefix}lock:demo:{USER}" if faulty.kind == "redis" else ""
    if lock_key:
        # The Redis refresh lock could not be released during the outage: it stays until its TTL
        # (lock_ttl=3 here; 35 s from the default OAUTH2_* settings, 60 s for a RedisTokenStore built
        # by hand) and refreshes of this user wait for it meanwhile, then answer 503.
        # (PostgreSQL's advisory lock died with its connection.)
        assert faulty.direct.client.pttl(lock_key) > 0
        assert client.get("/api/notes", headers=JSON).status_code == 503  # lock timeout (1 s)
        wait_until(lambda: not faulty.direct.client.exists(lock_key))

    if next_request == "same-process":
        # The refresher kept the unstored token in this process's memory: the next request here
        # stores it instead of spending the dead refresh token. The user stays logged in.
        again = client.get("/api/notes", headers=JSON)
        assert again.status_code == 200, again.data
        assert faulty.direct.get("demo", USER) == fresh
        assert fake_provider.calls("token", grant_type="refresh_token") == 1
        return

    # LIMITATION (documented, reported): another worker process has no such memory. It spends the
    # dead refresh token, gets invalid_grant, deletes the token and asks the user to log in again;
    # the rotated refresh token, still valid at the provider, is lost (only the first process's
    # memory holds it, and that process now finds no stored token either).
    other = make_app(oauth=OAuth2Client(store=faulty.direct, user_id_loader=lambda: USER)).test_client()
    again = other.get("/api/notes", headers=JSON)
    assert again.status_code == 401, again.data
    assert again.get_json()["error"] == "reauthorization_required"
    assert faulty.direct.get("demo", USER) is None
    assert fake_provider.calls("token", grant_type="refresh_token") == 2
    assert client.get("/api/notes", headers=JSON).status_code == 401  # the first process too
    assert fake_provider.is_active(fresh.refresh_token)  # valid, held by nobody

    assert login(client, fake_provider).status_code == 302  # logging in again works
    assert client.get("/api/notes").status_code == 200


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# -- never reachable -------------------------------------------------------------------------


def closed_port(kind: str) -> Any:
    if kind == "sql-postgresql":
        return SQLTokenStore("postgresql+psycopg://postgres@127.0.0.1:9/test?connect_timeout=2", table="never_made")
    return RedisTokenStore("redis://127.0.0.1:9/0", prefix="never-used:")


@pytest.mark.parametrize("kind", ["sql-postgresql", "redis"])
def test_store_on_a_closed_port_gives_503(
    kind: str, make_app: Any, fake_provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    store = closed_port(kind)
    app = make_app(oauth=OAuth2Client(store=store, user_id_loader=lambda: USER))
    client = app.test_client()
    started = time.monotonic()
    try:
        assert_store_unavailable(client)
        callback = client.get(provider_answer(client, fake_provider), headers=JSON)
        assert callback.status_code == 503, callback.data
        assert callback.get_json()["error"] == "store_unavailable"
        assert b"127.0.0.1:9" not in callback.data  # no URL (nor password) in the answer
    finally:
        store.close()
    assert time.monotonic() - started < 15
    no_tracebacks(caplog)
