"""The example app: sign in with an OAuth 2.0 provider, see who you are, call the provider's API.

``flask --app example_app.app run`` finds :func:`create_app` by itself (``make demo`` does this).
With no ``EXAMPLE_PROVIDER`` in the environment, the app starts an embedded
:class:`~flask_oauth2_client.testing.FakeProvider` and needs no network and no account; see
``example_app/README.md`` for GitHub and Google.

With the embedded FakeProvider, ``/password-login`` also demonstrates the legacy password grant
(:meth:`OAuth2Client.password_grant`) on a second provider, ``demo-password``.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import os
import secrets
from collections.abc import Callable
from collections.abc import Mapping
from datetime import datetime
from datetime import timezone
from typing import Any

import requests
from flask import Flask
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from werkzeug.wrappers import Response

from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import ReauthorizationRequired
from flask_oauth2_client import Token
from flask_oauth2_client import TokenError

from .providers import PASSWORD_PROVIDER
from .providers import ProviderSetup
from .providers import provider_setup
from .redact import install_werkzeug_filter

__all__ = ["EXTENSION_KEY", "ExampleState", "create_app"]

#: ``app.extensions[EXTENSION_KEY]`` is the app's :class:`ExampleState`.
EXTENSION_KEY = "example_app"
#: Seconds to wait for the provider's APIs.
API_TIMEOUT = 10
#: How much of an unknown JSON answer ``/api`` shows.
MAX_SHOWN_CHARS = 4000
#: The session key of the password form's one-time nonce (its CSRF protection).
FORM_NONCE_KEY = "password_form_nonce"


@dataclasses.dataclass(frozen=True)
class ExampleState:
    """What the example keeps per app: the extension and the chosen provider."""

    oauth: OAuth2Client
    provider: ProviderSetup


class UpstreamError(Exception):
    """The provider's API did not give a usable answer."""

    def __init__(self, message: str, status: int = 502, *, token_refused: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.token_refused = token_refused


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the example app. *config* overrides the defaults below (and may hold
    ``EXAMPLE_PROVIDER``, ``GITHUB_CLIENT_ID``... instead of the environment)."""
    config = dict(config or {})
    app = Flask(__name__)
    app.config.update(
        # A random key when none is given: sessions (and so logins) last until the process stops.
        SECRET_KEY=os.environ.get("SECRET_KEY") or secrets.token_hex(32),
        # Cookies are shared by every port of 127.0.0.1 (the embedded provider included): use a
        # name of our own. Lax, not Strict, so the cookie comes back with the provider's redirect.
        SESSION_COOKIE_NAME="example_session",
        SESSION_COOKIE_SAMESITE="Lax",
        # Tokens stay in this process's memory, keyed by a random per-browser id kept in the
        # (signed) session cookie. Right for this single-process demo: nothing of the token goes
        # to the browser, and no server is needed. With several workers or hosts use the "sql" or
        # "redis" store; the "session" store would need a server-side session (Flask-Session).
        OAUTH2_TOKEN_STORE="memory",
    )
    app.config.update({k: v for k, v in config.items() if k.isupper()})
    setup = provider_setup(config)
    providers: dict[str, Any] = {setup.name: dict(setup.settings)}
    if setup.password_settings is not None:
        providers[PASSWORD_PROVIDER] = dict(setup.password_settings)
    app.config.setdefault("OAUTH2_PROVIDERS", providers)

    install_werkzeug_filter()
    # With the password demo, this emits a DeprecationWarning (RFC 9700 §2.4): expected.
    oauth = OAuth2Client(app)
    app.extensions[EXTENSION_KEY] = ExampleState(oauth=oauth, provider=setup)
    _register_views(app, oauth, setup)
    if setup.password_settings is not None and PASSWORD_PROVIDER in app.config["OAUTH2_PROVIDERS"]:
        _register_password_demo(app, oauth, setup)
    return app


def _register_views(app: Flask, oauth: OAuth2Client, setup: ProviderSetup) -> None:
    name = setup.name

    @app.context_processor
    def page_context() -> dict[str, Any]:
        return {
            "example": setup,
            "signed_in": oauth.get_token(name) is not None,
            "login_url": url_for("oauth2.login", provider=name, next="/profile"),
            "logout_url": url_for("oauth2.logout", provider=name),
        }

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' https:; base-uri 'none'; frame-ancestors 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @app.get("/")
    def home() -> str:
        return render_template("home.html")

    @app.get("/profile")
    @oauth.token_required(name)
    def profile(token: Token) -> Response | tuple[str, int]:
        try:
            user = _userinfo(oauth, setup, setup.userinfo_url, token)
        except UpstreamError as error:
            return render_template("upstream_error.html", error=error), error.status
        if not isinstance(user, dict):
            user = {}
        return _private(
            render_template(
                "profile.html",
                user=_person(user),
                scopes=sorted(token.scopes),
                expiry=_expiry(token),
                has_refresh_token=token.refresh_token is not None,
            )
        )

    @app.get("/api")
    @oauth.token_required(name)
    def api(token: Token) -> Response | tuple[str, int]:
        try:
            data = _userinfo(oauth, setup, setup.api_url, token)
        except UpstreamError as error:
            return render_template("upstream_error.html", error=error), error.status
        items, raw = _summary(data)
        api_url = setup.api_url or "the UserInfo endpoint of the provider's metadata"
        return _private(render_template("api.html", items=items, raw=raw, api_url=api_url))


def _register_password_demo(app: Flask, oauth: OAuth2Client, setup: ProviderSetup) -> None:
    """``/password-login`` and ``/password-profile``: the legacy password grant.

    The app shows its own sign-in form (the library has no login route for this grant), sends
    the credentials to the provider with :meth:`OAuth2Client.password_grant`, and then calls the
    provider's API with :meth:`OAuth2Client.session`. The password is never stored, logged or
    shown again: a wrong one re-displays the form with the username only.
    """

    @app.context_processor
    def password_context() -> dict[str, Any]:
        return {"password_login_url": url_for("password_login")}

    def form(error: str | None = None, username: str = "", status: int = 200) -> Response:
        # CSRF protection: a one-time random value kept in the (signed) session and in the form.
        # A post from another site carries neither (the cookie is SameSite=Lax, the value secret).
        nonce = secrets.token_urlsafe(24)
        session[FORM_NONCE_KEY] = nonce
        response = _private(render_template("password_login.html", nonce=nonce, error=error, username=username))
        response.status_code = status
        return response

    @app.get("/password-login")
    def password_login() -> Response:
        return form()

    @app.post("/password-login")
    def password_login_submit() -> Response:
        expected = session.pop(FORM_NONCE_KEY, None)
        sent = request.form.get("nonce", "")
        if not isinstance(expected, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
            return form("This form has expired or did not come from this site; please sign in again.", status=400)
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        if not username or not password:
            return form("Enter a username and a password.", username, status=400)
        try:
            oauth.password_grant(PASSWORD_PROVIDER, username, password)
        except TokenError as error:
            if error.error != "invalid_grant":
                raise  # a provider or configuration fault: the library's error page (502...)
            return form("Wrong username or password.", username, status=400)
        return redirect(url_for("password_profile"), 303)

    @app.get("/password-profile")
    def password_profile() -> Response | tuple[str, int]:
        api = oauth.session(PASSWORD_PROVIDER)
        userinfo_url = setup.userinfo_url
        assert userinfo_url is not None  # the password demo runs on the embedded FakeProvider only
        try:
            user = _fetch_json(lambda: api.get(userinfo_url, headers={"Accept": "application/json"}))
        except ReauthorizationRequired:
            # No token (or it can no longer be refreshed): this grant has no login route.
            return redirect(url_for("password_login"), 303)
        except UpstreamError as error:
            retry = url_for("password_login")
            return render_template("upstream_error.html", error=error, retry_url=retry), error.status
        token = oauth.get_token(PASSWORD_PROVIDER)
        if token is None:
            return redirect(url_for("password_login"), 303)
        return _private(
            render_template(
                "profile.html",
                user=_person(user if isinstance(user, dict) else {}),
                scopes=sorted(token.scopes),
                expiry=_expiry(token),
                has_refresh_token=token.refresh_token is not None,
                token_label=f"{setup.label} (password grant, provider {PASSWORD_PROVIDER})",
                password_logout_url=url_for("oauth2.logout", provider=PASSWORD_PROVIDER),
            )
        )


def _private(html: str) -> Response:
    """A page about the signed-in user: not to be cached."""
    response = Response(html, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def _userinfo(oauth: OAuth2Client, setup: ProviderSetup, url: str | None, token: Token) -> Any:
    """GET *url* with the user's token; without a URL, the provider's UserInfo endpoint as the
    library finds it in the metadata (and checks that the answer is about the same user)."""
    if url is not None:
        return _get_json(url, token, setup.api_headers)
    return oauth.userinfo(setup.name)


def _get_json(url: str, token: Token, headers: Mapping[str, str]) -> Any:
    """GET *url* with the user's bearer token; the decoded JSON answer."""
    return _fetch_json(
        lambda: requests.get(
            url,
            headers={"Accept": "application/json", **headers, "Authorization": token.authorization_header},
            timeout=API_TIMEOUT,
        )
    )


def _fetch_json(send: Callable[[], requests.Response]) -> Any:
    """The decoded JSON answer of the API call *send* makes, or :class:`UpstreamError`."""
    try:
        answer = send()
    except requests.Timeout:
        raise UpstreamError("the provider did not answer in time", 504) from None
    except requests.RequestException:
        raise UpstreamError("the provider could not be reached") from None
    if answer.status_code in (401, 403):
        # Revoked at the provider (or lacking a permission): offer a new sign-in rather than
        # redirecting at once, which would loop if the provider kept refusing.
        raise UpstreamError(f"the provider refused the token (HTTP {answer.status_code})", token_refused=True)
    if answer.status_code != 200:
        raise UpstreamError(f"the provider answered HTTP {answer.status_code}")
    try:
        return answer.json()
    except ValueError:
        raise UpstreamError("the provider's answer is not JSON") from None


def _person(user: Mapping[str, Any]) -> dict[str, str | None]:
    """Who the user is, from the userinfo answer of FakeProvider, GitHub or Google."""

    def text(*keys: str) -> str | None:
        for key in keys:
            value = user.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                return str(value)
        return None

    picture = text("picture", "avatar_url")
    return {
        "name": text("name", "login", "email", "sub", "id") or "(no name given)",
        "login": text("login", "preferred_username"),
        "email": text("email"),
        "subject": text("sub", "id"),
        "picture": picture if picture and picture.startswith("https://") else None,
    }


def _expiry(token: Token) -> str:
    if token.expires_at is None:
        return "not given by the provider (the token lasts until it is revoked)"
    when = token.expires_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    seconds = (token.expires_at - datetime.now(timezone.utc)).total_seconds()
    if seconds <= 0:
        return f"{when} (expired; it is refreshed on the next protected page)"
    minutes = int(seconds // 60)
    left = f"{minutes} min" if minutes else f"{int(seconds)} s"
    return f"{when} (in {left})"


def _summary(data: Any) -> tuple[list[str], str | None]:
    """Short lines for a known answer (FakeProvider's notes, GitHub's repositories), else the
    JSON itself, cut to :data:`MAX_SHOWN_CHARS`."""
    if isinstance(data, dict) and isinstance(data.get("notes"), list):
        return [str(note) for note in data["notes"]], None
    if isinstance(data, list):
        names = [str(item.get("full_name") or item.get("name")) for item in data if isinstance(item, dict)]
        return [n for n in names if n and n != "None"], None
    raw = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
    if len(raw) > MAX_SHOWN_CHARS:
        raw = raw[:MAX_SHOWN_CHARS] + "\n…"
    return [], raw
