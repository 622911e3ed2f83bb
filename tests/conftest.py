"""Shared fixtures. Flows run against a real FakeProvider on 127.0.0.1 (the ``fake_provider``
fixture of the library's own pytest plugin); the app side runs in Flask's test client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from flask import Flask
from helpers import provider_config

from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import Token
from flask_oauth2_client.testing import FakeProvider

AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(fake_provider: FakeProvider) -> AppFactory:
    """Build a fresh app wired to the fake provider as ``demo``; keyword arguments are extra
    config (``OAUTH2_*`` keys) or ``provider={...}`` overrides of the demo provider's settings."""

    def factory(*, provider: dict[str, Any] | None = None, oauth: OAuth2Client | None = None, **config: Any) -> Flask:
        app = Flask("testapp")
        app.config.update(
            TESTING=True,
            SECRET_KEY="test-secret-key-that-is-long-enough",
            OAUTH2_TOKEN_STORE="memory",
            OAUTH2_PROVIDERS={"demo": provider_config(fake_provider, **(provider or {}))},
        )
        app.config.update(config)
        ext = oauth or OAuth2Client()
        ext.init_app(app)
        app.extensions["test_oauth"] = ext

        @app.get("/")
        def home() -> str:
            return "home"

        @app.get("/protected")
        @ext.token_required("demo")
        def protected(token: Token) -> dict[str, Any]:
            return {"scopes": sorted(token.scopes), "expires_in": token.expires_in}

        @app.get("/api/notes")
        @ext.token_required("demo")
        def notes(token: Token) -> Any:
            answer = requests.get(
                fake_provider.api_url, headers={"Authorization": token.authorization_header}, timeout=5
            )
            return answer.json()

        return app

    return factory


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app()
