"""Helpers for flow tests (import as ``from helpers import login``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import requests
from flask.testing import FlaskClient

from flask_oauth2_client.testing import FakeProvider


def login(client: FlaskClient, provider: FakeProvider, *, name: str = "demo", next_url: str = "/protected") -> Any:
    """Run the whole authorization-code flow: our login route, the provider's authorization
    endpoint over a real socket, our callback. Returns the callback's response."""
    start = client.get(f"/oauth2/{name}/login", query_string={"next": next_url})
    assert start.status_code == 302, start.data
    answer = requests.get(start.headers["Location"], allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    return client.get(callback_path(answer.headers["Location"]))


def callback_path(location: str) -> str:
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}"


def authorization_params(client: FlaskClient, *, name: str = "demo", next_url: str = "/") -> dict[str, str]:
    """Start a login and return the parameters of the authorization request."""
    start = client.get(f"/oauth2/{name}/login", query_string={"next": next_url})
    assert start.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(start.headers["Location"]).query).items()}


def provider_answer(client: FlaskClient, provider: FakeProvider, *, name: str = "demo") -> str:
    """Start a login, let the provider approve it, and return the callback path (not yet visited)."""
    start = client.get(f"/oauth2/{name}/login")
    answer = requests.get(start.headers["Location"], allow_redirects=False, timeout=5)
    return callback_path(answer.headers["Location"])


def provider_config(provider: FakeProvider, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
        "authorize_url": provider.authorize_url,
        "token_url": provider.token_url,
        "userinfo_url": provider.userinfo_url,
        "revocation_url": provider.revocation_url,
        "scope": "read, write",
    }
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def aged(token: Any, seconds_left: float) -> Any:
    """*token* as if received an hour before it expires, *seconds_left* seconds from now."""
    from datetime import datetime
    from datetime import timedelta
    from datetime import timezone

    expires_at = datetime.now(timezone.utc) + timedelta(seconds=seconds_left)
    return token.replace(expires_at=expires_at, issued_at=expires_at - timedelta(hours=1))
