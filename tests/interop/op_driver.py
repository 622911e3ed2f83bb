"""Drive oidc-provider's development interaction pages (login, consent, logout) over plain HTTP.

One cookie-keeping :class:`requests.Session` plays the user's browser at the provider: it follows
the provider's own redirects, fills in the login form (any username and password are accepted by
oidc-provider's ``devInteractions``), confirms the consent form, and stops at the first redirect
that leaves the provider. That URL -- normally our ``/oauth2/<name>/callback?code=...&state=...&iss=...``
on the Flask test client's ``http://localhost`` -- is returned, not followed.

For the device authorization grant (RFC 8628), :func:`approve_device` and :func:`deny_device` play
the user at the verification page instead: enter (or confirm) the user code, log in, consent.

Import as ``from interop.op_driver import authorize``.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from html.parser import HTMLParser
from urllib.parse import parse_qs
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


# -- device authorization grant (RFC 8628): the user's side ------------------------------------------

#: What oidc-provider's default device-flow pages say (features.deviceFlow.successSource and
#: userCodeInputSource): the sign-in is complete, or the user aborted it.
DEVICE_SUCCESS_TEXT = "Sign-in Success"
DEVICE_ABORTED_TEXT = "The Sign-in request was interrupted"
DEVICE_INPUT_FORM = "op.deviceInputForm"
DEVICE_CONFIRM_FORM = "op.deviceConfirmForm"


@dataclass
class DeviceOutcome:
    """Where the user's side of a device flow ended: ``"approved"`` (the success page), ``"aborted"``
    (the user aborted at the confirmation or consent page) or ``"error"`` (e.g. an unknown, expired
    or already used user code: the input page again, with an error message)."""

    outcome: str
    response: requests.Response


def approve_device(
    verification_uri: str,
    *,
    user_code: str | None = None,
    session: requests.Session | None = None,
    username: str = "alice",
    password: str = "any-password",
) -> requests.Response:
    """Approve a device authorization as the user: open *verification_uri* (the
    ``verification_uri_complete`` of the device authorization response, or its
    ``verification_uri`` together with *user_code*), confirm the code, log in and consent.

    Returns the provider's success page; raises :class:`OPDriverError` if the provider did not get
    there. Afterwards the device's next poll at the token endpoint gets the tokens.
    """
    result = device_flow(verification_uri, user_code=user_code, session=session, username=username, password=password)
    if result.outcome != "approved":
        raise OPDriverError(
            f"device flow ended {result.outcome} at {result.response.url}: {result.response.text[:2000]}"
        )
    return result.response


def deny_device(
    verification_uri: str,
    *,
    user_code: str | None = None,
    session: requests.Session | None = None,
    username: str = "alice",
    password: str = "any-password",
    at: str = "confirm",
) -> requests.Response:
    """Abort a device authorization as the user, at the code confirmation page (``at="confirm"``,
    before logging in) or at the consent page (``at="consent"``). The device's next poll gets
    ``access_denied``. Returns the provider's "interrupted" page."""
    if at not in ("confirm", "consent"):
        raise ValueError("at must be 'confirm' or 'consent'")
    result = device_flow(
        verification_uri,
        user_code=user_code,
        session=session,
        username=username,
        password=password,
        confirm=at != "confirm",
        consent=at != "consent",
    )
    if result.outcome != "aborted":
        raise OPDriverError(
            f"device flow ended {result.outcome} at {result.response.url}: {result.response.text[:2000]}"
        )
    return result.response


def device_flow(
    verification_uri: str,
    *,
    user_code: str | None = None,
    session: requests.Session | None = None,
    username: str = "alice",
    password: str = "any-password",
    confirm: bool = True,
    consent: bool = True,
) -> DeviceOutcome:
    """The user's side of a device flow, step by step, to whatever page it ends on (see
    :func:`approve_device` and :func:`deny_device`, which check the outcome)."""
    if session is None:
        with requests.Session() as browser:
            return _device_flow(browser, verification_uri, user_code, username, password, confirm, consent)
    return _device_flow(session, verification_uri, user_code, username, password, confirm, consent)


def _device_flow(
    browser: requests.Session,
    verification_uri: str,
    user_code: str | None,
    username: str,
    password: str,
    confirm: bool,
    consent: bool,
) -> DeviceOutcome:
    if user_code is None:
        user_code = parse_qs(urlsplit(verification_uri).query).get("user_code", [None])[0]
    code_entered = False
    response = browser.get(verification_uri, allow_redirects=False, timeout=TIMEOUT)
    for _ in range(MAX_STEPS):
        if response.is_redirect:
            location = urljoin(response.url, response.headers["Location"])
            response = browser.get(location, allow_redirects=False, timeout=TIMEOUT)
            continue
        if response.status_code == 200 and DEVICE_SUCCESS_TEXT in response.text:
            return DeviceOutcome("approved", response)
        if DEVICE_ABORTED_TEXT in response.text:
            return DeviceOutcome("aborted", response)
        if "html" not in response.headers.get("Content-Type", ""):
            return DeviceOutcome("error", response)
        forms = parse_forms(response.text)
        if any(form.fields.get("prompt") in ("login", "consent") for form in forms):
            response = _answer_page(browser, response, username=username, password=password, consent=consent)
            continue
        form = next((form for form in forms if "user_code" in form.fields and "xsrf" in form.fields), None)
        if form is None:
            return DeviceOutcome("error", response)
        action = urljoin(response.url, form.action)
        data = dict(form.fields)
        if form.id == DEVICE_CONFIRM_FORM:
            if not confirm:
                data.pop("confirm", None)
                data["abort"] = "yes"
        elif form.id == DEVICE_INPUT_FORM:
            # The empty code input page; shown again, with a message, after a wrong or spent code.
            if code_entered or not user_code:
                return DeviceOutcome("error", response)
            data["user_code"] = user_code
            code_entered = True
        else:
            code_entered = True  # verification_uri_complete: the page posts the code by itself
        response = browser.post(action, data=data, allow_redirects=False, timeout=TIMEOUT)
    raise OPDriverError(f"the device flow did not settle after {MAX_STEPS} steps (last: {response.url})")
