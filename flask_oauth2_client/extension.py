"""The Flask extension: :class:`OAuth2Client`."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import time
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any
from typing import TypeVar
from typing import cast

from flask import Flask
from flask import current_app
from flask import g
from flask import has_request_context
from flask import jsonify
from flask import redirect
from flask import request
from flask import url_for
from requests.adapters import HTTPAdapter
from werkzeug.wrappers import Response

from . import _session
from . import pending
from .auth import OAuth2Session
from .client import ProviderClient
from .config import ProviderConfig
from .config import Settings
from .config import parse_settings
from .crypto import TokenCipher
from .device import DeviceAuthorization
from .device import poll_device_token
from .device import start_device_authorization
from .errors import CallbackError
from .errors import ConfigurationError
from .errors import OAuth2Error
from .errors import OAuth2Warning
from .errors import ProviderError
from .errors import ProviderUnavailable
from .errors import ReauthorizationRequired
from .errors import TokenError
from .errors import warn
from .identity import default_user_id
from .identity import rotate_session_user_id
from .pkce import code_challenge
from .pkce import derive_code_verifier
from .pkce import derive_nonce
from .redirects import safe_next
from .refresher import Refresher
from .refresher import app_token_key
from .refresher import app_token_owner
from .responses import error_response
from .responses import no_store
from .responses import wants_json
from .signals import token_obtained
from .signals import token_refreshed
from .signals import token_revoked
from .stores import MemoryTokenStore
from .stores import TokenStore
from .stores import create_store
from .stores.session import uses_cookie_session
from .token import Token
from .token import parse_scope

__all__ = ["OAuth2Client"]

log = logging.getLogger("flask_oauth2_client")
EXTENSION_KEY = "oauth2_client"
#: The store's user id of the application's own token from the device authorization grant.
DEVICE_APP_USER = "#app"
#: Grants that sign the user in through the browser, with the login route.
BROWSER_GRANTS = ("authorization_code", "implicit")
#: Authorization request parameters the library sets itself (``authorize_redirect`` refuses them).
RESERVED_PARAMS = frozenset(
    {"state", "code_challenge", "code_challenge_method", "redirect_uri", "response_type", "client_id", "nonce"}
)
#: Flask's own ``ensure_sync``: a sync view needs no wrapping unless an app class overrides it.
_FLASK_ENSURE_SYNC = Flask.ensure_sync
F = TypeVar("F", bound=Callable[..., Any])
UserIdLoader = Callable[[], "str | None"]


@dataclasses.dataclass
class _AppState:
    """Everything the extension keeps for one app, in ``app.extensions["oauth2_client"]``."""

    extension: OAuth2Client
    settings: Settings
    clients: dict[str, ProviderClient]
    store: TokenStore
    refresher: Refresher
    #: Where the app's own (client_credentials) tokens live: the store, unless it is per-browser.
    app_store: TokenStore
    #: Pooled connections to each provider's APIs, shared by every :meth:`OAuth2Client.session`.
    api_adapters: dict[str, HTTPAdapter]

    def provider(self, name: str) -> ProviderConfig:
        return self.settings.provider(name)

    def client(self, name: str) -> ProviderClient:
        try:
            return self.clients[name]
        except KeyError:
            raise ConfigurationError(f"no provider named {name!r} in OAUTH2_PROVIDERS") from None


class OAuth2Client:
    """OAuth 2.0 client support for a Flask app.

    :param app: the app to set up now; or call :meth:`init_app` later (app factories).
    :param store: a :class:`~flask_oauth2_client.stores.TokenStore` (or a name or import path)
        to use instead of ``OAUTH2_TOKEN_STORE``.
    :param user_id_loader: a function returning the current user's id; see :meth:`user_id_loader`.

    The instance keeps no app: one instance can serve several apps, each with its own settings.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        store: TokenStore | str | None = None,
        user_id_loader: UserIdLoader | None = None,
    ) -> None:
        self._store = store
        self._user_id_loader = user_id_loader
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        return f"<OAuth2Client store={self._store!r}>" if self._store else "<OAuth2Client>"

    # -- set-up -------------------------------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        """Read and validate the app's ``OAUTH2_*`` settings, set up the token store and register
        the ``oauth2`` blueprint. Does no network I/O.

        Settings read: ``OAUTH2_PROVIDERS``, ``OAUTH2_URL_PREFIX``, ``OAUTH2_TOKEN_STORE``,
        ``OAUTH2_TOKEN_STORE_URL``, ``OAUTH2_TOKEN_STORE_PREFIX``, ``OAUTH2_TOKEN_ENCRYPTION_KEYS``,
        ``OAUTH2_REFRESH_LEEWAY``, ``OAUTH2_REFRESH_LOCK_TIMEOUT``, ``OAUTH2_HTTP_TIMEOUT``, ``OAUTH2_STATE_TTL``,
        ``OAUTH2_MAX_PENDING_LOGINS``, ``OAUTH2_DEFAULT_NEXT``, ``OAUTH2_ALLOW_INSECURE_TRANSPORT``.

        :raises ConfigurationError: a setting is invalid; the message names the key and provider.
        :raises RuntimeError: the app was already set up by an ``OAuth2Client``.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("an OAuth2Client is already registered on this app")
        settings = parse_settings(app.config, key_base=app.instance_path)
        cipher = TokenCipher(settings.encryption_keys) if settings.encryption_keys else None
        store = create_store(
            self._store if self._store is not None else settings.token_store,
            url=settings.token_store_url,
            cipher=cipher,
            instance_path=app.instance_path,
            prefix=settings.token_store_prefix,
            # A lock whose owner died is freed after this long: longer than any refresh can take.
            lock_ttl=max(settings.refresh_lock_timeout, 3 * settings.http_timeout + 5),
        )
        if store.uses_session and uses_cookie_session(app):
            warn(
                "tokens are kept in Flask's cookie session, encrypted, but sent to the browser with "
                "every request; use a server-side session (Flask-Session, set up before OAuth2Client) "
                "or another OAUTH2_TOKEN_STORE",
                OAuth2Warning,
            )
        if str(app.config.get("SESSION_COOKIE_SAMESITE") or "").lower() == "strict":
            warn(
                "SESSION_COOKIE_SAMESITE = 'Strict' drops the session cookie on the provider's redirect "
                "back, so every login fails; use 'Lax'",
                OAuth2Warning,
            )
        app.extensions[EXTENSION_KEY] = _AppState(
            extension=self,
            settings=settings,
            clients={
                name: ProviderClient(
                    cfg,
                    timeout=settings.http_timeout,
                    allow_insecure=settings.allow_insecure_transport,
                    metadata_ttl=settings.metadata_ttl,
                )
                for name, cfg in settings.providers.items()
            },
            store=store,
            refresher=Refresher(leeway=settings.refresh_leeway, lock_timeout=settings.refresh_lock_timeout),
            app_store=MemoryTokenStore() if store.uses_session else store,
            api_adapters={name: HTTPAdapter(pool_maxsize=32) for name in settings.providers},
        )
        from .views import blueprint
        from .views import handle_error

        app.register_blueprint(blueprint, url_prefix=settings.url_prefix)
        from .cli import oauth2_cli

        app.cli.add_command(oauth2_cli)
        app.register_error_handler(OAuth2Error, handle_error)

    def user_id_loader(self, loader: UserIdLoader) -> UserIdLoader:
        """Register the function that returns the current user's id as a string, or ``None``
        when nobody is logged in to the app. Tokens are stored per user id.

        Without one, Flask-Login's ``current_user`` is used when present, else a random id kept in
        the session (each browser then has its own tokens)."""
        self._user_id_loader = loader
        return loader

    # -- the current user's tokens --------------------------------------------------------------

    @property
    def has_user_id_loader(self) -> bool:
        """``True`` when the app registered its own :meth:`user_id_loader`."""
        return self._user_id_loader is not None

    def current_user_id(self, *, create: bool = False) -> str | None:
        """The current user's id, as the registered loader (or the default) says."""
        if self._user_id_loader is not None:
            user_id = self._user_id_loader()
            return None if user_id is None or user_id == "" else str(user_id)
        return default_user_id(create=create)

    def _owner_of_new_token(self, state: _AppState) -> str:
        """The user id a freshly obtained token is stored under. With the default identity the
        browser's random id is replaced (its other tokens move along), defeating fixation."""
        if self._user_id_loader is not None:
            user_id = self.current_user_id()
            if user_id is None:
                raise CallbackError("nobody is signed in to the application", reason="login_required")
            return user_id
        rotated = rotate_session_user_id()
        if rotated is None:
            user_id = default_user_id(create=True)
            assert user_id is not None  # a Flask-Login user is signed in
            return user_id
        old, new = rotated
        if old is not None:
            for name in state.settings.providers:
                token = state.store.get(name, old)
                if token is not None:
                    state.store.set(name, new, token)
                    state.store.delete(name, old)
        return new

    def get_token(self, provider: str) -> Token | None:
        """The current user's token for *provider* exactly as stored, or ``None``. No network
        I/O: refreshing is the job of :meth:`token_required` and :meth:`refresh`."""
        state = _state()
        state.client(provider)
        user_id = self.current_user_id()
        return None if user_id is None else state.store.get(provider, user_id)

    def token_required(self, provider: str, scopes: str | Sequence[str] | None = None) -> Callable[[F], F]:
        """Decorate a view that needs the current user's token for *provider*; the view receives
        it as the keyword argument ``token`` (a :class:`~flask_oauth2_client.Token`).

        A token expiring within ``OAUTH2_REFRESH_LEEWAY`` is refreshed first (once, however many
        requests find it at the same time). Without a usable token, a browser is redirected to the
        login route (and back afterwards); an API client asking for JSON gets a 401.

        :param scopes: scopes the token must have; a token without them sends the user through
            the login again asking for them too.
        """
        required = parse_scope(scopes)

        def decorator(view: F) -> F:
            # Decided once: Flask's ensure_sync returns a sync view unchanged.
            is_async = inspect.iscoroutinefunction(view)

            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                app = current_app._get_current_object()  # type: ignore[attr-defined]
                kwargs["token"] = self._usable_token(provider, required, _state_of(app))
                if is_async or type(app).ensure_sync is not _FLASK_ENSURE_SYNC:
                    return app.ensure_sync(view)(*args, **kwargs)
                return view(*args, **kwargs)

            return cast(F, wrapper)

        return decorator

    def refresh(self, provider: str) -> Token:
        """Refresh the current user's token now and return the new one.

        :raises ReauthorizationRequired: no token, no refresh token, or refresh refused.
        :raises ProviderError: the provider failed; the token is kept.
        """
        state = _state()
        user_id = self.current_user_id()
        token = None if user_id is None else state.store.get(provider, user_id)
        if user_id is None or token is None:
            raise ReauthorizationRequired("there is no token to refresh", provider=provider)
        return self._refresh(state, provider, user_id, token, force=True)

    def revoke(self, provider: str) -> Token | None:
        """Forget the current user's token for *provider*, revoking it at the provider first when
        it has a revocation endpoint (RFC 7009: the refresh token, then the access token). A
        revocation endpoint that fails is logged; the token is deleted all the same. Returns the
        forgotten token (its ID token serves for logging out at the provider), or ``None``.

        For a ``client_credentials`` provider, this forgets the application's cached token (for
        the configured scopes); the next request for it gets a new one."""
        state = _state()
        client = state.client(provider)
        store, where, user_id = self._token_home(state, provider)
        token = None if where is None else store.get(*where)
        if where is None or token is None:
            return None
        if user_id is not None:
            _forget_for_request(provider, user_id)
        try:
            if client.endpoints().revocation_url is not None:
                if token.refresh_token:
                    client.revoke(token.refresh_token, token_type_hint="refresh_token")
                client.revoke(token.access_token, token_type_hint="access_token")
        except (ProviderError, ValueError) as exc:
            log.warning("revocation at %s failed (%s); the token is deleted anyway", provider, exc)
        finally:
            store.delete(*where)
        token_revoked.send(current_app._get_current_object(), provider=provider, user_id=user_id)  # type: ignore[attr-defined]
        return token

    def userinfo(self, provider: str) -> dict[str, Any]:
        """The current user's claims from *provider*'s UserInfo endpoint (OpenID Connect Core
        §5.3), with the current user's token (refreshed first when it expires soon). Its ``sub``
        must be the ID token's (SECURITY.md P-16).

        :raises ReauthorizationRequired: the current user has no usable token.
        :raises IDTokenError: the answer is about another user (``reason="subject_changed"``).
        :raises ProviderError: the endpoint failed or answered something other than JSON.
        """
        token = self._usable_token(provider, ())
        return _state().client(provider).userinfo(token)

    # -- other grants and calling APIs -------------------------------------------------------------

    def client_credentials_token(self, provider: str, scopes: str | Sequence[str] | None = None) -> Token:
        """The application's own token for *provider* (client_credentials grant, RFC 6749 §4.4),
        cached in the token store and requested again shortly before it expires — once, however
        many threads or workers ask at the same time. Needs an app context, not a request.

        :param scopes: scopes to ask for instead of the configured ones (cached separately).
        :raises ConfigurationError: the provider does not use the client_credentials grant.
        """
        state = _state()
        client = self._client_for(state, provider, "client_credentials")
        chosen = parse_scope(scopes) or client.config.scopes
        return state.refresher.app_token(client, state.app_store, chosen)

    def password_grant(
        self, provider: str, username: str, password: str, scopes: str | Sequence[str] | None = None
    ) -> Token:
        """Legacy resource owner password credentials grant (RFC 6749 §4.3; RFC 9700 §2.4 says
        not to use it): exchange the user's credentials for a token, store it for the current user
        and return it. The password is sent to the token endpoint only; it is never logged,
        stored, or part of an exception's text.

        :raises TokenError: e.g. ``invalid_grant`` for wrong credentials.
        :raises ConfigurationError: the provider does not use the password grant.
        """
        state = _state()
        client = self._client_for(state, provider, "password")
        if self._user_id_loader is not None and self.current_user_id() is None:
            # Checked before the credentials travel: the token would have no owner to be stored for.
            raise CallbackError("nobody is signed in to the application", reason="login_required")
        try:
            token = client.password(username, password, scopes=parse_scope(scopes) or None)
        except OAuth2Error as exc:
            _scrub(exc, password)
            raise
        user_id = self._owner_of_new_token(state)
        state.store.set(provider, user_id, token)
        _remember_for_request(provider, user_id, token)
        token_obtained.send(current_app._get_current_object(), provider=provider, user_id=user_id, token=token)  # type: ignore[attr-defined]
        return token

    def session(self, provider: str) -> OAuth2Session:
        """A :class:`requests.Session` for *provider*'s APIs that sends the current user's token
        (the app's token for a client_credentials provider) in the ``Authorization`` header,
        refreshes it before it expires, and after a ``401`` with ``error="invalid_token"``
        refreshes it once and retries the request once. Requests get ``OAUTH2_HTTP_TIMEOUT``
        unless they set a timeout. Use it within the request (or app context) that created it.

        :raises ReauthorizationRequired: the current user has no token (raised at the first request).
        """
        state = _state()
        client = state.client(provider)
        source: Callable[[Token | None], Token]
        if client.config.grant_type == "client_credentials":

            def source(stale: Token | None) -> Token:
                return state.refresher.app_token(client, state.app_store, client.config.scopes, stale=stale)

        elif client.config.grant_type == "device_code" and self._device_owner(state, provider) is None:

            def source(stale: Token | None) -> Token:
                if stale is None:
                    return self._device_app_token(state, provider, ())
                return self._refresh(state, provider, DEVICE_APP_USER, stale, force=True, store=state.app_store)

        else:
            user_id = self.current_user_id()

            def source(stale: Token | None) -> Token:
                if user_id is None:
                    raise ReauthorizationRequired("sign-in with the provider is required", provider=provider)
                if stale is None:
                    # The token the view's decorator just read: no second store lookup per call.
                    known = _recalled_for_request(provider, user_id)
                    if known is not None and not state.refresher.needs_refresh(known):
                        return known
                    return self._user_token(state, provider, user_id, ())
                fresh = self._refresh(state, provider, user_id, stale, force=True)
                _remember_for_request(provider, user_id, fresh)
                return fresh

        return OAuth2Session(
            source,
            timeout=state.settings.http_timeout,
            adapter=state.api_adapters[provider],
            nonces=client.dpop_nonces,
        )

    # -- the device authorization grant (RFC 8628) --------------------------------------------------

    def device_authorization(self, provider: str, scopes: str | Sequence[str] | None = None) -> DeviceAuthorization:
        """Start a device authorization (RFC 8628 §3.1): the provider's codes for the user to
        enter at its verification page. Show ``user_code`` and ``verification_uri`` to the user,
        then call :meth:`device_token`. Needs an app context, not a request.

        :raises TokenError: the provider refused (``invalid_client``, ``invalid_scope``...).
        :raises ProviderError: the endpoint is missing, failed, or answered something unusable.
        """
        client = _state().client(provider)
        return start_device_authorization(client, scopes=parse_scope(scopes) or None)

    def device_token(
        self,
        provider: str,
        authorization: DeviceAuthorization,
        *,
        user_id: str | None = None,
        scopes: str | Sequence[str] | None = None,
        on_wait: Callable[[float], None] | None = None,
    ) -> Token:
        """Poll until the user approves *authorization* (RFC 8628 §3.4), then store the token
        for *user_id* (as a web login would), or, without one, as the application's token for
        *provider* (see :doc:`device-flow`), and return it.

        :raises TokenError: ``access_denied``, ``expired_token``, or another refusal.
        """
        state = _state()
        client = state.client(provider)
        token = poll_device_token(client, authorization, scopes=parse_scope(scopes) or None, on_wait=on_wait)
        token = client.validate_id_token(token, nonce=None)
        store, owner = (state.store, user_id) if user_id is not None else (state.app_store, DEVICE_APP_USER)
        store.set(provider, owner, token)
        token_obtained.send(current_app._get_current_object(), provider=provider, user_id=user_id, token=token)  # type: ignore[attr-defined]
        return token

    def _device_owner(self, state: _AppState, provider: str) -> str | None:
        """For a device_code provider: the current user's id when they have a token of their
        own, else ``None`` (the application's token is used; also outside a request)."""
        user_id = self.current_user_id() if has_request_context() else None
        if user_id is None or state.store.get(provider, user_id) is None:
            return None
        return user_id

    def _device_app_token(self, state: _AppState, provider: str, required: tuple[str, ...]) -> Token:
        token = state.app_store.get(provider, DEVICE_APP_USER)
        if token is None:
            raise ReauthorizationRequired(
                f"no token: run 'flask oauth2 device-login {provider}' first", provider=provider, scopes=required
            )
        if required and not token.scopes.issuperset(required):
            raise ReauthorizationRequired(
                "the token lacks a required scope", provider=provider, scopes=required, reason="insufficient_scope"
            )
        if state.refresher.needs_refresh(token):
            token = self._refresh(state, provider, DEVICE_APP_USER, token, force=False, store=state.app_store)
        return token

    # -- starting a login -------------------------------------------------------------------------

    def authorize_redirect(self, provider: str, next: str | None = None, **params: str) -> Response:
        """Start an authorization: keep a pending authorization (state, ``next``, creation time)
        in the session and return the 302 response to the provider's authorization endpoint.

        :param next: where to send the browser after the login; only paths on this site are
            accepted, anything else becomes ``OAUTH2_DEFAULT_NEXT``.
        :param params: extra authorization request parameters (``prompt``, ``login_hint``...).
            ``scope`` adds scopes to the configured ones. The library always sets ``state`` and
            the PKCE parameters itself.
        """
        state = _state()
        client = state.client(provider)
        cfg = client.config
        if cfg.grant_type not in BROWSER_GRANTS:
            raise ConfigurationError(
                f"provider {provider!r} uses the {cfg.grant_type} grant, which has no browser login",
                provider=provider,
            )
        implicit = cfg.grant_type == "implicit"
        extra_scopes = parse_scope(params.pop("scope", None))
        for key in params:
            if key in RESERVED_PARAMS:
                raise ValueError(f"{key!r} is set by the library and cannot be passed to authorize_redirect")
        scopes = tuple(dict.fromkeys(cfg.scopes + extra_scopes))
        started = pending.begin(
            provider,
            safe_next(next, state.settings.default_next),
            pkce=cfg.pkce and not implicit,
            nonce="openid" in scopes and not implicit,
            scopes=extra_scopes,
            ttl=int(state.settings.state_ttl),
            limit=state.settings.max_pending_logins,
        )
        verifier = code_verifier(started) if started.pkce else None
        started_nonce = nonce(started)
        location = client.authorization_url(
            redirect_uri=redirect_uri(cfg),
            state=started.state,
            code_challenge=None if verifier is None else code_challenge(verifier),
            scopes=scopes,
            response_type="token" if implicit else "code",
            extra=params if started_nonce is None else {**params, "nonce": started_nonce},
        )
        return no_store(redirect(location, 302))

    # -- internals ----------------------------------------------------------------------------------

    def _token_home(self, state: _AppState, provider: str) -> tuple[TokenStore, tuple[str, str] | None, str | None]:
        """Where *provider*'s token for this request lives: (store, (store key, user id), user id);
        the key is ``None`` when there is no current user."""
        client = state.client(provider)
        if client.config.grant_type == "client_credentials":
            return state.app_store, (app_token_key(provider), app_token_owner(client.config.scopes)), None
        user_id = self.current_user_id()
        if client.config.grant_type == "device_code" and self._device_owner(state, provider) is None:
            return state.app_store, (provider, DEVICE_APP_USER), None
        return state.store, None if user_id is None else (provider, user_id), user_id

    def _client_for(self, state: _AppState, provider: str, grant_type: str) -> ProviderClient:
        client = state.client(provider)
        if client.config.grant_type != grant_type:
            raise ConfigurationError(
                f"provider {provider!r} is configured for the {client.config.grant_type} grant, not {grant_type}",
                provider=provider,
            )
        return client

    def _usable_token(self, provider: str, required: tuple[str, ...], state: _AppState | None = None) -> Token:
        if state is None:
            state = _state()
        client = state.client(provider)
        if client.config.grant_type == "client_credentials":
            return state.refresher.app_token(client, state.app_store, required or client.config.scopes)
        user_id = self.current_user_id()
        if client.config.grant_type == "device_code" and self._device_owner(state, provider) is None:
            return self._device_app_token(state, provider, required)
        if user_id is None:
            raise ReauthorizationRequired("sign-in with the provider is required", provider=provider, scopes=required)
        return self._user_token(state, provider, user_id, required)

    def _user_token(self, state: _AppState, provider: str, user_id: str, required: tuple[str, ...]) -> Token:
        token = state.store.get(provider, user_id)
        if token is None:
            raise ReauthorizationRequired("sign-in with the provider is required", provider=provider, scopes=required)
        if required and not token.scopes.issuperset(required):  # *required* is parsed already
            raise ReauthorizationRequired(
                "the token lacks a required scope", provider=provider, scopes=required, reason="insufficient_scope"
            )
        if state.refresher.needs_refresh(token):
            token = self._refresh(state, provider, user_id, token, force=False)
        _remember_for_request(provider, user_id, token)
        return token

    def _refresh(
        self,
        state: _AppState,
        provider: str,
        user_id: str,
        token: Token,
        *,
        force: bool,
        store: TokenStore | None = None,
    ) -> Token:
        app = current_app._get_current_object()  # type: ignore[attr-defined]

        def announce(fresh: Token) -> None:
            token_refreshed.send(app, provider=provider, user_id=user_id, token=fresh)

        try:
            return state.refresher.refresh(
                state.client(provider), store or state.store, user_id, token, force=force, on_refreshed=announce
            )
        except ProviderError as exc:
            if not force and not isinstance(exc, TokenError) and not token.is_expired():
                log.warning("refreshing the %s token failed (%s); using it while it lasts", provider, exc)
                return token
            if isinstance(exc, ProviderUnavailable) and exc.kind in ("unreachable", "server_error"):
                # The token is kept: the protected page is temporarily unavailable (503), not broken.
                raise ProviderUnavailable(exc.message, provider=provider, kind="unavailable") from None
            raise


def _scrub(error: OAuth2Error, secret: str) -> None:
    """Remove *secret* from an error's texts (a provider might echo what it was sent)."""
    if not secret:
        return
    error.message = error.message.replace(secret, "***")
    error.args = (error.message,)
    for attribute in ("description", "uri"):
        value = getattr(error, attribute, None)
        if isinstance(value, str):
            setattr(error, attribute, value.replace(secret, "***"))


_REQUEST_TOKENS = "_oauth2_client_tokens"


def _request_memo() -> dict[tuple[str, str], Token]:
    """The current request's remembered tokens (in ``flask.g``, one proxy lookup)."""
    namespace = g._get_current_object().__dict__
    memo = namespace.get(_REQUEST_TOKENS)
    if memo is None:
        memo = namespace[_REQUEST_TOKENS] = {}
    return cast(dict[tuple[str, str], Token], memo)


def _remember_for_request(provider: str, user_id: str, token: Token) -> None:
    """Keep the current user's token for the rest of the request."""
    _request_memo()[(provider, user_id)] = token


def _recalled_for_request(provider: str, user_id: str) -> Token | None:
    return _request_memo().get((provider, user_id))


def _forget_for_request(provider: str, user_id: str) -> None:
    _request_memo().pop((provider, user_id), None)


def _state() -> _AppState:
    return _state_of(current_app._get_current_object())  # type: ignore[attr-defined]


def _state_of(app: Flask) -> _AppState:
    try:
        return cast(_AppState, app.extensions[EXTENSION_KEY])
    except KeyError:
        raise RuntimeError("OAuth2Client.init_app(app) was not called for this app") from None


def code_verifier(started: pending.PendingAuthorization) -> str:
    """The PKCE verifier of a pending authorization, derived from its state (see
    :func:`~flask_oauth2_client.pkce.derive_code_verifier`)."""
    return derive_code_verifier(_secret_key(), started.state)


def nonce(started: pending.PendingAuthorization) -> str | None:
    """The OpenID Connect nonce of a pending authorization (derived from its state), or ``None``
    when it sent none."""
    if not started.nonce:
        return None
    return derive_nonce(_secret_key(), started.state)


def _secret_key() -> str | bytes:
    secret = current_app.secret_key
    if not secret:
        raise ConfigurationError("SECRET_KEY must be set: logins are kept in the session")
    return secret


def redirect_uri(cfg: ProviderConfig) -> str:
    """The absolute callback URL registered with the provider."""
    if cfg.redirect_uri is not None:
        return cfg.redirect_uri
    return url_for("oauth2.callback", provider=cfg.name, _external=True)


def reauthorization_response(error: ReauthorizationRequired) -> Response:
    """Send a browser through the login again (back to this page afterwards); 401 for JSON."""
    provider = error.provider or ""
    target = request.script_root + request.full_path.rstrip("?") if request.method in ("GET", "HEAD") else None
    args: dict[str, Any] = {"provider": provider}
    if target:
        args["next"] = target
    if error.scopes:
        args["scope"] = " ".join(error.scopes)
    finished = _session.peek().get("d", {}).get(provider)
    if isinstance(finished, list) and len(finished) == 2 and isinstance(finished[0], int):
        age = time.time() - finished[0]
        if error.reason == "insufficient_scope" and age < 60 and set(error.scopes) <= set(finished[1]):
            # A login that asked for these scopes just finished without them: the provider
            # grants less than asked, and another redirect would loop.
            return error_response(
                OAuth2Error("the provider did not grant the permissions this page needs", provider=provider),
                status=403,
            )
        if error.reason == "expired" and age < 10:
            # The token of a login that just finished is already unusable (e.g. expires_in 0):
            # sending the browser round again would loop.
            return error_response(
                OAuth2Error(
                    "the provider's new token could not be used; not starting another login", provider=provider
                ),
                status=502,
            )
    cfg = _state().settings.providers.get(provider)
    if cfg is not None and cfg.grant_type not in BROWSER_GRANTS:
        # No login route (password grant): the application asks for credentials its own way.
        return error_response(error)
    login_url = url_for("oauth2.login", **args)
    if wants_json():
        response = jsonify(error="reauthorization_required", error_description=error.message, login_url=login_url)
        response.status_code = 401
        return no_store(response)
    return no_store(redirect(login_url, 302))
