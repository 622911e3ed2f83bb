"""One store lookup per request: the token the decorator read serves ``oauth.session()`` too."""

from __future__ import annotations

from typing import Any

from helpers import login

from flask_oauth2_client import MemoryTokenStore
from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import Token


class CountingStore(MemoryTokenStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    def get(self, provider: str, user_id: str) -> Token | None:
        self.gets += 1
        return super().get(provider, user_id)


def test_the_decorators_token_serves_the_api_session(make_app, fake_provider):
    store = CountingStore()
    oauth = OAuth2Client(store=store)
    app = make_app(oauth=oauth)

    @app.get("/two-calls")
    @oauth.token_required("demo")
    def two_calls(token: Token) -> dict[str, Any]:
        api = oauth.session("demo")
        first = api.get(fake_provider.api_url).json()
        second = api.get(fake_provider.api_url).json()
        return {"same": first == second}

    client = app.test_client()
    login(client, fake_provider, next_url="/two-calls")
    store.gets = 0
    assert client.get("/two-calls").json == {"same": True}
    assert store.gets == 1  # the decorator's read; the two API calls reuse it
    assert client.get("/two-calls").status_code == 200
    assert store.gets == 2  # a new request reads again (another worker may have refreshed it)


def test_revoking_in_the_request_forgets_the_remembered_token(make_app, fake_provider):
    store = CountingStore()
    oauth = OAuth2Client(store=store)
    app = make_app(oauth=oauth)

    @app.get("/revoke-then-call")
    @oauth.token_required("demo")
    def revoke_then_call(token: Token) -> tuple[str, int]:
        oauth.revoke("demo")
        answer = oauth.session("demo").get(fake_provider.api_url)
        return "called", answer.status_code

    client = app.test_client()
    login(client, fake_provider, next_url="/revoke-then-call")
    answer = client.get("/revoke-then-call", headers={"Accept": "application/json"})
    assert answer.status_code == 401  # no token any more: not the forgotten one
    assert answer.json["error"] == "reauthorization_required"
