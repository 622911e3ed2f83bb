"""How the Redis store reads: one GET per read, on the same pooled connection (no TTL, EXISTS,
pipeline, PING, or a new client or connection per read), seen from the server through MONITOR.
Nothing here is timed."""

from __future__ import annotations

import uuid
from typing import Any

import redis

from flask_oauth2_client import Token
from flask_oauth2_client.crypto import TokenCipher
from flask_oauth2_client.stores.redis import RedisTokenStore


def a_token() -> Token:
    return Token.from_response(
        access_token="at-" + uuid.uuid4().hex, token_type="Bearer", expires_in=3600, refresh_token="rt-secret"
    )


def commands_of_reads(store: RedisTokenStore, redis_url: str, reads: list[tuple[str, str]]) -> list[tuple[int, str]]:
    """(client port, command) of every command the server received from the store's client
    while it made *reads*, as MONITOR shows them (other clients of the server are left out)."""
    sentinel = "end-of-reads-" + uuid.uuid4().hex
    watcher = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        with watcher.monitor() as monitor:
            for provider, user_id in reads:
                store.get(provider, user_id)
            store.client.echo(sentinel)  # through the same pool, hence the same connection
            events: list[dict[str, Any]] = []
            for event in monitor.listen():
                events.append(event)
                if sentinel in event["command"]:
                    break
    finally:
        watcher.close()
    own_port = events[-1]["client_port"]
    return [(event["client_port"], event["command"]) for event in events[:-1] if event["client_port"] == own_port]


def test_a_read_is_one_get_on_a_pooled_connection(redis_store: RedisTokenStore, redis_url: str) -> None:
    token = a_token()
    redis_store.set("demo", "u1", token)
    assert redis_store.get("demo", "u1") == token  # the pool has its connection
    reads = [("demo", "u1")] * 5 + [("demo", "nobody")]
    seen = commands_of_reads(redis_store, redis_url, reads)
    keys = [redis_store.key(*read) for read in reads]
    assert [command for _, command in seen] == [f"GET {key}" for key in keys]


def test_an_encrypted_read_is_one_get_too(redis_url: str, redis_prefix: str) -> None:
    from cryptography.fernet import Fernet

    store = RedisTokenStore(redis_url, prefix=redis_prefix, cipher=TokenCipher([Fernet.generate_key()]))
    try:
        token = a_token()
        store.set("demo", "u1", token)
        assert store.get("demo", "u1") == token
        seen = commands_of_reads(store, redis_url, [("demo", "u1")] * 3)
        assert [command for _, command in seen] == [f"GET {store.key('demo', 'u1')}"] * 3
    finally:
        store.delete("demo", "u1")
        store.close()


def test_a_record_read_again_is_not_decoded_again(redis_store):
    from flask_oauth2_client import Token

    codec = redis_store._codec
    redis_store.set("p", "u", Token(access_token="first"))
    first = redis_store.get("p", "u")
    assert redis_store.get("p", "u") is first  # same stored text: the decoded token is reused
    redis_store.set("p", "u", Token(access_token="second"))
    second = redis_store.get("p", "u")
    assert second is not None
    assert second.access_token == "second"  # another record: decoded anew
    assert len(codec._decoded) <= codec.CACHE_SIZE
