"""The ``oauth2`` blueprint: the login, callback and logout routes, and the error handler."""

from __future__ import annotations

import logging
import re
import time
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint
from flask import abort
from flask import current_app
from flask import jsonify
from flask import redirect
from flask import request
from flask import session
from werkzeug.wrappers import Response

from . import _session
from . import pending
from ._http import printable as _short
from .end_session import end_session_page
from .errors import AuthorizationError
from .errors import CallbackError
from .errors import ConfigurationError
from .errors import OAuth2Error
from .errors import ReauthorizationRequired
from .errors import StateError
from .extension import BROWSER_GRANTS
from .extension import _AppState
from .extension import _state
from .extension import code_verifier
from .extension import nonce
from .extension import reauthorization_response
from .extension import redirect_uri
from .redirects import safe_next
from .responses import error_response
from .responses import no_store
from .signals import authorization_failed
from .signals import token_obtained
from .token import Token

__all__ = ["blueprint", "handle_error"]

log = logging.getLogger("flask_oauth2_client")

blueprint = Blueprint(
    "oauth2", __name__, template_folder="templates", static_folder="static", static_url_path="/_static"
)

#: Longest ``next`` kept for after the login; longer ones fall back to ``OAUTH2_DEFAULT_NEXT``.
MAX_NEXT_LENGTH = 1024
#: Longest ``scope`` the login route accepts for incremental authorization.
MAX_SCOPE_PARAM = 512
# Scope tokens (NQCHAR: %x21 / %x23-5B / %x5D-7E) separated by spaces or commas.
_SCOPE_PARAM = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?:[ ,]+[\x21\x23-\x5b\x5d-\x7e]+)*")


@blueprint.after_request
def _security_headers(response: Response) -> Response:
    return no_store(response)


def _known(state: _AppState, provider: str) -> None:
    if provider not in state.settings.providers:
        abort(404)


@blueprint.get("/<provider>/jwks")
def jwks(provider: str) -> Response:
    """The public keys of the provider's ``client_keys`` (``private_key_jwt``) as a JWK Set, for
    the provider to fetch (register this URL as the client's ``jwks_uri``); 404 without keys."""
    state = _state()
    _known(state, provider)
    keys = state.provider(provider).client_keys
    if not keys:
        abort(404)
    return jsonify({"keys": [key.public_jwk() for key in keys]})  # no-store (as every answer here)


@blueprint.get("/<provider>/login")
def login(provider: str) -> Response:
    """Start a login with *provider*; ``?next=/path`` says where to go afterwards."""
    state = _state()
    _known(state, provider)
    if state.provider(provider).grant_type not in BROWSER_GRANTS:
        abort(404)
    params: dict[str, str] = {}
    scope = request.args.get("scope")
    if scope:
        # Any site can link here: accept only well-formed scope tokens (RFC 6749 §3.3), briefly.
        if len(scope) > MAX_SCOPE_PARAM or not _SCOPE_PARAM.fullmatch(scope):
            raise CallbackError("the requested scope is malformed", provider=provider, reason="invalid_scope")
        params["scope"] = scope
    target = request.args.get("next")
    if target is not None and len(target) > MAX_NEXT_LENGTH:
        target = None  # too long to keep in the session: go to OAUTH2_DEFAULT_NEXT afterwards
    return state.extension.authorize_redirect(provider, next=target, **params)


@blueprint.get("/<provider>/callback")
def callback(provider: str) -> Response:
    """The redirection endpoint: verify the answer, exchange the code, store the token."""
    state = _state()
    _known(state, provider)
    if request.method != "GET":
        abort(405)  # a HEAD (link preview, prefetch) must not spend the code
    if state.provider(provider).grant_type == "implicit":
        return implicit.page(provider)
    try:
        return _complete_login(state, provider)
    except OAuth2Error as error:
        failed_login(provider, error)
        raise


def accept_answer(state: _AppState, provider: str, answer: Any) -> pending.PendingAuthorization:
    """The checks every authorization response goes through (query or posted fragment), in
    order: the state (not repeated; its pending login consumed, single use, whatever happens
    next), no other repeated parameter, ``iss`` (RFC 9207), then ``error``. Returns the login."""
    repeated = sorted(key for key in answer if len(answer.getlist(key)) > 1)
    if "state" in repeated:
        raise StateError("the state parameter is repeated", provider=provider, reason="invalid_request")
    received_state = _param(answer, "state")
    if not received_state:
        raise StateError("the answer has no state; start the login again", provider=provider, reason="invalid_state")
    started = pending.consume(received_state, provider=provider, ttl=int(state.settings.state_ttl))
    # From here on the pending login is spent, whatever happens.
    if repeated:
        raise CallbackError(
            f"repeated parameter {_short(repeated[0], 40)!r} in the answer", provider=provider, reason="invalid_request"
        )
    # RFC 9207: before anything else of the answer is used (an error too can be a mix-up).
    state.client(provider).check_response_issuer(_param(answer, "iss"))
    error = _param(answer, "error")
    if error is not None:
        raise AuthorizationError(
            _short(error) or "invalid_request",
            provider=provider,
            description=_short(_param(answer, "error_description")),
            uri=_param(answer, "error_uri"),
        )
    return started


def _complete_login(state: _AppState, provider: str) -> Response:
    args = request.args
    started = accept_answer(state, provider, args)
    client = state.client(provider)
    code = _param(args, "code")
    if code is None:
        raise CallbackError("the answer has neither a code nor an error", provider=provider, reason="missing_code")

    if state.extension.has_user_id_loader and state.extension.current_user_id() is None:
        raise CallbackError("nobody is signed in to the application", provider=provider, reason="login_required")
    verifier = code_verifier(started) if started.pkce else None
    token = client.exchange_code(
        code,
        redirect_uri=redirect_uri(client.config),
        code_verifier=verifier,
        scopes=tuple(dict.fromkeys(client.config.scopes + started.scopes)),
        nonce=nonce(started),
    )
    return finish_login(state, provider, started, token)


def finish_login(state: _AppState, provider: str, started: pending.PendingAuthorization, token: Token) -> Response:
    """Store the token of a successful login for the current user and go to its ``next``."""
    user_id = state.extension._owner_of_new_token(state)
    state.store.set(provider, user_id, token)
    asked = list(dict.fromkeys(state.provider(provider).scopes + started.scopes))
    _session.bucket().setdefault("d", {})[provider] = [int(time.time()), asked]
    _session.changed()
    regenerate = getattr(current_app.session_interface, "regenerate", None)
    if callable(regenerate):  # SECURITY.md P-20: a new session id once signed in (Flask-Session)
        regenerate(session)
    token_obtained.send(current_app._get_current_object(), provider=provider, user_id=user_id, token=token)  # type: ignore[attr-defined]
    return redirect(started.next_url, 302)


def failed_login(provider: str, error: OAuth2Error) -> None:
    """Log a failed login and send :data:`authorization_failed` (once)."""
    log.warning("login with %s failed: %s", provider, error)
    authorization_failed.send(current_app._get_current_object(), provider=provider, error=error)  # type: ignore[attr-defined]


@blueprint.post("/<provider>/logout")
def logout(provider: str) -> Response:
    """Revoke and forget the current user's token; then go to ``next`` (form or query)."""
    state = _state()
    _known(state, provider)
    if not _same_origin():
        abort(403)
    token = state.extension.revoke(provider)
    if token is not None:
        page = end_session_page(state.client(provider), token, default_next=state.settings.default_next)
        if page is not None:  # OpenID Connect: end the provider's session too
            return page
    target = request.form.get("next") or request.args.get("next")
    return redirect(safe_next(target, state.settings.default_next), 303)


def _same_origin() -> bool:
    """SECURITY.md P-19: refuse cross-site logout posts (``Origin`` / ``Sec-Fetch-Site``)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin == "null":
        # A page served with Referrer-Policy: no-referrer (ours are) posts with Origin: null;
        # then only Sec-Fetch-Site, which no script can set, can vouch for it.
        return site == "same-origin"
    if origin is not None:
        mine = urlsplit(request.host_url)
        theirs = urlsplit(origin)
        return (theirs.scheme, theirs.netloc) == (mine.scheme, mine.netloc)
    return True


def _param(args: Any, name: str) -> str | None:
    """A callback parameter; an empty value counts as absent (RFC 6749 §3.1)."""
    value = args.get(name)
    return value if value else None


def handle_error(error: OAuth2Error) -> Any:
    """The app-wide handler for :class:`OAuth2Error`: a login redirect, a short page or JSON."""
    if isinstance(error, ReauthorizationRequired):
        return reauthorization_response(error)
    if isinstance(error, ConfigurationError):
        log.error("flask-oauth2-client is misconfigured: %s", error)
        return error_response(error, status=500)
    return error_response(error)


@blueprint.route("/<provider>/implicit", methods=["GET", "POST"])
def implicit_grant(provider: str) -> Response:
    r"""Legacy implicit grant: ``GET`` serves the page that reads the URL fragment; its script
    ``POST``\ s the fragment's fields here to be verified and stored."""
    state = _state()
    _known(state, provider)
    if state.provider(provider).grant_type != "implicit":
        abort(404)
    if request.method == "GET":
        return implicit.page(provider)
    return implicit.receive(state, provider)


from . import implicit  # noqa: E402 - implicit.py uses finish_login from this module
