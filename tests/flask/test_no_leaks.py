"""No secret ever reaches a log line (any logger, DEBUG), a response body, a Location header or an
exception text (SECURITY.md invariant 4)."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
import requests
from helpers import aged
from helpers import callback_path
from helpers import login

from flask_oauth2_client import OAuth2Client
from flask_oauth2_client.testing import Fault


@pytest.mark.parametrize("store", ["memory", "session"])
def test_no_secret_in_logs_bodies_or_locations(make_app, fake_provider, caplog, store):
    oauth = OAuth2Client(user_id_loader=lambda: "leak-test-user") if store == "memory" else None
    app = make_app(oauth=oauth, OAUTH2_TOKEN_STORE=store)
    client = app.test_client()
    responses = []
    caplog.set_level(logging.DEBUG)

    # a full login
    start = client.get("/oauth2/demo/login?next=/protected")
    responses.append(start)
    answer = requests.get(start.headers["Location"], allow_redirects=False, timeout=5)
    path = callback_path(answer.headers["Location"])
    code = parse_qs(urlsplit(path).query)["code"][0]
    responses.append(client.get(path))
    responses.append(client.get("/protected"))
    # a refresh, then a refused refresh, then failures at the callback
    state = app.extensions["oauth2_client"]
    exchange = [r for r in fake_provider.requests if r.endpoint == "token"][-1]
    verifier = exchange.form["code_verifier"]
    if store == "memory":
        token = state.store.get("demo", "leak-test-user")
        state.store.set("demo", "leak-test-user", aged(token, -1))
        responses.append(client.get("/protected"))
        refreshed = state.store.get("demo", "leak-test-user")
        state.store.set("demo", "leak-test-user", aged(refreshed, -1))
        fake_provider.set_fault("token", Fault(status=400, json={"error": "invalid_grant"}))
        responses.append(client.get("/protected"))
        secrets = [token.access_token, token.refresh_token, refreshed.access_token, refreshed.refresh_token]
    else:
        secrets = []
    for fault in (Fault(status=500, body="oops"), Fault(status=200, json={"token_type": "Bearer"})):
        fake_provider.set_fault("token", fault)
        start = client.get("/oauth2/demo/login")
        answer = requests.get(start.headers["Location"], allow_redirects=False, timeout=5)
        responses.append(client.get(callback_path(answer.headers["Location"])))
    issued = [
        value
        for r in fake_provider.requests
        if r.endpoint == "token"
        for key, value in r.form.items()
        if key in ("code", "code_verifier", "refresh_token")
    ]
    secrets += [fake_provider.client_secret, code, verifier, *issued]
    secrets = [s for s in secrets if s]
    assert len(secrets) >= 4

    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records, "expected some log output at DEBUG"
    for secret in secrets:
        assert secret not in logged
        for response in responses:
            assert secret not in response.get_data(as_text=True)
            assert secret not in response.headers.get("Location", "")


def test_token_repr_masks_secrets(make_app, fake_provider):
    oauth = OAuth2Client(user_id_loader=lambda: "someone")
    app = make_app(oauth=oauth)
    login(app.test_client(), fake_provider)
    with app.test_request_context():
        token = oauth.get_token("demo")
    assert token is not None
    text = repr(token) + str(token)
    assert token.access_token not in text
    assert token.refresh_token not in text
    assert "***" in text
