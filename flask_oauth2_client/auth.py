"""Calling APIs with the token: a :class:`requests.Session` whose requests carry the bearer token
in the ``Authorization`` header (never in the URL), refreshed before it expires, and refreshed
once more and retried once when the API answers ``401`` with ``error="invalid_token"``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from .token import Token

__all__ = ["BearerAuth", "OAuth2Session"]

log = logging.getLogger("flask_oauth2_client")

#: ``token_source(None)`` gives a usable token; ``token_source(token)`` a newer one than *token*.
TokenSource = Callable[[Token | None], Token]


class BearerAuth(requests.auth.AuthBase):
    """Adds ``Authorization: Bearer <token>`` to each request, and on a ``401`` whose
    ``WWW-Authenticate`` says ``invalid_token`` gets a new token and sends the request once more
    (when its body can be sent again)."""

    def __init__(self, token_source: TokenSource) -> None:
        self._token_source = token_source

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._token_source(None)
        request.headers["Authorization"] = token.authorization_header
        request.register_hook("response", _RetryOnInvalidToken(self._token_source, token))  # type: ignore[no-untyped-call]
        return request


class _RetryOnInvalidToken:
    def __init__(self, token_source: TokenSource, used: Token) -> None:
        self._token_source = token_source
        self._used = used
        self._done = False

    def __call__(self, response: requests.Response, **send_options: Any) -> requests.Response:
        if self._done or response.status_code != 401 or not _says_invalid_token(response):
            return response
        self._done = True
        request = response.request
        body: object = request.body  # a file or generator for streamed uploads, despite the stubs
        if body is not None and not isinstance(body, (bytes, str)):
            return response  # a stream cannot be sent twice
        token = self._token_source(self._used)
        log.debug("the API refused the token (invalid_token); retrying once with a new one")
        retry = request.copy()
        retry.headers["Authorization"] = token.authorization_header
        response.content  # noqa: B018 - read the body so the connection goes back to the pool
        response.close()
        connection = response.connection
        assert connection is not None
        again: requests.Response = connection.send(retry, **send_options)
        again.history.append(response)
        again.request = retry
        return again


def _says_invalid_token(response: requests.Response) -> bool:
    challenge = response.headers.get("WWW-Authenticate", "")
    return challenge.lower().startswith("bearer") and "invalid_token" in challenge


class OAuth2Session(requests.Session):
    """A :class:`requests.Session` for one provider's APIs (see :meth:`OAuth2Client.session`).

    Every request gets the token and, unless the call gives one, the configured timeout.
    Connections are pooled per provider, across the sessions of one app.
    """

    def __init__(self, token_source: TokenSource, *, timeout: float, adapter: HTTPAdapter | None = None) -> None:
        super().__init__()
        self.auth = BearerAuth(token_source)
        self.default_timeout = timeout
        self._shared_adapter = adapter
        if adapter is not None:
            self.mount("https://", adapter)
            self.mount("http://", adapter)

    def close(self) -> None:
        """Close this session's own adapters; the provider's shared connection pool stays open
        for the other sessions (closing it here would drop every pooled connection)."""
        for prefix, adapter in list(self.adapters.items()):
            if adapter is self._shared_adapter:
                del self.adapters[prefix]
        super().close()

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url, *args, **kwargs)
