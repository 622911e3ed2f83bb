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
from typing import TypeGuard
from urllib.parse import unquote_plus
from urllib.parse import urlencode
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from flask import Flask
from flask import Response
from flask import render_template_string
from flask import request
from werkzeug.datastructures import MultiDict

from ._jose import ASYMMETRIC_ALGORITHMS
from ._jose import HMAC_ALGORITHMS
from ._jose import JoseError
from ._jose import Jws
from ._jose import b64url
from ._jose import is_private_jwk
from ._jose import jwk_thumbprint
from ._jose import parse_jws
from ._jose import peek_claims
from ._jose import peek_header
from ._jose import verify_with_jwk
from ._jose import verify_with_jwks
from ._jose import verify_with_secret
from .provider import ASSERTION_MAX_LIFETIME
from .provider import CLOCK_LEEWAY
from .provider import DEFAULT_SCOPE
from .provider import DEFAULT_USER
from .provider import DEVICE_CODE_GRANT
from .provider import DPOP_PROOF_MAX_AGE
from .provider import JWT_BEARER_ASSERTION
from .provider import SCOPE_CLAIMS
from .provider import DPoPProof
from .provider import Fault
from .provider import IDTokenSource
from .provider import RecordedRequest
from .provider import _DeviceGrant
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
#: Form fields of client authentication (not part of a pushed authorization request).
_CLIENT_AUTH_FIELDS: Final = frozenset({"client_secret", "client_assertion", "client_assertion_type"})
_JWT_AUTH_METHODS: Final = ("private_key_jwt", "client_secret_jwt")
_AUTH_METHODS_SUPPORTED: Final = (
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
    "none",
)

_DEVICE_PAGE: Final = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Connect a device</title></head>
<body>
<h1>Connect a device</h1>
<p>Enter the code shown on your device.</p>
<form method="post" action="{{ action }}">
<label for="user_code">Code</label>
<input type="text" id="user_code" name="user_code" value="{{ user_code }}" autocomplete="off">
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

_DEVICE_DONE_PAGE: Final = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Device {{ outcome }}</title></head>
<body><h1>Device {{ outcome }}</h1><p id="outcome">{{ outcome }}</p><p>You can return to your device.</p></body>
</html>
"""

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
    """An error response of the token, revocation, PAR or device authorization endpoint."""

    def __init__(
        self, error: str, description: str, status: int = 400, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status
        self.headers = dict(headers or {})


class _DPoPError(Exception):
    """A DPoP proof that is refused: ``use_nonce`` when only its nonce is missing or stale."""

    def __init__(self, description: str, *, use_nonce: bool = False) -> None:
        super().__init__(description)
        self.description = description
        self.use_nonce = use_nonce


def _invalid_client(description: str) -> _OAuthError:
    return _OAuthError("invalid_client", description, 401)


class _PageError(Exception):
    """An authorization request that must not redirect: answer a 400 page."""

    def __init__(self, description: str, error: str = "invalid_request") -> None:
        super().__init__(description)
        self.description = description
        self.error = error


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
    dpop_jkt: str | None = None
    #: The ``request_uri`` of a pushed request this authorization request refers to.
    request_uri: str | None = None


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
    app.add_url_rule("/par", "par", views.par, methods=["POST"])
    app.add_url_rule("/device_authorization", "device_authorization", views.device_authorization, methods=["POST"])
    app.add_url_rule("/device", "device", views.device, methods=["GET", "POST"])
    return app


#: A grant of the token endpoint: (client, form, ID token override, DPoP key thumbprint) -> response JSON.
_Grant = Callable[["_Client", Mapping[str, str], IDTokenSource | None, str | None], dict[str, Any]]


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
        """Authenticate the client of a token, revocation, PAR or device authorization request."""
        header = request.headers.get("Authorization")
        body_id = params.get("client_id")
        body_secret = params.get("client_secret")
        assertion_type = params.get("client_assertion_type")
        assertion = params.get("client_assertion")
        secret: str | None
        if assertion_type is not None or assertion is not None:
            if header is not None or body_secret is not None:
                raise _OAuthError("invalid_request", "more than one client authentication method")
            if not assertion_type or not assertion:
                raise _OAuthError("invalid_request", "client_assertion_type and client_assertion go together")
            if assertion_type != JWT_BEARER_ASSERTION:
                raise _invalid_client(f"unsupported client_assertion_type; expected {JWT_BEARER_ASSERTION}")
            return self._authenticate_assertion(assertion, body_id)
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

    def _authenticate_assertion(self, assertion: str, body_id: str | None) -> _Client:
        """``private_key_jwt`` / ``client_secret_jwt`` (RFC 7523 section 3, OpenID Connect Core 1.0 section 9)."""
        try:
            jws = parse_jws(assertion)
        except JoseError as exc:
            raise _invalid_client(f"client_assertion: {exc}") from None
        claims = jws.claims
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise _invalid_client("client_assertion: sub (the client_id) is missing")
        if claims.get("iss") != sub:
            raise _invalid_client("client_assertion: iss and sub must both be the client_id")
        if body_id is not None and body_id != sub:
            raise _invalid_client("client_id differs from the client assertion's sub")
        client = self.p.get_client(sub)
        if client is None:
            raise _invalid_client("unknown client")
        if client.auth_method not in _JWT_AUTH_METHODS:
            allowed = client.allowed_auth_methods
            raise _invalid_client(f"this client must authenticate with {' or '.join(sorted(allowed))}")
        alg = jws.alg
        if client.auth_method == "client_secret_jwt":
            if alg not in HMAC_ALGORITHMS:
                raise _invalid_client(
                    f"client_secret_jwt assertions are signed with {', '.join(HMAC_ALGORITHMS)}, not {alg!r}"
                )
            valid = verify_with_secret(jws, client.client_secret or "")
        else:
            if alg not in ASYMMETRIC_ALGORITHMS:
                raise _invalid_client(
                    f"private_key_jwt assertions are signed with {', '.join(ASYMMETRIC_ALGORITHMS)}, not {alg!r}"
                )
            try:
                valid = verify_with_jwks(jws, self.p._client_keys(client))
            except ValueError as exc:  # JoseError included
                raise _invalid_client(f"client_assertion: {exc}") from None
        if not valid:
            raise _invalid_client("client_assertion: the signature does not verify")
        self._check_assertion_claims(client.client_id, claims)
        return client

    def _check_assertion_claims(self, client_id: str, claims: Mapping[str, Any]) -> None:
        now = time.time()
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not audiences:
            raise _invalid_client("client_assertion: aud is missing")
        accepted = {self.p.issuer, self.p.token_url, self.p.url + request.path}
        if not accepted.intersection(a for a in audiences if isinstance(a, str)):
            raise _invalid_client(
                f"client_assertion: aud must contain the issuer ({self.p.issuer}) or this endpoint's URL"
            )
        exp = claims.get("exp")
        if not _is_number(exp):
            raise _invalid_client("client_assertion: exp is missing or not a number")
        if exp <= now - CLOCK_LEEWAY:
            raise _invalid_client("client_assertion: expired (exp)")
        if exp > now + ASSERTION_MAX_LIFETIME + CLOCK_LEEWAY:
            raise _invalid_client(
                f"client_assertion: exp is too far in the future (at most {ASSERTION_MAX_LIFETIME} seconds)"
            )
        for name in ("iat", "nbf"):
            value = claims.get(name)
            if value is None:
                continue
            if not _is_number(value):
                raise _invalid_client(f"client_assertion: {name} is not a number")
            if value > now + CLOCK_LEEWAY:
                raise _invalid_client(f"client_assertion: {name} is in the future")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise _invalid_client("client_assertion: jti is missing")
        if not self.p._use_assertion_jti(client_id, jti, float(exp) + CLOCK_LEEWAY):
            raise _invalid_client("client_assertion: this jti was already used (replay)")

    # -- DPoP ------------------------------------------------------------------

    def _check_dpop_proof(self, endpoint: str, *, access_token: str | None = None, jkt: str | None = None) -> str:
        """Check the request's DPoP proof (RFC 9449 section 4.3); return its key's thumbprint.

        :param access_token: the token the request presents (``ath`` must be its hash).
        :param jkt: the thumbprint of the key the token is bound to.
        :raises _DPoPError: the proof is missing, invalid, replayed, or lacks the current nonce.
        """
        # WSGI joins repeated headers with commas, which a JWT never contains.
        values = [v for header in request.headers.getlist("DPoP") for v in header.split(",")]
        url = _htu(request.base_url)
        token = values[0].strip() if len(values) == 1 else ""
        seen: dict[str, Any] = {"header": peek_header(token), "claims": peek_claims(token), "jkt": None}
        try:
            thumbprint = self._dpop_proof_checks(values, url, access_token, jkt, seen)
        except _DPoPError as exc:
            self._record_proof(endpoint, url, token, seen, "use_dpop_nonce" if exc.use_nonce else exc.description)
            raise
        self._record_proof(endpoint, url, token, seen, None)
        return thumbprint

    def _record_proof(self, endpoint: str, url: str, token: str, seen: Mapping[str, Any], error: str | None) -> None:
        self.p._record_dpop_proof(
            DPoPProof(
                endpoint=endpoint,
                method=request.method,
                url=url,
                jwt=token,
                header=dict(seen["header"]),
                claims=dict(seen["claims"]),
                jkt=seen["jkt"],
                accepted=error is None,
                error=error,
            )
        )

    def _dpop_proof_checks(
        self,
        values: list[str],
        url: str,
        access_token: str | None,
        jkt: str | None,
        seen: dict[str, Any],
    ) -> str:
        if not values:
            raise _DPoPError("a DPoP proof is required (DPoP header)")
        if len(values) > 1:
            raise _DPoPError("more than one DPoP header")
        try:
            jws = parse_jws(values[0].strip())
        except JoseError as exc:
            raise _DPoPError(f"bad DPoP proof: {exc}") from None
        header, claims = jws.header, jws.claims
        if str(header.get("typ", "")).lower() != "dpop+jwt":
            raise _DPoPError("the DPoP proof's typ must be dpop+jwt")
        if jws.alg not in ASYMMETRIC_ALGORITHMS:
            raise _DPoPError(f"the DPoP proof's alg must be one of {', '.join(ASYMMETRIC_ALGORITHMS)}")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise _DPoPError("the DPoP proof has no jwk header")
        if is_private_jwk(jwk):
            raise _DPoPError("the DPoP proof's jwk contains a private key")
        try:
            thumbprint = jwk_thumbprint(jwk)
            valid = verify_with_jwk(jws, jwk)
        except JoseError as exc:
            raise _DPoPError(f"the DPoP proof's jwk is unusable: {exc}") from None
        seen["jkt"] = thumbprint
        if not valid:
            raise _DPoPError("the DPoP proof's signature does not verify")
        _check_proof_claims(jws, request.method, url, access_token)
        if jkt is not None and not hmac.compare_digest(thumbprint, jkt):
            raise _DPoPError("the DPoP proof is signed with another key than the one the token is bound to")
        if self.p.require_dpop_nonce:
            nonce = claims.get("nonce")
            if not isinstance(nonce, str) or not hmac.compare_digest(nonce, self.p.dpop_nonce):
                raise _DPoPError("the DPoP proof must carry the server's current nonce", use_nonce=True)
        iat = float(claims["iat"])
        if not self.p._use_dpop_jti(thumbprint, str(claims["jti"]), iat + DPOP_PROOF_MAX_AGE + CLOCK_LEEWAY):
            raise _DPoPError("the DPoP proof's jti was already used (replay)")
        return thumbprint

    def _token_dpop(self, endpoint: str) -> str | None:
        """The thumbprint of the token (or PAR) request's DPoP key; ``None`` without a proof or DPoP support."""
        if not self.p.dpop or "DPoP" not in request.headers:
            return None
        try:
            return self._check_dpop_proof(endpoint)
        except _DPoPError as exc:
            if exc.use_nonce:
                raise _OAuthError("use_dpop_nonce", exc.description, 400, {"DPoP-Nonce": self.p.dpop_nonce}) from None
            raise _OAuthError("invalid_dpop_proof", exc.description) from None

    def _success_headers(self) -> dict[str, str]:
        headers = dict(_NO_STORE)
        if self.p.dpop and self.p.require_dpop_nonce:
            headers["DPoP-Nonce"] = self.p.dpop_nonce
        return headers

    # -- authorization endpoint ----------------------------------------------

    def authorize(self) -> Response:
        is_post = request.method == "POST"
        source = _form() if is_post else request.args
        self._record("authorize", client_id=source.get("client_id"))
        fault = self._fault("authorize")
        if fault is not None and fault.status is not None and not fault.is_error_redirect:
            return _fault_response(fault)
        try:
            source, request_uri = self._resolve_request_uri(source)
            authz = self._validate_authorization(source, request_uri=request_uri)
        except _PageError as exc:
            return _error_page(exc.error, exc.description)
        except _RedirectError as exc:
            return self._error_redirect(exc.target, exc.error, exc.description)
        shows_consent = not is_post and "none" not in authz.prompt and not self.p.auto_approve
        if request_uri is not None and (not shows_consent or (fault is not None and fault.is_error_redirect)):
            # RFC 9126 section 4: a request_uri is used once (a consent page may be reloaded).
            used = self.p._pushed_request(request_uri, authz.client_id, consume=True)
            if isinstance(used, str):
                return _error_page("invalid_request_uri", used)
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

    def _resolve_request_uri(self, source: MultiDict[str, str]) -> tuple[MultiDict[str, str], str | None]:
        """An authorization request by reference to a pushed one (RFC 9126 section 4): the pushed
        parameters (plus the consent form's fields) and the ``request_uri``; else ``source`` as it is."""
        uris = source.getlist("request_uri")
        if not uris:
            return source, None
        if len(uris) > 1:
            raise _PageError("request_uri is repeated")
        client_ids = source.getlist("client_id")
        if len(client_ids) != 1 or not client_ids[0]:
            raise _PageError("client_id is missing or repeated (it must come with request_uri)")
        pushed = self.p._pushed_request(uris[0], client_ids[0], consume=False)
        if isinstance(pushed, str):
            raise _PageError(pushed, "invalid_request_uri")
        resolved: MultiDict[str, str] = MultiDict(list(pushed.params))
        for name in _CONSENT_FIELDS:
            for value in source.getlist(name):
                resolved.add(name, value)
        return resolved, uris[0]

    def _validate_authorization(self, source: MultiDict[str, str], *, request_uri: str | None = None) -> _AuthzRequest:
        """Validate an authorization request; ``request_uri`` when it was pushed (or is being pushed: ``""``)."""
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

        if request_uri is None and self.p.require_par:
            raise fail("invalid_request", "this provider requires pushed authorization requests (RFC 9126)")

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
            dpop_jkt=one("dpop_jkt") if self.p.dpop else None,  # RFC 9449 section 10
            request_uri=request_uri or None,
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
                dpop_jkt=authz.dpop_jkt,
            )
            params = {"code": code}
        return self._redirect(authz.target, params)

    def _consent_page(self, authz: _AuthzRequest) -> Response:
        params = authz.params
        if authz.request_uri is not None:
            params = (("client_id", authz.client_id), ("request_uri", authz.request_uri))
        body = render_template_string(
            _CONSENT_PAGE,
            client_id=authz.client_id,
            scope=" ".join(authz.scopes),
            action=request.path,
            params=params,
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
        grants: dict[str, _Grant] = {
            "authorization_code": self._authorization_code_grant,
            "refresh_token": self._refresh_token_grant,
            "client_credentials": self._client_credentials_grant,
            "password": self._password_grant,
            DEVICE_CODE_GRANT: self._device_code_grant,
        }
        try:
            _check_form(form)
            jkt = self._token_dpop("token")
            client = self._authenticate(params)
            if grant_type is None:
                raise _OAuthError("invalid_request", "grant_type is missing")
            grant = grants.get(grant_type)
            if grant is None:
                raise _OAuthError("unsupported_grant_type", "this grant type is not supported")
            payload = grant(client, params, override, jkt)
        except _OAuthError as exc:
            return _oauth_error(exc)
        return _json(payload, 200, self._success_headers())

    def _authorization_code_grant(
        self, client: _Client, params: Mapping[str, str], override: IDTokenSource | None, jkt: str | None
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
        if entry.dpop_jkt is not None and (jkt is None or not hmac.compare_digest(jkt, entry.dpop_jkt)):
            raise _OAuthError("invalid_grant", "the code is bound to a DPoP key (dpop_jkt): send a proof of that key")
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
            jkt=jkt,
        )

    def _refresh_token_grant(
        self, client: _Client, params: Mapping[str, str], override: IDTokenSource | None, jkt: str | None
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
        if entry.jkt is not None and (jkt is None or not hmac.compare_digest(jkt, entry.jkt)):
            raise _OAuthError(
                "invalid_grant", "the refresh token is bound to a DPoP key: send a DPoP proof of that key"
            )
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
            jkt=jkt,
        )

    def _client_credentials_grant(
        self, client: _Client, params: Mapping[str, str], override: IDTokenSource | None, jkt: str | None
    ) -> dict[str, Any]:
        if not client.confidential:
            raise _OAuthError("unauthorized_client", "public clients cannot use this grant")
        try:
            scopes = _parse_scope(params.get("scope"))
        except ValueError as exc:
            raise _OAuthError("invalid_scope", str(exc)) from None
        return self.p.mint_tokens(client.client_id, None, scopes, refresh=False, jkt=jkt)

    def _password_grant(
        self, client: _Client, params: Mapping[str, str], override: IDTokenSource | None, jkt: str | None
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
            jkt=jkt,
        )

    def _device_code_grant(
        self, client: _Client, params: Mapping[str, str], override: IDTokenSource | None, jkt: str | None
    ) -> dict[str, Any]:
        """RFC 8628 section 3.4/3.5: poll for the tokens of a device authorization."""
        device_code = _required(params, "device_code")
        outcome = self.p._poll_device(device_code, client.client_id)
        if isinstance(outcome, tuple):
            raise _OAuthError(*outcome)
        assert outcome.user is not None
        return self.p.mint_tokens(
            client.client_id,
            outcome.user,
            outcome.scopes,
            refresh=True,
            id_token="openid" in outcome.scopes,
            id_token_override=override,
            jkt=jkt,
        )

    # -- pushed authorization requests (RFC 9126) ------------------------------

    def par(self) -> Response:
        form = _form()
        params = form.to_dict()
        client_id, method = _claimed_client(params, request.headers.get("Authorization"))
        self._record("par", client_id=client_id, auth_method=method)
        fault = self._fault("par")
        if fault is not None and fault.status is not None:
            return _fault_response(fault)
        try:
            _check_form(form)
            jkt = self._token_dpop("par")
            client = self._authenticate(params)
            pushed = [(k, v) for k, v in form.items(multi=True) if k not in _CLIENT_AUTH_FIELDS]
            names = {k for k, _ in pushed}
            if "request_uri" in names:
                raise _OAuthError("invalid_request", "request_uri must not be pushed (RFC 9126 section 2.1)")
            if "request" in names:
                raise _OAuthError("request_not_supported", "request objects are not supported")
            if "client_id" not in names:
                pushed.insert(0, ("client_id", client.client_id))
            if jkt is not None:
                if "dpop_jkt" in names and params["dpop_jkt"] != jkt:
                    raise _OAuthError("invalid_dpop_proof", "dpop_jkt differs from the DPoP proof's key")
                if "dpop_jkt" not in names:
                    pushed.append(("dpop_jkt", jkt))
            try:
                authz = self._validate_authorization(MultiDict(pushed), request_uri="")
            except _PageError as exc:
                raise _OAuthError(exc.error, exc.description) from None
            except _RedirectError as exc:
                raise _OAuthError(exc.error, exc.description) from None
            if authz.client_id != client.client_id:
                raise _OAuthError("invalid_request", "client_id differs from the authenticated client")
            request_uri, ttl = self.p._push_request(client.client_id, pushed)
        except _OAuthError as exc:
            return _oauth_error(exc)
        return _json({"request_uri": request_uri, "expires_in": ttl}, 201, self._success_headers())

    # -- device authorization grant (RFC 8628) ----------------------------------

    def device_authorization(self) -> Response:
        form = _form()
        params = form.to_dict()
        client_id, method = _claimed_client(params, request.headers.get("Authorization"))
        self._record("device_authorization", client_id=client_id, auth_method=method)
        fault = self._fault("device_authorization")
        if fault is not None and fault.status is not None:
            return _fault_response(fault)
        try:
            _check_form(form)
            client = self._authenticate(params)
            try:
                scopes = _parse_scope(params.get("scope"))
            except ValueError as exc:
                raise _OAuthError("invalid_scope", str(exc)) from None
            grant = self.p._create_device_grant(client.client_id, scopes)
        except _OAuthError as exc:
            return _oauth_error(exc)
        uri = self.p.device_verification_url
        payload = {
            "device_code": grant.device_code,
            "user_code": grant.user_code,
            "verification_uri": uri,
            "verification_uri_complete": f"{uri}?{urlencode({'user_code': grant.user_code})}",
            "expires_in": max(0, round(grant.expires_at - time.time())),
            "interval": self.p.device_interval,
        }
        return _json(payload, 200, _NO_STORE)

    def device(self) -> Response:
        """The verification page: enter the user code, approve or deny (auto-approved from
        ``verification_uri_complete`` with ``auto_approve``)."""
        is_post = request.method == "POST"
        source = _form() if is_post else request.args
        self._record("device")
        fault = self._fault("device")
        if fault is not None and fault.status is not None:
            return _fault_response(fault)
        user_code = source.get("user_code", "")
        grant: _DeviceGrant | None = self.p._pending_device(user_code) if user_code else None
        if is_post or (grant is not None and self.p.auto_approve):
            if grant is None:
                return _error_page("invalid_request", "unknown, expired or already used user code")
            decision = source.get("decision", "approve" if not is_post else "")
            username = source.get("username", DEFAULT_USER)
            try:
                if decision == "deny":
                    self.p.deny_device(user_code)
                    return _device_done("denied")
                if decision == "approve" and self.p.get_user(username) is not None:
                    self.p.approve_device(user_code, username)
                    return _device_done("approved")
            except ValueError:
                return _error_page("invalid_request", "unknown, expired or already used user code")
            return _error_page("invalid_request", "bad device form submission")
        if user_code and grant is None:
            return _error_page("invalid_request", "unknown, expired or already used user code")
        body = render_template_string(
            _DEVICE_PAGE,
            action=request.path,
            user_code=user_code,
            users=self.p.usernames(),
            selected=DEFAULT_USER,
        )
        return Response(body, 200, headers=_PAGE_HEADERS, mimetype="text/html")

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

    def _bearer(self, endpoint: str) -> _AccessToken | Response:
        """The access token of a resource request (RFC 6750, or RFC 9449 with the DPoP scheme)."""
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
        if scheme.lower() == "dpop" and value.strip():
            return self._dpop_bound(endpoint, value.strip())
        if scheme.lower() != "bearer" or not value.strip():
            response = _json(
                {"error": "unauthorized", "error_description": "a bearer token is required"},
                401,
                {"WWW-Authenticate": 'Bearer realm="FakeProvider"'},
            )
            if self.p.dpop:
                response.headers.add("WWW-Authenticate", _challenge("DPoP", algs=" ".join(ASYMMETRIC_ALGORITHMS)))
            return response
        token = self.p.get_access_token(value.strip())
        if token is None:
            return _invalid_token()
        if token.jkt is not None:
            return _dpop_challenge(
                "invalid_token", "this token is DPoP-bound: send it with the DPoP scheme and a DPoP proof"
            )
        return token

    def _dpop_bound(self, endpoint: str, value: str) -> _AccessToken | Response:
        """``Authorization: DPoP <token>`` with a ``DPoP`` proof (RFC 9449 section 7)."""
        token = self.p.get_access_token(value)
        if token is None:
            return _dpop_challenge("invalid_token", "the access token is invalid or expired")
        if token.jkt is None:
            return _dpop_challenge("invalid_token", "this token is not DPoP-bound: send it with the Bearer scheme")
        try:
            self._check_dpop_proof(endpoint, access_token=value, jkt=token.jkt)
        except _DPoPError as exc:
            if exc.use_nonce:
                return _dpop_challenge("use_dpop_nonce", exc.description, nonce=self.p.dpop_nonce)
            return _dpop_challenge("invalid_dpop_proof", exc.description)
        return token

    def userinfo(self) -> Response:
        self._record("userinfo")
        fault = self._fault("userinfo")
        if fault is not None and fault.status is not None:
            return _fault_response(fault)
        token = self._bearer("userinfo")
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
        token = self._bearer("api")
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
        auth_methods = list(_AUTH_METHODS_SUPPORTED)
        signing_algs = [*ASYMMETRIC_ALGORITHMS, *HMAC_ALGORITHMS]
        document: dict[str, Any] = {
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
                DEVICE_CODE_GRANT,
            ],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [self.p.id_token_signing_alg],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": auth_methods,
            "token_endpoint_auth_signing_alg_values_supported": signing_algs,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_signing_alg_values_supported": signing_algs,
            "claims_supported": [*_PROTOCOL_CLAIMS, *sorted(set().union(*SCOPE_CLAIMS.values()))],
            "prompt_values_supported": sorted(_PROMPTS),
            "authorization_response_iss_parameter_supported": self.p.send_iss is not False,
            "pushed_authorization_request_endpoint": self.p.par_url,
            "require_pushed_authorization_requests": bool(self.p.require_par),
            "device_authorization_endpoint": self.p.device_authorization_url,
        }
        if self.p.dpop:
            document["dpop_signing_alg_values_supported"] = list(ASYMMETRIC_ALGORITHMS)
        return document

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
    if "client_assertion" in params and authorization is None:
        sub = peek_claims(params["client_assertion"]).get("sub")
        alg = str(peek_header(params["client_assertion"]).get("alg", ""))
        claimed = params.get("client_id") or (sub if isinstance(sub, str) else None)
        return claimed, "client_secret_jwt" if alg.startswith("HS") else "private_key_jwt"
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
    headers.update(exc.headers)
    return _json({"error": exc.error, "error_description": exc.description}, exc.status, headers)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _htu(url: str) -> str:
    """``url`` without query and fragment, normalised (RFC 3986 sections 6.2.2 and 6.2.3).

    :raises ValueError: not a URL with a valid port.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port is None or port == default else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def _check_proof_claims(jws: Jws, method: str, url: str, access_token: str | None) -> None:
    """The claims of a DPoP proof for a ``method`` request to ``url`` (RFC 9449 section 4.3)."""
    claims = jws.claims
    for name in ("jti", "htm", "htu", "iat"):
        if name not in claims:
            raise _DPoPError(f"the DPoP proof has no {name} claim")
    if not isinstance(claims["jti"], str) or not claims["jti"]:
        raise _DPoPError("the DPoP proof's jti must be a non-empty string")
    if claims["htm"] != method:
        raise _DPoPError(f"the DPoP proof's htm must be {method}")
    try:
        htu = _htu(claims["htu"]) if isinstance(claims["htu"], str) else None
    except ValueError:
        htu = None
    if htu != url:
        raise _DPoPError(f"the DPoP proof's htu must be {url}")
    iat = claims["iat"]
    if not _is_number(iat):
        raise _DPoPError("the DPoP proof's iat must be a number")
    now = time.time()
    if iat > now + CLOCK_LEEWAY:
        raise _DPoPError("the DPoP proof's iat is in the future")
    if iat < now - DPOP_PROOF_MAX_AGE:
        raise _DPoPError("the DPoP proof is too old (iat)")
    if access_token is not None:
        ath = claims.get("ath")
        if ath is None:
            raise _DPoPError("the DPoP proof has no ath claim (the hash of the access token)")
        expected = b64url(hashlib.sha256(access_token.encode("utf-8")).digest())
        if not isinstance(ath, str) or not hmac.compare_digest(ath, expected):
            raise _DPoPError("the DPoP proof's ath does not match the access token")


def _challenge(scheme: str, **params: str) -> str:
    """A ``WWW-Authenticate`` challenge, its parameter values quoted (quotes and backslashes dropped)."""
    rendered = ", ".join(f'{k}="{v.replace(chr(92), "").replace(chr(34), "")}"' for k, v in params.items())
    return f"{scheme} {rendered}" if rendered else scheme


def _invalid_token() -> Response:
    return _json(
        {"error": "invalid_token", "error_description": "the access token is invalid or expired"},
        401,
        {"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def _device_done(outcome: str) -> Response:
    body = render_template_string(_DEVICE_DONE_PAGE, outcome=outcome)
    return Response(body, 200, headers=_PAGE_HEADERS, mimetype="text/html")


def _dpop_challenge(error: str, description: str, *, nonce: str | None = None) -> Response:
    """A 401 of a protected resource with a DPoP challenge (RFC 9449 section 7.1)."""
    challenge = _challenge("DPoP", error=error, error_description=description, algs=" ".join(ASYMMETRIC_ALGORITHMS))
    headers = {"WWW-Authenticate": challenge, "Cache-Control": "no-store"}
    if nonce is not None:
        headers["DPoP-Nonce"] = nonce
    return _json({"error": error, "error_description": description}, 401, headers)


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
