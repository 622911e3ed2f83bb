"""The :class:`FakeProvider` OAuth 2.0 authorization server.

A small but real authorization server (RFC 6749, RFC 7636 PKCE, RFC 7009
revocation, RFC 8414 metadata, RFC 9207 ``iss``) plus a protected resource,
served over a real loopback socket. Its state (clients, users, codes, tokens,
faults, recorded requests) lives in memory and is guarded by a lock; the HTTP
views live in :mod:`._views`.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from types import TracebackType
from typing import Any
from typing import Final

from ._server import ServerThread

#: Endpoint names accepted by :meth:`FakeProvider.set_fault` and :meth:`FakeProvider.calls`.
ENDPOINTS: Final = frozenset({"authorize", "token", "userinfo", "revoke", "api", "metadata"})

#: Client authentication methods accepted by :meth:`FakeProvider.register_client`.
AUTH_METHODS: Final = frozenset({"client_secret_basic", "client_secret_post", "none", "any"})

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
    """

    status: int | None = 500
    body: str = "fault injected by FakeProvider"
    content_type: str = "text/plain; charset=utf-8"
    delay: float = 0.0
    json: Mapping[str, Any] | None = None
    headers: Mapping[str, str] | None = None
    times: int | None = None
    grant_type: str | None = None

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

    #: One of ``"authorize"``, ``"token"``, ``"userinfo"``, ``"revoke"``, ``"api"``, ``"metadata"``.
    endpoint: str
    #: The HTTP method, e.g. ``"GET"``.
    method: str
    #: The ``grant_type`` form parameter (token endpoint), else ``None``.
    grant_type: str | None
    #: The client id the request claims (query, form, or HTTP Basic), if any.
    client_id: str | None
    #: ``"client_secret_basic"``, ``"client_secret_post"``, ``"none"``, or ``None``
    #: when the request carries no client identification (authorize and
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


@dataclass
class _AccessToken:
    client_id: str
    user: str | None
    scopes: tuple[str, ...]
    expires_at: float
    grant_id: str


@dataclass
class _RefreshToken:
    client_id: str
    user: str
    scopes: tuple[str, ...]
    grant_id: str


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
    send_iss: bool
    code_ttl: float


class FakeProvider:
    """A real OAuth 2.0 authorization server for tests and demos.

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
    * ``GET /.well-known/oauth-authorization-server``: RFC 8414 metadata.

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
    :param send_iss: add ``iss`` to authorization responses (RFC 9207).
    :param code_ttl: authorization code lifetime in seconds.
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
        send_iss: bool = False,
        code_ttl: float = 60.0,
    ) -> None:
        self._host = host
        self._port = port
        self._options = _Options(
            auto_approve=auto_approve,
            access_token_ttl=access_token_ttl,
            rotate_refresh_tokens=rotate_refresh_tokens,
            require_pkce=require_pkce,
            send_iss=send_iss,
            code_ttl=code_ttl,
        )
        self.auto_approve = auto_approve
        self.access_token_ttl = access_token_ttl
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.require_pkce = require_pkce
        self.send_iss = send_iss
        self.code_ttl = code_ttl

        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._clients: dict[str, _Client] = {}
        self._users: dict[str, _User] = {}
        self._codes: dict[str, _Code] = {}
        self._access_tokens: dict[str, _AccessToken] = {}
        self._refresh_tokens: dict[str, _RefreshToken] = {}
        self._faults: dict[str, _FaultSlot] = {}
        self._requests: list[RecordedRequest] = []
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
    ) -> None:
        """Register (or replace) a client.

        :param client_secret: required unless ``auth_method`` is ``"none"``
            (a public client), where it must be ``None``.
        :param redirect_uris: exact redirect URIs allowed; ``None`` allows any
            absolute http(s) URI without a fragment.
        :param auth_method: how the client must authenticate at the token and
            revocation endpoints: ``"client_secret_basic"``,
            ``"client_secret_post"``, ``"none"``, or ``"any"`` (basic or post).
        """
        if auth_method not in AUTH_METHODS:
            raise ValueError(f"unknown auth_method {auth_method!r}")
        if (auth_method == "none") != (client_secret is None):
            raise ValueError("a client has a secret if and only if auth_method is not 'none'")
        uris = None if redirect_uris is None else tuple(redirect_uris)
        with self._lock:
            self._clients[client_id] = _Client(client_id, client_secret, uris, auth_method)

    def add_user(self, username: str, password: str, **claims: Any) -> None:
        """Add (or replace) a user; ``claims`` are what ``/userinfo`` returns.

        ``sub`` defaults to ``username``.
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
    ) -> dict[str, Any]:
        """Mint a token directly, without any HTTP request.

        Returns the JSON object a token endpoint response would contain:
        ``access_token``, ``token_type`` (``"Bearer"``), ``expires_in``,
        ``scope`` and (when ``refresh`` and ``user`` are set) ``refresh_token``.
        ``expires_in=0`` gives an access token that is already expired, with a
        working refresh token. ``user=None`` gives a client token (like the
        ``client_credentials`` grant, never with a refresh token).

        :param client_id: defaults to the pre-registered client.
        :param scopes: scope tokens (a space-separated string also works).
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

    # -- faults --------------------------------------------------------------

    def set_fault(self, endpoint: str, fault: Fault) -> None:
        """Make ``endpoint`` misbehave as described by ``fault`` (replacing any previous one).

        :param endpoint: ``"authorize"``, ``"token"``, ``"userinfo"``,
            ``"revoke"``, ``"api"`` or ``"metadata"``.
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
        """Forget tokens, codes, faults, recorded requests and added clients and
        users; restore the default client, user and constructor options.

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
    ) -> dict[str, Any]:
        """Create an access token (and a refresh token); return the response JSON."""
        ttl = self.access_token_ttl if expires_in is None else expires_in
        gid = secrets.token_hex(8) if grant_id is None else grant_id
        access = secrets.token_urlsafe(32)
        payload: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl,
        }
        with self._lock:
            self._access_tokens[access] = _AccessToken(client_id, user, scopes, time.time() + ttl, gid)
            if refresh and user is not None:
                rt = secrets.token_urlsafe(32)
                kept_scopes = scopes if refresh_scopes is None else refresh_scopes
                self._refresh_tokens[rt] = _RefreshToken(client_id, user, kept_scopes, gid)
                payload["refresh_token"] = rt
        payload["scope"] = " ".join(scopes)
        return payload

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

    def revoke_grant(self, grant_id: str) -> None:
        """Revoke every access and refresh token of one authorization grant."""
        with self._lock:
            for store in (self._access_tokens, self._refresh_tokens):
                for key in [k for k, v in store.items() if v.grant_id == grant_id]:
                    del store[key]


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
