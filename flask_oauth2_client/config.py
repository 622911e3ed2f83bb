"""Parse and validate the ``OAUTH2_*`` settings into immutable objects. No Flask import: the Flask
layer hands in a plain mapping (``app.config``). Every mistake is a :class:`ConfigurationError`
that names the key and, for provider settings, the provider."""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError
from .errors import OAuth2Warning
from .errors import warn
from .keys import ClientKey
from .keys import KeyLoadError
from .keys import load_keys
from .presets import NO_QUIRKS
from .presets import Quirks
from .presets import apply_preset
from .redirects import safe_next
from .token import parse_scope

__all__ = ["GRANT_TYPES", "ProviderConfig", "Settings", "is_loopback_host", "parse_settings"]

GRANT_TYPES = ("authorization_code", "client_credentials", "password", "implicit", "device_code")
CLIENT_AUTH_METHODS = (
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "client_secret_jwt",
    "none",
)
#: RFC 7518 §3.2: an HMAC key at least as long as the hash (HS256: 32 bytes).
MIN_JWT_SECRET_BYTES = 32
LEGACY_GRANTS = {
    "password": "RFC 9700 §2.4 forbids the resource owner password credentials grant",
    "implicit": "RFC 9700 §2.1.2 advises against the implicit grant",
}
# Parameters the library sets itself; configuration may not override them.
RESERVED_AUTHORIZE_PARAMS = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "nonce",
    }
)
RESERVED_TOKEN_PARAMS = frozenset(
    {
        "grant_type",
        "code",
        "redirect_uri",
        "code_verifier",
        "client_id",
        "client_secret",
        "refresh_token",
        "username",
        "password",
        "client_assertion",
        "client_assertion_type",
    }
)
_PROVIDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")
_PROVIDER_KEYS = frozenset(
    {
        "client_id",
        "client_secret",
        "authorize_url",
        "token_url",
        "userinfo_url",
        "revocation_url",
        "issuer",
        "require_iss",
        "scope",
        "scope_separator",
        "client_auth_method",
        "pkce",
        "grant_type",
        "redirect_uri",
        "authorize_params",
        "token_params",
        "metadata_url",
        "jwks_url",
        "end_session_url",
        "end_session_method",
        "par_url",
        "par",
        "device_authorization_url",
        "dpop",
        "client_keys",
        "client_assertion_audience",
        "post_logout_redirect_uri",
        "trusted_audiences",
        "id_token_algorithms",
    }
)
# Keys of the public contract that a later version implements; named here so the error says so.
# (``preset`` and the presets' own keys such as ``tenant`` are resolved by presets.py first.)
_PLANNED_KEYS: frozenset[str] = frozenset()

SETTING_DEFAULTS: dict[str, Any] = {
    "OAUTH2_PROVIDERS": {},
    "OAUTH2_URL_PREFIX": "/oauth2",
    "OAUTH2_TOKEN_STORE": "session",
    "OAUTH2_TOKEN_STORE_URL": None,
    "OAUTH2_TOKEN_STORE_PREFIX": "oauth2:",
    "OAUTH2_TOKEN_ENCRYPTION_KEYS": None,
    "OAUTH2_REFRESH_LEEWAY": 60,
    "OAUTH2_REFRESH_LOCK_TIMEOUT": 30,
    "OAUTH2_HTTP_TIMEOUT": 10,
    "OAUTH2_STATE_TTL": 600,
    "OAUTH2_MAX_PENDING_LOGINS": 20,
    "OAUTH2_DEFAULT_NEXT": "/",
    "OAUTH2_ALLOW_INSECURE_TRANSPORT": False,
    "OAUTH2_METADATA_TTL": 3600,
}


@dataclasses.dataclass(frozen=True)
class ProviderConfig:
    """One provider's validated configuration."""

    name: str
    client_id: str
    client_secret: str | None = dataclasses.field(default=None, repr=False)
    authorize_url: str | None = None
    token_url: str | None = None
    userinfo_url: str | None = None
    revocation_url: str | None = None
    issuer: str | None = None
    require_iss: bool = False
    scopes: tuple[str, ...] = ()
    scope_separator: str = " "
    client_auth_method: str = "client_secret_basic"
    pkce: bool = True
    grant_type: str = "authorization_code"
    redirect_uri: str | None = None
    authorize_params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    token_params: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: OpenID Connect Discovery or RFC 8414 document; endpoints not configured are read from it.
    metadata_url: str | None = None
    jwks_url: str | None = None
    end_session_url: str | None = None
    #: How the browser is sent to the end-session endpoint: ``"get"`` (a redirect without the ID
    #: token) or ``"post"`` (a form carrying ``id_token_hint``).
    end_session_method: str = "get"
    post_logout_redirect_uri: str | None = None
    #: Audiences besides ``client_id`` that an ID token may name (SECURITY.md P-10).
    trusted_audiences: tuple[str, ...] = ()
    #: ID token signature algorithms to accept instead of the metadata's (asymmetric only).
    id_token_algorithms: tuple[str, ...] = ()
    #: RFC 9126: push every authorization request first (also when the metadata requires it).
    par: bool = False
    par_url: str | None = None
    #: RFC 8628 device authorization endpoint.
    device_authorization_url: str | None = None
    #: RFC 9449: sender-constrain the user's tokens with a DPoP key pair.
    dpop: bool = False
    #: The application's private keys for ``private_key_jwt`` (the first signs).
    client_keys: tuple[ClientKey, ...] = dataclasses.field(default=(), repr=False)
    #: The ``aud`` of client assertions, instead of the provider's issuer.
    client_assertion_audience: str | None = None
    #: ``False`` when ``client_auth_method`` was not configured (then the metadata may choose).
    client_auth_method_configured: bool = True
    #: The ``preset`` these settings came from, if any (see presets.py).
    preset: str | None = None
    #: The provider's known deviations from the specifications; only a preset sets them.
    quirks: Quirks = NO_QUIRKS

    @property
    def is_openid(self) -> bool:
        """OpenID Connect is used when the configured scopes include ``openid``."""
        return "openid" in self.scopes


@dataclasses.dataclass(frozen=True)
class Settings:
    """All validated ``OAUTH2_*`` settings of one app."""

    providers: Mapping[str, ProviderConfig]
    url_prefix: str = "/oauth2"
    token_store: Any = "session"
    token_store_url: str | None = None
    token_store_prefix: str = "oauth2:"
    encryption_keys: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    refresh_leeway: float = 60
    refresh_lock_timeout: float = 30
    http_timeout: float = 10
    state_ttl: int = 600
    max_pending_logins: int = 20
    default_next: str = "/"
    allow_insecure_transport: bool = False
    metadata_ttl: float = 3600

    def provider(self, name: str) -> ProviderConfig:
        try:
            return self.providers[name]
        except KeyError:
            raise ConfigurationError(f"no provider named {name!r} in OAUTH2_PROVIDERS") from None


def is_loopback_host(host: str | None) -> bool:
    """``True`` for ``localhost`` and the loopback addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_settings(config: Mapping[str, Any], *, key_base: str | Path | None = None) -> Settings:
    """Validate the ``OAUTH2_*`` keys of *config* (an ``app.config``) and return :class:`Settings`."""
    unknown = sorted(k for k in config if k.startswith("OAUTH2_") and k not in SETTING_DEFAULTS)
    for key in unknown:
        hint = _did_you_mean(key, SETTING_DEFAULTS)
        warn(f"unknown setting {key}{hint}; it is ignored", OAuth2Warning)

    def get(key: str) -> Any:
        return config.get(key, SETTING_DEFAULTS[key])

    allow_insecure = _bool(get("OAUTH2_ALLOW_INSECURE_TRANSPORT"), "OAUTH2_ALLOW_INSECURE_TRANSPORT")
    timeout = _number(get("OAUTH2_HTTP_TIMEOUT"), "OAUTH2_HTTP_TIMEOUT", minimum=0, exclusive=True)
    raw_providers = get("OAUTH2_PROVIDERS")
    if not isinstance(raw_providers, Mapping):
        raise ConfigurationError("OAUTH2_PROVIDERS must be a dict of provider name -> settings")
    base = None if key_base is None else Path(key_base)
    providers = {
        name: _parse_provider(name, raw, allow_insecure=allow_insecure, key_base=base)
        for name, raw in raw_providers.items()
    }

    prefix = get("OAUTH2_URL_PREFIX")
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise ConfigurationError("OAUTH2_URL_PREFIX must be a path starting with '/', e.g. '/oauth2'")
    default_next = get("OAUTH2_DEFAULT_NEXT")
    if not isinstance(default_next, str) or safe_next(default_next, "") != default_next:
        raise ConfigurationError("OAUTH2_DEFAULT_NEXT must be a path on this site starting with '/'")
    store_prefix = get("OAUTH2_TOKEN_STORE_PREFIX")
    if not isinstance(store_prefix, str) or not store_prefix:
        raise ConfigurationError("OAUTH2_TOKEN_STORE_PREFIX must be a non-empty string")
    store_url = get("OAUTH2_TOKEN_STORE_URL")
    if store_url is not None and not isinstance(store_url, str):
        raise ConfigurationError("OAUTH2_TOKEN_STORE_URL must be a URL string")

    return Settings(
        providers=providers,
        url_prefix=prefix.rstrip("/") or "/",
        token_store=get("OAUTH2_TOKEN_STORE"),
        token_store_url=store_url,
        token_store_prefix=store_prefix,
        encryption_keys=_keys(get("OAUTH2_TOKEN_ENCRYPTION_KEYS")),
        refresh_leeway=_number(get("OAUTH2_REFRESH_LEEWAY"), "OAUTH2_REFRESH_LEEWAY", minimum=0),
        refresh_lock_timeout=_number(
            get("OAUTH2_REFRESH_LOCK_TIMEOUT"), "OAUTH2_REFRESH_LOCK_TIMEOUT", minimum=0, exclusive=True
        ),
        http_timeout=timeout,
        state_ttl=int(_number(get("OAUTH2_STATE_TTL"), "OAUTH2_STATE_TTL", minimum=1)),
        max_pending_logins=int(_number(get("OAUTH2_MAX_PENDING_LOGINS"), "OAUTH2_MAX_PENDING_LOGINS", minimum=1)),
        default_next=default_next,
        allow_insecure_transport=allow_insecure,
        metadata_ttl=_number(get("OAUTH2_METADATA_TTL"), "OAUTH2_METADATA_TTL", minimum=0),
    )


def _parse_provider(name: Any, raw: Any, *, allow_insecure: bool, key_base: Path | None = None) -> ProviderConfig:
    if not isinstance(name, str) or not _PROVIDER_NAME.match(name):
        raise ConfigurationError(
            f"OAUTH2_PROVIDERS: provider name {name!r} must be 1-48 letters, digits, '_' or '-' (it is used in URLs)"
        )
    where = f"OAUTH2_PROVIDERS[{name!r}]"
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{where} must be a dict of settings")
    preset = raw.get("preset")
    raw, quirks = apply_preset(name, raw)  # preset defaults under the app's keys
    for key in raw:
        if key in _PLANNED_KEYS:
            raise ConfigurationError(
                f"{where}: {key!r} is not supported by this version; give 'authorize_url' and 'token_url'",
                provider=name,
            )
        if key not in _PROVIDER_KEYS:
            hint = _did_you_mean(str(key), _PROVIDER_KEYS)
            raise ConfigurationError(f"{where}: unknown key {key!r}{hint}", provider=name)

    def text(key: str, *, required: bool = False) -> str | None:
        value = raw.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and key in ("client_id", "client_secret"):
            value = str(value)  # from_prefixed_env() turns an all-digit id into an int
        if value is None or value == "":
            if required:
                raise ConfigurationError(f"{where}: {key!r} is required", provider=name)
            return None
        if not isinstance(value, str):
            raise ConfigurationError(f"{where}: {key!r} must be a string", provider=name)
        return value

    def url(key: str, *, required: bool = False) -> str | None:
        value = text(key, required=required)
        if value is not None:
            _check_endpoint(value, f"{where}: {key!r}", name, allow_insecure=allow_insecure)
        return value

    client_id = text("client_id", required=True)
    assert client_id is not None
    client_secret = text("client_secret")
    grant_type = text("grant_type") or "authorization_code"
    if grant_type not in GRANT_TYPES:
        raise ConfigurationError(
            f"{where}: 'grant_type' must be one of {', '.join(GRANT_TYPES)}, not {grant_type!r}", provider=name
        )
    if grant_type in LEGACY_GRANTS:
        warn(
            f"{where}: the {grant_type} grant is legacy and insecure ({LEGACY_GRANTS[grant_type]}); "
            "use authorization_code with PKCE",
            DeprecationWarning,
        )
    # The issuer first: a preset builds the metadata URL from it, so an error should name it.
    issuer = url("issuer")
    metadata_url = url("metadata_url")
    discovered = metadata_url is not None  # then missing endpoints come from the metadata
    needs_browser = grant_type in ("authorization_code", "implicit")
    device_url = url("device_authorization_url", required=grant_type == "device_code" and not discovered)
    authorize_url = url("authorize_url", required=needs_browser and not discovered)
    if authorize_url is not None and urlsplit(authorize_url).fragment:
        raise ConfigurationError(f"{where}: 'authorize_url' must not contain a fragment", provider=name)
    token_url = url("token_url", required=grant_type != "implicit" and not discovered)

    configured_method = text("client_auth_method")
    raw_keys = raw.get("client_keys")
    if configured_method is None and raw_keys is not None and client_secret is None:
        configured_method = "private_key_jwt"  # keys and no secret: there is one way to use them
    method = configured_method or ("client_secret_basic" if client_secret else "none")
    if method not in CLIENT_AUTH_METHODS:
        raise ConfigurationError(
            f"{where}: 'client_auth_method' must be one of {', '.join(CLIENT_AUTH_METHODS)}, not {method!r}",
            provider=name,
        )
    client_keys: tuple[ClientKey, ...] = ()
    if method == "private_key_jwt":
        if raw_keys is None:
            raise ConfigurationError(
                f"{where}: 'client_keys' (a PEM file path or a private JWK, or a list of them) is required "
                "with private_key_jwt",
                provider=name,
            )
        if client_secret is not None:
            raise ConfigurationError(
                f"{where}: 'client_secret' is given but 'client_auth_method' is 'private_key_jwt'; remove one",
                provider=name,
            )
        try:
            client_keys = load_keys(raw_keys, base=key_base)
        except KeyLoadError as exc:
            raise ConfigurationError(f"{where}: 'client_keys': {exc}", provider=name) from None
    elif raw_keys is not None:
        raise ConfigurationError(f"{where}: 'client_keys' is only used with private_key_jwt", provider=name)
    if (
        method == "client_secret_jwt"
        and client_secret is not None
        and len(client_secret.encode()) < MIN_JWT_SECRET_BYTES
    ):
        raise ConfigurationError(
            f"{where}: client_secret_jwt signs with the client secret (HS256), which must be at least "
            f"{MIN_JWT_SECRET_BYTES} bytes long (RFC 7518 §3.2)",
            provider=name,
        )
    if method not in ("none", "private_key_jwt") and client_secret is None:
        raise ConfigurationError(f"{where}: 'client_secret' is required with {method}", provider=name)
    if method == "none" and client_secret is not None:
        raise ConfigurationError(
            f"{where}: 'client_secret' is given but 'client_auth_method' is 'none'; remove one", provider=name
        )
    if grant_type == "client_credentials" and method == "none":
        raise ConfigurationError(
            f"{where}: the client_credentials grant needs client authentication (a client secret or client keys)",
            provider=name,
        )

    par = _bool(raw.get("par", False), f"{where}: 'par'", provider=name)
    dpop = _bool(raw.get("dpop", False), f"{where}: 'dpop'", provider=name)
    if dpop and grant_type == "implicit":
        raise ConfigurationError(f"{where}: DPoP cannot bind tokens of the implicit grant", provider=name)
    assertion_audience = text("client_assertion_audience")
    if assertion_audience is not None and method not in ("private_key_jwt", "client_secret_jwt"):
        raise ConfigurationError(
            f"{where}: 'client_assertion_audience' is only used with private_key_jwt or client_secret_jwt",
            provider=name,
        )

    pkce = _bool(raw.get("pkce", True), f"{where}: 'pkce'", provider=name)
    if not pkce and grant_type == "authorization_code":
        warn(f"{where}: PKCE is disabled; RFC 9700 §2.1.1 requires it to defend against code injection", OAuth2Warning)

    separator = raw.get("scope_separator", " ")
    if separator not in (" ", ","):
        raise ConfigurationError(f"{where}: 'scope_separator' must be ' ' or ','", provider=name)
    scope = raw.get("scope")
    if scope is not None and not isinstance(scope, (str, list, tuple)):
        raise ConfigurationError(f"{where}: 'scope' must be a list or a string", provider=name)
    if isinstance(scope, (list, tuple)) and not all(isinstance(s, str) for s in scope):
        raise ConfigurationError(f"{where}: every scope must be a string", provider=name)

    require_iss = _bool(raw.get("require_iss", False), f"{where}: 'require_iss'", provider=name)
    if require_iss and issuer is None:
        raise ConfigurationError(f"{where}: 'require_iss' needs 'issuer'", provider=name)

    redirect_uri = _absolute_url(text("redirect_uri"), f"{where}: 'redirect_uri'", name)
    post_logout = _absolute_url(text("post_logout_redirect_uri"), f"{where}: 'post_logout_redirect_uri'", name)
    end_session_method = text("end_session_method") or "get"
    if end_session_method not in ("get", "post"):
        raise ConfigurationError(
            f"{where}: 'end_session_method' must be 'get' or 'post', not {end_session_method!r}", provider=name
        )
    algorithms = _strings(raw.get("id_token_algorithms"), f"{where}: 'id_token_algorithms'", name)
    weak = [alg for alg in algorithms if alg == "none" or alg.startswith("HS")]
    if weak:
        raise ConfigurationError(
            f"{where}: 'id_token_algorithms' may not contain {weak[0]!r}: ID tokens must be signed with a "
            "provider's private key (none and HMAC are refused, SECURITY.md P-13)",
            provider=name,
        )

    return ProviderConfig(
        name=name,
        client_id=client_id,
        client_secret=client_secret,
        authorize_url=authorize_url,
        token_url=token_url,
        userinfo_url=url("userinfo_url"),
        revocation_url=url("revocation_url"),
        issuer=issuer,
        require_iss=require_iss,
        scopes=parse_scope(scope),
        scope_separator=separator,
        client_auth_method=method,
        pkce=pkce,
        grant_type=grant_type,
        redirect_uri=redirect_uri,
        authorize_params=_params(
            raw.get("authorize_params"), f"{where}: 'authorize_params'", name, RESERVED_AUTHORIZE_PARAMS
        ),
        token_params=_params(raw.get("token_params"), f"{where}: 'token_params'", name, RESERVED_TOKEN_PARAMS),
        metadata_url=metadata_url,
        jwks_url=url("jwks_url"),
        end_session_url=url("end_session_url"),
        end_session_method=end_session_method,
        par=par,
        par_url=url("par_url"),
        device_authorization_url=device_url,
        dpop=dpop,
        client_keys=client_keys,
        client_assertion_audience=assertion_audience,
        post_logout_redirect_uri=post_logout,
        trusted_audiences=_strings(raw.get("trusted_audiences"), f"{where}: 'trusted_audiences'", name),
        id_token_algorithms=algorithms,
        client_auth_method_configured=configured_method is not None,
        preset=preset,
        quirks=quirks,
    )


def _absolute_url(value: str | None, what: str, provider: str) -> str | None:
    if value is not None:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
            raise ConfigurationError(f"{what} must be an absolute http(s) URL without a fragment", provider=provider)
    return value


def _strings(value: Any, what: str, provider: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return parse_scope(value)
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) and item for item in value):
        return tuple(value)
    raise ConfigurationError(f"{what} must be a list of strings", provider=provider)


def _check_endpoint(value: str, what: str, provider: str, *, allow_insecure: bool) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{what} must be an absolute https URL", provider=provider)
    if parts.scheme == "http" and not allow_insecure and not is_loopback_host(parts.hostname):
        raise ConfigurationError(
            f"{what} must use https (http is only allowed for loopback hosts, or with "
            "OAUTH2_ALLOW_INSECURE_TRANSPORT = True)",
            provider=provider,
        )


def _params(value: Any, what: str, provider: str, reserved: frozenset[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{what} must be a dict of strings", provider=provider)
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, (str, int)) or isinstance(item, bool):
            raise ConfigurationError(f"{what} must be a dict of strings", provider=provider)
        if key in reserved:
            hint = " (use the provider's 'scope' setting)" if key == "scope" else ""
            raise ConfigurationError(
                f"{what}: {key!r} is set by the library and cannot be configured{hint}", provider=provider
            )
        result[key] = str(item)
    return result


def _bool(value: Any, what: str, *, provider: str | None = None) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigurationError(f"{what} must be True or False", provider=provider)


def _number(value: Any, what: str, *, minimum: float, exclusive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(
            f"{what} must be a number of seconds"
            if "TTL" in what or "TIME" in what or "LEEWAY" in what
            else f"{what} must be a number"
        )
    if value < minimum or (exclusive and value == minimum):
        relation = ">" if exclusive else ">="
        raise ConfigurationError(f"{what} must be {relation} {minimum:g}")
    return float(value)


def _keys(value: Any) -> tuple[str, ...]:
    if value is None or value == "" or value == []:
        return ()
    if isinstance(value, (str, bytes)):
        items: list[Any] = [value] if isinstance(value, bytes) else value.split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ConfigurationError("OAUTH2_TOKEN_ENCRYPTION_KEYS must be a list of Fernet keys (newest first)")
    keys = []
    for index, item in enumerate(items):
        if isinstance(item, bytes):
            item = item.decode("ascii", "replace")
        if not isinstance(item, str) or not item.strip():
            raise ConfigurationError(f"OAUTH2_TOKEN_ENCRYPTION_KEYS[{index}] must be a Fernet key string")
        keys.append(item.strip())
    return tuple(keys)


def _did_you_mean(key: str, choices: Any) -> str:
    match = difflib.get_close_matches(key, list(choices), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""
