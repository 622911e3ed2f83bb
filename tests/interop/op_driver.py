"""Drive oidc-provider's development interaction pages (login, consent, logout) over plain HTTP.

One cookie-keeping :class:`requests.Session` plays the user's browser at the provider: it follows
the provider's own redirects, fills in the login form (any username and password are accepted by
oidc-provider's ``devInteractions``), confirms the consent form, and stops at the first redirect
that leaves the provider. That URL -- normally our ``/oauth2/<name>/callback?code=...&state=...&iss=...``
on the Flask test client's ``http://localhost`` -- is returned, not followed.

Import as ``from interop.op_driver import authorize``.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from html.parser import HTMLParser
from urllib.parse import urljoin
from urllib.parse import urlsplit

import requests

TIMEOUT = 10
MAX_STEPS = 20


class OPDriverError(AssertionError):
    """The provider did not lead back out to a redirect (an error page, an unknown form, a loop)."""


@dataclass
class Form:
    action: str
    method: str
    id: str | None
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    """Collects each <form> with its named <input> values (hidden ones included)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = Form(
                action=attributes.get("action", ""),
                method=attributes.get("method", "get").lower(),
                id=attributes.get("id"),
            )
            self.forms.append(self._current)
        elif tag == "input" and attributes.get("name"):
            owner = self._owner(attributes)
            if owner is not None and attributes.get("type", "text").lower() not in ("submit", "button", "reset"):
                owner.fields[attributes["name"]] = attributes.get("value", "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None

    def _owner(self, attributes: dict[str, str]) -> Form | None:
        form_id = attributes.get("form")
        if form_id:
            return next((form for form in self.forms if form.id == form_id), None)
        return self._current


def parse_forms(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _leaves(url: str, provider_origin: tuple[str, str]) -> bool:
    return _origin(url) != provider_origin


def authorize(
    authorization_url: str,
    *,
    session: requests.Session | None = None,
    username: str = "alice",
    password: str = "any-password",
    consent: bool = True,
) -> str:
    """Play the user at the provider, from *authorization_url* until the provider redirects away.

    Returns that redirect's absolute URL (with ``code``, ``state`` and ``iss``, or ``error``).
    Pass the same *session* again to reuse the provider's login session (single sign-on: no
    login form the second time). With ``consent=False`` the consent prompt is aborted, which
    sends ``error=access_denied`` back to the client.
    """
    if session is None:
        with requests.Session() as browser:
            return _authorize(browser, authorization_url, username=username, password=password, consent=consent)
    return _authorize(session, authorization_url, username=username, password=password, consent=consent)


def _authorize(
    browser: requests.Session, authorization_url: str, *, username: str, password: str, consent: bool
) -> str:
    provider_origin = _origin(authorization_url)
    response = browser.get(authorization_url, allow_redirects=False, timeout=TIMEOUT)
    for _ in range(MAX_STEPS):
        if response.is_redirect:
            location = urljoin(response.url, response.headers["Location"])
            if _leaves(location, provider_origin):
                return location
            response = browser.get(location, allow_redirects=False, timeout=TIMEOUT)
            continue
        response = _answer_page(browser, response, username=username, password=password, consent=consent)
    raise OPDriverError(f"no redirect out of the provider after {MAX_STEPS} steps (last: {response.url})")


def _answer_page(
    browser: requests.Session, page: requests.Response, *, username: str, password: str, consent: bool
) -> requests.Response:
    if page.status_code != 200 or "html" not in page.headers.get("Content-Type", ""):
        raise OPDriverError(f"provider answered {page.status_code} at {page.url}: {page.text[:2000]}")
    forms = [form for form in parse_forms(page.text) if form.fields.get("prompt") in ("login", "consent")]
    if not forms:
        raise OPDriverError(f"no login or consent form at {page.url}: {page.text[:2000]}")
    form = forms[0]
    action = urljoin(page.url, form.action)
    data = dict(form.fields)
    if data["prompt"] == "login":
        data.update(login=username, password=password)
    elif not consent:
        # The dev consent page's "Cancel" link is the interaction's abort URL: <submit URL>/abort.
        return browser.get(action.rstrip("/") + "/abort", allow_redirects=False, timeout=TIMEOUT)
    return browser.post(action, data=data, allow_redirects=False, timeout=TIMEOUT)


def logout(end_session_url: str, *, session: requests.Session, form: dict[str, str] | None = None) -> str:
    """Confirm an RP-initiated logout at the provider's end-session page, as the user would.

    *end_session_url* is the provider's ``end_session_endpoint`` with the client's parameters
    (``id_token_hint``, ``post_logout_redirect_uri``, ``state``, ``client_id``) in its query, or,
    with *form*, the endpoint those parameters are posted to (as our logout page's form does).
    Returns the URL the provider sends the user to afterwards: the ``post_logout_redirect_uri``
    (with ``state``), or the provider's own "signed out" page when none was given.
    """
    provider_origin = _origin(end_session_url)
    if form is None:
        page = session.get(end_session_url, allow_redirects=False, timeout=TIMEOUT)
    else:
        page = session.post(end_session_url, data=form, allow_redirects=False, timeout=TIMEOUT)
    if page.status_code != 200:
        raise OPDriverError(f"end-session answered {page.status_code}: {page.text[:2000]}")
    forms = [form for form in parse_forms(page.text) if "xsrf" in form.fields]
    if not forms:
        raise OPDriverError(f"no logout confirmation form at {page.url}: {page.text[:2000]}")
    form = forms[0]
    data = {**form.fields, "logout": "yes"}
    response = session.post(urljoin(page.url, form.action), data=data, allow_redirects=False, timeout=TIMEOUT)
    for _ in range(MAX_STEPS):
        if not response.is_redirect:
            return response.url
        location = urljoin(response.url, response.headers["Location"])
        if _leaves(location, provider_origin):
            return location
        response = session.get(location, allow_redirects=False, timeout=TIMEOUT)
    raise OPDriverError("logout did not settle")
