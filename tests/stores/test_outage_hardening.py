"""The store fails around a refresh (a TcpProxy between the app and the real PostgreSQL / Redis is
paused, see test_store_faults.py): a short outage is ridden out by writing the refreshed token
again, a long one costs a bounded time, a token kept in memory is announced when it is finally
stored, and a refresh lock that cannot be released fails nothing."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import aged
from helpers import login

# The fault-injection fixtures (a store behind a TcpProxy, and an app that uses it).
from stores.test_store_faults import USER
from stores.test_store_faults import Faulty
from stores.test_store_faults import app  # noqa: F401 - a fixture
from stores.test_store_faults import faulty  # noqa: F401 - a fixture
from stores.test_store_faults import wait_until

from flask_oauth2_client import StoreError
from flask_oauth2_client import Token
from flask_oauth2_client import token_refreshed
from flask_oauth2_client.refresher import STORE_RETRY_BUDGET
from flask_oauth2_client.refresher import STORE_RETRY_DELAYS
from flask_oauth2_client.stores.redis import RedisTokenStore
from flask_oauth2_client.testing import FakeProvider

JSON = {"Accept": "application/json"}


class Announcements:
    """Records every ``token_refreshed`` signal the app sends."""

    def __init__(self) -> None:
        self.tokens: list[Token] = []

    def __call__(self, _sender: Any, **kwargs: Any) -> None:
        assert kwargs["provider"] == "demo"
        assert kwargs["user_id"] == USER
        self.tokens.append(kwargs["token"])


@pytest.fixture
def announced(app: Any) -> Iterator[Announcements]:  # noqa: F811 - the imported fixture
    receiver = Announcements()
    with token_refreshed.connected_to(receiver, app):
        yield receiver


@pytest.fixture
def expired_login(app: Any, faulty: Faulty, fake_provider: FakeProvider) -> Any:  # noqa: F811
    """A logged-in test client whose stored token has expired (the next API call refreshes it)."""
    client = app.test_client()
    assert login(client, fake_provider).status_code == 302
    faulty.direct.set("demo", USER, aged(faulty.direct.get("demo", USER), -5))
    return client


def outage_after_refresh(
    app: Any,  # noqa: F811
    faulty: Faulty,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    *,
    lasting: float | None,
) -> list[Token]:
    """Make the store go away right after the provider answers the next refresh (for *lasting*
    seconds, or until the test resumes it); returns the list the issued token is appended to."""
    provider_client = app.extensions["oauth2_client"].clients["demo"]
    real_refresh = provider_client.refresh
    issued: list[Token] = []

    def refresh_then_outage(*args: Any, **kwargs: Any) -> Token:
        fresh = real_refresh(*args, **kwargs)  # the provider has rotated the refresh token
        issued.append(fresh)
        faulty.proxy.pause()
        if lasting is not None:
            timer = threading.Timer(lasting, faulty.proxy.resume)
            timer.daemon = True
            timer.start()
        return fresh

    monkeypatch.setattr(provider_client, "refresh", refresh_then_outage)
    return issued


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "flask_oauth2_client" and r.levelno >= logging.ERROR]


def no_secrets_logged(caplog: pytest.LogCaptureFixture, *tokens: Token) -> None:
    for token in tokens:
        for secret in (token.access_token, token.refresh_token):
            assert secret is None or secret not in caplog.text
    assert not [r for r in caplog.records if r.exc_info], "an error was logged with a traceback"


# -- 5. a refreshed token the store cannot take at once -------------------------------------------


def test_short_outage_while_storing_a_refreshed_token_is_ridden_out(
    app: Any,  # noqa: F811
    faulty: Faulty,  # noqa: F811
    fake_provider: FakeProvider,
    expired_login: Any,
    announced: Announcements,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old = faulty.direct.get("demo", USER)
    issued = outage_after_refresh(app, faulty, monkeypatch, lasting=0.15)
    answer = expired_login.get("/api/notes", headers=JSON)
    assert answer.status_code == 200, answer.data
    (fresh,) = issued
    assert faulty.direct.get("demo", USER) == fresh  # stored on a later attempt, same request
    assert fake_provider.calls("token", grant_type="refresh_token") == 1
    assert announced.tokens == [fresh]
    assert not errors_logged(caplog)
    no_secrets_logged(caplog, old, fresh)


def test_writing_a_refreshed_token_is_retried_for_a_bounded_time(
    app: Any,  # noqa: F811
    faulty: Faulty,  # noqa: F811
    expired_login: Any,
    announced: Announcements,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    issued = outage_after_refresh(app, faulty, monkeypatch, lasting=None)
    refused_before = faulty.proxy.refused
    started = time.monotonic()
    answer = expired_login.get("/api/notes", headers=JSON)
    assert answer.status_code == 503, answer.data
    assert answer.get_json()["error"] == "store_unavailable"
    # All the pauses, plus the failed attempts (refused connections fail at once) and the lock.
    assert time.monotonic() - started < STORE_RETRY_BUDGET + 1.5
    assert faulty.proxy.refused - refused_before >= len(STORE_RETRY_DELAYS) + 1  # every attempt tried
    assert len(errors_logged(caplog)) == 1
    assert announced.tokens == []  # nothing stored, nothing announced
    no_secrets_logged(caplog, *issued)


def test_token_kept_in_memory_is_announced_when_stored_later(
    app: Any,  # noqa: F811
    faulty: Faulty,  # noqa: F811
    fake_provider: FakeProvider,
    expired_login: Any,
    announced: Announcements,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issued = outage_after_refresh(app, faulty, monkeypatch, lasting=None)
    assert expired_login.get("/api/notes", headers=JSON).status_code == 503
    monkeypatch.undo()
    faulty.proxy.resume()
    (fresh,) = issued
    assert announced.tokens == []
    if faulty.kind == "redis":  # the lock left by the outage lives until its TTL (lock_ttl=3 here)
        lock_key = f"{faulty.direct.prefix}lock:demo:{USER}"
        wait_until(lambda: not faulty.direct.client.exists(lock_key))

    again = expired_login.get("/api/notes", headers=JSON)
    assert again.status_code == 200, again.data
    assert faulty.direct.get("demo", USER) == fresh
    assert announced.tokens == [fresh]  # announced once stored, by the request that stored it
    assert expired_login.get("/api/notes", headers=JSON).status_code == 200
    assert announced.tokens == [fresh]  # ...and only once
    assert fake_provider.calls("token", grant_type="refresh_token") == 1


# -- 3 and 6. a refresh lock that cannot be released --------------------------------------------


def test_refresh_succeeds_when_its_lock_cannot_be_released(
    app: Any,  # noqa: F811
    faulty: Faulty,  # noqa: F811
    expired_login: Any,
    announced: Announcements,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The store goes away after the refreshed token is written and before the lock is released:
    the request succeeds; the failed release is a warning without any token in it."""
    old = faulty.direct.get("demo", USER)
    real_set = faulty.store.set

    def set_then_outage(*args: Any) -> None:
        real_set(*args)
        faulty.proxy.pause()

    monkeypatch.setattr(faulty.store, "set", set_then_outage)
    answer = expired_login.get("/api/notes", headers=JSON)
    monkeypatch.undo()
    assert answer.status_code == 200, answer.data
    fresh = faulty.direct.get("demo", USER)
    assert fresh is not None
    assert fresh.access_token != old.access_token
    assert announced.tokens == [fresh]
    warnings = [r for r in caplog.records if r.name == "flask_oauth2_client" and r.levelno == logging.WARNING]
    assert any("could not be released" in r.getMessage() for r in warnings)
    assert not errors_logged(caplog)
    no_secrets_logged(caplog, old, fresh)
    if faulty.kind == "redis":
        # The lock lingers until its TTL: lock_ttl (3 s here) after it was taken.
        ttl = faulty.direct.client.pttl(f"{faulty.direct.prefix}lock:demo:{USER}")
        assert 0 < ttl <= faulty.store.lock_ttl * 1000


@pytest.mark.parametrize("faulty", ["redis"], indirect=True)
def test_redis_lock_left_by_an_outage_frees_itself_after_lock_ttl(
    faulty: Faulty,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    lock_key = f"{faulty.direct.prefix}lock:demo:{USER}"
    with faulty.store.lock("demo", USER, 1):
        faulty.proxy.pause()
    assert "could not be released" in caplog.text
    faulty.proxy.resume()
    assert faulty.direct.client.exists(lock_key)
    with pytest.raises(StoreError, match="timed out"), faulty.direct.lock("demo", USER, 0.2):
        pass  # held by nobody, yet held
    wait_until(lambda: not faulty.direct.client.exists(lock_key), timeout=faulty.store.lock_ttl + 2)
    with faulty.store.lock("demo", USER, 1):
        assert faulty.direct.client.exists(lock_key)
    assert not faulty.direct.client.exists(lock_key)


def test_redis_lock_that_expired_before_its_release_is_a_warning(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisTokenStore(redis_url, prefix=redis_prefix, lock_ttl=0.2)
    try:
        with store.lock("demo", USER, 1):
            time.sleep(0.4)  # a refresh slower than lock_ttl
        assert "expired before it was released" in caplog.text
    finally:
        store.close()
