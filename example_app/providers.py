"""The provider set-ups of the example app: the embedded FakeProvider (default), GitHub, Google,
and any OpenID Connect provider found through its discovery document. Each is an
``OAUTH2_PROVIDERS`` entry plus the two URLs the example pages call.

The embedded set-up also configures a second provider, :data:`PASSWORD_PROVIDER`, on the same
FakeProvider with the legacy password grant, for the ``/password-login`` demo."""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping
from typing import Any

from flask_oauth2_client.testing import FakeProvider

__all__ = ["PASSWORD_PROVIDER", "PROVIDER_NAMES", "ProviderSetup", "provider_setup"]

PROVIDER_NAMES = ("demo", "github", "google", "oidc")
#: The provider name of the password-grant demo (embedded FakeProvider only).
PASSWORD_PROVIDER = "demo-password"


@dataclasses.dataclass(frozen=True)
class ProviderSetup:
    """What the example app needs to know about its one provider."""

    #: The name in ``OAUTH2_PROVIDERS``; also in the routes (``/oauth2/<name>/callback``).
    name: str
    #: Shown on the buttons: "Log in with <label>".
    label: str
    #: The ``OAUTH2_PROVIDERS[name]`` entry.
    settings: Mapping[str, Any]
    #: Who the user is (OpenID Connect userinfo, or the provider's equivalent); ``None``: ask
    #: ``oauth.userinfo()``, which finds the endpoint in the provider's metadata.
    userinfo_url: str | None
    #: A protected API the ``/api`` page calls with the user's token (``None``: userinfo again).
    api_url: str | None
    #: What ``/api`` shows, in words.
    api_title: str
    #: Extra headers for the provider's APIs.
    api_headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: The embedded authorization server, when there is one (the "demo" set-up).
    fake: FakeProvider | None = None
    #: The ``OAUTH2_PROVIDERS[PASSWORD_PROVIDER]`` entry (legacy password grant), when the
    #: set-up has one (the "demo" set-up).
    password_settings: Mapping[str, Any] | None = None


def provider_setup(config: Mapping[str, Any]) -> ProviderSetup:
    """Choose the set-up from ``EXAMPLE_PROVIDER`` (in *config*, else the environment)."""
    choice = (_setting(config, "EXAMPLE_PROVIDER") or "demo").strip().lower()
    if choice == "github":
        return _github(config)
    if choice == "google":
        return _google(config)
    if choice == "oidc":
        return _openid_connect(config)
    if choice == "demo":
        return _embedded_fake_provider()
    raise RuntimeError(f"EXAMPLE_PROVIDER must be one of {', '.join(PROVIDER_NAMES)}, not {choice!r}")


def _setting(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key, os.environ.get(key))
    return None if value is None or value == "" else str(value)


def _credentials(config: Mapping[str, Any], prefix: str) -> tuple[str, str]:
    client_id = _setting(config, f"{prefix}_CLIENT_ID")
    client_secret = _setting(config, f"{prefix}_CLIENT_SECRET")
    if client_id is None or client_secret is None:
        raise RuntimeError(
            f"EXAMPLE_PROVIDER={prefix.lower()} needs the environment variables {prefix}_CLIENT_ID and "
            f"{prefix}_CLIENT_SECRET (see example_app/README.md)"
        )
    return client_id, client_secret


def _embedded_fake_provider() -> ProviderSetup:
    # A real authorization server on an ephemeral loopback port, in a daemon thread of this process:
    # no internet, no account. auto_approve=False shows its consent page, as a real provider would;
    # send_iss=True adds RFC 9207's ``iss`` to its answers, which the library then checks.
    fake = FakeProvider(auto_approve=False, send_iss=True).start()
    client_id = "example-app"
    client_secret = secrets.token_urlsafe(24)
    # Any redirect URI is accepted: the app's port is only known once it serves (tests use port 0).
    fake.register_client(client_id, client_secret, auth_method="client_secret_basic")
    return ProviderSetup(
        name="demo",
        label="FakeProvider",
        settings={
            "client_id": client_id,
            "client_secret": client_secret,
            "authorize_url": fake.authorize_url,
            "token_url": fake.token_url,
            "userinfo_url": fake.userinfo_url,
            "revocation_url": fake.revocation_url,
            "issuer": fake.issuer,
            "scope": "read write",
        },
        userinfo_url=fake.userinfo_url,
        api_url=fake.api_url,
        api_title="Your notes",
        fake=fake,
        # The legacy password grant, on the same server and client: the app asks for the user's
        # password itself and sends it to the token endpoint. No authorize_url: there is no
        # browser login. init_app() warns (DeprecationWarning, RFC 9700 §2.4), as it should.
        password_settings={
            "client_id": client_id,
            "client_secret": client_secret,
            "token_url": fake.token_url,
            "revocation_url": fake.revocation_url,
            "grant_type": "password",
            "scope": "read write",
        },
    )


def _github(config: Mapping[str, Any]) -> ProviderSetup:
    client_id, client_secret = _credentials(config, "GITHUB")
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    return ProviderSetup(
        name="github",
        label="GitHub",
        settings={
            "client_id": client_id,
            "client_secret": client_secret,
            "authorize_url": "https://github.com/login/oauth/authorize",
            "token_url": "https://github.com/login/oauth/access_token",
            "userinfo_url": "https://api.github.com/user",
            "scope": "read:user",
            "scope_separator": ",",
        },
        userinfo_url="https://api.github.com/user",
        api_url="https://api.github.com/user/repos?per_page=20&sort=updated",
        api_title="Your repositories",
        api_headers=headers,
    )


def _google(config: Mapping[str, Any]) -> ProviderSetup:
    client_id, client_secret = _credentials(config, "GOOGLE")
    return ProviderSetup(
        name="google",
        label="Google",
        settings={
            "client_id": client_id,
            "client_secret": client_secret,
            "authorize_url": "https://accounts.google.com/o/oauth2/v2/auth",
            "token_url": "https://oauth2.googleapis.com/token",
            "userinfo_url": "https://openidconnect.googleapis.com/v1/userinfo",
            "revocation_url": "https://oauth2.googleapis.com/revoke",
            "scope": "openid email profile",
            # A refresh token, and the consent screen each time so that Google sends it again.
            "authorize_params": {"access_type": "offline", "prompt": "consent"},
        },
        userinfo_url="https://openidconnect.googleapis.com/v1/userinfo",
        api_url="https://www.googleapis.com/oauth2/v3/userinfo",
        api_title="Your Google profile (oauth2/v3/userinfo)",
    )


def _openid_connect(config: Mapping[str, Any]) -> ProviderSetup:
    # Any OpenID Connect provider (Keycloak, Okta, Auth0, oidc-provider, ...): the discovery
    # document gives the library every endpoint, the issuer and the signing keys.
    metadata_url = _setting(config, "OIDC_METADATA_URL")
    if metadata_url is None:
        raise RuntimeError(
            "EXAMPLE_PROVIDER=oidc needs OIDC_METADATA_URL (the provider's "
            "/.well-known/openid-configuration), OIDC_CLIENT_ID and OIDC_CLIENT_SECRET (see example_app/README.md)"
        )
    client_id, client_secret = _credentials(config, "OIDC")
    return ProviderSetup(
        name="oidc",
        label=_setting(config, "OIDC_LABEL") or "OpenID Connect",
        settings={
            "metadata_url": metadata_url,
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": _setting(config, "OIDC_SCOPE") or "openid profile email",
        },
        userinfo_url=None,
        api_url=None,
        api_title="Your UserInfo claims",
    )
