"""Calling APIs with the token: a :class:`requests.Session` whose requests carry the token in the
``Authorization`` header (never in the URL), refreshed before it expires, and refreshed once more
and retried once when the API answers ``401`` with ``error="invalid_token"``. A DPoP-bound token
(RFC 9449) also gets a proof for each request, and a ``use_dpop_nonce`` answer is retried once
with the server's nonce."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from .dpop import NonceMemory
from .dpop import nonce_requested
from .token import Token

__all__ = ["BearerAuth", "OAuth2Session"]

log = logging.getLogger("flask_oauth2_client")

#: ``token_source(None)`` gives a usable token; ``token_source(token)`` a newer one than *token*.
TokenSource = Callable[[Token | None], Token]


class BearerAuth(requests.auth.AuthBase):
    """Adds ``Authorization: Bearer <token>`` (or ``DPoP <token>`` and a ``DPoP`` proof) to each
    request. On a ``401`` whose ``WWW-Authenticate`` says ``invalid_token`` it gets a new token and
    sends the request once more; on a DPoP ``use_dpop_nonce`` answer it sends it once more with
    the server's nonce (each only when the body can be sent again)."""

    def __init__(self, token_source: TokenSource, *, nonces: NonceMemory | None = None) -> None:
        self._token_source = token_source
        self._nonces = nonces or NonceMemory()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._token_source(None)
        _present(request, token, self._nonces)
        request.register_hook("response", _Retry(self._token_source, token, self._nonces))  # type: ignore[no-untyped-call]
        return request


def _present(request: requests.PreparedRequest, token: Token, nonces: NonceMemory) -> None:
    if token.is_dpop:
        url = str(request.url)
        request.headers.update(token.request_headers(str(request.method), url, nonce=nonces.get(url)))
    else:
        request.headers["Authorization"] = token.authorization_header


class _Retry:
    """The response hook: at most one new token, and at most one nonce retry."""

    def __init__(self, token_source: TokenSource, used: Token, nonces: NonceMemory) -> None:
        self._token_source = token_source
        self._used = used
        self._nonces = nonces
        self._refreshed = False
        self._nonce_retried = False

    def __call__(self, response: requests.Response, **send_options: Any) -> requests.Response:
        token = self._used
        if token.is_dpop:
            self._nonces.remember(str(response.request.url), response.headers)
        if response.status_code != 401:
            return response
        if token.is_dpop and not self._nonce_retried and nonce_requested(401, response.headers):
            self._nonce_retried = True
            log.debug("the API asked for a DPoP nonce; retrying once with it")
            return self._again(response, token, send_options)
        if self._refreshed or not _says_invalid_token(response):
            return response
        self._refreshed = True
        fresh = self._token_source(token)
        self._used = fresh
        log.debug("the API refused the token (invalid_token); retrying once with a new one")
        return self._again(response, fresh, send_options)

    def _again(self, response: requests.Response, token: Token, send_options: Any) -> requests.Response:
        request = response.request
        body: object = request.body  # a file or generator for streamed uploads, despite the stubs
        if body is not None and not isinstance(body, (bytes, str)):
            return response  # a stream cannot be sent twice
        retry = request.copy()
        _present(retry, token, self._nonces)
        response.content  # noqa: B018 - read the body so the connection goes back to the pool
        response.close()
        connection = response.connection
        assert connection is not None
        again: requests.Response = connection.send(retry, **send_options)
        again.history.append(response)
        again.request = retry
        return self(again, **send_options)


def _says_invalid_token(response: requests.Response) -> bool:
    challenge = response.headers.get("WWW-Authenticate", "").lower()
    return challenge.startswith(("bearer", "dpop")) and "invalid_token" in challenge


class OAuth2Session(requests.Session):
    """A :class:`requests.Session` for one provider's APIs (see :meth:`OAuth2Client.session`).

    Every request gets the token and, unless the call gives one, the configured timeout.
    Connections are pooled per provider, across the sessions of one app.
    """

    def __init__(
        self,
        token_source: TokenSource,
        *,
        timeout: float,
        adapter: HTTPAdapter | None = None,
        nonces: NonceMemory | None = None,
    ) -> None:
        super().__init__()
        self.auth = BearerAuth(token_source, nonces=nonces)
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
