"""Provider metadata: OpenID Connect Discovery 1.0 and RFC 8414. No Flask import.

A provider configured with ``metadata_url`` has its endpoints, issuer, key set and capabilities
read from the provider's metadata document, fetched on first use (never in ``init_app``), kept
for ``OAUTH2_METADATA_TTL`` seconds, and fetched again after that. A failed fetch is never
cached: while an earlier document is at hand it stays in use (retried at most every
:data:`RETRY_AFTER_FAILURE` seconds), and without one the request fails with
:class:`~flask_oauth2_client.errors.ProviderUnavailable`.

The document's ``issuer`` must be the issuer the metadata URL was built from (OIDC Discovery §4.3,
RFC 8414 §3.3), and every endpoint in it must be https (SECURITY.md P-14): a document that could
send the user, the code or the client secret elsewhere is refused with
:class:`~flask_oauth2_client.errors.DiscoveryError`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import requests

from ._http import json_object
from ._http import printable
from ._http import send
from .config import ProviderConfig
from .config import is_loopback_host
from .errors import DiscoveryError
from .errors import ProviderUnavailable

__all__ = ["ASYMMETRIC_ALGORITHMS", "Endpoints", "MetadataCache", "expected_issuers"]

log = logging.getLogger("flask_oauth2_client")

OIDC_SUFFIX = "/.well-known/openid-configuration"
OAUTH_SUFFIX = "/.well-known/oauth-authorization-server"
#: Seconds between fetches while the provider fails and an earlier document is in use.
RETRY_AFTER_FAILURE = 30.0
#: Signature algorithms accepted for ID tokens: asymmetric only. ``none`` never, and HMAC never,
#: because its key would be the client secret that every copy of the client holds (P-13).
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
_ENDPOINT_FIELDS = {
    "authorize_url": "authorization_endpoint",
    "token_url": "token_endpoint",
    "userinfo_url": "userinfo_endpoint",
    "revocation_url": "revocation_endpoint",
    "jwks_url": "jwks_uri",
    "end_session_url": "end_session_endpoint",
    "par_url": "pushed_authorization_request_endpoint",
    "device_authorization_url": "device_authorization_endpoint",
}


@dataclasses.dataclass(frozen=True)
class Endpoints:
    """Where a provider's endpoints are and what it supports: the configuration's explicit
    values, completed by its metadata document when it has a ``metadata_url``."""

    issuer: str | None = None
    authorize_url: str | None = None
    token_url: str | None = None
    userinfo_url: str | None = None
    revocation_url: str | None = None
    jwks_url: str | None = None
    end_session_url: str | None = None
    #: RFC 9126 pushed authorization request endpoint.
    par_url: str | None = None
    #: RFC 8628 device authorization endpoint.
    device_authorization_url: str | None = None
    #: RFC 9126 §5: the provider accepts authorization requests only when pushed.
    require_par: bool = False
    #: RFC 9449 §5.1 ``dpop_signing_alg_values_supported``; empty when unknown.
    dpop_algorithms: tuple[str, ...] = ()
    #: ``token_endpoint_auth_methods_supported``; empty when unknown.
    token_auth_methods: tuple[str, ...] = ()
    #: The allow-list of ID token signature algorithms (P-13).
    id_token_algorithms: tuple[str, ...] = ("RS256",)
    #: RFC 9207 §3: the provider always sends ``iss`` in authorization responses.
    iss_parameter_supported: bool = False
    #: The whole metadata document (empty without discovery).
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_config(cls, cfg: ProviderConfig, metadata: Mapping[str, Any] | None = None) -> Endpoints:
        """Combine *cfg* with a validated metadata document (explicit settings win)."""
        doc = metadata or {}
        values: dict[str, Any] = {}
        for attribute, field in _ENDPOINT_FIELDS.items():
            configured = getattr(cfg, attribute)
            values[attribute] = configured if configured is not None else doc.get(field)
        methods = doc.get("token_endpoint_auth_methods_supported")
        dpop = doc.get("dpop_signing_alg_values_supported")
        offered = doc.get("id_token_signing_alg_values_supported")
        if cfg.id_token_algorithms:
            algorithms = cfg.id_token_algorithms
        else:
            usable = tuple(alg for alg in offered or () if alg in ASYMMETRIC_ALGORITHMS)
            algorithms = usable or ("RS256",)
        return cls(
            issuer=cfg.issuer if cfg.issuer is not None else doc.get("issuer"),
            token_auth_methods=tuple(methods) if isinstance(methods, list) else (),
            id_token_algorithms=algorithms,
            iss_parameter_supported=doc.get("authorization_response_iss_parameter_supported") is True,
            require_par=doc.get("require_pushed_authorization_requests") is True,
            dpop_algorithms=tuple(dpop) if isinstance(dpop, list) else (),
            metadata=MappingProxyType(dict(doc)),
            **values,
        )


def expected_issuers(metadata_url: str) -> tuple[str, ...]:
    """The issuers a metadata URL can belong to: the part before ``/.well-known/...`` (OIDC
    Discovery §4), or for RFC 8414 §3 the origin plus the path after the well-known segment."""
    parts = urlsplit(metadata_url)
    path = parts.path
    found: list[str] = []
    for suffix in (OIDC_SUFFIX, OAUTH_SUFFIX):
        if path.endswith(suffix):  # issuer path + suffix (OIDC; also common for RFC 8414)
            found.append(urlunsplit((parts.scheme, parts.netloc, path[: -len(suffix)], "", "")))
        if path.startswith(suffix):  # suffix inserted before the issuer's path (RFC 8414 §3)
            found.append(urlunsplit((parts.scheme, parts.netloc, path[len(suffix) :], "", "")))
    return tuple(dict.fromkeys(found))


def _same_issuer(a: str, b: str) -> bool:
    # "https://idp/" and "https://idp" name the same issuer when the metadata URL is built from it.
    return a.rstrip("/") == b.rstrip("/")


class MetadataCache:
    """The metadata document of one provider, fetched lazily and kept for *ttl* seconds.

    Thread-safe: concurrent first requests cause one fetch.
    """

    def __init__(
        self,
        cfg: ProviderConfig,
        *,
        http: requests.Session,
        timeout: float,
        ttl: float,
        allow_insecure: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert cfg.metadata_url is not None
        self.url = cfg.metadata_url
        self._cfg = cfg
        self._http = http
        self._timeout = timeout
        self._ttl = ttl
        self._allow_insecure = allow_insecure
        self._clock = clock
        self._lock = threading.Lock()
        self._document: Mapping[str, Any] | None = None
        self._fresh_until = 0.0

    def get(self) -> Mapping[str, Any]:
        """The validated document.

        :raises ProviderUnavailable: the provider cannot be reached and no document is at hand.
        :raises DiscoveryError: the document cannot be used and no earlier one is at hand.
        """
        document = self._document
        if document is not None and self._clock() < self._fresh_until:
            return document
        with self._lock:
            if self._document is not None and self._clock() < self._fresh_until:
                return self._document
            try:
                fetched = self._fetch()
            except (ProviderUnavailable, DiscoveryError) as exc:
                if self._document is None:
                    raise
                log.warning("refreshing the metadata of %s failed (%s); using the earlier copy", self._cfg.name, exc)
                self._fresh_until = self._clock() + RETRY_AFTER_FAILURE
                return self._document
            self._document = fetched
            self._fresh_until = self._clock() + self._ttl
            return fetched

    def invalidate(self) -> None:
        """Fetch the document again on next use (keeping this one should that fail)."""
        self._fresh_until = 0.0

    def _fetch(self) -> Mapping[str, Any]:
        name = self._cfg.name
        status, content_type, body = send(
            self._http,
            "GET",
            self.url,
            timeout=self._timeout,
            what="metadata endpoint",
            provider=name,
            malformed=DiscoveryError,
        )
        if status >= 500:
            raise ProviderUnavailable(
                f"the metadata endpoint failed (HTTP {status})", provider=name, kind="server_error", status_code=status
            )
        if status != 200:
            raise DiscoveryError(f"the metadata endpoint answered HTTP {status}", provider=name)
        document = json_object(body, content_type)
        if document is None:
            raise DiscoveryError("the metadata document is not a JSON object", provider=name)
        self._validate(document)
        log.debug("metadata of %s fetched from %s", name, self.url)
        return MappingProxyType(dict(document))

    def _validate(self, doc: Mapping[str, Any]) -> None:
        name = self._cfg.name
        issuer = doc.get("issuer")
        if not isinstance(issuer, str) or not issuer:
            raise DiscoveryError("the metadata document has no issuer", provider=name)
        if self._cfg.issuer is not None:
            expected: tuple[str, ...] = (self._cfg.issuer,)
        else:
            expected = expected_issuers(self.url)
        if not any(_same_issuer(issuer, candidate) for candidate in expected):
            raise DiscoveryError(
                f"the metadata names the issuer {printable(issuer, 100)!r}, not "
                f"{' or '.join(repr(e) for e in expected) or 'the configured issuer'} (OIDC Discovery §4.3)",
                provider=name,
            )
        for field in (*_ENDPOINT_FIELDS.values(), "issuer"):
            value = doc.get(field)
            if value is None:
                continue
            if not isinstance(value, str) or not self._acceptable_url(value):
                raise DiscoveryError(
                    f"the metadata's {field} {printable(str(value), 100)!r} is not an https URL", provider=name
                )
        for field in (
            "token_endpoint_auth_methods_supported",
            "id_token_signing_alg_values_supported",
            "dpop_signing_alg_values_supported",
        ):
            value = doc.get(field)
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise DiscoveryError(f"the metadata's {field} is not a list of strings", provider=name)

    def _acceptable_url(self, value: str) -> bool:
        parts = urlsplit(value)
        if not parts.hostname or parts.fragment:
            return False
        if parts.scheme == "https":
            return True
        return parts.scheme == "http" and (self._allow_insecure or is_loopback_host(parts.hostname))
