"""The device authorization grant (RFC 8628): for a command line or a device without a browser,
the user approves the request on another device, at the provider's verification page, with a
short user code. No Flask import.

:func:`start_device_authorization` asks the provider for the codes; :func:`poll_device_token`
polls the token endpoint at the interval the provider gave, slower when it says ``slow_down``
and after network failures, until the user approves (a token), denies (``access_denied``), or
the codes expire (``expired_token``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from collections.abc import Iterable
from urllib.parse import urlsplit

from ._http import decode_body
from .client import ProviderClient
from .client import raise_for_error_answer
from .errors import InvalidTokenResponse
from .errors import ProviderUnavailable
from .errors import TokenError
from .token import Token
from .token import format_scope

__all__ = ["DEVICE_CODE_GRANT", "DeviceAuthorization", "poll_device_token", "start_device_authorization"]

log = logging.getLogger("flask_oauth2_client")

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: RFC 8628 §3.2: the polling interval when the provider gives none.
DEFAULT_INTERVAL = 5.0
#: RFC 8628 §3.5: ``slow_down`` adds 5 seconds to the interval.
SLOW_DOWN_STEP = 5.0
#: Longest wait between two polls, also after repeated network failures.
MAX_INTERVAL = 60.0


@dataclasses.dataclass(frozen=True)
class DeviceAuthorization:
    """A device authorization in progress (RFC 8628 §3.2). Show :attr:`user_code` and
    :attr:`verification_uri` (or :attr:`verification_uri_complete`) to the user; the device code
    is a secret and never shown."""

    device_code: str = dataclasses.field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    #: Seconds the codes were valid for when received.
    expires_in: float
    #: Seconds to wait between polls.
    interval: float
    #: :func:`time.monotonic` deadline of the codes.
    deadline: float


def start_device_authorization(client: ProviderClient, *, scopes: Iterable[str] | None = None) -> DeviceAuthorization:
    """Ask the provider's device authorization endpoint for a device code and a user code
    (RFC 8628 §3.1), with client authentication.

    :raises TokenError: the provider refused (e.g. ``invalid_client``, ``invalid_scope``).
    :raises InvalidTokenResponse: the answer lacks a usable field.
    :raises ProviderUnavailable: network failure, timeout or a 5xx answer.
    """
    cfg = client.config
    what = "device authorization endpoint"
    url = client.endpoint("device_authorization_url", "device_authorization_endpoint")
    chosen = cfg.scopes if scopes is None else tuple(scopes)
    fields = {"scope": format_scope(chosen, cfg.scope_separator)} if chosen else {}
    answer = client.post_form(url, fields, what=what)
    received = time.monotonic()
    if answer.status != 200:
        raise_for_error_answer(answer.status, answer.content_type, answer.body, provider=cfg.name, what=what)
        raise InvalidTokenResponse(f"the {what} answered HTTP {answer.status}", provider=cfg.name)
    try:
        data = decode_body(answer.content_type, answer.body)
    except ValueError:
        data = None
    if data is None:
        raise InvalidTokenResponse(f"the {what} did not answer with a JSON object", provider=cfg.name)

    def text(name: str) -> str:
        value = data.get(name)
        if not isinstance(value, str) or not value or len(value) > 2048:
            raise InvalidTokenResponse(f"the {what} answer has no usable {name}", provider=cfg.name)
        return value

    def seconds(name: str, default: float | None) -> float:
        value = data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 24 * 3600:
            raise InvalidTokenResponse(f"the {what} answer has no usable {name}", provider=cfg.name)
        return float(value)

    device_code, user_code = text("device_code"), text("user_code")
    verification_uri = text("verification_uri")
    complete = text("verification_uri_complete") if "verification_uri_complete" in data else None
    for link in (verification_uri, complete):
        if link is not None and not _web_address(link):
            message = f"the {what} answer has a verification URI that is not http(s)"
            raise InvalidTokenResponse(message, provider=cfg.name)
    expires_in = seconds("expires_in", None)
    return DeviceAuthorization(
        device_code=device_code,
        user_code=user_code,
        verification_uri=verification_uri,
        verification_uri_complete=complete,
        expires_in=expires_in,
        interval=max(seconds("interval", DEFAULT_INTERVAL), 1.0),
        deadline=received + expires_in,
    )


def poll_device_token(
    client: ProviderClient,
    authorization: DeviceAuthorization,
    *,
    scopes: Iterable[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_wait: Callable[[float], None] | None = None,
) -> Token:
    """Poll the token endpoint until the user has decided (RFC 8628 §3.4, §3.5).

    Waits ``interval`` seconds before each poll; ``slow_down`` adds 5 seconds for good; a
    network failure or a 5xx answer doubles the wait (up to :data:`MAX_INTERVAL`) and polling
    goes on. *on_wait* is called with each wait, e.g. to show progress.

    :raises TokenError: ``access_denied`` (the user said no), ``expired_token`` (the codes
        expired, at the provider or by their ``expires_in``), or another error of the provider.
    """
    cfg = client.config
    dpop_key = client.new_dpop_key()  # one key for the token, whichever poll gets it
    interval = authorization.interval
    backoff = 0.0
    fields = {"grant_type": DEVICE_CODE_GRANT, "device_code": authorization.device_code}
    while True:
        wait = min(max(interval, backoff), MAX_INTERVAL)
        if clock() + wait >= authorization.deadline:
            raise TokenError(
                "expired_token",
                provider=cfg.name,
                description="the user did not approve the request before the codes expired",
            )
        if on_wait is not None:
            on_wait(wait)
        sleep(wait)
        try:
            return client.request_token(fields, requested_scopes=scopes, dpop_key=dpop_key)
        except TokenError as exc:
            if exc.error == "authorization_pending":
                backoff = 0.0
                continue
            if exc.error == "slow_down":
                interval += SLOW_DOWN_STEP
                log.debug("provider %s asked to poll more slowly: every %.0f s", cfg.name, interval)
                continue
            raise
        except ProviderUnavailable as exc:
            backoff = min(max(backoff, interval) * 2, MAX_INTERVAL)
            log.warning("polling %s failed (%s); trying again in %.0f s", cfg.name, exc.message, backoff)


def _web_address(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("https", "http") and bool(parts.hostname)
