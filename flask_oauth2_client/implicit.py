"""The legacy implicit grant (RFC 6749 §4.2), opt-in with ``grant_type = "implicit"``.

RFC 9700 §2.1.2 advises against this grant (``init_app`` says so with a ``DeprecationWarning``);
it exists for providers that offer nothing else. There is no refresh: the provider issues no refresh
token, so once the access token expires the user goes through the login again.

The provider puts the answer in the URL fragment, which never reaches the server. The callback
(``GET /oauth2/<provider>/callback``, also served at ``GET /oauth2/<provider>/implicit``) is a page
whose only script (a static file, ``static/implicit.js``; no inline script, under a strict CSP, not
framable, not cached) reads the fragment, removes it from the address bar and the history with
``history.replaceState``, and submits the fields listed in :data:`FIELDS` (nothing else) as an
``application/x-www-form-urlencoded`` form to ``POST /oauth2/<provider>/implicit``. Without
JavaScript the page says so. :func:`receive` then checks, in this order:

1. the post comes from this site (the same-origin check of logout), else 403 and nothing consumed;
2. the body is a form, ``state`` is present and not repeated, else 400 and nothing consumed;
3. the pending login of that ``state`` is consumed (single use, whatever happens next); an unknown
   state consumes nothing (SECURITY.md invariant 3), exactly as for the authorization code callback;
4. any other repeated field → 400 (P-25); ``iss`` checked like the callback does (RFC 9207);
5. ``error`` → :class:`~.errors.AuthorizationError` (``access_denied`` → 403, same table);
6. the token fields are validated by the one token parser,
   :func:`~flask_oauth2_client.client.parse_token_response` (Bearer only, numeric ``expires_in``,
   well-formed ``scope``...). **Decision**: since these fields come from the browser, not from the
   provider's token endpoint, a missing or unusable token is the browser's request being bad: a
   400 :class:`~.errors.CallbackError` with ``reason="invalid_token"``, not the 502
   :class:`~.errors.InvalidTokenResponse` the token endpoint would get;
7. the token is stored by :func:`~flask_oauth2_client.views.finish_login` (signals, ``next``).

Every failure goes through :func:`~flask_oauth2_client.views.failed_login` (logged once,
``authorization_failed`` sent once) and is re-raised for the app's error handler, except the
cross-site post, which is answered 403 here (no :class:`~.errors.OAuth2Error` maps to 403).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from flask import render_template
from flask import request
from flask import url_for
from werkzeug.wrappers import Response

from .client import parse_token_response
from .errors import CallbackError
from .errors import InvalidTokenResponse
from .errors import OAuth2Error
from .responses import error_response
from .responses import no_store
from .views import _param
from .views import _same_origin
from .views import accept_answer
from .views import failed_login
from .views import finish_login

if TYPE_CHECKING:
    from .extension import _AppState

__all__ = ["CONTENT_SECURITY_POLICY", "FIELDS", "page", "receive"]

#: The fragment fields the page posts back; any other field of the fragment stays in the browser.
#: ``iss`` (RFC 9207) is included so that a provider configured with ``issuer`` is checked as on
#: the authorization code callback.
FIELDS = (
    "access_token",
    "token_type",
    "expires_in",
    "scope",
    "state",
    "iss",
    "error",
    "error_description",
    "error_uri",
)
#: The fields handed to the token parser.
_TOKEN_FIELDS = ("access_token", "token_type", "expires_in", "scope")
_FORM = "application/x-www-form-urlencoded"

#: The page runs one script of this site and can post only here; nothing else loads.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}


def page(provider: str) -> Response:
    """The page whose script posts the fragment back (SECURITY.md P-22: no-store, no referrer,
    strict CSP, not framable)."""
    body = render_template(
        "oauth2/implicit.html",
        provider=provider,
        action=url_for("oauth2.implicit_grant", provider=provider),
        script=url_for("oauth2.static", filename="implicit.js"),
        login=url_for("oauth2.login", provider=provider),
        fields=" ".join(FIELDS),
    )
    response = Response(body, 200, mimetype="text/html")
    response.headers.update(_PAGE_HEADERS)
    return no_store(response)


def receive(state: _AppState, provider: str) -> Response:
    """Verify the posted fragment, then store the token and go to the login's ``next``."""
    if not _same_origin():
        error = CallbackError(
            "the sign-in answer was posted from another site", provider=provider, reason="cross_site_request"
        )
        failed_login(provider, error)
        return error_response(error, status=403)
    try:
        return _receive(state, provider)
    except OAuth2Error as error:
        failed_login(provider, error)
        raise


def _receive(state: _AppState, provider: str) -> Response:
    if request.mimetype != _FORM:
        raise CallbackError(f"the sign-in answer must be posted as {_FORM}", provider=provider)
    form = request.form
    started = accept_answer(state, provider, form)
    client = state.client(provider)
    if _param(form, "access_token") is None:
        raise CallbackError(
            "the answer has neither an access token nor an error", provider=provider, reason="missing_token"
        )
    if state.extension.has_user_id_loader and state.extension.current_user_id() is None:
        raise CallbackError("nobody is signed in to the application", provider=provider, reason="login_required")

    # The one token parser, fed the fragment's token fields as the form body a token endpoint
    # could have sent (empty values count as absent, RFC 6749 §3.1).
    fields = {name: value for name in _TOKEN_FIELDS if (value := _param(form, name)) is not None}
    requested = tuple(dict.fromkeys(client.config.scopes + started.scopes))
    try:
        token = parse_token_response(
            200, _FORM, urlencode(fields).encode(), provider=provider, requested_scopes=requested
        )
    except InvalidTokenResponse as exc:
        raise CallbackError(
            f"the token in the answer is unusable: {exc.message}", provider=provider, reason="invalid_token"
        ) from None
    return finish_login(state, provider, started, token)
