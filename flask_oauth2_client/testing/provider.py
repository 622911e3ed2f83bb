"""The :class:`FakeProvider` OAuth 2.0 authorization server and OpenID provider.

A small but real authorization server (RFC 6749, RFC 7636 PKCE, RFC 7009
revocation, RFC 8414 metadata, RFC 9207 ``iss``) and OpenID Connect provider
(ID tokens, JWKS, Discovery, RP-initiated logout) plus a protected resource,
served over a real loopback socket. Its state (clients, users, codes, tokens,
signing keys, sessions, faults, recorded requests) lives in memory and is
guarded by a lock; the HTTP views live in :mod:`._views`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from types import TracebackType
from typing import Any
from typing import Final
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import get_default_algorithms
from jwt.utils import to_base64url_uint

from ._jose import b64url
from ._jose import check_public_jwks
from ._server import ServerThread

#: Endpoint names accepted by :meth:`FakeProvider.set_fault` and :meth:`FakeProvider.calls`.
ENDPOINTS: Final = frozenset(
    {
        "authorize",
        "token",
        "userinfo",
        "revoke",
        "api",
        "metadata",
        "openid_configuration",
        "jwks",
        "logout",
        "par",
        "device_authorization",
        "device",
    }
)

#: Client authentication methods accepted by :meth:`FakeProvider.register_client`.
AUTH_METHODS: Final = frozenset(
    {"client_secret_basic", "client_secret_post", "none", "any", "private_key_jwt", "client_secret_jwt"}
)
#: ``client_assertion_type`` of a JWT client assertion (RFC 7523 section 2.2).
JWT_BEARER_ASSERTION: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: ``grant_type`` of the device authorization grant (RFC 8628 section 3.4).
DEVICE_CODE_GRANT: Final = "urn:ietf:params:oauth:grant-type:device_code"
#: Prefix of the ``request_uri`` values the PAR endpoint issues (RFC 9126 section 2.2).
REQUEST_URI_PREFIX: Final = "urn:ietf:params:oauth:request_uri:"
#: Clock skew tolerated on ``iat``/``exp`` of client assertions and DPoP proofs, in seconds.
CLOCK_LEEWAY: Final = 60
#: The longest lifetime (``exp`` - now) a client assertion may have, in seconds (plus the leeway).
ASSERTION_MAX_LIFETIME: Final = 300
#: How old (``iat``) a DPoP proof may be, in seconds.
DPOP_PROOF_MAX_AGE: Final = 300

DEFAULT_CLIENT_ID: Final = "demo-client"
DEFAULT_CLIENT_SECRET: Final = "demo-secret"
DEFAULT_USER: Final = "alice"
DEFAULT_PASSWORD: Final = "wonderland"
DEFAULT_CLAIMS: Final[Mapping[str, str]] = {
    "sub": "alice",
    "name": "Alice Liddell",
    "email": "alice@example.test",
}
#: The scope granted when a request names none (RFC 6749 section 3.3).
DEFAULT_SCOPE: Final = ("read",)
#: Default lifetime of ID tokens, in seconds.
DEFAULT_ID_TOKEN_TTL: Final = 300
#: Algorithms :class:`FakeProvider` keeps a signing key for (one current key each).
KEY_ALGORITHMS: Final = ("RS256", "ES256")

#: The standard claims each OpenID Connect scope releases (OpenID Connect Core 1.0, section 5.4).
#: ``sub`` is always released; claims not listed here (custom claims) are released with ``openid``.
SCOPE_CLAIMS: Final[Mapping[str, frozenset[str]]] = {
    "profile": frozenset(
        {
            "name",
            "family_name",
            "given_name",
            "middle_name",
            "nickname",
            "preferred_username",
            "profile",
            "picture",
            "website",
            "gender",
            "birthdate",
            "zoneinfo",
            "locale",
            "updated_at",
        }
    ),
    "email": frozenset({"email", "email_verified"}),
    "address": frozenset({"address"}),
    "phone": frozenset({"phone_number", "phone_number_verified"}),
}
_STANDARD_CLAIMS: Final = frozenset().union(*SCOPE_CLAIMS.values())

#: What :meth:`FakeProvider.make_id_token` and :class:`SigningKey` accept as a private key.
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
#: An ID token to put in a token response: a compact JWT, or a function of the claims the
#: provider would have signed that returns one (``None``: the response carries no ``id_token``).
IDTokenSource = str | Callable[[dict[str, Any]], str | None]

_LOOPBACK_NAMES: Final = frozenset({"localhost"})


@dataclass(frozen=True)
class Fault:
    """How an endpoint of :class:`FakeProvider` should misbehave.

    Install one with :meth:`FakeProvider.set_fault`. All fields are optional:

    ``status``
        HTTP status of the faulty answer (default 500). ``None`` means "answer
        normally": combined with ``delay`` it makes a slow but correct endpoint.
    ``body`` / ``content_type``
        The body of the faulty answer, and its ``Content-Type``.
    ``json``
        A JSON object to answer with instead of ``body`` (``Content-Type:
        application/json``). For the ``"authorize"`` endpoint, a ``json`` with an
        ``"error"`` key instead makes the provider redirect back to the client's
        (validated) ``redirect_uri`` with those parameters plus ``state`` (and
        ``iss`` when enabled), which is the normal OAuth error response;
        ``status`` is then ignored.
    ``delay``
        Seconds to sleep before answering (to provoke client timeouts).
        Stopping the provider cuts a delay short.
    ``headers``
        Extra response headers of the faulty answer.
    ``times``
        ``None``: the fault stays until cleared. Otherwise it applies to that
        many (matching) requests, then clears itself.
    ``grant_type``
        For the ``"token"`` endpoint only: fault only the requests with this
        ``grant_type``; the others are answered normally.
    ``id_token``
        For the ``"token"`` endpoint only, with ``status=None``: the (otherwise
        normal) successful answer to a grant made for a user
        (``authorization_code``, ``refresh_token``, ``password``) carries this
        ``id_token`` instead of the one the provider would have issued, or in
        addition to the other fields when it would have issued none. Either a
        compact JWT (see :meth:`FakeProvider.make_id_token`), or a function
        that receives a copy of the claims the provider would have signed
        (``nonce`` and ``at_hash`` included) and returns a JWT, or ``None`` to
        send no ``id_token`` at all. :meth:`FakeProvider.set_next_id_token` is
        a shortcut.
    """

    status: int | None = 500
    body: str = "fault injected by FakeProvider"
    content_type: str = "text/plain; charset=utf-8"
    delay: float = 0.0
    json: Mapping[str, Any] | None = None
    headers: Mapping[str, str] | None = None
    times: int | None = None
    grant_type: str | None = None
    id_token: IDTokenSource | None = None

    def __post_init__(self) -> None:
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError("Fault.status must be an HTTP status code or None")
        if self.delay < 0:
            raise ValueError("Fault.delay must not be negative")
        if self.times is not None and self.times < 1:
            raise ValueError("Fault.times must be None or at least 1")

    @property
    def is_error_redirect(self) -> bool:
        """Whether this fault, on ``"authorize"``, is an OAuth error redirect."""
        return self.json is not None and "error" in self.json


@dataclass(frozen=True)
class RecordedRequest:
    """One request received by :class:`FakeProvider` (see :attr:`FakeProvider.requests`).

    ``form`` and ``headers`` are recorded verbatim, secrets included: this is a
    test server. Repeated parameters keep their first value.
    """

    #: One of :data:`ENDPOINTS`: ``"authorize"``, ``"token"``, ``"userinfo"``, ``"revoke"``,
    #: ``"api"``, ``"metadata"``, ``"openid_configuration"``, ``"jwks"``, ``"logout"``,
    #: ``"par"``, ``"device_authorization"``, ``"device"``.
    endpoint: str
    #: The HTTP method, e.g. ``"GET"``.
    method: str
    #: The ``grant_type`` form parameter (token endpoint), else ``None``.
    grant_type: str | None
    #: The client id the request claims (query, form, or HTTP Basic), if any.
    client_id: str | None
    #: ``"client_secret_basic"``, ``"client_secret_post"``, ``"private_key_jwt"``,
    #: ``"client_secret_jwt"`` (a client assertion signed with an HMAC), ``"none"``,
    #: or ``None`` when the request carries no client identification (authorize and
    #: resource requests always record ``None``).
    auth_method_used: str | None
    #: The ``application/x-www-form-urlencoded`` body parameters.
    form: dict[str, str]
    #: The request headers.
    headers: dict[str, str]
    #: The query string parameters.
    query: dict[str, str] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, str]:
        """Query and form parameters together (form wins)."""
        return {**self.query, **self.form}


@dataclass
class _Client:
    client_id: str
    client_secret: str | None
    redirect_uris: tuple[str, ...] | None
    auth_method: str
    post_logout_redirect_uris: tuple[str, ...] | None = None
    jwks: tuple[dict[str, Any], ...] | None = None
    jwks_uri: str | None = None

    @property
    def confidential(self) -> bool:
        return self.auth_method != "none"

    @property
    def allowed_auth_methods(self) -> frozenset[str]:
        if self.auth_method == "any":
            return frozenset({"client_secret_basic", "client_secret_post"})
        return frozenset({self.auth_method})


@dataclass
class _User:
    username: str
    password: str
    claims: dict[str, Any]


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    redirect_uri_given: bool
    code_challenge: str | None
    user: str
    scopes: tuple[str, ...]
    expires_at: float
    grant_id: str
    used: bool = False
    nonce: str | None = None
    auth_time: int | None = None
    dpop_jkt: str | None = None


@dataclass
class _AccessToken:
    client_id: str
    user: str | None
    scopes: tuple[str, ...]
    expires_at: float
    grant_id: str
    #: The RFC 7638 thumbprint of the DPoP key the token is bound to (``cnf.jkt``), if any.
    jkt: str | None = None


@dataclass
class _RefreshToken:
    client_id: str
    user: str
    scopes: tuple[str, ...]
    grant_id: str
    auth_time: int | None = None
    #: A refresh token bound to a DPoP key: only a proof of that key may use it.
    jkt: str | None = None


@dataclass
class _PushedRequest:
    client_id: str
    params: tuple[tuple[str, str], ...]
    expires_at: float


@dataclass
class _DeviceGrant:
    device_code: str
    user_code: str
    client_id: str
    scopes: tuple[str, ...]
    expires_at: float
    interval: float
    #: ``"pending"``, ``"approved"``, ``"denied"`` or ``"used"``.
    status: str = "pending"
    user: str | None = None
    last_poll: float | None = None


@dataclass(frozen=True)
class DPoPProof:
    """A DPoP proof (RFC 9449) that :class:`FakeProvider` checked (see :attr:`FakeProvider.dpop_proofs`).

    Proofs are recorded whether they were accepted or not, but only where the
    provider checks them: at the token and PAR endpoints when :attr:`FakeProvider.dpop`
    is on, and at ``/userinfo`` and ``/api/notes`` with an ``Authorization: DPoP``
    header. The raw ``DPoP`` header of every request is in
    :attr:`RecordedRequest.headers` anyway.
    """

    #: ``"token"``, ``"par"``, ``"userinfo"`` or ``"api"``.
    endpoint: str
    #: The HTTP method of the request.
    method: str
    #: The request URL without query and fragment (what ``htu`` must be).
    url: str
    #: The proof JWT as received (empty when the request had several ``DPoP`` headers).
    jwt: str
    #: Its JOSE header (``typ``, ``alg``, ``jwk``), ``{}`` when it cannot be decoded.
    header: dict[str, Any]
    #: Its claims (``jti``, ``htm``, ``htu``, ``iat``, ``nonce``, ``ath``), ``{}`` when it cannot be decoded.
    claims: dict[str, Any]
    #: The RFC 7638 thumbprint of the header's ``jwk`` when it is a usable public key, else ``None``.
    jkt: str | None
    #: Whether the provider accepted the proof.
    accepted: bool
    #: Why it was refused: ``None`` when accepted, ``"use_dpop_nonce"`` when only the
    #: nonce was missing or stale, else the ``error_description`` sent back.
    error: str | None = None


@dataclass
class _FaultSlot:
    fault: Fault
    remaining: int | None


@dataclass(frozen=True)
class _Options:
    auto_approve: bool
    access_token_ttl: int
    rotate_refresh_tokens: bool
    require_pkce: bool
    send_iss: bool | str
    code_ttl: float
    id_token_ttl: int
    id_token_on_refresh: bool
    id_token_signing_alg: str
    require_par: bool
    par_ttl: int
    dpop: bool
    require_dpop_nonce: bool
    dpop_bind_refresh_tokens: bool
    device_interval: int
    device_code_ttl: int
    device_slow_down_increment: float


@dataclass(frozen=True)
class SigningKey:
    """A private signing key of :class:`FakeProvider`, with its key id.

    The provider publishes the public half of its keys at
    :attr:`FakeProvider.jwks_url`. Make a foreign key (one the provider does not
    publish) with :meth:`generate`, to forge a token whose signature does not
    verify.
    """

    #: The key id (``kid``) of the key in the JWKS and in JWT headers.
    kid: str
    #: ``"RS256"`` (an RSA 2048-bit key) or ``"ES256"`` (an EC P-256 key).
    alg: str
    #: The private key (a :mod:`cryptography` object).
    private_key: PrivateKey = field(repr=False)

    @classmethod
    def generate(cls, alg: str = "RS256", kid: str | None = None) -> SigningKey:
        """A new random key for ``alg`` (``"RS256"`` or ``"ES256"``); ``kid`` defaults to a random id."""
        key: PrivateKey
        if alg == "RS256":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ValueError(f"unsupported key algorithm {alg!r}; expected one of {list(KEY_ALGORITHMS)}")
        return cls(kid if kid is not None else f"{alg.lower()}-{secrets.token_hex(6)}", alg, key)

    @property
    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK (RFC 7517) with ``kid``, ``use: sig`` and ``alg``."""
        public = self.private_key.public_key()
        jwk: dict[str, Any]
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            jwk = {
                "kty": "RSA",
                "n": to_base64url_uint(numbers.n).decode("ascii"),
                "e": to_base64url_uint(numbers.e).decode("ascii"),
            }
        else:
            point = public.public_numbers()
            size = (public.curve.key_size + 7) // 8
            jwk = {
                "kty": "EC",
                "crv": "P-256",
                "x": b64url(point.x.to_bytes(size, "big")),
                "y": b64url(point.y.to_bytes(size, "big")),
            }
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.alg}


class FakeProvider:
    """A real OAuth 2.0 authorization server and OpenID provider for tests and demos.

    It listens on a loopback address (``127.0.0.1``, an ephemeral port by
    default) in a background thread, and implements:

    * ``GET /authorize``: authorization code (PKCE S256) and implicit grants,
      with automatic approval or an HTML consent page (``POST /authorize``);
    * ``POST /token``: ``authorization_code``, ``refresh_token`` (rotating),
      ``client_credentials`` and ``password`` grants, with
      ``client_secret_basic``, ``client_secret_post`` or ``none`` client
      authentication;
    * ``GET /userinfo`` and ``GET /api/notes``: protected resources taking a
      bearer token in the ``Authorization`` header;
    * ``POST /revoke``: RFC 7009 token revocation;
    * ``GET /.well-known/oauth-authorization-server``: RFC 8414 metadata;
    * OpenID Connect: an ``id_token`` in the token response whenever the
      grant's scope contains ``openid`` (see :meth:`make_id_token` for its
      claims), ``GET /jwks`` (the public signing keys, see
      :meth:`rotate_keys`), ``GET /.well-known/openid-configuration``
      (Discovery) and ``GET|POST /logout`` (RP-initiated logout);
    * JWT client authentication, ``private_key_jwt`` and ``client_secret_jwt``
      (RFC 7523, OpenID Connect Core 1.0 section 9), at every endpoint that
      authenticates clients (see :meth:`register_client`);
    * ``POST /par``: pushed authorization requests (RFC 9126), whose
      ``request_uri`` the authorization endpoint then accepts;
    * DPoP (RFC 9449), with ``dpop=True``: DPoP-bound tokens, proofs checked at
      the token endpoint and the protected resources, server nonces;
    * ``POST /device_authorization`` and the ``device_code`` grant (RFC 8628),
      with a verification page at ``/device`` and :meth:`approve_device` /
      :meth:`deny_device`.

    Usage::

        with FakeProvider() as provider:
            provider.token_url            # "http://127.0.0.1:PORT/token"
            provider.set_fault("token", Fault(status=503))

    A confidential client ``demo-client`` / ``demo-secret`` (accepting both
    ``client_secret_basic`` and ``client_secret_post``, any http(s) redirect
    URI) and a user ``alice`` / ``wonderland`` are pre-registered.

    The keyword arguments are also public, writable attributes of the same
    name; :meth:`reset` restores their constructor values.

    :param host: loopback host name or address to listen on and to use in URLs
        (``127.0.0.1``, another ``127.x.y.z``, or ``localhost``).
    :param port: TCP port; 0 picks a free ephemeral port at :meth:`start`.
    :param auto_approve: approve authorization requests at once (as ``alice``,
        or as the user named by ``login_hint``); ``False`` shows a consent page
        whose buttons have the ids ``approve`` and ``deny``.
    :param access_token_ttl: access token lifetime in seconds (``expires_in``).
    :param rotate_refresh_tokens: a refresh issues a new refresh token and
        invalidates the old one; ``False`` keeps the refresh token, and the
        refresh response then contains no ``refresh_token``.
    :param require_pkce: the authorization code grant requires a S256
        ``code_challenge``. ``plain`` is always refused; a ``code_challenge``
        sent without this option is still enforced.
    :param send_iss: add ``iss`` to authorization responses, successful or
        not (RFC 9207): ``True`` sends :attr:`issuer`, ``False`` sends nothing,
        and a string is sent as it is (a wrong issuer, for mix-up tests). The
        metadata's ``authorization_response_iss_parameter_supported`` is
        ``True`` unless this is ``False``.
    :param code_ttl: authorization code lifetime in seconds.
    :param id_token_ttl: ID token lifetime in seconds (``exp - iat``).
    :param id_token_on_refresh: a ``refresh_token`` grant whose original grant
        had the ``openid`` scope returns a new ID token (same ``sub`` and
        ``auth_time``, no ``nonce``).
    :param id_token_signing_alg: ``"RS256"`` or ``"ES256"``: how the ID tokens
        the provider issues are signed, and the one value of the metadata's
        ``id_token_signing_alg_values_supported``.
    :param require_par: authorization requests must be pushed (RFC 9126
        section 5): the authorization endpoint refuses requests without a
        ``request_uri``, and the metadata says
        ``require_pushed_authorization_requests: true``.
    :param par_ttl: lifetime in seconds of a ``request_uri`` from ``/par``
        (its ``expires_in``).
    :param dpop: support DPoP (RFC 9449): the metadata lists
        ``dpop_signing_alg_values_supported``, and a token request with a
        valid ``DPoP`` proof gets a DPoP-bound token (``token_type: DPoP``).
        Without it, ``DPoP`` headers are ignored at the token endpoint and
        tokens are bearer tokens.
    :param require_dpop_nonce: DPoP proofs must carry the server's current
        nonce (:attr:`dpop_nonce`, changed by :meth:`new_dpop_nonce`): without
        it the token endpoint answers 400 ``use_dpop_nonce`` and the resources
        401 ``WWW-Authenticate: DPoP error="use_dpop_nonce"``, both with a
        ``DPoP-Nonce`` header.
    :param dpop_bind_refresh_tokens: bind the refresh tokens of confidential
        clients to the DPoP key too (those of public clients always are, as
        RFC 9449 section 5 requires): a refresh then needs a proof of the same
        key.
    :param device_interval: the ``interval`` (seconds) of device authorization
        responses: a poll of the ``device_code`` grant sooner than that after the
        previous one is answered ``slow_down``.
    :param device_code_ttl: lifetime of device and user codes, in seconds.
    :param device_slow_down_increment: how much each ``slow_down`` adds to the
        device code's interval (RFC 8628 section 3.5 says 5 seconds).

    Two more writable attributes, also restored by :meth:`reset`:

    ``userinfo_sub``
        ``None`` (default), or a ``sub`` that ``/userinfo`` returns instead of
        the user's (to test that a client compares it with the ID token's).
    ``metadata_overrides``
        A dict merged into both metadata documents (RFC 8414 and OpenID
        Connect Discovery); a ``None`` value removes the field. For instance
        ``{"issuer": "https://wrong.example"}``. Default ``{}``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        auto_approve: bool = True,
        access_token_ttl: int = 3600,
        rotate_refresh_tokens: bool = True,
        require_pkce: bool = True,
        send_iss: bool | str = False,
        code_ttl: float = 60.0,
        id_token_ttl: int = DEFAULT_ID_TOKEN_TTL,
        id_token_on_refresh: bool = True,
        id_token_signing_alg: str = "RS256",
        require_par: bool = False,
        par_ttl: int = 60,
        dpop: bool = False,
        require_dpop_nonce: bool = False,
        dpop_bind_refresh_tokens: bool = False,
        device_interval: int = 5,
        device_code_ttl: int = 600,
        device_slow_down_increment: float = 5,
    ) -> None:
        if id_token_signing_alg not in KEY_ALGORITHMS:
            raise ValueError(f"id_token_signing_alg must be one of {list(KEY_ALGORITHMS)}")
        self._host = host
        self._port = port
        self._options = _Options(
            auto_approve=auto_approve,
            access_token_ttl=access_token_ttl,
            rotate_refresh_tokens=rotate_refresh_tokens,
            require_pkce=require_pkce,
            send_iss=send_iss,
            code_ttl=code_ttl,
            id_token_ttl=id_token_ttl,
            id_token_on_refresh=id_token_on_refresh,
            id_token_signing_alg=id_token_signing_alg,
            require_par=require_par,
            par_ttl=par_ttl,
            dpop=dpop,
            require_dpop_nonce=require_dpop_nonce,
            dpop_bind_refresh_tokens=dpop_bind_refresh_tokens,
            device_interval=device_interval,
            device_code_ttl=device_code_ttl,
            device_slow_down_increment=device_slow_down_increment,
        )
        self.auto_approve = auto_approve
        self.access_token_ttl = access_token_ttl
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.require_pkce = require_pkce
        self.send_iss: bool | str = send_iss
        self.code_ttl = code_ttl
        self.id_token_ttl = id_token_ttl
        self.id_token_on_refresh = id_token_on_refresh
        self.id_token_signing_alg = id_token_signing_alg
        self.require_par = require_par
        self.par_ttl = par_ttl
        self.dpop = dpop
        self.require_dpop_nonce = require_dpop_nonce
        self.dpop_bind_refresh_tokens = dpop_bind_refresh_tokens
        self.device_interval = device_interval
        self.device_code_ttl = device_code_ttl
        self.device_slow_down_increment = device_slow_down_increment
        self.userinfo_sub: str | None = None
        self.metadata_overrides: dict[str, Any] = {}

        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._clients: dict[str, _Client] = {}
        self._users: dict[str, _User] = {}
        self._codes: dict[str, _Code] = {}
        self._access_tokens: dict[str, _AccessToken] = {}
        self._refresh_tokens: dict[str, _RefreshToken] = {}
        self._faults: dict[str, _FaultSlot] = {}
        self._requests: list[RecordedRequest] = []
        #: Published keys, current ones first; generated on first use.
        self._keys: list[SigningKey] = []
        self._current_keys: dict[str, SigningKey] = {}
        self._initial_keys: tuple[SigningKey, ...] = ()
        #: Provider-side login sessions: username -> auth_time.
        self._sessions: dict[str, int] = {}
        #: Pushed authorization requests by request_uri.
        self._pushed: dict[str, _PushedRequest] = {}
        #: Device authorization grants by device_code.
        self._devices: dict[str, _DeviceGrant] = {}
        #: Seen ``jti`` values (client assertions by (client_id, jti), DPoP proofs by
        #: (jkt, jti)) with when they may be forgotten.
        self._assertion_jtis: dict[tuple[str, str], float] = {}
        self._dpop_jtis: dict[tuple[str, str], float] = {}
        self._dpop_proofs: list[DPoPProof] = []
        self._dpop_nonce = secrets.token_urlsafe(16)
        self._restore_defaults()

        from ._views import create_app

        self._server = ServerThread(create_app(self), host, _bind_address(host))

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> FakeProvider:
        """Start listening; return once the socket accepts connections.

        After :meth:`stop`, ``start()`` may be called again: it listens on the
        same port as before, with the state kept (use it to simulate an outage).

        :raises OSError: the port is not available.
        :raises RuntimeError: already running.
        """
        self._stopping.clear()
        self._port = self._server.start(self._port)
        return self

    def stop(self) -> None:
        """Stop listening, drop open connections and join the server thread.

        Requests sleeping in a :class:`Fault` ``delay`` are cut short. Calling
        it on a stopped provider does nothing.
        """
        self._stopping.set()
        self._server.stop()

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._server.running

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<FakeProvider {self._host}:{self._port} {state}>"

    # -- URLs ----------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``; also the issuer identifier.

        :raises RuntimeError: the port is ephemeral and the server never started.
        """
        if self._port == 0:
            raise RuntimeError("FakeProvider has no port yet: call start() first")
        return f"http://{self._host}:{self._port}"

    @property
    def issuer(self) -> str:
        """The issuer identifier (RFC 8414, RFC 9207): the same as :attr:`url`."""
        return self.url

    @property
    def port(self) -> int:
        """The TCP port (0 until an ephemeral port has been bound)."""
        return self._port

    @property
    def authorize_url(self) -> str:
        """The authorization endpoint."""
        return self.url + "/authorize"

    @property
    def token_url(self) -> str:
        """The token endpoint."""
        return self.url + "/token"

    @property
    def userinfo_url(self) -> str:
        """The user info endpoint (the user's claims, for a bearer token)."""
        return self.url + "/userinfo"

    @property
    def revocation_url(self) -> str:
        """The RFC 7009 revocation endpoint."""
        return self.url + "/revoke"

    @property
    def api_url(self) -> str:
        """A protected resource: ``{"notes": [...], "user": sub}`` for a bearer token."""
        return self.url + "/api/notes"

    @property
    def metadata_url(self) -> str:
        """The RFC 8414 authorization server metadata document."""
        return self.url + "/.well-known/oauth-authorization-server"

    @property
    def openid_configuration_url(self) -> str:
        """The OpenID Connect Discovery 1.0 document (``/.well-known/openid-configuration``)."""
        return self.url + "/.well-known/openid-configuration"

    @property
    def jwks_url(self) -> str:
        """The JWK Set of the public signing keys (the metadata's ``jwks_uri``)."""
        return self.url + "/jwks"

    @property
    def end_session_url(self) -> str:
        """The RP-initiated logout endpoint (the metadata's ``end_session_endpoint``)."""
        return self.url + "/logout"

    @property
    def par_url(self) -> str:
        """The RFC 9126 pushed authorization request endpoint."""
        return self.url + "/par"

    @property
    def device_authorization_url(self) -> str:
        """The RFC 8628 device authorization endpoint."""
        return self.url + "/device_authorization"

    @property
    def device_verification_url(self) -> str:
        """The page where a user enters a device's user code (``verification_uri``)."""
        return self.url + "/device"

    @property
    def client_id(self) -> str:
        """The id of the pre-registered confidential client."""
        return DEFAULT_CLIENT_ID

    @property
    def client_secret(self) -> str:
        """The secret of the pre-registered confidential client."""
        return DEFAULT_CLIENT_SECRET

    # -- registration --------------------------------------------------------

    def register_client(
        self,
        client_id: str,
        client_secret: str | None = None,
        *,
        redirect_uris: Iterable[str] | None = None,
        auth_method: str = "client_secret_basic",
        post_logout_redirect_uris: Iterable[str] | None = None,
        jwks: Mapping[str, Any] | None = None,
        jwks_uri: str | None = None,
    ) -> None:
        """Register (or replace) a client.

        :param client_secret: required unless ``auth_method`` is ``"none"``
            (a public client), where it must be ``None``, or
            ``"private_key_jwt"``, where it is optional and unused.
        :param redirect_uris: exact redirect URIs allowed; ``None`` allows any
            absolute http(s) URI without a fragment.
        :param auth_method: how the client must authenticate at the token,
            revocation, PAR and device authorization endpoints:
            ``"client_secret_basic"``, ``"client_secret_post"``, ``"none"``,
            ``"any"`` (basic or post), ``"private_key_jwt"`` (a client
            assertion signed with one of the client's keys, ``jwks`` or
            ``jwks_uri``) or ``"client_secret_jwt"`` (a client assertion signed
            with the client secret, ``HS256``/``HS384``/``HS512``).
        :param post_logout_redirect_uris: exact URIs the logout endpoint may
            redirect this client's users to; ``None`` allows any absolute
            http(s) URI without a fragment, ``[]`` none at all.
        :param jwks: for ``private_key_jwt``: the client's public keys, a JWK
            Set ``{"keys": [...]}`` (private key members are refused).
        :param jwks_uri: for ``private_key_jwt``, instead of ``jwks``: an
            http(s) URL the provider fetches the client's JWK Set from, at each
            client authentication (so a key rotation is seen at once).
        """
        if auth_method not in AUTH_METHODS:
            raise ValueError(f"unknown auth_method {auth_method!r}")
        if auth_method == "none" and client_secret is not None:
            raise ValueError("a public client (auth_method 'none') has no client_secret")
        if auth_method not in ("none", "private_key_jwt") and client_secret is None:
            raise ValueError(f"auth_method {auth_method!r} needs a client_secret")
        keys: tuple[dict[str, Any], ...] | None = None
        if auth_method == "private_key_jwt":
            if (jwks is None) == (jwks_uri is None):
                raise ValueError("private_key_jwt needs exactly one of jwks and jwks_uri")
            if jwks is not None:
                keys = tuple(check_public_jwks(jwks))
            elif jwks_uri is not None and urlsplit(jwks_uri).scheme not in ("http", "https"):
                raise ValueError("jwks_uri must be an http(s) URL")
        elif jwks is not None or jwks_uri is not None:
            raise ValueError("jwks and jwks_uri are only for auth_method 'private_key_jwt'")
        uris = None if redirect_uris is None else tuple(redirect_uris)
        logout_uris = None if post_logout_redirect_uris is None else tuple(post_logout_redirect_uris)
        with self._lock:
            self._clients[client_id] = _Client(
                client_id, client_secret, uris, auth_method, logout_uris, jwks=keys, jwks_uri=jwks_uri
            )

    def add_user(self, username: str, password: str, **claims: Any) -> None:
        """Add (or replace) a user; ``claims`` are what ``/userinfo`` returns.

        ``sub`` (the subject of the user's ID tokens and UserInfo answers)
        defaults to ``username``. For a token with the ``openid`` scope, the
        standard claims are released by scope (:data:`SCOPE_CLAIMS`: ``name``
        with ``profile``, ``email`` with ``email``...), custom claims always;
        without ``openid``, ``/userinfo`` returns every claim.
        """
        claims.setdefault("sub", username)
        with self._lock:
            self._users[username] = _User(username, password, claims)

    # -- tokens --------------------------------------------------------------

    def issue_token(
        self,
        user: str | None = DEFAULT_USER,
        client_id: str | None = None,
        scopes: Iterable[str] = DEFAULT_SCOPE,
        expires_in: int = 3600,
        refresh: bool = True,
        dpop_jkt: str | None = None,
    ) -> dict[str, Any]:
        """Mint a token directly, without any HTTP request.

        Returns the JSON object a token endpoint response would contain:
        ``access_token``, ``token_type`` (``"Bearer"``), ``expires_in``,
        ``scope`` and (when ``refresh`` and ``user`` are set) ``refresh_token``;
        with a user and the ``openid`` scope, also an ``id_token`` (without
        ``nonce``). ``expires_in=0`` gives an access token that is already
        expired, with a working refresh token. ``user=None`` gives a client
        token (like the ``client_credentials`` grant, never with a refresh
        token).

        :param client_id: defaults to the pre-registered client.
        :param scopes: scope tokens (a space-separated string also works).
        :param dpop_jkt: bind the token to the DPoP key with this RFC 7638
            thumbprint (see :func:`~flask_oauth2_client.testing.jwk_thumbprint`):
            ``token_type`` is then ``"DPoP"``, and the refresh token is bound
            too for a public client or with :attr:`dpop_bind_refresh_tokens`.
        """
        cid = DEFAULT_CLIENT_ID if client_id is None else client_id
        scope_list = tuple(scopes.split() if isinstance(scopes, str) else scopes)
        with self._lock:
            if cid not in self._clients:
                raise ValueError(f"unknown client {cid!r}")
            if user is not None and user not in self._users:
                raise ValueError(f"unknown user {user!r}")
        return self.mint_tokens(
            cid,
            user,
            scope_list,
            expires_in=expires_in,
            refresh=refresh and user is not None,
            id_token="openid" in scope_list,
            jkt=dpop_jkt,
        )

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far expired (refresh tokens stay valid)."""
        now = time.time()
        with self._lock:
            for token in self._access_tokens.values():
                token.expires_at = min(token.expires_at, now)

    def is_active(self, token: str) -> bool:
        """Whether ``token`` is a currently valid access or refresh token."""
        with self._lock:
            access = self._access_tokens.get(token)
            if access is not None:
                return access.expires_at > time.time()
            return token in self._refresh_tokens

    # -- OpenID Connect: signing keys ----------------------------------------

    def current_key(self, alg: str | None = None) -> SigningKey:
        """The key that signs new tokens for ``alg`` (default: :attr:`id_token_signing_alg`).

        The provider keeps one current key for each of :data:`KEY_ALGORITHMS`
        (``"RS256"``, ``"ES256"``), generated on first use.
        """
        wanted = self.id_token_signing_alg if alg is None else alg
        with self._lock:
            self._ensure_keys()
            key = self._current_keys.get(wanted)
        if key is None:
            raise ValueError(f"no signing key for {wanted!r}; expected one of {list(KEY_ALGORITHMS)}")
        return key

    @property
    def signing_keys(self) -> tuple[SigningKey, ...]:
        """Every key published at :attr:`jwks_url`, current keys first."""
        with self._lock:
            self._ensure_keys()
            return tuple(self._keys)

    def jwks(self) -> dict[str, Any]:
        """The JWK Set :attr:`jwks_url` serves: ``{"keys": [public JWKs]}``."""
        return {"keys": [key.public_jwk for key in self.signing_keys]}

    def rotate_keys(self, *, keep_old: bool = True, alg: str | None = None) -> SigningKey:
        """Make a new current signing key (with a new ``kid``) and return it.

        Tokens signed afterwards carry the new ``kid``. With ``keep_old`` the
        previous key of that algorithm stays published (tokens it signed still
        verify); ``keep_old=False`` stops publishing it.

        :param alg: which key to rotate, ``"RS256"`` or ``"ES256"``; default
            :attr:`id_token_signing_alg`.
        """
        new = SigningKey.generate(self.current_key(alg).alg)
        with self._lock:
            old = self._current_keys[new.alg]
            self._current_keys[new.alg] = new
            current = list(self._current_keys.values())
            retired = [k for k in self._keys if all(k is not c for c in current) and k is not old]
            if keep_old:
                retired.insert(0, old)
            self._keys = current + retired
        return new

    # -- OpenID Connect: ID tokens -------------------------------------------

    def make_id_token(
        self,
        claims_override: Mapping[str, Any] | None = None,
        *,
        user: str = DEFAULT_USER,
        client_id: str | None = None,
        scopes: Iterable[str] = ("openid", "profile", "email"),
        nonce: str | None = None,
        access_token: str | None = None,
        auth_time: int | None = None,
        alg: str | None = None,
        key: SigningKey | PrivateKey | None = None,
        headers: Mapping[str, Any] | None = None,
        sign_with_secret: str | None = None,
        unsigned: bool = False,
    ) -> str:
        """Forge an ID token (a compact JWS) without any HTTP request.

        With no arguments, the token is exactly what the provider issues:
        signed with :meth:`current_key` (header ``{"alg", "typ": "JWT",
        "kid"}``), with the claims ``iss`` (:attr:`issuer`), ``sub`` (the
        user's), ``aud`` and ``azp`` (the client id), ``iat`` (now), ``exp``
        (now + :attr:`id_token_ttl`), ``auth_time`` (the user's provider session,
        else now), ``nonce`` and ``at_hash`` when asked for, and the user's
        claims that ``scopes`` release. The arguments break it on purpose:

        :param claims_override: claims merged over those; a ``None`` value
            removes the claim. E.g. ``{"iss": "https://evil.example"}``,
            ``{"aud": [client_id, "other"]}``, ``{"exp": time.time() - 3600}``,
            ``{"nonce": None}``.
        :param user: whose token it is (a user added with :meth:`add_user`).
        :param client_id: ``aud`` and ``azp``; default the pre-registered client.
        :param scopes: the scopes whose claims are included (see :data:`SCOPE_CLAIMS`).
        :param nonce: the ``nonce`` claim (none by default).
        :param access_token: include ``at_hash`` for this access token.
        :param auth_time: the ``auth_time`` claim (seconds since the epoch).
        :param alg: the signature algorithm and header ``alg``: with a key, any
            algorithm PyJWT can sign with that key (default: the key's);
            with ``sign_with_secret``, ``HS256`` (default), ``HS384`` or
            ``HS512``.
        :param key: sign with this key instead: a :class:`SigningKey` (the
            header's ``kid`` is then its ``kid``; one made by
            :meth:`SigningKey.generate` is unknown to the provider's JWKS) or a
            bare RSA/EC private key (the header's ``kid`` is then the
            provider's current one, so the signature does not verify).
        :param headers: merged over the JOSE header; a ``None`` value removes
            the field (``{"kid": None}``; ``{"kid": "unknown"}``; ``{"alg":
            "HS256"}`` lies about the algorithm).
        :param sign_with_secret: sign with HMAC using this secret (for
            instance the client secret) instead of a private key; no ``kid``.
        :param unsigned: an unsecured JWT: header ``alg: none``, empty signature.
        :raises ValueError: unknown user, or contradicting arguments.
        """
        if sum((unsigned, sign_with_secret is not None, key is not None)) > 1:
            raise ValueError("use at most one of key, sign_with_secret and unsigned")
        header: dict[str, Any]
        sign: Callable[[bytes], bytes]
        if unsigned:
            alg_name = "none" if alg is None else alg
            header = {"alg": alg_name, "typ": "JWT"}

            def sign(_: bytes) -> bytes:
                return b""

        elif sign_with_secret is not None:
            alg_name = "HS256" if alg is None else alg
            digest = _HMAC_HASHES.get(alg_name)
            if digest is None:
                raise ValueError(f"sign_with_secret needs an HMAC algorithm, not {alg_name!r}")
            secret = sign_with_secret.encode()
            header = {"alg": alg_name, "typ": "JWT"}

            def sign(data: bytes) -> bytes:
                return hmac.new(secret, data, digest).digest()

        else:
            if isinstance(key, SigningKey):
                private_key, kid, key_alg = key.private_key, key.kid, key.alg
            elif key is not None:
                key_alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
                private_key, kid = key, self.current_key(key_alg).kid
            else:
                current = self.current_key()
                private_key, kid, key_alg = current.private_key, current.kid, current.alg
            alg_name = key_alg if alg is None else alg
            algorithm = get_default_algorithms().get(alg_name)
            if algorithm is None or alg_name == "none" or alg_name in _HMAC_HASHES:
                raise ValueError(f"cannot sign with a private key and alg {alg_name!r}")
            header = {"alg": alg_name, "typ": "JWT", "kid": kid}

            def sign(data: bytes) -> bytes:
                return algorithm.sign(data, private_key)

        claims = self.id_token_claims(
            user,
            DEFAULT_CLIENT_ID if client_id is None else client_id,
            tuple(scopes.split() if isinstance(scopes, str) else scopes),
            nonce=nonce,
            access_token=access_token,
            auth_time=auth_time,
            alg=alg_name,
        )
        return _encode_jws(_merged(header, headers), _merged(claims, claims_override), sign)

    def set_next_id_token(self, id_token: IDTokenSource | None, *, grant_type: str | None = None) -> None:
        """Make the next token response for a user carry ``id_token``.

        A shortcut for ``set_fault("token", Fault(status=None,
        id_token=id_token, times=1, grant_type=grant_type))`` (it replaces any
        other fault of the token endpoint): the next request to the token
        endpoint (of that ``grant_type``) is answered normally, except that a
        success for a user carries this ID token; ``None`` sends none at all.
        ``id_token`` may also be a function of the genuine claims, e.g.::

            provider.set_next_id_token(lambda claims: provider.make_id_token({**claims, "nonce": "x"}))
        """
        source: IDTokenSource = _no_id_token if id_token is None else id_token
        self.set_fault("token", Fault(status=None, id_token=source, times=1, grant_type=grant_type))

    # -- OpenID Connect: provider sessions -----------------------------------

    def has_session(self, user: str = DEFAULT_USER) -> bool:
        """Whether ``user`` has a login session at the provider.

        An approved authorization request starts one (its time is the ID
        tokens' ``auth_time``); logout, :meth:`end_session` and :meth:`reset`
        end it. An authorization request with ``prompt=none`` succeeds only
        with a session (else ``error=login_required``), and ``prompt=login``
        or an exceeded ``max_age`` starts a new one.
        """
        with self._lock:
            return user in self._sessions

    def end_session(self, user: str | None = None) -> None:
        """End the provider-side login session of ``user``, or of everybody (``None``).

        Tokens stay valid: like most providers, logging out does not revoke them.
        """
        with self._lock:
            if user is None:
                self._sessions.clear()
            else:
                self._sessions.pop(user, None)

    # -- device authorization grant (RFC 8628) --------------------------------

    def approve_device(self, user_code: str, username: str = DEFAULT_USER) -> None:
        """Approve the pending device authorization with ``user_code`` as ``username``.

        What a user does on the verification page. The next poll of the
        ``device_code`` grant gets the tokens. ``user_code`` is compared
        ignoring case, spaces and dashes.

        :raises ValueError: unknown user, or no pending, unexpired device
            authorization with that user code.
        """
        if self.get_user(username) is None:
            raise ValueError(f"unknown user {username!r}")
        self._decide_device(user_code, username)

    def deny_device(self, user_code: str) -> None:
        """Deny the pending device authorization with ``user_code``: its polls get ``access_denied``.

        :raises ValueError: no pending, unexpired device authorization with that user code.
        """
        self._decide_device(user_code, None)

    def pending_user_codes(self) -> list[str]:
        """The user codes of the device authorizations awaiting a decision, oldest first."""
        now = time.time()
        with self._lock:
            return [g.user_code for g in self._devices.values() if g.status == "pending" and g.expires_at > now]

    # -- DPoP (RFC 9449) -----------------------------------------------------

    @property
    def dpop_nonce(self) -> str:
        """The server's current DPoP nonce (what ``DPoP-Nonce`` headers carry)."""
        with self._lock:
            return self._dpop_nonce

    def new_dpop_nonce(self) -> str:
        """Replace the DPoP nonce with a new random one and return it.

        With :attr:`require_dpop_nonce`, proofs carrying the previous nonce are
        then answered ``use_dpop_nonce`` with the new one.
        """
        with self._lock:
            self._dpop_nonce = secrets.token_urlsafe(16)
            return self._dpop_nonce

    @property
    def dpop_proofs(self) -> list[DPoPProof]:
        """A copy of the list of DPoP proofs the provider checked, oldest first (see :class:`DPoPProof`)."""
        with self._lock:
            return list(self._dpop_proofs)

    # -- faults --------------------------------------------------------------

    def set_fault(self, endpoint: str, fault: Fault) -> None:
        """Make ``endpoint`` misbehave as described by ``fault`` (replacing any previous one).

        :param endpoint: one of :data:`ENDPOINTS`: ``"authorize"``,
            ``"token"``, ``"userinfo"``, ``"revoke"``, ``"api"``,
            ``"metadata"`` (RFC 8414), ``"openid_configuration"``, ``"jwks"``,
            ``"logout"``, ``"par"`` (RFC 9126), ``"device_authorization"``
            (RFC 8628) or ``"device"`` (the device verification page).
        """
        _check_endpoint(endpoint)
        with self._lock:
            self._faults[endpoint] = _FaultSlot(fault, fault.times)

    def clear_faults(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    # -- statistics ----------------------------------------------------------

    def calls(self, endpoint: str, grant_type: str | None = None) -> int:
        """How many requests ``endpoint`` received (faulty answers included).

        :param grant_type: count only token requests with this ``grant_type``.
        """
        _check_endpoint(endpoint)
        with self._lock:
            return sum(
                1
                for r in self._requests
                if r.endpoint == endpoint and (grant_type is None or r.grant_type == grant_type)
            )

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the list of recorded requests, oldest first."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget tokens, codes, faults, recorded requests, sessions, pushed
        requests, device codes, seen ``jti`` values, DPoP proofs and added
        clients and users; pick a new DPoP nonce; restore the default client, user, constructor
        options and attributes, and the signing keys the provider started
        with (undoing :meth:`rotate_keys`).

        The server keeps running on the same port.
        """
        with self._lock:
            self._restore_defaults()

    def _restore_defaults(self) -> None:
        opts = self._options
        self.auto_approve = opts.auto_approve
        self.access_token_ttl = opts.access_token_ttl
        self.rotate_refresh_tokens = opts.rotate_refresh_tokens
        self.require_pkce = opts.require_pkce
        self.send_iss = opts.send_iss
        self.code_ttl = opts.code_ttl
        self.id_token_ttl = opts.id_token_ttl
        self.id_token_on_refresh = opts.id_token_on_refresh
        self.id_token_signing_alg = opts.id_token_signing_alg
        self.require_par = opts.require_par
        self.par_ttl = opts.par_ttl
        self.dpop = opts.dpop
        self.require_dpop_nonce = opts.require_dpop_nonce
        self.dpop_bind_refresh_tokens = opts.dpop_bind_refresh_tokens
        self.device_interval = opts.device_interval
        self.device_code_ttl = opts.device_code_ttl
        self.device_slow_down_increment = opts.device_slow_down_increment
        self.userinfo_sub = None
        self.metadata_overrides = {}
        self._pushed.clear()
        self._devices.clear()
        self._assertion_jtis.clear()
        self._dpop_jtis.clear()
        self._dpop_proofs.clear()
        self._dpop_nonce = secrets.token_urlsafe(16)
        if self._initial_keys:
            self._keys = list(self._initial_keys)
            self._current_keys = {k.alg: k for k in self._initial_keys}
        self._sessions.clear()
        self._codes.clear()
        self._access_tokens.clear()
        self._refresh_tokens.clear()
        self._faults.clear()
        self._requests.clear()
        self._clients.clear()
        self._users.clear()
        self.register_client(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, auth_method="any")
        self.add_user(DEFAULT_USER, DEFAULT_PASSWORD, **DEFAULT_CLAIMS)

    # -- internal API used by the views (all take the lock) -------------------

    @property
    def lock(self) -> threading.RLock:
        """The lock that guards the state (used by the views)."""
        return self._lock

    def record(self, entry: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(entry)

    def take_fault(self, endpoint: str, grant_type: str | None) -> Fault | None:
        """The fault that applies to this request, if any; counts down ``times``."""
        with self._lock:
            slot = self._faults.get(endpoint)
            if slot is None:
                return None
            wanted = slot.fault.grant_type
            if wanted is not None and wanted != grant_type:
                return None
            if slot.remaining is not None:
                slot.remaining -= 1
                if slot.remaining <= 0:
                    del self._faults[endpoint]
            return slot.fault

    def sleep(self, seconds: float) -> None:
        """Sleep, unless or until the provider stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def get_client(self, client_id: str) -> _Client | None:
        with self._lock:
            return self._clients.get(client_id)

    def get_user(self, username: str) -> _User | None:
        with self._lock:
            return self._users.get(username)

    def usernames(self) -> list[str]:
        with self._lock:
            return list(self._users)

    def create_code(
        self,
        client_id: str,
        redirect_uri: str,
        redirect_uri_given: bool,
        code_challenge: str | None,
        user: str,
        scopes: tuple[str, ...],
        *,
        nonce: str | None = None,
        auth_time: int | None = None,
        dpop_jkt: str | None = None,
    ) -> str:
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes[code] = _Code(
                client_id=client_id,
                redirect_uri=redirect_uri,
                redirect_uri_given=redirect_uri_given,
                code_challenge=code_challenge,
                user=user,
                scopes=scopes,
                expires_at=time.time() + self.code_ttl,
                grant_id=secrets.token_hex(8),
                nonce=nonce,
                auth_time=auth_time,
                dpop_jkt=dpop_jkt,
            )
        return code

    def redeem_code(self, code: str, client_id: str) -> _Code | None:
        """Look up ``code`` and, when ``client_id`` owns it, mark it used.

        Returns a snapshot taken before the change. A code presented again by
        its client comes back with ``used`` set; the tokens issued from it are
        revoked at that moment (RFC 6749 section 4.1.2). Another client's
        attempt neither consumes the code nor revokes anything.
        """
        with self._lock:
            entry = self._codes.get(code)
            if entry is None:
                return None
            if entry.client_id != client_id:
                return replace(entry)
            if entry.used:
                self.revoke_grant(entry.grant_id)
                return entry
            snapshot = replace(entry)
            entry.used = True
            return snapshot

    def mint_tokens(
        self,
        client_id: str,
        user: str | None,
        scopes: tuple[str, ...],
        *,
        expires_in: int | None = None,
        refresh: bool,
        grant_id: str | None = None,
        refresh_scopes: tuple[str, ...] | None = None,
        id_token: bool = False,
        nonce: str | None = None,
        auth_time: int | None = None,
        id_token_override: IDTokenSource | None = None,
        jkt: str | None = None,
    ) -> dict[str, Any]:
        """Create an access token (and a refresh token, and an ID token); return the response JSON.

        An ID token is added when ``user`` is set and ``id_token`` is true, or
        as ``id_token_override`` says (see :attr:`Fault.id_token`). With
        ``jkt``, the access token is bound to that DPoP key (``token_type``
        ``DPoP``), and so is the refresh token for a public client or with
        :attr:`dpop_bind_refresh_tokens`.
        """
        ttl = self.access_token_ttl if expires_in is None else expires_in
        gid = secrets.token_hex(8) if grant_id is None else grant_id
        access = secrets.token_urlsafe(32)
        when = int(time.time()) if auth_time is None else auth_time
        payload: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer" if jkt is None else "DPoP",
            "expires_in": ttl,
        }
        with self._lock:
            self._access_tokens[access] = _AccessToken(client_id, user, scopes, time.time() + ttl, gid, jkt)
            if refresh and user is not None:
                rt = secrets.token_urlsafe(32)
                kept_scopes = scopes if refresh_scopes is None else refresh_scopes
                client = self._clients.get(client_id)
                public = client is not None and not client.confidential
                bound = jkt if public or self.dpop_bind_refresh_tokens else None
                self._refresh_tokens[rt] = _RefreshToken(client_id, user, kept_scopes, gid, when, bound)
                payload["refresh_token"] = rt
        payload["scope"] = " ".join(scopes)
        if user is not None and (id_token or id_token_override is not None):
            claims = self.id_token_claims(user, client_id, scopes, nonce=nonce, access_token=access, auth_time=when)
            value: str | None
            if id_token_override is None:
                value = self.sign_id_token(claims)
            elif isinstance(id_token_override, str):
                value = id_token_override
            else:
                value = id_token_override(dict(claims))
            if value is not None:
                payload["id_token"] = value
        return payload

    def id_token_claims(
        self,
        user: str,
        client_id: str,
        scopes: tuple[str, ...],
        *,
        nonce: str | None = None,
        access_token: str | None = None,
        auth_time: int | None = None,
        alg: str | None = None,
    ) -> dict[str, Any]:
        """The claims of an ID token the provider would issue (see :meth:`make_id_token`)."""
        with self._lock:
            entry = self._users.get(user)
            if entry is None:
                raise ValueError(f"unknown user {user!r}")
            claims = claims_for_scopes(entry.claims, scopes)
            if auth_time is None:
                auth_time = self._sessions.get(user)
            ttl = self.id_token_ttl
            signing_alg = self.id_token_signing_alg if alg is None else alg
        now = int(time.time())
        claims.update(
            iss=self.issuer,
            sub=str(entry.claims.get("sub", user)),
            aud=client_id,
            azp=client_id,
            iat=now,
            exp=now + ttl,
            auth_time=now if auth_time is None else auth_time,
        )
        if nonce is not None:
            claims["nonce"] = nonce
        if access_token is not None:
            claims["at_hash"] = token_hash(access_token, signing_alg)
        return claims

    def sign_id_token(self, claims: Mapping[str, Any]) -> str:
        """Sign ``claims`` with :meth:`current_key`, as the provider does for its ID tokens."""
        key = self.current_key()
        algorithm = get_default_algorithms()[key.alg]
        header = {"alg": key.alg, "typ": "JWT", "kid": key.kid}
        return _encode_jws(header, dict(claims), lambda data: algorithm.sign(data, key.private_key))

    def check_id_token_hint(self, token: str) -> dict[str, Any] | None:
        """The claims of an ID token this provider signed (with a key it still publishes), else ``None``.

        Checks the signature and ``iss``; an expired token is fine (OpenID
        Connect RP-Initiated Logout 1.0, section 2).
        """
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            return None
        key = next((k for k in self.signing_keys if k.kid == kid), None)
        if key is None:
            return None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.private_key.public_key(),
                algorithms=[key.alg],
                issuer=self.issuer,
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_aud": False,
                    "require": ["iss", "sub", "aud"],
                },
            )
        except jwt.PyJWTError:
            return None
        return claims

    def username_for_sub(self, sub: str) -> str | None:
        """The user whose ``sub`` claim is ``sub``, if any."""
        with self._lock:
            for name, user in self._users.items():
                if str(user.claims.get("sub", name)) == sub:
                    return name
            return None

    def session_auth_time(self, user: str) -> int | None:
        """When ``user``'s provider session started, or ``None`` without one."""
        with self._lock:
            return self._sessions.get(user)

    def sign_in(self, user: str, *, fresh: bool = False) -> int:
        """Start (or, unless ``fresh``, reuse) ``user``'s provider session; return its ``auth_time``."""
        with self._lock:
            auth_time = self._sessions.get(user)
            if auth_time is None or fresh:
                auth_time = int(time.time())
                self._sessions[user] = auth_time
            return auth_time

    def _ensure_keys(self) -> None:
        """Generate the signing keys on first use (caller holds the lock)."""
        if not self._current_keys:
            keys = tuple(SigningKey.generate(alg) for alg in KEY_ALGORITHMS)
            self._initial_keys = keys
            self._current_keys = {k.alg: k for k in keys}
            self._keys = list(keys)

    def get_refresh_token(self, token: str) -> _RefreshToken | None:
        with self._lock:
            return self._refresh_tokens.get(token)

    def spend_refresh_token(self, token: str) -> bool:
        """Invalidate a refresh token; ``False`` when it was already gone."""
        with self._lock:
            return self._refresh_tokens.pop(token, None) is not None

    def get_access_token(self, token: str) -> _AccessToken | None:
        """The access token's record if it is known and not expired."""
        with self._lock:
            entry = self._access_tokens.get(token)
            if entry is None or entry.expires_at <= time.time():
                return None
            return entry

    def find_token_owner(self, token: str, hint: str | None) -> tuple[str, str] | None:
        """``(kind, client_id)`` of an access or refresh token, or ``None``."""
        with self._lock:
            kinds = ["access_token", "refresh_token"]
            if hint == "refresh_token":
                kinds.reverse()
            for kind in kinds:
                store: Mapping[str, _AccessToken | _RefreshToken] = (
                    self._access_tokens if kind == "access_token" else self._refresh_tokens
                )
                entry = store.get(token)
                if entry is not None:
                    return kind, entry.client_id
            return None

    def revoke(self, token: str, kind: str) -> None:
        """Revoke an access token, or a refresh token with its whole grant."""
        with self._lock:
            if kind == "access_token":
                self._access_tokens.pop(token, None)
                return
            entry = self._refresh_tokens.get(token)
            if entry is not None:
                self.revoke_grant(entry.grant_id)

    # -- internal API: JWT client authentication, PAR, DPoP, devices ------------
    # (underscored so that the API reference, which documents FakeProvider's members, skips them)

    def _client_keys(self, client: _Client) -> list[dict[str, Any]]:
        """The public keys of a ``private_key_jwt`` client, fetched from its ``jwks_uri`` if need be.

        :raises ValueError: the ``jwks_uri`` cannot be fetched or is not a public JWK Set.
        """
        if client.jwks is not None:
            return [dict(k) for k in client.jwks]
        if client.jwks_uri is None:
            return []
        # http(s) only: checked by register_client.
        req = urllib.request.Request(client.jwks_uri, headers={"Accept": "application/json"})  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=5) as answer:  # noqa: S310
                document = json.loads(answer.read(1 << 20))
        except (OSError, ValueError) as exc:
            raise ValueError(f"could not fetch the client's jwks_uri ({type(exc).__name__})") from None
        return check_public_jwks(document)

    def _use_assertion_jti(self, client_id: str, jti: str, forget_at: float) -> bool:
        """Remember a client assertion's ``jti``; ``False`` when it was seen before (a replay)."""
        return self._use_jti(self._assertion_jtis, (client_id, jti), forget_at)

    def _use_dpop_jti(self, jkt: str, jti: str, forget_at: float) -> bool:
        """Remember a DPoP proof's ``jti``; ``False`` when it was seen before (a replay)."""
        return self._use_jti(self._dpop_jtis, (jkt, jti), forget_at)

    def _use_jti(self, seen: dict[tuple[str, str], float], key: tuple[str, str], forget_at: float) -> bool:
        now = time.time()
        with self._lock:
            for old in [k for k, until in seen.items() if until < now]:
                del seen[old]
            if key in seen:
                return False
            seen[key] = forget_at
            return True

    def _record_dpop_proof(self, proof: DPoPProof) -> None:
        with self._lock:
            self._dpop_proofs.append(proof)

    def _push_request(self, client_id: str, params: Iterable[tuple[str, str]]) -> tuple[str, int]:
        """Store a pushed authorization request; return its ``request_uri`` and lifetime."""
        request_uri = REQUEST_URI_PREFIX + secrets.token_urlsafe(24)
        with self._lock:
            ttl = self.par_ttl
            self._pushed[request_uri] = _PushedRequest(client_id, tuple(params), time.time() + ttl)
        return request_uri, ttl

    def _pushed_request(self, request_uri: str, client_id: str, *, consume: bool) -> _PushedRequest | str:
        """The pushed request behind ``request_uri`` (used up when ``consume``), or why there is none."""
        with self._lock:
            entry = self._pushed.get(request_uri)
            if entry is None:
                return "unknown or already used request_uri"
            if entry.client_id != client_id:
                return "the request_uri was issued to another client"
            if entry.expires_at <= time.time():
                del self._pushed[request_uri]
                return "the request_uri has expired"
            if consume:
                del self._pushed[request_uri]
            return entry

    def _create_device_grant(self, client_id: str, scopes: tuple[str, ...]) -> _DeviceGrant:
        """Start a device authorization; return (a copy of) it."""
        with self._lock:
            user_code = _new_user_code()
            while any(_same_user_code(user_code, g.user_code) for g in self._devices.values()):
                user_code = _new_user_code()
            grant = _DeviceGrant(
                device_code=secrets.token_urlsafe(32),
                user_code=user_code,
                client_id=client_id,
                scopes=scopes,
                expires_at=time.time() + self.device_code_ttl,
                interval=self.device_interval,
            )
            self._devices[grant.device_code] = grant
            return replace(grant)

    def _pending_device(self, user_code: str) -> _DeviceGrant | None:
        """(A copy of) the pending, unexpired device authorization with ``user_code``."""
        now = time.time()
        with self._lock:
            for grant in self._devices.values():
                if grant.status == "pending" and grant.expires_at > now and _same_user_code(user_code, grant.user_code):
                    return replace(grant)
            return None

    def _decide_device(self, user_code: str, username: str | None) -> None:
        """Approve (as ``username``) or deny (``None``) a pending device authorization."""
        with self._lock:
            found = self._pending_device(user_code)
            if found is None:
                raise ValueError("no pending device authorization has this user code (unknown, decided or expired)")
            grant = self._devices[found.device_code]
            grant.status = "denied" if username is None else "approved"
            grant.user = username

    def _poll_device(self, device_code: str, client_id: str) -> _DeviceGrant | tuple[str, str]:
        """A poll of the ``device_code`` grant: the approved grant (now used up), or ``(error, description)``."""
        now = time.time()
        with self._lock:
            grant = self._devices.get(device_code)
            if grant is None:
                return "invalid_grant", "unknown device_code"
            if grant.client_id != client_id:
                return "invalid_grant", "the device_code was issued to another client"
            if grant.status == "used":
                return "invalid_grant", "the device_code was already used"
            if grant.expires_at <= now:
                return "expired_token", "the device_code has expired"
            if grant.status == "denied":
                return "access_denied", "the user denied the authorization request"
            if grant.status == "approved":
                grant.status = "used"
                return replace(grant)
            last, grant.last_poll = grant.last_poll, now
            if last is not None and now - last < grant.interval:
                grant.interval += self.device_slow_down_increment
                return "slow_down", f"polling too fast: wait at least {grant.interval:g} seconds between requests"
            return "authorization_pending", "the user has not yet approved the authorization request"

    def revoke_grant(self, grant_id: str) -> None:
        """Revoke every access and refresh token of one authorization grant."""
        with self._lock:
            for store in (self._access_tokens, self._refresh_tokens):
                for key in [k for k, v in store.items() if v.grant_id == grant_id]:
                    del store[key]


_HMAC_HASHES: Final[Mapping[str, Callable[..., Any]]] = {
    "HS256": hashlib.sha256,
    "HS384": hashlib.sha384,
    "HS512": hashlib.sha512,
}


def claims_for_scopes(claims: Mapping[str, Any], scopes: Iterable[str]) -> dict[str, Any]:
    """The user ``claims`` that ``scopes`` release (with ``openid``; see :data:`SCOPE_CLAIMS`)."""
    allowed: set[str] = set()
    for scope in scopes:
        allowed |= SCOPE_CLAIMS.get(scope, frozenset())
    return {k: v for k, v in claims.items() if k == "sub" or k in allowed or k not in _STANDARD_CLAIMS}


def token_hash(value: str, alg: str) -> str:
    """``at_hash``/``c_hash`` (OpenID Connect Core 1.0, section 3.1.3.6): the left half of the
    hash of ``value`` (the hash of ``alg``, SHA-256 by default), base64url-encoded."""
    digest = {"384": hashlib.sha384, "512": hashlib.sha512}.get(alg[-3:], hashlib.sha256)
    full = digest(value.encode("ascii")).digest()
    return b64url(full[: len(full) // 2])


def _encode_jws(header: Mapping[str, Any], claims: Mapping[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A compact JWS: ``header.payload.signature``, each part base64url-encoded JSON/bytes."""
    parts = [b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)]
    signing_input = ".".join(parts)
    return f"{signing_input}.{b64url(sign(signing_input.encode('ascii')))}"


def _merged(base: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` updated with ``overrides``, where a ``None`` value removes the key."""
    result = dict(base)
    for name, value in (overrides or {}).items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


_USER_CODE_ALPHABET: Final = "BCDFGHJKLMNPQRSTVWXZ"  # RFC 8628 section 6.1: no vowels, no digits


def _new_user_code() -> str:
    """A user code like ``"BDFG-HJKL"`` (RFC 8628 section 6.1)."""
    letters = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(8))
    return f"{letters[:4]}-{letters[4:]}"


def _same_user_code(given: str, expected: str) -> bool:
    """Compare user codes ignoring case, spaces and dashes."""

    def norm(code: str) -> str:
        return "".join(c for c in code.upper() if c.isalnum())

    return hmac.compare_digest(norm(given).encode(), norm(expected).encode())


def _no_id_token(_: dict[str, Any]) -> None:
    return None


def _check_endpoint(endpoint: str) -> None:
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {sorted(ENDPOINTS)}")


def _bind_address(host: str) -> str:
    """The IPv4 loopback address to bind for ``host``; refuse anything else."""
    if host in _LOOPBACK_NAMES:
        return "127.0.0.1"
    parts = host.split(".")
    if len(parts) == 4 and parts[0] == "127" and all(p.isdigit() and int(p) < 256 for p in parts):
        return host
    raise ValueError(f"FakeProvider only listens on loopback addresses, not {host!r}")
