"""The app that test_multiprocess.py runs under gunicorn: ``multiproc_app:create_app()``.

Configured by environment variables (set by the test):

``MP_PROVIDER_URL``, ``MP_CLIENT_ID``, ``MP_CLIENT_SECRET``
    The FakeProvider running in the test process.
``OAUTH2_TOKEN_STORE``, ``OAUTH2_TOKEN_STORE_URL``
    ``"sql"`` or ``"redis"``, and the database / Redis URL.
``MP_TABLE`` / ``MP_PREFIX``
    The test's own table name (sql) or key prefix (redis).
``MP_READY_DIR``
    Each worker touches ``<dir>/<pid>`` once its app is built, so the test knows all are up.

Every request belongs to the same user, ``shared-user``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from flask import g

from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import Token
from flask_oauth2_client.stores import TokenStore

USER = "shared-user"


def build_store(kind: str, url: str, name: str) -> TokenStore:
    """The store the workers use; the test builds its own with the same arguments."""
    if kind == "sql":
        from flask_oauth2_client.stores.sql import SQLTokenStore

        return SQLTokenStore(url, table=name)
    if kind == "redis":
        from flask_oauth2_client.stores.redis import RedisTokenStore

        return RedisTokenStore(url, prefix=name)
    raise ValueError(f"unknown store {kind!r}")


def create_app() -> Flask:
    env = os.environ
    provider_url = env["MP_PROVIDER_URL"]
    kind = env["OAUTH2_TOKEN_STORE"]
    store = build_store(kind, env["OAUTH2_TOKEN_STORE_URL"], env["MP_TABLE"] if kind == "sql" else env["MP_PREFIX"])

    app = Flask("multiproc_app")
    app.config.update(
        SECRET_KEY="multiproc-secret-key-long-enough",
        OAUTH2_REFRESH_LOCK_TIMEOUT=20,
        OAUTH2_HTTP_TIMEOUT=10,
        OAUTH2_PROVIDERS={
            "demo": {
                "client_id": env["MP_CLIENT_ID"],
                "client_secret": env["MP_CLIENT_SECRET"],
                "authorize_url": provider_url + "/authorize",
                "token_url": provider_url + "/token",
                "scope": "read",
            }
        },
    )
    oauth = OAuth2Client(app, store=store, user_id_loader=lambda: USER)

    @app.before_request
    def remember_stored_token() -> None:
        # What this request finds in the store before token_required runs (None: nothing).
        token = store.get("demo", USER)
        g.seen = None if token is None else token.access_token

    @app.get("/api/notes")
    @oauth.token_required("demo")
    def notes(token: Token) -> Any:
        answer = requests.get(
            provider_url + "/api/notes", headers={"Authorization": token.authorization_header}, timeout=10
        )
        body = {"pid": os.getpid(), "seen": g.seen, "used": token.access_token, "api": answer.status_code}
        return body, answer.status_code

    @app.get("/pid")
    def pid() -> Any:
        return {"pid": os.getpid()}

    ready_dir = env.get("MP_READY_DIR")
    if ready_dir:
        Path(ready_dir, str(os.getpid())).touch()
    return app
