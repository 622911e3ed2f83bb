"""The applications the comparison benchmark measures: the same job done four ways.

Every app (but the bare one) has the same three routes and a login:

- ``/plain``: an undecorated view returning ``"ok"`` (the "plain view, same app" baseline: the
  same app, the same session cookie, no library code in the view);
- ``/protected``: the library's way of requiring the current user's token, returning ``"ok"``;
- ``/api``: the same, then one ``GET`` of a downstream API (``spec["provider"]["api_url"]``, by
  default the provider's ``/api/notes``) through the library's own HTTP session, returning
  ``"ok"`` (or 502 when the API did not answer 200);
- a login route (``app.config["BENCH_LOGIN_PATH"]``) and its callback, redirecting to
  ``/protected`` when the login succeeded.

Libraries and stores (``spec["library"]`` / ``spec["store"]``):

``bare``
    A Flask app with nothing but ``/plain`` (and ``/api``: one ``GET`` with a shared, pooled
    ``requests.Session`` and a fixed token: the floor of a downstream call). No extension, no
    session cookie.
``ours``
    flask-oauth2-client, ``@oauth.token_required("demo")``; ``/api`` adds
    ``oauth.session("demo").get(...)``. Stores ``memory``, ``session``, ``sql-sqlite`` (the
    default SQLite file in the instance folder), ``sql-pg`` (an ``SQLTokenStore`` with a table of
    its own), ``redis`` (a key prefix of its own). ``OAUTH2_TOKEN_ENCRYPTION_KEYS`` is set, as
    ``docs/deployment.rst`` recommends (the memory store ignores it).
``authlib``
    Authlib's Flask client, as its documentation shows: ``oauth.register(..., fetch_token=...,
    update_token=...)``; the view checks ``oauth.demo.token`` (Authlib has no decorator and does
    not look at expiry before an API call); ``/api`` calls ``oauth.demo.get(...)``, which refreshes
    an expired token through ``update_token``. Stores: ``session`` (the token dict in Flask's
    session) and ``dict`` (a process-wide dict keyed by a random user id kept in the session).
``dance``
    Flask-Dance's ``OAuth2ConsumerBlueprint`` with PKCE and ``auto_refresh_url``; the view is
    checks ``blueprint.session.authorized`` (as Flask-Dance's quickstart does; its
    ``authorization_required`` decorator caches the first request's token for good, see README.md);
    ``/api`` calls ``blueprint.session.get(...)``. Stores: ``session`` (its default ``SessionStorage``),
    ``sqla-sqlite`` and ``sqla-pg`` (``SQLAlchemyStorage`` with ``OAuthConsumerMixin``, a
    ``scoped_session``, the user being a random id kept in the session).

Scope ``read write`` (no ``openid``): no ID token to validate, the same work for all three.
The factory is importable by gunicorn: ``gunicorn 'benchmarks.apps:from_env()'`` builds the app
described by the JSON in ``$BENCH_APP_SPEC``.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import warnings
from collections.abc import Callable
from typing import Any

import requests
from flask import Flask
from flask import redirect
from flask import request
from flask import session
from flask import url_for

SECRET_KEY = "benchmark-secret-key-of-a-realistic-length"
SCOPE = "read write"
NEXT = "/protected"

os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")  # Flask-Dance: the provider is http://127.0.0.1
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")


def create_app(spec: dict[str, Any]) -> Flask:
    builders: dict[str, Callable[[dict[str, Any]], Flask]] = {
        "bare": bare_app,
        "ours": ours_app,
        "authlib": authlib_app,
        "dance": dance_app,
    }
    app = builders[spec["library"]](spec)
    app.config["BENCH_SPEC"] = spec
    return app


def from_env() -> Flask:
    """The gunicorn entry point: the app described by ``$BENCH_APP_SPEC``."""
    return create_app(json.loads(os.environ["BENCH_APP_SPEC"]))


def _plain(app: Flask) -> None:
    @app.get("/plain")
    def plain() -> str:
        return "ok"


def _api_result(response: requests.Response) -> tuple[str, int]:
    return ("ok", 200) if response.status_code == 200 else (f"api: {response.status_code}", 502)


# -- bare -------------------------------------------------------------------------------------------


def bare_app(spec: dict[str, Any]) -> Flask:
    app = Flask("bench_bare")
    _plain(app)
    http = requests.Session()
    api_url = spec["provider"].get("api_url") or spec["provider"]["url"] + "/api/notes"
    headers = {"Authorization": "Bearer " + spec.get("api_token", "")}

    @app.get("/api")
    def api() -> tuple[str, int]:
        return _api_result(http.get(api_url, headers=headers, timeout=10))

    return app


# -- flask-oauth2-client ----------------------------------------------------------------------------


def ours_app(spec: dict[str, Any]) -> Flask:
    from flask_oauth2_client import OAuth2Client
    from flask_oauth2_client import Token

    provider = spec["provider"]
    store_name = spec["store"]
    app = Flask(f"bench_ours_{store_name}", instance_path=spec["instance_path"])
    app.config.update(
        SECRET_KEY=SECRET_KEY,
        OAUTH2_PROVIDERS={
            "demo": {
                "client_id": provider["client_id"],
                "client_secret": provider["client_secret"],
                "authorize_url": provider["url"] + "/authorize",
                "token_url": provider["url"] + "/token",
                "scope": SCOPE,
            }
        },
        BENCH_LOGIN_PATH="/oauth2/demo/login?next=" + NEXT,
    )
    store: Any = None
    if store_name in ("memory", "session"):
        app.config["OAUTH2_TOKEN_STORE"] = store_name
    elif store_name == "sql-sqlite":
        app.config["OAUTH2_TOKEN_STORE"] = "sql"
    elif store_name == "sql-pg":
        from flask_oauth2_client.crypto import TokenCipher
        from flask_oauth2_client.stores.sql import SQLTokenStore

        store = SQLTokenStore(spec["postgres_url"], cipher=TokenCipher([spec["key"]]), table=spec["pg_table"])
    elif store_name == "redis":
        app.config.update(
            OAUTH2_TOKEN_STORE="redis",
            OAUTH2_TOKEN_STORE_URL=spec["redis_url"],
            OAUTH2_TOKEN_STORE_PREFIX=spec["redis_prefix"],
        )
    else:
        raise ValueError(f"ours: unknown store {store_name!r}")
    if store is None and store_name != "memory":
        app.config["OAUTH2_TOKEN_ENCRYPTION_KEYS"] = spec["key"]  # as docs/deployment.rst recommends
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cookie-session warning of the session store
        oauth = OAuth2Client(app, store=store)
    _plain(app)
    api_url = provider.get("api_url") or provider["url"] + "/api/notes"

    @app.get("/protected")
    @oauth.token_required("demo")
    def protected(token: Token) -> str:
        return "ok"

    @app.get("/api")
    @oauth.token_required("demo")
    def api(token: Token) -> tuple[str, int]:
        return _api_result(oauth.session("demo").get(api_url))

    return app


# -- Authlib ----------------------------------------------------------------------------------------


def authlib_app(spec: dict[str, Any]) -> Flask:
    from authlib.integrations.flask_client import OAuth

    provider = spec["provider"]
    store_name = spec["store"]
    if store_name not in ("session", "dict"):
        raise ValueError(f"authlib: unknown store {store_name!r}")
    app = Flask(f"bench_authlib_{store_name}")
    app.config.update(SECRET_KEY=SECRET_KEY, BENCH_LOGIN_PATH="/login")
    tokens: dict[str, dict[str, Any]] = {}

    def fetch_token() -> dict[str, Any] | None:
        if store_name == "session":
            return session.get("demo_token")  # type: ignore[no-any-return]
        uid = session.get("uid")
        return None if uid is None else tokens.get(uid)

    def save_token(token: dict[str, Any]) -> None:
        if store_name == "session":
            session["demo_token"] = dict(token)
        else:
            tokens[session["uid"]] = dict(token)

    def update_token(token: dict[str, Any], refresh_token: str | None = None, access_token: str | None = None) -> None:
        save_token(token)

    oauth = OAuth(app)
    oauth.register(
        "demo",
        client_id=provider["client_id"],
        client_secret=provider["client_secret"],
        authorize_url=provider["url"] + "/authorize",
        access_token_url=provider["url"] + "/token",
        client_kwargs={"scope": SCOPE, "code_challenge_method": "S256"},
        fetch_token=fetch_token,
        update_token=update_token,
    )
    client = oauth.create_client("demo")
    _plain(app)
    api_url = provider.get("api_url") or provider["url"] + "/api/notes"

    def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not client.token:
                return redirect(url_for("login", next=request.full_path))
            return view(*args, **kwargs)

        return wrapper

    @app.get("/login")
    def login() -> Any:
        return client.authorize_redirect(url_for("callback", _external=True))

    @app.get("/callback")
    def callback() -> Any:
        token = client.authorize_access_token()
        if store_name == "dict":
            session["uid"] = secrets.token_urlsafe(16)  # a new id per login, as ours does
        save_token(token)
        return redirect(NEXT)

    @app.get("/protected")
    @login_required
    def protected() -> str:
        return "ok"

    @app.get("/api")
    @login_required
    def api() -> tuple[str, int]:
        return _api_result(client.get(api_url))

    return app


# -- Flask-Dance ------------------------------------------------------------------------------------


def dance_app(spec: dict[str, Any]) -> Flask:
    from flask_dance.consumer import OAuth2ConsumerBlueprint

    provider = spec["provider"]
    store_name = spec["store"]
    app = Flask(f"bench_dance_{store_name}", instance_path=spec.get("instance_path"))
    app.config.update(SECRET_KEY=SECRET_KEY, BENCH_LOGIN_PATH="/login/demo")
    storage: Any = None
    if store_name in ("sqla-sqlite", "sqla-pg"):
        storage = _dance_sqla_storage(app, spec)
    elif store_name != "session":
        raise ValueError(f"dance: unknown store {store_name!r}")
    blueprint = OAuth2ConsumerBlueprint(
        "demo",
        __name__,
        client_id=provider["client_id"],
        client_secret=provider["client_secret"],
        base_url=provider["url"],
        authorization_url=provider["url"] + "/authorize",
        token_url=provider["url"] + "/token",
        auto_refresh_url=provider["url"] + "/token",
        scope=SCOPE.split(),
        use_pkce=True,
        redirect_url=NEXT,
        storage=storage,
    )
    app.register_blueprint(blueprint, url_prefix="/login")
    _plain(app)
    api_url = provider.get("api_url") or provider["url"] + "/api/notes"

    def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
        # Not ``@blueprint.session.authorization_required``: that binds the OAuth2Session of
        # import time, whose cached ``token`` is then the first request's for every later request
        # of every user (see README.md). This is the check of Flask-Dance's quickstart.
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not blueprint.session.authorized:
                return redirect(url_for("demo.login"))
            return view(*args, **kwargs)

        return wrapper

    @app.get("/protected")
    @login_required
    def protected() -> str:
        return "ok"

    @app.get("/api")
    @login_required
    def api() -> tuple[str, int]:
        return _api_result(blueprint.session.get(api_url))

    return app


def _dance_sqla_storage(app: Flask, spec: dict[str, Any]) -> Any:
    import sqlalchemy as sa
    from flask_dance.consumer.storage.sqla import OAuthConsumerMixin
    from flask_dance.consumer.storage.sqla import SQLAlchemyStorage
    from sqlalchemy import orm

    if spec["store"] == "sqla-pg":
        url, table = spec["postgres_url"], spec["dance_pg_table"]
    else:
        os.makedirs(spec["instance_path"], exist_ok=True)
        url, table = "sqlite:///" + os.path.join(spec["instance_path"], "dance.sqlite3"), "flask_dance_oauth"

    class Base(orm.DeclarativeBase):
        pass

    class OAuth(OAuthConsumerMixin, Base):  # type: ignore[misc]
        __tablename__ = table
        user = sa.Column(sa.String(64), index=True)

    engine = sa.create_engine(url)
    Base.metadata.create_all(engine)
    db = orm.scoped_session(orm.sessionmaker(engine))

    @app.teardown_appcontext
    def remove_session(exc: BaseException | None) -> None:
        db.remove()  # what Flask-SQLAlchemy does

    @app.before_request
    def ensure_user() -> None:
        if "uid" not in session:
            session["uid"] = secrets.token_urlsafe(16)

    app.extensions["bench_dance_engine"] = engine
    return SQLAlchemyStorage(OAuth, db, user=lambda: session.get("uid"))
