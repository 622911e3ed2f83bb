"""The HTTP endpoints of :class:`~.FakeProvider`, as a small Flask application."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import Final
from urllib.parse import unquote_plus
from urllib.parse import urlencode
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from flask import Flask
from flask import Response
from flask import render_template_string
from flask import request
from werkzeug.datastructures import MultiDict

from .provider import DEFAULT_SCOPE
from .provider import DEFAULT_USER
from .provider import SCOPE_CLAIMS
from .provider import Fault
from .provider import IDTokenSource
from .provider import RecordedRequest
from .provider import claims_for_scopes

if TYPE_CHECKING:
    from .provider import FakeProvider
    from .provider import _AccessToken
    from .provider import _Client

_FORM: Final = "application/x-www-form-urlencoded"
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_S256_CHALLENGE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_VERIFIER: Final = re.compile(r"[A-Za-z0-9._~-]{43,128}")
#: Fields the consent form adds to the authorization request's parameters.
_CONSENT_FIELDS: Final = frozenset({"decision", "username"})
_NOTES: Final = ("Curiouser and curiouser!", "We're all mad here.", "Drink me.")
_PROMPTS: Final = frozenset({"none", "login", "consent", "select_account"})
_MAX_AGE: Final = re.compile(r"[0-9]{1,10}")
_PROTOCOL_CLAIMS: Final = ("sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash")

_CONSENT_PAGE: Final = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Authorize {{ client_id }}</title></head>
<body>
<h1>Authorize {{ client_id }}</h1>
<p>The application <strong>{{ client_id }}</strong> asks for: {{ scope }}</p>
<form method="post" action="{{ action }}">
{%- for name, value in params %}
<input type="hidden" name="{{ name }}" value="{{ value }}">
{%- endfor %}
<label for="username">Sign in as</label>
<select id="username" name="username">
{%- for user in users %}
<option value="{{ user }}"{% if user == selected %} selected{% endif %}>{{ user }}</option>
{%- endfor %}
</select>
<button type="submit" id="approve" name="decision" value="approve">Approve</button>
<button type="submit" id="deny" name="decision" value="deny">Deny</button>
</form>
</body>
</html>
"""

_ERROR_PAGE: Final = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Authorization error</title></head>
<body><h1>Authorization error</h1><p>{{ error }}: {{ description }}</p></body>
</html>
"""

_SIGNED_OUT_PAGE: Final = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Signed out</title></head>
<body><h1>Signed out</h1><p>You are signed out of FakeProvider.</p></body>
</html>
"""

_PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class _OAuthError(Exception):
    """An error response of the token or revocation endpoint."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status


def _invalid_client(description: str) -> _OAuthError:
    return _OAuthError("invalid_client", description, 401)


class _PageError(Exception):
    """An authorization request that must not redirect: answer a 400 page."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


@dataclass(frozen=True)
class _Target:
    """Where and how the authorization response goes."""

    redirect_uri: str
    fragment: bool
    state: str | None


class _RedirectError(Exception):
    """An authorization request error reported by redirecting to the client."""

    def __init__(self, target: _Target, error: str, description: str) -> None:
        super().__init__(error)
        self.target = target
        self.error = error
        self.description = description


@dataclass(frozen=True)
class _AuthzRequest:
    client_id: str
    target: _Target
    redirect_uri_given: bool
    response_type: str
    scopes: tuple[str, ...]
    code_challenge: str | None
    login_hint: str | None
    params: tuple[tuple[str, str], ...]
    nonce: str | None = None
    prompt: frozenset[str] = frozenset()
    max_age: int | None = None


def create_app(provider: FakeProvider) -> Flask:
    """Build the Flask application that serves ``provider``."""
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 1 << 20
    views = _Views(provider)
    app.add_url_rule("/authorize", "authorize", views.authorize, methods=["GET", "POST"])
    app.add_url_rule("/token", "token", views.token, methods=["POST"])
    app.add_url_rule("/userinfo", "userinfo", views.userinfo, methods=["GET", "POST"])
    app.add_url_rule("/api/notes", "api", views.api, methods=["GET"])
    app.add_url_rule("/revoke", "revoke", views.revoke, methods=["POST"])
    app.add_url_rule("/.well-known/oauth-authorization-server", "metadata", views.metadata, methods=["GET"])
    app.add_url_rule(
        "/.well-known/openid-configuration", "openid_configuration", views.openid_configuration, methods=["GET"]
    )
    app.add_url_rule("/jwks", "jwks", views.jwks, methods=["GET"])
    app.add_url_rule("/logout", "logout", views.logout, methods=["GET", "POST"])
    return app


class _Views:
    def __init__(self, provider: FakeProvider) -> None:
        self.p = provider

    # -- common --------------------------------------------------------------

    def _record(
        self,
        endpoint: str,
        *,
        grant_type: str | None = None,
        client_id: str | None = None,
        auth_method: str | None = None,
    ) -> None:
        self.p.record(
            RecordedRequest(
                endpoint=endpoint,
                method=request.method,
                grant_type=grant_type,
                client_id=client_id,
                auth_method_used=auth_method,
                form=_form().to_dict(),
                headers=dict(request.headers.items()),
                query=request.args.to_dict(),
            )
        )

    def _fault(self, endpoint: str, grant_type: str | None = None) -> Fault | None:
        """The fault for this request, after its delay; ``None`` if there is none."""
        fault = self.p.take_fault(endpoint, grant_type)
        if fault is not None:
            self.p.sleep(fault.delay)
        return fault

    def _authenticate(self, params: Mapping[str, str]) -> _Client:
        """Authenticate the client of a token or revocation request."""
        header = request.headers.get("Authorization")
        body_id = params.get("client_id")
        body_secret = params.get("client_secret")
        secret: str | None
        if header is not None:
            creds = _parse_basic(header)
            if creds is None:
                raise _invalid_client("malformed or unsupported Authorization header")
            if body_secret is not None:
                raise _OAuthError("invalid_request", "more than one client authentication method")
            client_id, secret = creds
            if body_id is not None and body_id != client_id:
                raise _invalid_client("client_id in the body differs from the HTTP Basic one")
            method = "client_secret_basic"
        elif body_id is None:
            raise _invalid_client("client authentication is required")
        else:
            client_id, secret = body_id, body_secret
            method = "none" if body_secret is None else "client_secret_post"
        client = self.p.get_client(client_id)
        if client is None:
            raise _invalid_client("unknown client")
        allowed = client.allowed_auth_methods
        if method not in allowed:
            raise _invalid_client(f"this client must authenticate with {' or '.join(sorted(allowed))}")
        if method != "none":
            expected = (client.client_secret or "").encode()
            if not hmac.compare_digest((secret or "").encode(), expected):
                raise _invalid_client("client authentication failed")
        return client

    # -- authorization endpoint ----------------------------------------------

    def authorize(self) -> Response:
        is_post = request.method == "POST"
        source = _form() if is_post else request.args
        self._record("authorize", client_id=source.get("client_id"))
        fault = self._fault("authorize")
        if fault is not None and fault.status is not None and not fault.is_error_redirect:
            return _fault_response(fault)
        try:
            authz = self._validate_authorization(source)
        except _PageError as exc:
            return _error_page("invalid_request", exc.description)
        except _RedirectError as exc:
            return self._error_redirect(exc.target, exc.error, exc.description)
        if fault is not None and fault.json is not None and fault.is_error_redirect:
            params = {str(k): str(v) for k, v in fault.json.items()}
            return self._redirect(authz.target, params)
        if is_post:
            decision = source.get("decision")
            if decision == "deny":
                return self._error_redirect(authz.target, "access_denied", "the user denied access")
            username = source.get("username", "")
            if decision != "approve" or self.p.get_user(username) is None:
                return _error_page("invalid_request", "bad consent form submission")
            return self._approve(authz, username)
        if "none" in authz.prompt:
            username = self._default_user(authz)
            auth_time = self.p.session_auth_time(username)
            if auth_time is None or _too_old(auth_time, authz.max_age):
                return self._error_redirect(authz.target, "login_required", "the user is not signed in")
            return self._approve(authz, username)
        if self.p.auto_approve:
            return self._approve(authz, self._default_user(authz))
        return self._consent_page(authz)

    def _validate_authorization(self, source: MultiDict[str, str]) -> _AuthzRequest:
        lists = {k: v for k, v in source.lists() if k not in _CONSENT_FIELDS}

        def one(name: str) -> str | None:
            values = lists.get(name, [])
            return values[0] if len(values) == 1 else None

        # Errors about the client or the redirect URI never redirect.
        for name in ("client_id", "redirect_uri"):
            if len(lists.get(name, [])) > 1:
                raise _PageError(f"{name} is repeated")
        client_id = one("client_id")
        if not client_id:
            raise _PageError("client_id is missing")
        client = self.p.get_client(client_id)
        if client is None:
            raise _PageError("unknown client_id")
        redirect_uri = one("redirect_uri")
        given = redirect_uri is not None
        if redirect_uri is None:
            if client.redirect_uris is None or len(client.redirect_uris) != 1:
                raise _PageError("redirect_uri is missing")
            redirect_uri = client.redirect_uris[0]
        elif not _redirect_uri_allowed(client.redirect_uris, redirect_uri):
            raise _PageError("redirect_uri is not allowed for this client")

        # From here on, errors are redirected to the client.
        response_type = one("response_type")
        target = _Target(redirect_uri, response_type == "token", one("state"))

        def fail(error: str, description: str) -> _RedirectError:
            return _RedirectError(target, error, description)

        repeated = sorted(k for k, v in lists.items() if len(v) > 1)
        if repeated:
            raise fail("invalid_request", f"repeated parameter: {', '.join(repeated)}")
        if response_type is None:
            raise fail("invalid_request", "response_type is missing")
        if response_type not in ("code", "token"):
            raise fail("unsupported_response_type", "response_type must be code or token")
        try:
            scopes = _parse_scope(one("scope"))
        except ValueError as exc:
            raise fail("invalid_scope", str(exc)) from None
        challenge = None
        if response_type == "code":
            challenge = one("code_challenge")
            method = one("code_challenge_method")
            if challenge is None:
                if method is not None:
                    raise fail("invalid_request", "code_challenge_method without code_challenge")
                if self.p.require_pkce:
                    raise fail("invalid_request", "code_challenge is required (PKCE)")
            elif method != "S256":
                raise fail("invalid_request", "code_challenge_method must be S256")
            elif not _S256_CHALLENGE.fullmatch(challenge):
                raise fail("invalid_request", "malformed code_challenge")
        prompt = frozenset((one("prompt") or "").split())
        if not prompt <= _PROMPTS or ("none" in prompt and len(prompt) > 1):
            raise fail("invalid_request", "invalid prompt")
        max_age = one("max_age")
        if max_age is not None and not _MAX_AGE.fullmatch(max_age):
            raise fail("invalid_request", "max_age must be a non-negative integer")
        return _AuthzRequest(
            client_id=client_id,
            target=target,
            redirect_uri_given=given,
            response_type=response_type,
            scopes=scopes,
            code_challenge=challenge,
            login_hint=one("login_hint"),
            params=tuple((k, v[0]) for k, v in lists.items()),
            nonce=one("nonce"),
            prompt=prompt,
            max_age=None if max_age is None else int(max_age),
        )

    def _default_user(self, authz: _AuthzRequest) -> str:
        hint = authz.login_hint
        if hint is not None and self.p.get_user(hint) is not None:
            return hint
        return DEFAULT_USER

    def _approve(self, authz: _AuthzRequest, username: str) -> Response:
        previous = self.p.session_auth_time(username)
        fresh = "login" in authz.prompt or (previous is not None and _too_old(previous, authz.max_age))
        auth_time = self.p.sign_in(username, fresh=fresh)
        if authz.response_type == "token":
            payload = self.p.mint_tokens(authz.client_id, username, authz.scopes, refresh=False)
            params = {k: str(v) for k, v in payload.items()}
        else:
            code = self.p.create_code(
                authz.client_id,
                authz.target.redirect_uri,
                authz.redirect_uri_given,
                authz.code_challenge,
                username,
                authz.scopes,
                nonce=authz.nonce,
                auth_time=auth_time,
            )
            params = {"code": code}
        return self._redirect(authz.target, params)

    def _consent_page(self, authz: _AuthzRequest) -> Response:
        body = render_template_string(
            _CONSENT_PAGE,
            client_id=authz.client_id,
            scope=" ".join(authz.scopes),
            action=request.path,
            params=authz.params,
            users=self.p.usernames(),
            selected=self._default_user(authz),
        )
        return Response(body, 200, headers=_PAGE_HEADERS, mimetype="text/html")

    def _error_redirect(self, target: _Target, error: str, description: str) -> Response:
        return self._redirect(target, {"error": error, "error_description": description})

    def _redirect(self, target: _Target, params: dict[str, str]) -> Response:
        params = dict(params)
        if target.state is not None:
            params["state"] = target.state
        iss = self.p.send_iss
        if isinstance(iss, str):
            params["iss"] = iss
        elif iss:
            params["iss"] = self.p.issuer
        location = _add_params(target.redirect_uri, params, fragment=target.fragment)
        headers = {"Location": location, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        return Response("", 302, headers=headers)

    # -- token endpoint ------------------------------------------------------

    def token(self) -> Response:
        form = _form()
        params = form.to_dict()
        grant_type = params.get("grant_type")
        client_id, method = _claimed_client(params, request.headers.get("Authorization"))
        self._record("token", grant_type=grant_type, client_id=client_id, auth_method=method)
        fault = self._fault("token", grant_type)
        if fault is not None and fault.status is not None:
            return _fault_response(fault)
        override = fault.id_token if fault is not None else None
        grants: dict[str, Callable[[_Client, Mapping[str, str], IDTokenSource | None], dict[str, Any]]] = {
            "authorization_code": self._authorization_code_grant,
            "refresh_token": self._refresh_token_grant,
            "client_credentials": self._client_credentials_grant,
            "password": self._password_grant,
        }
        try:
            _check_form(form)
            client = self._authenticate(params)
            if grant_type is None:
                raise _OAuthError("invalid_request", "grant_type is missing")
            grant = grants.get(grant_type)
            if grant is None:
                raise _OAuthError("unsupported_grant_type", "this grant type is not supported")
            payload = grant(client, params, override)
        except _OAuthError as exc:
            return _oauth_error(exc)
        return _json(payload, 200, _NO_STORE)

    def _authorization_code_grant(
        self, client: _Client, params: Mapping[str, str], override: IDTokenSource | None
    ) -> dict[str, Any]:
        code = _required(params, "code")
        entry = self.p.redeem_code(code, client.client_id)
        if entry is None:
            raise _OAuthError("invalid_grant", "unknown authorization code")
        if entry.client_id != client.client_id:
            raise _OAuthError("invalid_grant", "the code was issued to another client")
        if entry.used:
            raise _OAuthError("invalid_grant", "the code was already used; tokens issued from it are revoked")
        if entry.expires_at <= time.time():
            raise _OAuthError("invalid_grant", "the code has expired")
        redirect_uri = params.get("redirect_uri")
        if (entry.redirect_uri_given or redirect_uri is not None) and (redirect_uri != entry.redirect_uri):
            raise _OAuthError("invalid_grant", "redirect_uri differs from the authorization request")
        verifier = params.get("code_verifier")
        if entry.code_challenge is None:
            if verifier is not None:
                raise _OAuthError("invalid_grant", "code_verifier without a code_challenge")
        elif verifier is None:
            raise _OAuthError("invalid_request", "code_verifier is missing")
        elif not _VERIFIER.fullmatch(verifier) or not hmac.compare_digest(_s256(verifier), entry.code_challenge):
            raise _OAuthError("invalid_grant", "PKCE verification failed")
        return self.p.mint_tokens(
            client.client_id,
            entry.user,
            entry.scopes,
            refresh=True,
            grant_id=entry.grant_id,
            id_token="openid" in entry.scopes,
            nonce=entry.nonce,
            auth_time=entry.auth_time,
            id_token_override=override,
        )

    def _refresh_token_grant(
        self, client: _Client, params: Mapping[str, str], override: IDTokenSource | None
    ) -> dict[str, Any]:
        refresh_token = _required(params, "refresh_token")
        entry = self.p.get_refresh_token(refresh_token)
        if entry is None:
            raise _OAuthError("invalid_grant", "the refresh token is unknown, revoked or spent")
        if entry.client_id != client.client_id:
            raise _OAuthError("invalid_grant", "the refresh token was issued to another client")
        scopes = entry.scopes
        if "scope" in params:
            try:
                scopes = _parse_scope(params["scope"])
            except ValueError as exc:
                raise _OAuthError("invalid_scope", str(exc)) from None
            if not set(scopes) <= set(entry.scopes):
                raise _OAuthError("invalid_scope", "scope exceeds the original grant")
        rotate = self.p.rotate_refresh_tokens
        if rotate and not self.p.spend_refresh_token(refresh_token):
            raise _OAuthError("invalid_grant", "the refresh token is unknown, revoked or spent")
        return self.p.mint_tokens(
            client.client_id,
            entry.user,
            scopes,
            refresh=rotate,
            grant_id=entry.grant_id,
            refresh_scopes=entry.scopes,
            id_token=self.p.id_token_on_refresh and "openid" in entry.scopes,
            auth_time=entry.auth_time,
            id_token_override=override,
        )

    def _client_credentials_grant(
        self, client: _Client, params: Mapping[str, str], override: IDTokenSource | None
    ) -> dict[str, Any]:
        if not client.confidential:
            raise _OAuthError("unauthorized_client", "public clients cannot use this grant")
        try:
            scopes = _parse_scope(params.get("scope"))
        except ValueError as exc:
            raise _OAuthError("invalid_scope", str(exc)) from None
        return self.p.mint_tokens(client.client_id, None, scopes, refresh=False)

    def _password_grant(
        self, client: _Client, params: Mapping[str, str], override: IDTokenSource | None
    ) -> dict[str, Any]:
        username = _required(params, "username")
        password = _required(params, "password")
        try:
            scopes = _parse_scope(params.get("scope"))
        except ValueError as exc:
            raise _OAuthError("invalid_scope", str(exc)) from None
        user = self.p.get_user(username)
        if user is None or not hmac.compare_digest(password.encode(), user.password.encode()):
            raise _OAuthError("invalid_grant", "wrong username or password")
        return self.p.mint_tokens(
            client.client_id,
            username,
            scopes,
            refresh=True,
            id_token="openid" in scopes,
            id_token_override=override,
        )

    # -- revocation ----------------------------------------------------------

    def revoke(self) -> Response:
        form = _form()
        params = form.to_dict()
        client_id, method = _claimed_client(params, request.headers.get("Authorization"))
        self._record("revoke", client_id=client_id, auth_method=method)
        fault = self._fault("revoke")
        if fault is not None and fault.status is not None:
            return _fault_response(fault)
        try:
            _check_form(form)
            client = self._authenticate(params)
            token = _required(params, "token")
            owner = self.p.find_token_owner(token, params.get("token_type_hint"))
            if owner is not None:
                kind, owner_id = owner
                if owner_id != client.client_id:
                    raise _OAuthError("invalid_grant", "the token was issued to another client")
                self.p.revoke(token, kind)
        except _OAuthError as exc:
            return _oauth_error(exc)
        return Response("", 200, headers={"Cache-Control": "no-store"})

    # -- protected resources -------------------------------------------------

    def _bearer(self) -> _AccessToken | Response:
        if "access_token" in request.args or "access_token" in _form():
            return _json(
                {
                    "error": "invalid_request",
                    "error_description": "send the token in the Authorization header",
                },
                400,
                {"WWW-Authenticate": 'Bearer error="invalid_request"'},
            )
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return _json(
                {"error": "unauthorized", "error_description": "a bearer token is required"},
                401,
                {"WWW-Authenticate": 'Bearer realm="FakeProvider"'},
            )
        token = self.p.get_access_token(value.strip())
        if token is None:
            return _invalid_token()
        return token

    def userinfo(self) -> Response:
        self._record("userinfo")
        fault = self._fault("userinfo")
        if fault is not None and fault.status is not None:
            return _fault_response(fault)
        token = self._bearer()
        if isinstance(token, Response):
            return token
        if token.user is None:
            return _json({"sub": token.client_id}, 200, {"Cache-Control": "no-store"})
        user = self.p.get_user(token.user)
        if user is None:
            return _invalid_token()
        claims = dict(user.claims)
        if "openid" in token.scopes:
            claims = claims_for_scopes(claims, token.scopes)
        claims["sub"] = str(claims.get("sub", token.user))
        if self.p.userinfo_sub is not None:
            claims["sub"] = self.p.userinfo_sub
        return _json(claims, 200, {"Cache-Control": "no-store"})

    def api(self) -> Response:
        self._record("api")
        fault = self._fault("api")
        if fault is not None and fault.status is not None:
            return _fault_response(fault)
        token = self._bearer()
        if isinstance(token, Response):
            return token
        sub = token.client_id
        if token.user is not None:
            user = self.p.get_user(token.user)
            sub = str(user.claims.get("sub", token.user)) if user is not None else token.user
        return _json({"notes": list(_NOTES), "user": sub}, 200, {"Cache-Control": "no-store"})

    # -- metadata ------------------------------------------------------------

    def metadata(self) -> Response:
        return self._metadata("metadata")

    def openid_configuration(self) -> Response:
        return self._metadata("openid_configuration")

    def _metadata(self, endpoint: str) -> Response:
        self._record(endpoint)
        fault = self._fault(endpoint)
        if fault is not None and fault.status is not None:
            return _fault_response(fault)
        document = self._metadata_document()
        for name, value in dict(self.p.metadata_overrides).items():
            if value is None:
                document.pop(name, None)
            else:
                document[name] = value
        return _json(document, 200)

    def _metadata_document(self) -> dict[str, Any]:
        """RFC 8414 metadata, which is also the OpenID Connect Discovery document."""
        auth_methods = ["client_secret_basic", "client_secret_post", "none"]
        return {
            "issuer": self.p.issuer,
            "authorization_endpoint": self.p.authorize_url,
            "token_endpoint": self.p.token_url,
            "userinfo_endpoint": self.p.userinfo_url,
            "jwks_uri": self.p.jwks_url,
            "revocation_endpoint": self.p.revocation_url,
            "end_session_endpoint": self.p.end_session_url,
            "scopes_supported": ["openid", *SCOPE_CLAIMS, "offline_access"],
            "response_types_supported": ["code", "token"],
            "response_modes_supported": ["query", "fragment"],
            "grant_types_supported": [
                "authorization_code",
                "implicit",
                "refresh_token",
                "client_credentials",
                "password",
            ],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [self.p.id_token_signing_alg],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "claims_supported": [*_PROTOCOL_CLAIMS, *sorted(set().union(*SCOPE_CLAIMS.values()))],
            "prompt_values_supported": sorted(_PROMPTS),
            "authorization_response_iss_parameter_supported": self.p.send_iss is not False,
        }

    # -- OpenID Connect ------------------------------------------------------

    def jwks(self) -> Response:
        self._record("jwks")
        fault = self._fault("jwks")
        if fault is not None and fault.status is not None:
            return _fault_response(fault)
        return _json(self.p.jwks(), 200)

    def logout(self) -> Response:
        """RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0)."""
        source = _form() if request.method == "POST" else request.args
        self._record("logout", client_id=source.get("client_id"))
        fault = self._fault("logout")
        if fault is not None and fault.status is not None:
            return _fault_response(fault)
        lists = dict(source.lists())
        repeated = sorted(k for k, v in lists.items() if len(v) > 1)
        if repeated:
            return _error_page("invalid_request", f"repeated parameter: {', '.join(repeated)}")

        def one(name: str) -> str | None:
            values = lists.get(name, [])
            return values[0] if values else None

        hint = one("id_token_hint")
        client_id = one("client_id")
        uri = one("post_logout_redirect_uri")
        user: str | None = None
        if hint is not None:
            claims = self.p.check_id_token_hint(hint)
            if claims is None:
                return _error_page("invalid_request", "id_token_hint was not issued by this provider")
            aud = claims["aud"]
            audiences = [aud] if isinstance(aud, str) else [str(a) for a in aud]
            if not audiences:
                return _error_page("invalid_request", "id_token_hint has no audience")
            if client_id is None:
                client_id = str(claims.get("azp") or audiences[0])
            elif client_id not in audiences:
                return _error_page("invalid_request", "id_token_hint was issued to another client")
            user = self.p.username_for_sub(str(claims["sub"]))
        client = None if client_id is None else self.p.get_client(client_id)
        if client_id is not None and client is None:
            return _error_page("invalid_request", "unknown client_id")
        if uri is not None:
            if client is None:
                return _error_page("invalid_request", "post_logout_redirect_uri needs client_id or id_token_hint")
            if not _redirect_uri_allowed(client.post_logout_redirect_uris, uri):
                return _error_page("invalid_request", "post_logout_redirect_uri is not registered for this client")
        if hint is None:
            self.p.end_session()
        elif user is not None:
            self.p.end_session(user)
        if uri is None:
            body = render_template_string(_SIGNED_OUT_PAGE)
            return Response(body, 200, headers=_PAGE_HEADERS, mimetype="text/html")
        state = one("state")
        location = uri if state is None else _add_params(uri, {"state": state}, fragment=False)
        headers = {"Location": location, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        return Response("", 302, headers=headers)


# -- helpers -----------------------------------------------------------------


def _form() -> MultiDict[str, str]:
    """The request's urlencoded form (empty for any other content type)."""
    if request.mimetype == _FORM:
        return request.form
    return MultiDict()


def _check_form(form: MultiDict[str, str]) -> None:
    if request.mimetype != _FORM:
        raise _OAuthError("invalid_request", f"the body must be {_FORM}")
    repeated = sorted(k for k, v in form.lists() if len(v) > 1)
    if repeated:
        raise _OAuthError("invalid_request", f"repeated parameter: {', '.join(repeated)}")


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise _OAuthError("invalid_request", f"{name} is missing")
    return value


def _parse_basic(header: str) -> tuple[str, str] | None:
    """``(client_id, secret)`` from an HTTP Basic header (RFC 6749 section 2.3.1)."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    return unquote_plus(client_id), unquote_plus(secret)


def _claimed_client(params: Mapping[str, str], authorization: str | None) -> tuple[str | None, str | None]:
    """The client id a request claims and how it authenticates (for the record)."""
    if authorization is not None:
        creds = _parse_basic(authorization)
        return (creds[0] if creds else params.get("client_id")), "client_secret_basic"
    if "client_secret" in params:
        return params.get("client_id"), "client_secret_post"
    if "client_id" in params:
        return params["client_id"], "none"
    return None, None


def _parse_scope(value: str | None) -> tuple[str, ...]:
    """Scope tokens of a space-separated ``scope`` (the default scope if empty)."""
    if value is None or not value.strip(" "):
        return DEFAULT_SCOPE
    scopes: list[str] = []
    for item in value.split(" "):
        if not item:
            continue
        if not _SCOPE_TOKEN.fullmatch(item):
            raise ValueError("malformed scope")
        if item not in scopes:
            scopes.append(item)
    return tuple(scopes)


def _too_old(auth_time: int, max_age: int | None) -> bool:
    """Whether a session started at ``auth_time`` exceeds ``max_age`` seconds."""
    return max_age is not None and time.time() - auth_time > max_age


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _redirect_uri_allowed(registered: tuple[str, ...] | None, uri: str) -> bool:
    if registered is not None:
        return uri in registered
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "#" not in uri


def _add_params(uri: str, params: Mapping[str, str], *, fragment: bool) -> str:
    parts = urlsplit(uri)
    encoded = urlencode(params)
    if fragment:
        return urlunsplit(parts._replace(fragment=encoded))
    query = f"{parts.query}&{encoded}" if parts.query else encoded
    return urlunsplit(parts._replace(query=query))


def _json(payload: Mapping[str, Any], status: int, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), status, headers=dict(headers or {}), mimetype="application/json")


def _oauth_error(exc: _OAuthError) -> Response:
    headers = dict(_NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="FakeProvider"'
    return _json({"error": exc.error, "error_description": exc.description}, exc.status, headers)


def _invalid_token() -> Response:
    return _json(
        {"error": "invalid_token", "error_description": "the access token is invalid or expired"},
        401,
        {"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def _error_page(error: str, description: str) -> Response:
    body = render_template_string(_ERROR_PAGE, error=error, description=description)
    return Response(body, 400, headers=_PAGE_HEADERS, mimetype="text/html")


def _fault_response(fault: Fault) -> Response:
    if fault.json is not None:
        response = _json(fault.json, fault.status or 500)
    else:
        response = Response(fault.body, fault.status or 500, content_type=fault.content_type)
    for name, value in (fault.headers or {}).items():
        response.headers[name] = value
    return response
