"""OpenID Connect RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).

After the logout route has revoked and forgotten the user's tokens, a provider with an
``end_session_endpoint`` (from its metadata, or ``end_session_url``) is asked to end the user's
session there too, in one of two ways (the provider's ``end_session_method``):

``"get"`` (the default)
    A redirect with ``client_id`` and ``post_logout_redirect_uri`` only. The ID token is not sent:
    a token never goes into a URL (a browser history, a server log). Without ``id_token_hint`` the
    provider asks the user to confirm, as the specification says it should.
``"post"``
    A page whose form **POSTs** ``id_token_hint`` with the rest, so the provider can skip the
    confirmation. Only for providers that accept a cross-site POST *with their session cookie*:
    browsers send ``SameSite=Lax`` cookies (the default) with a cross-site top-level GET but not
    with a POST, so a provider with such cookies sees no session to end. ``oidc-provider``, for
    one, refuses POST at this endpoint unless configured for ``SameSite=None`` cookies. The page's
    only script (a static file under a strict CSP) submits the form at once; without JavaScript
    the user presses the button.

The provider then sends the browser to ``post_logout_redirect_uri``: the provider's setting,
else this site's ``OAUTH2_DEFAULT_NEXT`` as an absolute URL. Register that address with the
provider.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode
from urllib.parse import urlsplit

from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from werkzeug.wrappers import Response

from .client import ProviderClient
from .errors import ProviderError
from .responses import no_store
from .token import Token

__all__ = ["end_session_page"]

log = logging.getLogger("flask_oauth2_client")


def end_session_page(client: ProviderClient, token: Token, *, default_next: str) -> Response | None:
    """The redirect or page that sends the browser to the provider's end-session endpoint, or
    ``None`` when the provider has none or the token has no ID token (no OpenID Connect login)."""
    if token.id_token is None:
        return None
    try:
        endpoint = client.endpoints().end_session_url
    except ProviderError as exc:
        log.warning("the %s metadata is unavailable (%s); signed out here only", client.name, exc)
        return None
    if endpoint is None:
        return None
    cfg = client.config
    fields = {
        "client_id": cfg.client_id,
        "post_logout_redirect_uri": cfg.post_logout_redirect_uri or request.url_root.rstrip("/") + default_next,
    }
    if cfg.end_session_method == "get":
        parts = urlsplit(endpoint)
        query = f"{parts.query}&{urlencode(fields)}" if parts.query else urlencode(fields)
        return no_store(redirect(parts._replace(query=query).geturl(), 303))
    fields = {"id_token_hint": token.id_token, **fields}
    parts = urlsplit(endpoint)
    body = render_template(
        "oauth2/end_session.html",
        provider=cfg.name,
        action=endpoint,
        fields=fields,
        script=url_for("oauth2.static", filename="end_session.js"),
    )
    response = Response(body, 200, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'self'; form-action {parts.scheme}://{parts.netloc}; "
        "base-uri 'none'; frame-ancestors 'none'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return no_store(response)
