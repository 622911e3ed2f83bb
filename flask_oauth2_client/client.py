"""Talking to one provider: the authorization URL, and every request to the token and revocation
endpoints. No Flask import.

There is exactly one place that sends a token request (:meth:`ProviderClient.request_token`: client
authentication, ``token_params``, timeout, no redirects, a size cap) and one place that turns the
answer into a :class:`~flask_oauth2_client.token.Token` (:func:`parse_token_response`). Each grant is
a few fields on top of them.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import time
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any
from typing import cast
from urllib.parse import parse_qsl
from urllib.parse import quote
from urllib.parse import urlencode
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import jwt
import requests

from ._http import MAX_RESPONSE_BYTES
from ._http import Answer
from ._http import decode_body
from ._http import exchange
from ._http import json_object
from ._http import media_type
from ._http import new_session
from ._http import printable
from ._http import send
from .config import ProviderConfig
from .discovery import Endpoints
from .discovery import MetadataCache
from .dpop import DPOP_ALGORITHM
from .dpop import NonceMemory
from .dpop import make_proof
from .dpop import nonce_requested
from .errors import DiscoveryError
from .errors import IDTokenError
from .errors import InvalidTokenResponse
from .errors import ParError
from .errors import ProviderUnavailable
from .errors import StateError
from .errors import TokenError
from .keys import ClientKey
from .oidc import KeySet
from .oidc import validate_id_token
from .token import Token
from .token import format_scope
from .token import parse_scope

__all__ = ["MAX_RESPONSE_BYTES", "ProviderClient", "parse_token_response"]

log = logging.getLogger("flask_oauth2_client")

#: RFC 7523 §2.2 ``client_assertion_type`` of a JWT client assertion.
JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Seconds a client assertion is valid.
ASSERTION_LIFETIME = 60
#: A longer ``expires_in`` (some providers send huge values for "never") means unknown expiry.
MAX_EXPIRES_IN = 10 * 365 * 24 * 3600
_KNOWN_FIELDS = frozenset({"access_token", "token_type", "expires_in", "refresh_token", "scope", "id_token"})


class ProviderClient:
    """The protocol client of one provider. Thread-safe; holds one pooled :class:`requests.Session`.

    :param config: the provider's validated configuration.
    :param timeout: seconds for connecting and for reading each answer; never ``None``.
    :param http: a session to use instead of a new one (for tests or custom adapters).
    """

    def __init__(
        self,
        config: ProviderConfig,
        *,
        timeout: float,
        http: requests.Session | None = None,
        allow_insecure: bool = False,
        metadata_ttl: float = 3600,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.http = http or new_session()
        self._static = Endpoints.from_config(config)
        self._resolved: tuple[Mapping[str, Any], Endpoints] | None = None
        #: The provider's metadata document, when it is configured with ``metadata_url``.
        self.metadata = (
            None
            if config.metadata_url is None
            else MetadataCache(config, http=self.http, timeout=timeout, ttl=metadata_ttl, allow_insecure=allow_insecure)
        )
        #: The latest DPoP nonce of each of the provider's servers (RFC 9449 §8, §9).
        self.dpop_nonces = NonceMemory()
        #: The provider's signing keys (OpenID Connect).
        self.keys = KeySet(lambda: self.endpoints().jwks_url, http=self.http, timeout=timeout, provider=config.name)

    def endpoints(self) -> Endpoints:
        """The provider's endpoints and capabilities: the configuration's, completed by the
        metadata document (fetched on first use) when there is a ``metadata_url``.

        :raises ProviderUnavailable: the metadata cannot be fetched (and none is at hand).
        :raises DiscoveryError: the metadata document cannot be used.
        """
        if self.metadata is None:
            return self._static
        document = self.metadata.get()
        resolved = self._resolved
        if resolved is None or resolved[0] is not document:
            resolved = (document, Endpoints.from_config(self.config, document))
            self._resolved = resolved
        return resolved[1]

    def endpoint(self, attribute: str, what: str) -> str:
        value = getattr(self.endpoints(), attribute)
        if value is None:
            if self.metadata is not None:
                raise DiscoveryError(f"the provider's metadata names no {what}", provider=self.name)
            raise ValueError(f"provider {self.name!r} has no {attribute}")
        return cast(str, value)

    @property
    def auth_method(self) -> str:
        """The client authentication method: the configured one; else, with a client secret
        and metadata, ``client_secret_basic`` unless the provider supports only ``client_secret_post``."""
        cfg = self.config
        if cfg.client_auth_method_configured or cfg.client_secret is None or self.metadata is None:
            return cfg.client_auth_method
        supported = self.endpoints().token_auth_methods
        if supported and "client_secret_basic" not in supported and "client_secret_post" in supported:
            return "client_secret_post"
        return "client_secret_basic"

    # -- OpenID Connect -----------------------------------------------------------------------

    def check_response_issuer(self, iss: str | None) -> None:
        """RFC 9207 (RFC 9700 §4.4): the ``iss`` of an authorization response must be this
        provider's issuer; a missing one is refused when the provider announces it always sends
        it, or when ``require_iss`` is set.

        :raises StateError: with ``reason="invalid_issuer"``.
        """
        endpoints = self.endpoints()
        issuer = endpoints.issuer
        if iss is None:
            if issuer is not None and (self.config.require_iss or endpoints.iss_parameter_supported):
                raise StateError(
                    "the answer does not say which issuer sent it (iss is missing)",
                    provider=self.name,
                    reason="invalid_issuer",
                )
            return
        if issuer is not None and not self.config.quirks.response_issuer_matches(issuer, iss):
            raise StateError(
                "the answer comes from another issuer (iss mismatch)", provider=self.name, reason="invalid_issuer"
            )

    def validate_id_token(self, token: Token, *, nonce: str | None, previous: Token | None = None) -> Token:
        """Check *token*'s ID token (OIDC Core §3.1.3.7) and return the token with its claims.

        For a login (*previous* is ``None``) an ID token is required when ``openid`` was asked
        for. For a refresh, an answer without one keeps the previous ID token and claims.
        """
        if token.id_token is None:
            if previous is not None:
                return token.replace(id_token=previous.id_token, claims=previous.claims)
            if self.config.is_openid:
                raise IDTokenError("the token response has no ID token (openid was asked for)", provider=self.name)
            return token
        endpoints = self.endpoints()
        if endpoints.issuer is None:
            raise DiscoveryError(
                "the provider's issuer is unknown: set 'issuer' or 'metadata_url' to verify ID tokens",
                provider=self.name,
            )
        claims = validate_id_token(
            token.id_token,
            keys=self.keys,
            issuer=endpoints.issuer,
            client_id=self.config.client_id,
            algorithms=endpoints.id_token_algorithms,
            provider=self.name,
            nonce=nonce,
            access_token=token.access_token,
            trusted_audiences=self.config.trusted_audiences,
            previous=None if previous is None else previous.claims,
            accepted_issuers=functools.partial(self.config.quirks.id_token_issuers, endpoints.issuer),
        )
        return token.replace(claims=claims)

    def userinfo(self, token: Token) -> dict[str, Any]:
        """Call the UserInfo endpoint with *token* and return its claims. Its ``sub`` must be the
        ID token's when *token* has one (OIDC Core §5.3.2, SECURITY.md P-16).

        :raises IDTokenError: the answer is about another subject.
        :raises InvalidTokenResponse: the answer is not a JSON object.
        """
        url = self.endpoint("userinfo_url", "userinfo_endpoint")
        status, content_type, body = send(
            self.http,
            "GET",
            url,
            headers={"Authorization": token.authorization_header},
            timeout=self.timeout,
            what="userinfo endpoint",
            provider=self.name,
            malformed=InvalidTokenResponse,
        )
        if status != 200:
            raise_for_error_answer(status, content_type, body, provider=self.name, what="userinfo endpoint")
            raise InvalidTokenResponse(f"the userinfo endpoint answered HTTP {status}", provider=self.name)
        claims = json_object(body, content_type)
        if claims is None:
            raise InvalidTokenResponse("the userinfo answer is not a JSON object", provider=self.name)
        expected = token.claims.get("sub")
        if expected is not None and claims.get("sub") != expected:
            raise IDTokenError(
                "the userinfo answer is about another user than the ID token (sub)",
                provider=self.name,
                reason="subject_changed",
            )
        return dict(claims)

    @property
    def name(self) -> str:
        return self.config.name

    def close(self) -> None:
        self.http.close()

    # -- the authorization request ------------------------------------------------------------

    def authorization_url(
        self,
        *,
        redirect_uri: str,
        state: str,
        code_challenge: str | None,
        scopes: Iterable[str] | None = None,
        response_type: str = "code",
        extra: Mapping[str, str] | None = None,
    ) -> str:
        """The URL of the authorization endpoint for one authorization request (RFC 6749 §4.1.1,
        RFC 7636 §4.3). ``extra`` parameters come after the configured ``authorize_params``.

        When the provider is configured with ``par`` or its metadata requires it, the request is
        pushed first (RFC 9126) and the URL carries only ``client_id`` and ``request_uri``.

        :raises ParError: the push failed."""
        cfg = self.config
        authorize_url = self.endpoint("authorize_url", "authorization_endpoint")
        params: dict[str, str] = {
            "response_type": response_type,
            "client_id": cfg.client_id,
            "redirect_uri": redirect_uri,
        }
        scope = format_scope(cfg.scopes if scopes is None else scopes, cfg.scope_separator)
        if scope:
            params["scope"] = scope
        params["state"] = state
        if code_challenge is not None:
            params["code_challenge"] = code_challenge
            params["code_challenge_method"] = "S256"
        params.update(cfg.authorize_params)
        params.update(extra or {})
        if self.uses_par:
            params = {"client_id": cfg.client_id, "request_uri": self.push_authorization_request(params)}
        parts = urlsplit(authorize_url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        query = [(k, v) for k, v in query if k not in params] + list(params.items())
        return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))

    @property
    def uses_par(self) -> bool:
        """Whether authorization requests are pushed (RFC 9126): configured with ``par``, or
        required by the provider's metadata."""
        return self.config.par or self.endpoints().require_par

    def push_authorization_request(self, params: Mapping[str, str]) -> str:
        """Push an authorization request's *params* to the provider (RFC 9126 §2.1, with client
        authentication) and return the ``request_uri`` that stands for them.

        :raises ParError: the provider refused the request or answered something unusable.
        :raises ProviderUnavailable: network failure, timeout or a 5xx answer.
        """
        name = self.name
        what = "pushed authorization request endpoint"
        url = self.endpoint("par_url", "pushed_authorization_request_endpoint")
        answer = self.post_form(url, params, what=what)
        log.debug("pushed authorization request provider=%s answered %s", name, answer.status)
        if answer.status not in (200, 201):
            try:
                raise_for_error_answer(answer.status, answer.content_type, answer.body, provider=name, what=what)
            except TokenError as exc:
                raise ParError(
                    f"the provider refused the pushed authorization request ({exc.error}"
                    f"{': ' + exc.description if exc.description else ''})",
                    provider=name,
                    error=exc.error,
                ) from None
            raise ParError(f"the pushed authorization request endpoint answered HTTP {answer.status}", provider=name)
        try:
            data = decode_body(answer.content_type, answer.body)
        except ValueError:
            data = None
        request_uri = data.get("request_uri") if data else None
        if not isinstance(request_uri, str) or not request_uri or len(request_uri) > 2048:
            raise ParError("the pushed authorization request answer has no usable request_uri", provider=name)
        return request_uri

    # -- the token endpoint -------------------------------------------------------------------

    def exchange_code(
        self,
        code: str,
        *,
        redirect_uri: str,
        code_verifier: str | None,
        scopes: Iterable[str] | None = None,
        nonce: str | None = None,
    ) -> Token:
        """Exchange an authorization code (RFC 6749 §4.1.3), with the PKCE verifier. *scopes* are
        those the authorization request asked for (the granted ones when the answer omits them).
        The ID token, if any, is validated against *nonce* and its claims set on the token.

        :raises IDTokenError: the ID token is invalid, or missing although ``openid`` was asked for.
        """
        fields = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier is not None:
            fields["code_verifier"] = code_verifier
        token = self.request_token(fields, requested_scopes=scopes, dpop_key=self.new_dpop_key())
        return self.validate_id_token(token, nonce=nonce)

    def refresh(
        self,
        refresh_token: str,
        *,
        scopes: Iterable[str] | None = None,
        previous_scopes: Iterable[str] = (),
        previous: Token | None = None,
    ) -> Token:
        """Use a refresh token (RFC 6749 §6). *scopes* narrows the new token; without it the
        provider grants the original scopes, which *previous_scopes* (or *previous*'s) records
        for an answer that does not list them. When the answer has no new refresh token, the one
        used stays valid and is kept in the returned token.

        With *previous* (the token being refreshed), an ID token in the answer must name the same
        issuer and subject (``IDTokenError`` with ``reason="subject_changed"`` otherwise), and an
        answer without one keeps the previous ID token and claims."""
        fields = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if scopes:
            fields["scope"] = format_scope(scopes, self.config.scope_separator)
        if previous is not None and not previous_scopes:
            previous_scopes = previous.scopes
        # A DPoP-bound token is refreshed with its own key (the refresh token may be bound to it).
        key = previous.dpop_key if previous is not None and previous.dpop_key is not None else self.new_dpop_key()
        requested = tuple(scopes) if scopes else tuple(previous_scopes)
        token = self.request_token(fields, requested_scopes=requested, dpop_key=key)
        if token.refresh_token is None:
            token = token.replace(refresh_token=refresh_token)
        if previous is not None:
            token = self.validate_id_token(token, nonce=None, previous=previous)
        return token

    def client_credentials(self, *, scopes: Iterable[str] | None = None) -> Token:
        """Get an application token with the client_credentials grant (RFC 6749 §4.4)."""
        return self._grant({"grant_type": "client_credentials"}, scopes)

    def password(self, username: str, password: str, *, scopes: Iterable[str] | None = None) -> Token:
        """The legacy resource owner password credentials grant (RFC 6749 §4.3)."""
        return self._grant({"grant_type": "password", "username": username, "password": password}, scopes)

    def _grant(self, fields: dict[str, str], scopes: Iterable[str] | None) -> Token:
        """A grant that asks for scopes: the configured ones unless *scopes* says otherwise."""
        chosen = self.config.scopes if scopes is None else tuple(scopes)
        if chosen:
            fields["scope"] = format_scope(chosen, self.config.scope_separator)
        return self.request_token(fields, requested_scopes=chosen, dpop_key=self.new_dpop_key())

    def new_dpop_key(self) -> ClientKey | None:
        """A new DPoP key pair for a new token when the provider is configured with ``dpop``
        (RFC 9449: one key per token, never reused across users), else ``None``."""
        return ClientKey.generate(DPOP_ALGORITHM) if self.config.dpop else None

    def request_token(
        self,
        fields: Mapping[str, str],
        *,
        requested_scopes: Iterable[str] | None = None,
        dpop_key: ClientKey | None = None,
    ) -> Token:
        """Send one token request with client authentication and parse the answer. With
        *dpop_key*, the request carries a DPoP proof of that key and the token is bound to it.

        :raises TokenError: the provider answered with an OAuth error.
        :raises InvalidTokenResponse: the answer is not a usable token.
        :raises ProviderUnavailable: network failure, timeout or a 5xx answer.
        """
        cfg = self.config
        token_url = self.endpoint("token_url", "token_endpoint")
        grant_type = fields.get("grant_type", "?")
        body = {**fields, **{k: v for k, v in cfg.token_params.items() if k not in fields}}
        answer = self.post_form(token_url, body, what="token endpoint", dpop_key=dpop_key)
        log.debug("token request grant_type=%s provider=%s answered %s", grant_type, cfg.name, answer.status)
        scopes = cfg.scopes if requested_scopes is None else tuple(requested_scopes)
        return parse_token_response(
            answer.status,
            answer.content_type,
            answer.body,
            provider=cfg.name,
            requested_scopes=scopes,
            dpop_jwk=None if dpop_key is None else dpop_key.private_jwk(),
        )

    # -- revocation (RFC 7009) ----------------------------------------------------------------

    def revoke(self, token: str, *, token_type_hint: str | None = None) -> None:
        """Revoke *token* at the revocation endpoint. A 200 (even for an unknown token) is success.

        :raises TokenError: the endpoint answered with an OAuth error.
        :raises ProviderUnavailable: network failure, timeout or a 5xx answer.
        """
        cfg = self.config
        revocation_url = self.endpoint("revocation_url", "revocation_endpoint")
        fields = {"token": token}
        if token_type_hint:
            fields["token_type_hint"] = token_type_hint
        status, content_type, body, _ = self.post_form(revocation_url, fields, what="revocation")
        log.debug("revocation provider=%s answered %s", cfg.name, status)
        if status == 200:
            return
        raise_for_error_answer(status, content_type, body, provider=cfg.name, what="revocation endpoint")
        raise InvalidTokenResponse(f"the revocation endpoint answered HTTP {status}", provider=cfg.name)

    # -- plumbing -----------------------------------------------------------------------------

    def _authenticated(self, fields: Mapping[str, str], url: str) -> dict[str, Any]:
        """The form body and ``auth`` of a request to *url* (an endpoint of the provider's) for
        the configured client authentication method."""
        cfg = self.config
        data: dict[str, str] = dict(fields)
        auth: tuple[str, str] | None = None
        method = self.auth_method
        if method == "client_secret_basic":
            assert cfg.client_secret is not None
            # RFC 6749 §2.3.1: form-urlencode id and secret before the Basic encoding.
            auth = (quote(cfg.client_id, safe=""), quote(cfg.client_secret, safe=""))
        elif method == "client_secret_post":
            assert cfg.client_secret is not None
            data = _insert_after_grant_fields(data, {"client_id": cfg.client_id, "client_secret": cfg.client_secret})
        elif method in ("private_key_jwt", "client_secret_jwt"):
            assertion = {
                "client_id": cfg.client_id,
                "client_assertion_type": JWT_BEARER_ASSERTION,
                "client_assertion": self.client_assertion(url),
            }
            data = _insert_after_grant_fields(data, assertion)
        else:  # "none": a public client identifies itself
            data = _insert_after_grant_fields(data, {"client_id": cfg.client_id})
        return {"data": data, "auth": auth}

    def client_assertion(self, url: str) -> str:
        """A client assertion (RFC 7523 §2.2, OpenID Connect Core §9) for a request to *url*:
        ``iss`` and ``sub`` the client id, a unique ``jti``, a lifetime of
        :data:`ASSERTION_LIFETIME` seconds, signed with the active client key
        (``private_key_jwt``) or with the client secret (``client_secret_jwt``, HS256).

        ``aud`` is the provider's issuer, a single string, as RFC 7523bis recommends (an
        audience of endpoint URLs let a malicious provider replay assertions elsewhere); the
        endpoint's URL only when the issuer is unknown, or ``client_assertion_audience``."""
        cfg = self.config
        audience = cfg.client_assertion_audience or self.endpoints().issuer or url
        now = int(time.time())
        claims = {
            "iss": cfg.client_id,
            "sub": cfg.client_id,
            "aud": audience,
            "jti": secrets.token_urlsafe(24),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        }
        if self.auth_method == "private_key_jwt":
            return cfg.client_keys[0].sign(claims)
        assert cfg.client_secret is not None
        return jwt.encode(claims, cfg.client_secret, algorithm="HS256")

    def post_form(self, url: str, fields: Mapping[str, str], *, what: str, dpop_key: ClientKey | None = None) -> Answer:
        """POST *fields* to an endpoint of the provider's with client authentication. With
        *dpop_key*, a DPoP proof goes along, and an answer that asks for the server's nonce
        (RFC 9449 §8) is retried once with it."""
        for attempt in (1, 2):
            request = self._authenticated(fields, url)  # a fresh client assertion each time
            # Accept set per request, not only on the session: GitHub answers in form encoding without it.
            headers = {"Accept": "application/json"}
            if dpop_key is not None:
                headers["DPoP"] = make_proof(dpop_key, "POST", url, nonce=self.dpop_nonces.get(url))
            answer = exchange(
                self.http,
                "POST",
                url,
                data=request["data"],
                auth=request["auth"],
                headers=headers,
                timeout=self.timeout,
                what=what,
                provider=self.name,
                malformed=InvalidTokenResponse,
            )
            if dpop_key is None:
                return answer
            self.dpop_nonces.remember(url, answer.headers)
            if attempt == 1 and nonce_requested(answer.status, answer.headers, _error_object(answer)):
                log.debug("provider %s asked for a DPoP nonce at its %s; retrying once", self.name, what)
                continue
            return answer
        raise AssertionError("unreachable")  # pragma: no cover


def _error_object(answer: Answer) -> Mapping[str, Any] | None:
    """The JSON object of an error answer, when it is one."""
    if answer.status < 400:
        return None
    try:
        return decode_body(answer.content_type, answer.body)
    except ValueError:
        return None


def _insert_after_grant_fields(data: dict[str, str], client: Mapping[str, str]) -> dict[str, str]:
    """Place the client's credentials where the reference text shows them: after the grant's own
    fields and before ``redirect_uri`` and the other extras."""
    ordered: dict[str, str] = {}
    grant_keys = ("grant_type", "code", "username", "password", "refresh_token")
    for key in grant_keys:
        if key in data:
            ordered[key] = data[key]
    ordered.update(client)
    for key, value in data.items():
        ordered.setdefault(key, value)
    return ordered


# -- parsing answers ------------------------------------------------------------------------------


def raise_for_error_answer(status: int, content_type: str, body: bytes, *, provider: str, what: str) -> None:
    """Raise the right error for a non-2xx answer; returns only when nothing fits."""
    if status == 503:
        raise ProviderUnavailable(
            f"the {what} is temporarily unavailable (HTTP 503)",
            provider=provider,
            kind="unavailable",
            status_code=status,
        )
    if status >= 500:
        raise ProviderUnavailable(
            f"the {what} failed (HTTP {status})", provider=provider, kind="server_error", status_code=status
        )
    try:
        data = decode_body(content_type, body)
    except ValueError:
        data = None
    error = data.get("error") if data else None
    if isinstance(error, str) and error:
        description = data.get("error_description") if data else None
        description = description if isinstance(description, str) else None
        if error == "temporarily_unavailable":
            raise ProviderUnavailable(
                f"the {what} is temporarily unavailable", provider=provider, kind="unavailable", status_code=status
            )
        if error == "server_error":
            raise ProviderUnavailable(
                f"the {what} reported a server error", provider=provider, kind="server_error", status_code=status
            )
        raise TokenError(
            printable(error) or "invalid_request",
            provider=provider,
            description=printable(description),
            status_code=status,
        )


def parse_token_response(
    status: int,
    content_type: str,
    body: bytes,
    *,
    provider: str,
    requested_scopes: Iterable[str] = (),
    default_token_type: str | None = None,
    dpop_jwk: Mapping[str, Any] | None = None,
) -> Token:
    """Validate a token endpoint answer (RFC 6749 §5.1, §5.2) and build a :class:`Token`.

    ``requested_scopes`` stand for the granted ones when the answer has no ``scope``.
    ``default_token_type`` is for presets of providers known to omit ``token_type``.
    ``dpop_jwk`` is the key of the DPoP proof the request carried: then, and only then, a
    ``DPoP`` token type is accepted (RFC 9449 §5), and the token keeps the key.
    """
    if not 200 <= status < 300:
        raise_for_error_answer(status, content_type, body, provider=provider, what="token endpoint")
        if 300 <= status < 400:
            raise InvalidTokenResponse(
                "the token endpoint answered with a redirect, which is not followed", provider=provider
            )
        raise InvalidTokenResponse(
            f"the token endpoint answered HTTP {status} without an OAuth error", provider=provider
        )
    try:
        data = decode_body(content_type, body)
    except ValueError as exc:
        raise InvalidTokenResponse(f"the token response is malformed: {exc}", provider=provider) from None
    if data is None:
        media = media_type(content_type) or "no content type"
        raise InvalidTokenResponse(f"the token response is not a JSON object ({media})", provider=provider)
    if isinstance(data.get("error"), str):
        # Some providers (GitHub) answer errors with HTTP 200.
        raise_for_error_answer(
            400, "application/json", json.dumps(data).encode(), provider=provider, what="token endpoint"
        )

    access_token = data.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise InvalidTokenResponse("the token response has no access_token", provider=provider)
    token_type = data.get("token_type", default_token_type)
    if not isinstance(token_type, str) or not token_type:
        raise InvalidTokenResponse("the token response has no token_type", provider=provider)
    kind = token_type.lower()
    if kind == "dpop" and dpop_jwk is not None:
        token_type = "DPoP"
    elif kind == "bearer":
        token_type = "Bearer"
        if dpop_jwk is not None:
            log.warning("provider %s answered a DPoP token request with a Bearer token (no DPoP support)", provider)
            dpop_jwk = None
    else:
        expected = "Bearer or DPoP" if dpop_jwk is not None else "only Bearer: DPoP was not asked for"
        raise InvalidTokenResponse(
            f"the token type {printable(token_type, 40)!r} is not supported ({expected})", provider=provider
        )
    refresh_token = data.get("refresh_token")
    if refresh_token is not None and (not isinstance(refresh_token, str) or not refresh_token):
        raise InvalidTokenResponse("the token response has an invalid refresh_token", provider=provider)
    id_token = data.get("id_token")
    if id_token is not None and not isinstance(id_token, str):
        raise InvalidTokenResponse("the token response has an invalid id_token", provider=provider)

    scope = data.get("scope")
    if isinstance(scope, str):
        scopes: Iterable[str] = parse_scope(scope)
    elif isinstance(scope, list) and all(isinstance(s, str) for s in scope):
        scopes = scope
    elif scope is None:
        scopes = requested_scopes
    else:
        raise InvalidTokenResponse("the token response has an invalid scope", provider=provider)

    return Token.from_response(
        access_token=access_token,
        token_type=token_type,
        dpop_jwk=dpop_jwk,
        expires_in=_expires_in(data.get("expires_in"), provider),
        refresh_token=refresh_token,
        scopes=scopes,
        id_token=id_token,
        extra={k: v for k, v in data.items() if k not in _KNOWN_FIELDS},
    )


def _expires_in(value: Any, provider: str) -> float | None:
    """SECURITY.md P-6: a number or a numeric string; anything else means "unknown expiry"."""
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value) if abs(value) < 1e18 else float("inf")
    elif isinstance(value, str) and len(value) < 32:
        try:
            seconds = float(value.strip())
        except ValueError:
            seconds = None
    if seconds is None or not 0 <= seconds <= MAX_EXPIRES_IN:  # also catches NaN
        if value is None:
            log.warning("provider %s sent a token without expires_in; its lifetime is unknown", provider)
        else:
            log.warning("provider %s sent an unusable expires_in; the token's lifetime is unknown", provider)
        return None
    return seconds
