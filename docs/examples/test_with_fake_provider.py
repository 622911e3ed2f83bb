"""Testing an application with FakeProvider (shown in docs/testing.rst)."""

import requests
from flask import Flask

from flask_oauth2_client import MemoryTokenStore
from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import Token
from flask_oauth2_client.testing import Fault


def create_app(provider, **options):
    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SECRET_KEY="test",
        OAUTH2_TOKEN_STORE="memory",
        OAUTH2_PROVIDERS={
            "fake": {
                "client_id": provider.client_id,
                "client_secret": provider.client_secret,
                "authorize_url": provider.authorize_url,
                "token_url": provider.token_url,
                "revocation_url": provider.revocation_url,
                "scope": "read",
            }
        },
    )
    oauth = OAuth2Client(app, **options)

    @app.get("/notes")
    @oauth.token_required("fake")
    def notes(token):
        answer = requests.get(provider.api_url, headers={"Authorization": token.authorization_header}, timeout=5)
        return answer.json()

    return app


def sign_in(client, next_url="/notes"):
    """Our login route -> the provider (which approves at once) -> our callback."""
    start = client.get("/oauth2/fake/login", query_string={"next": next_url})
    answer = requests.get(start.headers["Location"], allow_redirects=False, timeout=5)
    callback = answer.headers["Location"].removeprefix("http://localhost")
    return client.get(callback)


def test_login_then_api_call(fake_provider):
    client = create_app(fake_provider).test_client()
    assert client.get("/notes").status_code == 302  # not signed in yet
    response = sign_in(client)
    assert response.status_code == 302
    assert response.headers["Location"] == "/notes"
    assert client.get("/notes").json["user"] == "alice"


def test_expired_token_is_refreshed_once(fake_provider):
    store = MemoryTokenStore()
    app = create_app(fake_provider, store=store, user_id_loader=lambda: "u1")
    issued = fake_provider.issue_token(expires_in=0)
    store.set(
        "fake",
        "u1",
        Token.from_response(
            access_token=issued["access_token"],
            token_type=issued["token_type"],
            expires_in=issued["expires_in"],
            refresh_token=issued["refresh_token"],
        ),
    )
    assert app.test_client().get("/notes").status_code == 200
    assert fake_provider.calls("token", grant_type="refresh_token") == 1


def test_provider_outage_during_login(fake_provider):
    client = create_app(fake_provider).test_client()
    fake_provider.set_fault("token", Fault(status=503, times=1))
    response = sign_in(client)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert client.get("/notes").status_code == 302  # nothing was stored
