"""The example app in headless Chromium against oidc-provider (OpenID Certified): its
``EXAMPLE_PROVIDER=oidc`` set-up finds everything through discovery; the user signs in through the
provider's own login and consent pages, sees the UserInfo claims, and logs out of the app and of
the provider (RP-initiated logout, confirmed on the provider's page).

oidc-provider's development pages import a web font from the internet: every request that would
leave 127.0.0.1 is aborted (and recorded), so the test needs no network and proves it used none.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from flask import Flask
from interop.conftest import CLIENT_ID
from interop.conftest import CLIENT_SECRET
from interop.conftest import OIDCProvider
from interop.conftest import ProviderFactory
from werkzeug.serving import make_server

from example_app.app import EXTENSION_KEY
from example_app.app import ExampleState
from example_app.app import create_app
from flask_oauth2_client import Token
from flask_oauth2_client.stores import MemoryTokenStore

if TYPE_CHECKING:
    from playwright.sync_api import Browser
    from playwright.sync_api import Route

pytestmark = pytest.mark.browser


@dataclass
class LiveOIDCExample:
    url: str
    provider: OIDCProvider
    app: Flask


@pytest.fixture
def live_oidc_example(oidc_provider_factory: ProviderFactory) -> Iterator[LiveOIDCExample]:
    provider = oidc_provider_factory()
    app = create_app(
        {
            "TESTING": True,
            "EXAMPLE_PROVIDER": "oidc",
            "OIDC_METADATA_URL": provider.metadata_url,
            "OIDC_CLIENT_ID": CLIENT_ID,
            "OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_LABEL": "oidc-provider",
        }
    )
    assert isinstance(app.extensions[EXTENSION_KEY], ExampleState)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    provider.register_redirect_uri(f"{base}/oauth2/oidc/callback")
    provider.register_post_logout_redirect_uri(f"{base}/")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield LiveOIDCExample(url=base, provider=provider, app=app)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def test_sign_in_and_out_of_a_certified_provider_in_a_browser(
    browser: Browser, live_oidc_example: LiveOIDCExample
) -> None:
    base, provider = live_oidc_example.url, live_oidc_example.provider
    context = browser.new_context()
    blocked: list[str] = []

    def loopback_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", loopback_only)
    page = context.new_page()
    page.set_default_timeout(15_000)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        page.goto(base + "/")
        page.click("#login")

        # oidc-provider's own login page, then its consent page
        page.wait_for_url(re.compile("^" + re.escape(provider.issuer)))
        page.fill('input[name="login"]', "grace")
        page.fill('input[name="password"]', "any password")
        page.click("button.login-submit")
        page.wait_for_selector('input[name="prompt"][value="consent"]', state="attached")
        page.click("button.login-submit")

        page.wait_for_url(base + "/profile")
        assert page.inner_text("#name") == "Test User grace"
        assert page.inner_text("#email") == "grace@example.test"
        assert page.inner_text("#scopes").split() == ["email", "openid", "profile"]
        [token] = stored_tokens(live_oidc_example.app)
        assert token.claims["sub"] == "grace"  # the validated ID token
        assert token.claims["iss"] == provider.issuer

        # the API page: UserInfo through oauth.userinfo() (endpoint from the metadata, sub checked)
        page.goto(base + "/api")
        assert "grace@example.test" in page.inner_text("body")

        # log out: revoked and forgotten here, then the provider asks to confirm its own logout
        page.click("#logout")
        page.wait_for_url(re.compile("^" + re.escape(provider.endpoint("end_session"))))
        assert page.locator('button[name="logout"]').is_visible()
        page.click('button[name="logout"]')
        page.wait_for_url(base + "/")
        assert page.locator("#login").is_visible()

        # signed out at the provider too: the next login shows its login form again
        page.click("#login")
        page.wait_for_url(re.compile("^" + re.escape(provider.issuer)))
        page.wait_for_selector('input[name="login"]')
    finally:
        context.close()

    end_session = [url for url in requested if url.startswith(provider.endpoint("end_session"))]
    assert end_session
    assert token.id_token is not None
    assert not [url for url in requested if token.id_token in url or token.access_token in url]
    assert [u for u in requested if urlsplit(u).path == "/oauth2/oidc/callback" and "iss=" in u]
    # only the provider pages' web font wanted to leave 127.0.0.1, and it was not let out
    assert {urlsplit(url).hostname for url in blocked} <= {"fonts.googleapis.com", "fonts.gstatic.com"}
    assert stored_tokens(live_oidc_example.app) == []


def stored_tokens(app: Flask) -> list[Token]:
    """Every token in the example app's memory store (one browser: at most one)."""
    store = app.extensions["oauth2_client"].store
    assert isinstance(store, MemoryTokenStore)
    return list(store._tokens.values())
