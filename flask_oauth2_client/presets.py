"""Provider presets: ``"preset": "google"`` and friends. No Flask import.

A preset is data: the settings a provider needs (endpoints or a metadata URL, the default scope,
how it wants scopes separated), merged *under* the provider's own keys, so that every key the
application gives wins. A few providers also bend the specifications; each such deviation is a
named field of :class:`Quirks`, which only a preset can set (there is no configuration key for
it) and which the protocol core consults at exactly one place each:

``issuer_aliases``
    Google may put ``accounts.google.com`` (no scheme) in an ID token's ``iss``. Accepted for
    ID tokens only, and only while the provider's issuer is ``https://accounts.google.com``.
``tenant_issuer_template``
    Microsoft's multi-tenant endpoints (``common``, ``organizations``) publish the issuer
    ``https://login.microsoftonline.com/{tenantid}/v2.0``. An ID token must then carry that
    issuer with ``{tenantid}`` replaced by its own ``tid`` claim (a GUID), and an RFC 9207
    ``iss`` response parameter must be that template filled with some tenant id.

:func:`apply_preset` is called by :mod:`flask_oauth2_client.config` before it validates the
provider's settings, so a preset's values go through the same checks as hand-written ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError

__all__ = ["PRESETS", "PRESET_KEYS", "Preset", "Quirks", "apply_preset"]

OIDC_SUFFIX = "/.well-known/openid-configuration"
MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
#: The issuer Microsoft's ``common`` and ``organizations`` metadata name.
MICROSOFT_TENANT_ISSUER = MICROSOFT_AUTHORITY + "/{tenantid}/v2.0"
#: The tenant of personal Microsoft accounts; the ``consumers`` metadata names its issuer.
MICROSOFT_CONSUMERS_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
_MULTI_TENANT = ("common", "organizations")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
_PLACEHOLDER = "{tenantid}"
GITLAB_EXAMPLE = "https://gitlab.example.com"
KEYCLOAK_EXAMPLE = "https://sso.example.com/realms/myrealm"
AUTH0_EXAMPLE = "https://example.us.auth0.com/"
OKTA_EXAMPLE = "https://example.okta.com/oauth2/default"


@dataclasses.dataclass(frozen=True)
class Quirks:
    """How a provider departs from the specifications. The defaults mean "no quirk": every
    method then answers exactly what the standard rule would."""

    #: ``(issuer, alias)`` pairs: an ID token from *issuer* may name *alias* as its ``iss``.
    issuer_aliases: tuple[tuple[str, str], ...] = ()
    #: A multi-tenant issuer containing ``{tenantid}``, filled from each ID token's ``tid``.
    tenant_issuer_template: str | None = None

    def id_token_issuers(self, issuer: str, claims: Mapping[str, Any]) -> tuple[str, ...]:
        """The ``iss`` values accepted in an ID token (with these signature-verified *claims*)
        from a provider whose issuer is *issuer*. Without quirks: ``(issuer,)``."""
        template = self.tenant_issuer_template
        if template is not None and issuer == template:
            tenant = claims.get("tid")
            if not isinstance(tenant, str) or not _GUID.fullmatch(tenant):
                return ()  # nothing is accepted: the token does not say which tenant issued it
            return (template.replace(_PLACEHOLDER, tenant),)
        return (issuer, *(alias for canonical, alias in self.issuer_aliases if canonical == issuer))

    def response_issuer_matches(self, issuer: str, iss: str) -> bool:
        """Whether the ``iss`` parameter of an authorization response (RFC 9207) names the
        provider whose issuer is *issuer*. Without quirks: ``iss == issuer``."""
        template = self.tenant_issuer_template
        if template is not None and issuer == template:
            before, _, after = template.partition(_PLACEHOLDER)
            tenant = iss[len(before) : len(iss) - len(after)] if len(iss) > len(before) + len(after) else ""
            return iss.startswith(before) and iss.endswith(after) and _GUID.fullmatch(tenant) is not None
        return iss == issuer


NO_QUIRKS = Quirks()

#: What a preset's ``derive`` function returns: more default settings, and the quirks.
Derived = tuple[dict[str, Any], Quirks]


@dataclasses.dataclass(frozen=True)
class Preset:
    """One provider's preset."""

    name: str
    #: Settings merged under the application's own.
    defaults: Mapping[str, Any]
    #: Settings the application must give (e.g. the ``issuer`` of its own tenant), with an example.
    required: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: Settings only this preset understands; consumed here, never passed on.
    keys: tuple[str, ...] = ()
    #: Defaults that depend on the application's settings (issuer, tenant), and quirks.
    derive: Callable[[str, str, Mapping[str, Any]], Derived] | None = None
    quirks: Quirks = NO_QUIRKS


def _issuer(
    where: str, provider: str, settings: Mapping[str, Any], *, title: str, trailing_slash: bool, example: str
) -> str:
    """The application's ``issuer``, checked enough to build a metadata URL from it (the full
    transport checks follow in config.py)."""
    value = settings.get("issuer")
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{where}: 'issuer' must be a URL like {example!r}", provider=provider)
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigurationError(
            f"{where}: 'issuer' must be an absolute https URL like {example!r}, not {value!r}", provider=provider
        )
    if trailing_slash and not value.endswith("/"):
        raise ConfigurationError(
            f"{where}: {title}'s issuer ends with '/': use {value + '/'!r} (ID tokens name it exactly)",
            provider=provider,
        )
    if not trailing_slash and value.endswith("/"):
        raise ConfigurationError(
            f"{where}: {title}'s issuer has no trailing '/': use {value.rstrip('/')!r} (ID tokens name it exactly)",
            provider=provider,
        )
    return value


def _metadata_of(issuer: str) -> str:
    return issuer.rstrip("/") + OIDC_SUFFIX


def _derive_gitlab(where: str, provider: str, settings: Mapping[str, Any]) -> Derived:
    if settings.get("issuer") in (None, ""):
        return {"issuer": "https://gitlab.com", "metadata_url": _metadata_of("https://gitlab.com")}, NO_QUIRKS
    issuer = _issuer(where, provider, settings, title="GitLab", trailing_slash=False, example=GITLAB_EXAMPLE)
    return {"metadata_url": _metadata_of(issuer)}, NO_QUIRKS


def _derive_keycloak(where: str, provider: str, settings: Mapping[str, Any]) -> Derived:
    issuer = _issuer(where, provider, settings, title="Keycloak", trailing_slash=False, example=KEYCLOAK_EXAMPLE)
    if "/realms/" not in urlsplit(issuer).path:
        raise ConfigurationError(
            f"{where}: 'issuer' must be the realm's URL, like {KEYCLOAK_EXAMPLE!r} "
            "(before Keycloak 17: .../auth/realms/<realm>)",
            provider=provider,
        )
    return {"metadata_url": _metadata_of(issuer)}, NO_QUIRKS


def _derive_auth0(where: str, provider: str, settings: Mapping[str, Any]) -> Derived:
    issuer = _issuer(where, provider, settings, title="Auth0", trailing_slash=True, example=AUTH0_EXAMPLE)
    return {"metadata_url": _metadata_of(issuer)}, NO_QUIRKS


def _derive_okta(where: str, provider: str, settings: Mapping[str, Any]) -> Derived:
    issuer = _issuer(where, provider, settings, title="Okta", trailing_slash=False, example=OKTA_EXAMPLE)
    return {"metadata_url": _metadata_of(issuer)}, NO_QUIRKS


def _derive_microsoft(where: str, provider: str, settings: Mapping[str, Any]) -> Derived:
    tenant = settings.get("tenant", "common")
    if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
        raise ConfigurationError(
            f"{where}: 'tenant' must be 'common', 'organizations', 'consumers', a tenant ID (GUID) "
            "or the tenant's domain name",
            provider=provider,
        )
    lowered = tenant.lower()
    metadata_url = f"{MICROSOFT_AUTHORITY}/{tenant}/v2.0{OIDC_SUFFIX}"
    defaults: dict[str, Any] = {"metadata_url": metadata_url}
    if lowered in _MULTI_TENANT:
        # The metadata names the template itself; each ID token's tid fills it in.
        defaults["issuer"] = MICROSOFT_TENANT_ISSUER
        return defaults, Quirks(tenant_issuer_template=MICROSOFT_TENANT_ISSUER)
    if lowered == "consumers":
        tenant_id = MICROSOFT_CONSUMERS_TENANT
    elif _GUID.fullmatch(tenant):
        tenant_id = tenant
    elif settings.get("issuer") in (None, ""):
        # A domain's metadata names the tenant's GUID as issuer, which cannot be derived from it.
        raise ConfigurationError(
            f"{where}: 'tenant' {tenant!r} is a domain name, whose metadata names the tenant ID as issuer: "
            "give the Directory (tenant) ID of the app registration as 'tenant' (or set 'issuer' to "
            f"'{MICROSOFT_AUTHORITY}/<tenant id>/v2.0')",
            provider=provider,
        )
    else:
        return defaults, NO_QUIRKS  # the application's issuer decides
    defaults["issuer"] = f"{MICROSOFT_AUTHORITY}/{tenant_id}/v2.0"
    return defaults, NO_QUIRKS


_OIDC_SCOPE = "openid profile email"

PRESETS: Mapping[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="google",
            defaults={
                "issuer": "https://accounts.google.com",
                "metadata_url": "https://accounts.google.com" + OIDC_SUFFIX,
                "scope": "openid email profile",
            },
            quirks=Quirks(issuer_aliases=(("https://accounts.google.com", "accounts.google.com"),)),
        ),
        Preset(
            name="github",
            defaults={
                "authorize_url": "https://github.com/login/oauth/authorize",
                "token_url": "https://github.com/login/oauth/access_token",
                "userinfo_url": "https://api.github.com/user",
                "scope": "read:user",
                "scope_separator": ",",
                # GitHub documents the client secret as a form field of the token request.
                "client_auth_method": "client_secret_post",
            },
        ),
        Preset(
            name="microsoft",
            defaults={"scope": _OIDC_SCOPE + " offline_access"},
            keys=("tenant",),
            derive=_derive_microsoft,
        ),
        Preset(name="gitlab", defaults={"scope": _OIDC_SCOPE}, derive=_derive_gitlab),
        Preset(
            name="discord",
            defaults={
                "authorize_url": "https://discord.com/oauth2/authorize",
                "token_url": "https://discord.com/api/oauth2/token",
                "revocation_url": "https://discord.com/api/oauth2/token/revoke",
                "userinfo_url": "https://discord.com/api/users/@me",
                "scope": "identify email",
            },
        ),
        Preset(
            name="keycloak",
            defaults={"scope": _OIDC_SCOPE},
            required={"issuer": KEYCLOAK_EXAMPLE},
            derive=_derive_keycloak,
        ),
        Preset(
            name="auth0",
            # What Auth0's dashboard sets for a new Regular Web Application ("Client Secret (Post)").
            defaults={"scope": _OIDC_SCOPE, "client_auth_method": "client_secret_post"},
            required={"issuer": AUTH0_EXAMPLE},
            derive=_derive_auth0,
        ),
        Preset(
            name="okta",
            defaults={"scope": _OIDC_SCOPE},
            required={"issuer": OKTA_EXAMPLE},
            derive=_derive_okta,
        ),
    )
}

#: Provider keys that only some presets accept: key -> the names of those presets.
PRESET_KEYS: Mapping[str, tuple[str, ...]] = {
    key: tuple(p.name for p in PRESETS.values() if key in p.keys) for p in PRESETS.values() for key in p.keys
}


def apply_preset(provider: str, settings: Mapping[str, Any]) -> tuple[dict[str, Any], Quirks]:
    """Resolve the ``preset`` of one provider's *settings* (an ``OAUTH2_PROVIDERS`` entry).

    Returns the settings to validate (the preset's defaults with the application's own keys
    over them, without ``preset`` and the preset's own keys such as ``tenant``) and the
    provider's :class:`Quirks`. Without a ``preset`` key: the settings unchanged, no quirks.

    :raises ConfigurationError: unknown preset, a key the preset needs is missing, or a
        preset's own key (``tenant``) has an unusable value or comes without its preset.
    """
    where = f"OAUTH2_PROVIDERS[{provider!r}]"
    name = settings.get("preset")
    if name is None:
        for key, owners in PRESET_KEYS.items():
            if key in settings:
                raise ConfigurationError(f"{where}: {key!r} needs {_either(owners)}", provider=provider)
        return dict(settings), NO_QUIRKS
    if not isinstance(name, str) or name not in PRESETS:
        valid = ", ".join(sorted(PRESETS))
        match = difflib.get_close_matches(str(name).lower(), list(PRESETS), n=1)
        hint = f" (did you mean {match[0]!r}?)" if match else ""
        raise ConfigurationError(f"{where}: unknown preset {name!r}{hint}; presets: {valid}", provider=provider)
    preset = PRESETS[name]
    own = {k: v for k, v in settings.items() if k != "preset"}
    for key, owners in PRESET_KEYS.items():
        if key in own and name not in owners:
            raise ConfigurationError(f"{where}: {key!r} is not a setting of preset {name!r}", provider=provider)
    missing = [f"{key!r} (e.g. {example!r})" for key, example in preset.required.items() if own.get(key) in (None, "")]
    if missing:
        raise ConfigurationError(f"{where}: preset {name!r} needs {', '.join(missing)}", provider=provider)
    quirks = preset.quirks
    derived: dict[str, Any] = {}
    if preset.derive is not None:
        derived, quirks = preset.derive(where, provider, own)
    user = {k: v for k, v in own.items() if k not in preset.keys}
    return {**preset.defaults, **derived, **user}, quirks


def _either(owners: tuple[str, ...]) -> str:
    return " or ".join(f'"preset": "{owner}"' for owner in owners)
