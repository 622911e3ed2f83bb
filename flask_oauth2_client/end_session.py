"""OpenID Connect RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).

After the logout route has revoked and forgotten the user's tokens, a provider with an
``end_session_endpoint`` (from its metadata, or ``end_session_url``) is asked to end the user's
session there too. The browser is sent with a form **POST** (which the specification allows)
rather than a redirect, so that the ``id_token_hint`` — an ID token, with the user's claims — never
sits in a URL, a browser history or a server log. The page's only script (a static file under a
strict CSP) submits the form at once; without JavaScript, the user presses the button.

The provider then sends the browser to ``post_logout_redirect_uri``: the provider's setting,
else this site's ``OAUTH2_DEFAULT_NEXT`` as an absolute URL. Register that address with the
provider.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

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
    """The page that posts the logout to the provider, or ``None`` when the provider has no
    end-session endpoint or the token no ID token."""
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
        "id_token_hint": token.id_token,
        "client_id": cfg.client_id,
        "post_logout_redirect_uri": cfg.post_logout_redirect_uri or request.url_root.rstrip("/") + default_next,
    }
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
