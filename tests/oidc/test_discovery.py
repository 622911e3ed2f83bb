"""Discovery (OIDC Discovery 1.0, RFC 8414) against FakeProvider over real sockets: lazy fetch,
caching, failures never cached, issuer check, https endpoints, auth method from the metadata."""

from __future__ import annotations

import pytest
from flask import Flask
from helpers import login

from flask_oauth2_client import DiscoveryError
from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import Token
from flask_oauth2_client.discovery import expected_issuers
from flask_oauth2_client.testing import Fault


def discovered_app(fake_provider, **provider) -> tuple[Flask, OAuth2Client]:
    app = Flask("discovery")
    settings = {
        "client_id": fake_provider.client_id,
        "client_secret": fake_provider.client_secret,
        "metadata_url": fake_provider.metadata_url,
        "scope": "read write",
        **provider,
    }
    app.config.update(
        SECRET_KEY="k" * 32,
        OAUTH2_TOKEN_STORE="memory",
        OAUTH2_PROVIDERS={"demo": {k: v for k, v in settings.items() if v is not None}},
    )
    oauth = OAuth2Client(app)

    @app.get("/protected")
    @oauth.token_required("demo")
    def protected(token: Token) -> dict[str, object]:
        return {"scopes": sorted(token.scopes)}

    return app, oauth


def test_metadata_alone_is_enough_and_fetched_lazily_once(fake_provider):
    app, _ = discovered_app(fake_provider)
    assert fake_provider.calls("metadata") == 0  # init_app does no I/O
    client = app.test_client()
    assert login(client, fake_provider).status_code == 302
    assert client.get("/protected").json == {"scopes": ["read", "write"]}
    assert login(app.test_client(), fake_provider).status_code == 302
    assert fake_provider.calls("metadata") == 1


def test_metadata_is_fetched_again_after_its_ttl(fake_provider):
    app, _ = discovered_app(fake_provider)
    app.extensions["oauth2_client"].clients["demo"].metadata._ttl = 0
    login(app.test_client(), fake_provider)
    login(app.test_client(), fake_provider)
    assert fake_provider.calls("metadata") >= 2


def test_a_failed_fetch_is_not_cached(fake_provider):
    app, _ = discovered_app(fake_provider)
    client = app.test_client()
    fake_provider.set_fault("metadata", Fault(status=500, times=1))
    assert client.get("/oauth2/demo/login").status_code == 502
    assert login(client, fake_provider).status_code == 302  # the next request fetches again
    assert fake_provider.calls("metadata") == 2


def test_an_earlier_document_serves_while_the_provider_fails(fake_provider, caplog):
    app, _ = discovered_app(fake_provider)
    app.extensions["oauth2_client"].clients["demo"].metadata._ttl = 0
    login(app.test_client(), fake_provider)
    fake_provider.set_fault("metadata", Fault(status=503))
    assert login(app.test_client(), fake_provider).status_code == 302
    assert "using the earlier copy" in caplog.text


def test_a_mismatched_issuer_is_refused(fake_provider):
    app, _ = discovered_app(fake_provider)
    document = {
        "issuer": "https://evil.example",
        "authorization_endpoint": fake_provider.authorize_url,
        "token_endpoint": fake_provider.token_url,
    }
    fake_provider.set_fault("metadata", Fault(status=200, json=document))
    answer = app.test_client().get("/oauth2/demo/login", headers={"Accept": "application/json"})
    assert answer.status_code == 502
    assert answer.json["error"] == "invalid_provider_metadata"
    assert "issuer" in answer.json["error_description"]


def test_the_configured_issuer_must_match_too(fake_provider):
    app, _ = discovered_app(fake_provider, issuer="https://idp.example")
    assert app.test_client().get("/oauth2/demo/login").status_code == 502


def test_plain_http_endpoints_in_metadata_are_refused(fake_provider):
    app, _ = discovered_app(fake_provider)
    document = {
        "issuer": fake_provider.issuer,
        "authorization_endpoint": "http://idp.example/authorize",
        "token_endpoint": fake_provider.token_url,
    }
    fake_provider.set_fault("metadata", Fault(status=200, json=document))
    with app.test_request_context(), pytest.raises(DiscoveryError, match="not an https URL"):
        app.extensions["oauth2_client"].clients["demo"].endpoints()


def test_a_garbage_document_is_a_clean_502(fake_provider):
    app, _ = discovered_app(fake_provider)
    fake_provider.set_fault("metadata", Fault(status=200, body="<html>", content_type="text/html"))
    assert app.test_client().get("/oauth2/demo/login").status_code == 502


def test_explicit_settings_win_over_the_metadata(fake_provider):
    app, _ = discovered_app(fake_provider, authorize_url="https://login.example/authorize")
    start = app.test_client().get("/oauth2/demo/login")
    assert start.headers["Location"].startswith("https://login.example/authorize?")


def test_the_auth_method_comes_from_the_metadata_unless_configured(fake_provider):
    fake_provider.register_client("post-only", "post-secret", auth_method="client_secret_post")

    app, _ = discovered_app(fake_provider, client_id="post-only", client_secret="post-secret")
    client = app.extensions["oauth2_client"].clients["demo"]
    with app.app_context():
        assert client.auth_method == "client_secret_basic"  # the provider supports it
    document = dict(client.metadata.get(), token_endpoint_auth_methods_supported=["client_secret_post"])
    fake_provider.set_fault("metadata", Fault(status=200, json=document))
    client.metadata.invalidate()
    assert client.auth_method == "client_secret_post"
    assert login(app.test_client(), fake_provider).status_code == 302
    token_call = [r for r in fake_provider.requests if r.endpoint == "token"][-1]
    assert token_call.auth_method_used == "client_secret_post"


@pytest.mark.parametrize(
    ("url", "issuers"),
    [
        ("https://idp.example/.well-known/openid-configuration", ("https://idp.example",)),
        ("https://idp.example/realms/a/.well-known/openid-configuration", ("https://idp.example/realms/a",)),
        ("https://idp.example/.well-known/oauth-authorization-server/t1", ("https://idp.example/t1",)),
        ("https://idp.example/.well-known/oauth-authorization-server", ("https://idp.example",)),
        ("https://idp.example/metadata.json", ()),
    ],
)
def test_expected_issuers(url, issuers):
    assert expected_issuers(url) == issuers
