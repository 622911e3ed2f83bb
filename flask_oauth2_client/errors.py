"""The exception hierarchy of flask-oauth2-client.

Every error the library raises on purpose is an :class:`OAuth2Error`::

    OAuth2Error                     base; .provider names the provider (or None)
    ├── ConfigurationError          bad or missing OAUTH2_* setting (raised by init_app); also a ValueError
    ├── CallbackError               the redirect back from the provider is unusable             -> 400
    │   ├── StateError              missing, unknown, expired, replayed or foreign state;
    │   │                           issuer (iss) mismatch                                       -> 400
    │   └── AuthorizationError      the provider redirected back with error=...                 -> 4xx
    ├── ProviderError               something on the provider's side
    │   ├── TokenError              the token endpoint answered with an OAuth error            -> 400/502
    │   ├── InvalidTokenResponse    a 2xx answer that is not a usable token                    -> 502
    │   ├── IDTokenError            an ID token that fails validation                          -> 502
    │   ├── DiscoveryError          unusable provider metadata                                 -> 502
    │   ├── ParError                a pushed authorization request failed                      -> 502
    │   └── ProviderUnavailable     unreachable, timed out, 5xx                                -> 502/503/504
    ├── StoreError                  the token store failed (unreachable, lock timeout)          -> 503
    └── ReauthorizationRequired     no usable token: the user must (re)authorize               -> login / 401

Messages never contain a token, a code, a secret or a password: they are safe to log and to show.
The OAuth error *code* (``invalid_grant``, ``access_denied``...) is an attribute, not a subclass.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = [
    "AuthorizationError",
    "CallbackError",
    "ConfigurationError",
    "DiscoveryError",
    "IDTokenError",
    "InvalidTokenResponse",
    "OAuth2Error",
    "ParError",
    "ProviderError",
    "ProviderUnavailable",
    "ReauthorizationRequired",
    "StateError",
    "StoreError",
    "TokenError",
]


class OAuth2Error(Exception):
    """Base class of every error raised by flask-oauth2-client.

    :param message: a short, human-readable reason, free of secrets.
    :param provider: the name of the provider concerned, if any.
    """

    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider

    def __str__(self) -> str:
        if self.provider is not None:
            return f"[{self.provider}] {self.message}"
        return self.message


class ConfigurationError(OAuth2Error, ValueError):
    """An ``OAUTH2_*`` setting is missing or invalid. Raised by ``init_app``; the message names
    the configuration key and the provider."""


class CallbackError(OAuth2Error):
    """The provider's redirect back to the callback cannot be accepted (HTTP 400).

    :param reason: a stable machine-readable code, e.g. ``"missing_code"``, ``"invalid_request"``
        (a repeated parameter), ``"login_required"`` (the app has no signed-in user; HTTP 401).
    """

    def __init__(self, message: str, *, provider: str | None = None, reason: str = "invalid_request") -> None:
        super().__init__(message, provider=provider)
        self.reason = reason


class StateError(CallbackError):
    """The ``state`` of a callback is missing, unknown, expired, already used or belongs to another
    provider, or the ``iss`` parameter does not match the provider's issuer."""


class AuthorizationError(CallbackError):
    """The provider redirected back with ``error=...`` (RFC 6749 §4.1.2.1).

    :param error: the provider's error code, e.g. ``access_denied``.
    :param description: the provider's ``error_description``, if any.
    :param uri: the provider's ``error_uri``, if any.
    """

    def __init__(
        self,
        error: str,
        *,
        provider: str | None = None,
        description: str | None = None,
        uri: str | None = None,
    ) -> None:
        message = f"the provider refused the authorization: {error}"
        if description:
            message = f"{message} ({description})"
        super().__init__(message, provider=provider, reason=error)
        self.error = error
        self.description = description
        self.uri = uri


class ProviderError(OAuth2Error):
    """Something went wrong on the provider's side of a request."""


class TokenError(ProviderError):
    """The token endpoint answered with an OAuth error response (RFC 6749 §5.2).

    :param error: the error code, e.g. ``invalid_grant`` or ``invalid_client``.
    :param description: the provider's ``error_description``, if any.
    :param status_code: the HTTP status of the provider's answer.
    """

    def __init__(
        self,
        error: str,
        *,
        provider: str | None = None,
        description: str | None = None,
        status_code: int | None = None,
    ) -> None:
        message = f"the token endpoint refused the request: {error}"
        if description:
            message = f"{message} ({description})"
        super().__init__(message, provider=provider)
        self.error = error
        self.description = description
        self.status_code = status_code


class InvalidTokenResponse(ProviderError):
    """The token endpoint answered with success, but the body is not a usable token response
    (not JSON, no ``access_token``, a token type other than Bearer, too large...)."""


class IDTokenError(ProviderError):
    """An ID token failed validation (signature, ``iss``, ``aud``, ``exp``, ``nonce``...), or a
    UserInfo answer does not belong to the ID token's subject.

    :param reason: a stable code: ``"invalid_id_token"``, or ``"subject_changed"`` when a refresh
        or UserInfo answer names another user than the login did (SECURITY.md P-9, P-16).
    """

    def __init__(self, message: str, *, provider: str | None = None, reason: str = "invalid_id_token") -> None:
        super().__init__(message, provider=provider)
        self.reason = reason


class DiscoveryError(ProviderError):
    """The provider's metadata (OpenID Connect Discovery, RFC 8414) or its key set cannot be used:
    not JSON, an ``issuer`` other than the one configured (OIDC Discovery §4.3), an endpoint
    that is not https, a required endpoint missing."""


class ParError(ProviderError):
    """A pushed authorization request (RFC 9126) failed: the provider refused it, or its answer
    has no ``request_uri``. The login stops with a 502 page; the browser is never sent to the
    provider with half a request.

    :param error: the provider's OAuth error code, when it gave one.
    """

    def __init__(self, message: str, *, provider: str | None = None, error: str | None = None) -> None:
        super().__init__(message, provider=provider)
        self.error = error


class ProviderUnavailable(ProviderError):
    """The provider could not be reached or failed (network error, timeout, HTTP 5xx).

    :param kind: ``"unreachable"`` (connection failed), ``"timeout"``, ``"unavailable"`` (HTTP 503
        or ``temporarily_unavailable``) or ``"server_error"`` (any other 5xx, or an unusable answer).
    :param status_code: the HTTP status of the provider's answer, when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        kind: str = "server_error",
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, provider=provider)
        self.kind = kind
        self.status_code = status_code


class StoreError(OAuth2Error):
    """The token store could not be used (unreachable, or a refresh lock was not obtained in time)."""


class ReauthorizationRequired(OAuth2Error):
    """There is no usable token for the current user: none was stored, it expired without a refresh
    token, or the provider refused to refresh it. The user has to go through login again.

    :param scopes: scopes the new authorization must ask for, if any beyond the configured ones.
    :param reason: ``"no_token"``, ``"insufficient_scope"``, ``"expired"``, ``"no_refresh_token"`` or
        ``"refresh_refused"``.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        scopes: tuple[str, ...] = (),
        reason: str = "no_token",
    ) -> None:
        super().__init__(message, provider=provider)
        self.scopes = scopes
        self.reason = reason


class OAuth2Warning(UserWarning):
    """A configuration that works but weakens security (PKCE off, tokens in a cookie session...)."""


__all__ += ["OAuth2Warning"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str, category: type[Warning] = OAuth2Warning) -> None:
    """Issue a warning attributed to the first caller outside this package (the application's
    ``init_app`` or ``OAuth2Client(app)`` line), so that the warning filters and the message's
    file and line point at the user's code, whatever the depth of the call inside the library."""
    level = 2  # 1 is this function, 2 its caller
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level)
