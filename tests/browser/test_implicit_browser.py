"""The legacy implicit grant in a real browser: the callback page's script reads the fragment,
removes it from the address bar and the history, and posts it; the server verifies and stores the
token. Also: a forged fragment and a replayed one end on a 400 page with nothing stored, and the
page works under its strict CSP without a single console error."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from markupsafe import escape
from werkzeug.serving import make_server

from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import Token
from flask_oauth2_client.testing import FakeProvider

if TYPE_CHECKING:
    from playwright.sync_api import Browser
    from playwright.sync_api import BrowserContext
    from playwright.sync_api import ConsoleMessage
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

CALLBACK = "/oauth2/demo/callback"
POST = "/oauth2/demo/implicit"


@dataclass
class LiveApp:
    url: str
    app: Flask
    provider: FakeProvider

    @property
    def stored(self) -> int:
        return len(self.app.extensions["oauth2_client"].store)

    def tokens(self) -> list[Token]:
        return list(self.app.extensions["oauth2_client"].store._tokens.values())


@pytest.fixture
def live_app(fake_provider: FakeProvider) -> Iterator[LiveApp]:
    """A small app (memory store, default identity) with one implicit provider, the FakeProvider,
    served on an ephemeral loopback port."""
    app = Flask("implicit-browser")
    app.config.update(
        SECRET_KEY="browser-test-secret-key-long-enough",
        OAUTH2_TOKEN_STORE="memory",
        OAUTH2_PROVIDERS={
            "demo": {
                "client_id": fake_provider.client_id,
                "authorize_url": fake_provider.authorize_url,
                "grant_type": "implicit",
                "scope": "read write",
            }
        },
    )
    oauth = OAuth2Client()
    with pytest.warns(DeprecationWarning, match=r"RFC 9700 §2\.1\.2"):
        oauth.init_app(app)

    @app.get("/favicon.ico")
    def favicon() -> tuple[str, int]:
        return "", 204  # keep the console free of 404s

    @app.get("/protected")
    @oauth.token_required("demo")
    def protected(token: Token) -> str:
        answer = requests.get(
            fake_provider.api_url, headers={"Authorization": token.authorization_header}, timeout=5
        ).json()
        return (
            "<!doctype html><title>Protected</title>"
            f'<p id="status">signed in as <span id="user">{escape(answer["user"])}</span></p>'
            f'<p id="scopes">{escape(" ".join(sorted(token.scopes)))}</p>'
        )

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield LiveApp(url=f"http://127.0.0.1:{server.server_port}", app=app, provider=fake_provider)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@dataclass
class Recorder:
    """Everything a tab shows, asks for and complains about."""

    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    posts: list[tuple[str, str | None]] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)
    provider_redirects: list[str] = field(default_factory=list)

    def attach(self, page: Page, provider: FakeProvider) -> Page:
        def on_console(message: ConsoleMessage) -> None:
            text = f"{message.type}: {message.text} @ {urlsplit(message.location.get('url', '')).path}"
            if message.type in ("error", "warning") or "Content Security Policy" in message.text:
                self.console.append(text)

        def on_response(response: Any) -> None:
            path = urlsplit(response.url).path
            self.answers.setdefault(path, []).append(response.status)
            if response.url.startswith(provider.authorize_url) and response.status == 302:
                self.provider_redirects.append(response.headers["location"])

        def on_request(request: Any) -> None:
            self.requested.append(request.url)
            if request.method == "POST":
                self.posts.append((request.url, request.post_data))

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", on_request)
        page.on("response", on_response)
        page.set_default_timeout(15_000)
        return page


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context()
    # Report CSP violations in the console too (init scripts are not subject to the page's CSP).
    context.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
    )
    try:
        yield context
    finally:
        context.close()


def navigation_history(page: Page) -> list[str]:
    """Every URL in the tab's session history (back and forward), from the DevTools protocol."""
    cdp = page.context.new_cdp_session(page)
    try:
        return [entry["url"] for entry in cdp.send("Page.getNavigationHistory")["entries"]]
    finally:
        cdp.detach()


def log_in(page: Page, live: LiveApp) -> None:
    page.goto(live.url + "/protected")
    page.wait_for_url(live.url + "/protected")
    page.wait_for_selector("#status")


def assert_quiet(recorder: Recorder, *, rejected_posts: int = 0) -> None:
    """No console error or warning (CSP violations included), no script error; only the console
    line Chromium writes for each 400 page expected."""
    rejected = f"error: Failed to load resource: the server responded with a status of 400 (BAD REQUEST) @ {POST}"
    assert recorder.console == [rejected] * rejected_posts
    assert recorder.errors == []


def test_login_through_the_fragment(context: BrowserContext, live_app: LiveApp) -> None:
    recorder = Recorder()
    page = recorder.attach(context.new_page(), live_app.provider)
    log_in(page, live_app)

    assert page.inner_text("#user") == "alice"
    assert page.inner_text("#scopes") == "read write"
    assert page.url == live_app.url + "/protected"
    assert page.evaluate("location.hash") == ""
    assert live_app.stored == 1
    [token] = live_app.tokens()
    assert token.refresh_token is None

    # The provider answered in the fragment; the page posted exactly the answer's fields.
    [location] = recorder.provider_redirects
    assert location.startswith(live_app.url + CALLBACK + "#")
    answer = dict(parse_qsl(urlsplit(location).fragment))
    assert answer["access_token"] == token.access_token
    [(url, body)] = recorder.posts
    assert url == live_app.url + POST
    assert body is not None
    posted = dict(parse_qsl(body))
    assert posted == answer
    assert recorder.answers[POST] == [302]

    # The token never was in a URL the browser asked for, nor in the history.
    assert not [u for u in recorder.requested if token.access_token in u or "access_token" in u]
    history = navigation_history(page)
    assert not [u for u in history if "access_token" in u or token.access_token in u or "#" in u], history
    assert page.evaluate("history.length") == len(history)
    # The form was submitted while the callback page was still loading, so the result replaced
    # its history entry: Back does not even lead to the callback page.
    assert [u for u in history if u != "about:blank"] == [live_app.url + "/protected"]
    assert_quiet(recorder)


def test_forged_fragment_ends_on_a_400_page_and_consumes_nothing(context: BrowserContext, live_app: LiveApp) -> None:
    live_app.provider.auto_approve = False
    recorder = Recorder()
    victim = recorder.attach(context.new_page(), live_app.provider)
    victim.goto(live_app.url + "/protected")  # a login is pending: the provider's consent page
    victim.wait_for_url(re.compile("^" + re.escape(live_app.provider.authorize_url)))

    forged = recorder.attach(context.new_page(), live_app.provider)
    forged.goto(live_app.url + CALLBACK + "#access_token=forged&token_type=bearer&state=forged")
    forged.wait_for_url(live_app.url + POST)
    assert "invalid_state" in forged.inner_text("body")
    assert recorder.answers[POST] == [400]
    assert dict(parse_qsl(recorder.posts[0][1] or "")) == {
        "access_token": "forged",
        "token_type": "bearer",
        "state": "forged",
    }
    assert forged.evaluate("location.hash") == ""
    assert live_app.stored == 0

    # The real login, pending all along, still completes.
    victim.click("#approve")
    victim.wait_for_url(live_app.url + "/protected")
    assert victim.inner_text("#user") == "alice"
    assert live_app.stored == 1
    assert_quiet(recorder, rejected_posts=1)


def test_replayed_fragment_ends_on_a_400_page(context: BrowserContext, live_app: LiveApp) -> None:
    recorder = Recorder()
    page = recorder.attach(context.new_page(), live_app.provider)
    log_in(page, live_app)
    [before] = live_app.tokens()
    [location] = recorder.provider_redirects

    page.goto(location)  # the same callback URL, with the old fragment
    page.wait_for_url(live_app.url + POST)
    assert "invalid_state" in page.inner_text("body")
    assert recorder.answers[POST] == [302, 400]
    assert page.evaluate("location.hash") == ""
    assert live_app.tokens() == [before]
    assert_quiet(recorder, rejected_posts=1)


def test_without_javascript_the_page_says_so(browser: Browser, live_app: LiveApp) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        recorder = Recorder()
        page = recorder.attach(context.new_page(), live_app.provider)
        page.goto(live_app.url + "/protected")
        page.wait_for_url(re.compile("^" + re.escape(live_app.url + CALLBACK + "#")))
        page.wait_for_load_state("load")
        assert "needs JavaScript" in page.inner_text("body")
        assert recorder.posts == []
        assert live_app.stored == 0
    finally:
        context.close()


def test_a_callback_without_fragment_posts_nothing(context: BrowserContext, live_app: LiveApp) -> None:
    recorder = Recorder()
    page = recorder.attach(context.new_page(), live_app.provider)
    page.goto(live_app.url + CALLBACK)
    page.wait_for_selector("#oauth2-implicit-empty", state="visible")
    assert recorder.posts == []
    assert page.url == live_app.url + CALLBACK
    assert_quiet(recorder)
