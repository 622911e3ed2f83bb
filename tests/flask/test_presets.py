"""Provider presets (``"preset": "google"`` ...): the settings each one resolves to, the
application's keys winning over them, configuration errors, and the quirks end to end.

No test reaches a real provider: the presets' metadata documents are served to the provider's
own HTTP session by an in-process adapter (:class:`CannedMetadata`), and the flows that need ID
tokens run against the real :class:`FakeProvider`, the application's keys pointing the preset at it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from helpers import login
from requests.adapters import BaseAdapter

from flask_oauth2_client import ConfigurationError
from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import Token
from flask_oauth2_client.config import ProviderConfig
from flask_oauth2_client.config import parse_settings
from flask_oauth2_client.presets import MICROSOFT_TENANT_ISSUER
from flask_oauth2_client.presets import PRESETS
from flask_oauth2_client.presets import Quirks
from flask_oauth2_client.testing import FakeProvider
from flask_oauth2_client.testing import Fault

CREDENTIALS = {"client_id": "app-id", "client_secret": "app-secret"}
TENANT = "8eaef023-2b34-4da1-9baa-8bc8c9d6a490"
OTHER_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "providers.rst"


def preset_app(providers: dict[str, dict[str, Any]], **config: Any) -> tuple[Flask, OAuth2Client]:
    app = Flask("presets")
    app.config.update(
        SECRET_KEY="k" * 32,
        SERVER_NAME="app.example.com",
        PREFERRED_URL_SCHEME="https",
        OAUTH2_TOKEN_STORE="memory",
        OAUTH2_PROVIDERS=providers,
        **config,
    )
    oauth = OAuth2Client(app)
    return app, oauth


def resolved(settings: dict[str, Any], name: str = "p") -> ProviderConfig:
    """The validated configuration of one provider, through init_app (which does no I/O)."""
    app, _ = preset_app({name: {**CREDENTIALS, **settings}})
    config: ProviderConfig = app.extensions["oauth2_client"].settings.providers[name]
    return config


def authorization_request(app: Flask, oauth: OAuth2Client, name: str) -> tuple[str, dict[str, str]]:
    """The authorization endpoint and query parameters of a login started by authorize_redirect."""
    with app.test_request_context():
        location = oauth.authorize_redirect(name).headers["Location"]
    parts = urlsplit(location)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return f"{parts.scheme}://{parts.netloc}{parts.path}", query


class CannedMetadata(BaseAdapter):
    """Answers GET requests for known URLs with a JSON document, in process; records the URLs."""

    def __init__(self, documents: dict[str, dict[str, Any]]) -> None:
        super().__init__()
        self.documents = documents
        self.requested: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        assert request.url is not None
        self.requested.append(request.url)
        response = requests.Response()
        response.url = request.url
        response.request = request
        document = self.documents.get(request.url)
        response.status_code = 200 if document is not None else 404
        response.headers["Content-Type"] = "application/json"
        response._content = json.dumps(document or {}).encode()
        response._content_consumed = True  # type: ignore[attr-defined]
        return response

    def close(self) -> None:
        pass


def serve_metadata(app: Flask, name: str, documents: dict[str, dict[str, Any]]) -> CannedMetadata:
    adapter = CannedMetadata(documents)
    app.extensions["oauth2_client"].clients[name].http.mount("https://", adapter)
    return adapter


def oidc_document(issuer: str, base: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "userinfo_endpoint": f"{base}/userinfo",
        "jwks_uri": f"{base}/keys",
    }


# -- what each preset resolves to -----------------------------------------------------------------


def test_google() -> None:
    cfg = resolved({"preset": "google"})
    assert cfg.preset == "google"
    assert cfg.metadata_url == "https://accounts.google.com/.well-known/openid-configuration"
    assert cfg.issuer == "https://accounts.google.com"
    assert cfg.scopes == ("openid", "email", "profile")
    assert cfg.is_openid
    assert cfg.quirks.issuer_aliases == (("https://accounts.google.com", "accounts.google.com"),)
    assert cfg.quirks.tenant_issuer_template is None


def test_github() -> None:
    cfg = resolved({"preset": "github"})
    assert (cfg.authorize_url, cfg.token_url, cfg.userinfo_url) == (
        "https://github.com/login/oauth/authorize",
        "https://github.com/login/oauth/access_token",
        "https://api.github.com/user",
    )
    assert cfg.revocation_url is None  # GitHub's grant deletion is another API
    assert cfg.metadata_url is None
    assert cfg.scopes == ("read:user",)
    assert cfg.scope_separator == ","
    assert cfg.client_auth_method == "client_secret_post"
    assert not cfg.is_openid
    assert cfg.quirks == Quirks()


@pytest.mark.parametrize(
    ("tenant", "metadata_tenant", "issuer", "template"),
    [
        (None, "common", MICROSOFT_TENANT_ISSUER, True),
        ("common", "common", MICROSOFT_TENANT_ISSUER, True),
        ("organizations", "organizations", MICROSOFT_TENANT_ISSUER, True),
        (
            "consumers",
            "consumers",
            "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
            False,
        ),
        (TENANT, TENANT, f"https://login.microsoftonline.com/{TENANT}/v2.0", False),
    ],
)
def test_microsoft(tenant: str | None, metadata_tenant: str, issuer: str, template: bool) -> None:
    settings: dict[str, Any] = {"preset": "microsoft"}
    if tenant is not None:
        settings["tenant"] = tenant
    cfg = resolved(settings)
    assert cfg.metadata_url == (
        f"https://login.microsoftonline.com/{metadata_tenant}/v2.0/.well-known/openid-configuration"
    )
    assert cfg.issuer == issuer
    assert cfg.scopes == ("openid", "profile", "email", "offline_access")
    assert cfg.quirks.tenant_issuer_template == (MICROSOFT_TENANT_ISSUER if template else None)
    assert cfg.quirks.issuer_aliases == ()


def test_microsoft_domain_tenant_with_its_issuer() -> None:
    cfg = resolved(
        {
            "preset": "microsoft",
            "tenant": "contoso.onmicrosoft.com",
            "issuer": f"https://login.microsoftonline.com/{TENANT}/v2.0",
        }
    )
    assert cfg.metadata_url == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration"
    )
    assert cfg.issuer == f"https://login.microsoftonline.com/{TENANT}/v2.0"
    assert cfg.quirks == Quirks()


def test_gitlab_com_and_self_hosted() -> None:
    cfg = resolved({"preset": "gitlab"})
    assert cfg.issuer == "https://gitlab.com"
    assert cfg.metadata_url == "https://gitlab.com/.well-known/openid-configuration"
    assert cfg.scopes == ("openid", "profile", "email")
    own = resolved({"preset": "gitlab", "issuer": "https://git.example.com"})
    assert own.issuer == "https://git.example.com"
    assert own.metadata_url == "https://git.example.com/.well-known/openid-configuration"


def test_discord() -> None:
    cfg = resolved({"preset": "discord"})
    assert (cfg.authorize_url, cfg.token_url, cfg.revocation_url, cfg.userinfo_url) == (
        "https://discord.com/oauth2/authorize",
        "https://discord.com/api/oauth2/token",
        "https://discord.com/api/oauth2/token/revoke",
        "https://discord.com/api/users/@me",
    )
    assert cfg.scopes == ("identify", "email")
    assert cfg.scope_separator == " "
    assert cfg.metadata_url is None


@pytest.mark.parametrize(
    ("preset", "issuer", "metadata_url"),
    [
        (
            "keycloak",
            "https://sso.example.com/realms/staff",
            "https://sso.example.com/realms/staff/.well-known/openid-configuration",
        ),
        (
            "keycloak",
            "https://sso.example.com/auth/realms/staff",
            "https://sso.example.com/auth/realms/staff/.well-known/openid-configuration",
        ),
        ("auth0", "https://acme.eu.auth0.com/", "https://acme.eu.auth0.com/.well-known/openid-configuration"),
        ("auth0", "https://login.acme.com/", "https://login.acme.com/.well-known/openid-configuration"),
        (
            "okta",
            "https://acme.okta.com/oauth2/default",
            "https://acme.okta.com/oauth2/default/.well-known/openid-configuration",
        ),
        ("okta", "https://acme.okta.com", "https://acme.okta.com/.well-known/openid-configuration"),
    ],
)
def test_issuer_based_presets(preset: str, issuer: str, metadata_url: str) -> None:
    cfg = resolved({"preset": preset, "issuer": issuer})
    assert cfg.issuer == issuer  # exactly as given: ID tokens name it exactly
    assert cfg.metadata_url == metadata_url
    assert cfg.client_auth_method == ("client_secret_post" if preset == "auth0" else "client_secret_basic")
    assert cfg.scopes == ("openid", "profile", "email")
    assert cfg.quirks == Quirks()


def test_a_provider_without_preset_has_no_quirks() -> None:
    cfg = resolved({"authorize_url": "https://idp.example/a", "token_url": "https://idp.example/t"})
    assert cfg.preset is None
    assert cfg.quirks == Quirks()


# -- the authorization request each preset makes --------------------------------------------------


def test_github_authorization_url_without_any_request() -> None:
    app, oauth = preset_app({"gh": {"preset": "github", **CREDENTIALS, "scope": "read:user, repo"}})
    endpoint, query = authorization_request(app, oauth, "gh")
    assert endpoint == "https://github.com/login/oauth/authorize"
    assert query["scope"] == "read:user,repo"
    assert query["client_id"] == "app-id"
    assert query["redirect_uri"] == "https://app.example.com/oauth2/gh/callback"
    assert query["code_challenge_method"] == "S256"
    assert "nonce" not in query


def test_discord_authorization_url() -> None:
    app, oauth = preset_app({"discord": {"preset": "discord", **CREDENTIALS}})
    endpoint, query = authorization_request(app, oauth, "discord")
    assert endpoint == "https://discord.com/oauth2/authorize"
    assert query["scope"] == "identify email"


def test_google_authorization_url_comes_from_its_metadata() -> None:
    app, oauth = preset_app({"google": {"preset": "google", **CREDENTIALS}})
    metadata_url = "https://accounts.google.com/.well-known/openid-configuration"
    document = oidc_document("https://accounts.google.com", "https://accounts.google.com/o/oauth2/v2")
    adapter = serve_metadata(app, "google", {metadata_url: document})
    assert adapter.requested == []  # init_app did no I/O
    endpoint, query = authorization_request(app, oauth, "google")
    assert adapter.requested == [metadata_url]
    assert endpoint == "https://accounts.google.com/o/oauth2/v2/authorize"
    assert query["scope"] == "openid email profile"
    assert "nonce" in query


def test_microsoft_common_metadata_names_the_template_and_is_accepted() -> None:
    app, oauth = preset_app({"ms": {"preset": "microsoft", **CREDENTIALS}})
    metadata_url = "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration"
    document = oidc_document(MICROSOFT_TENANT_ISSUER, "https://login.microsoftonline.com/common/oauth2/v2.0")
    adapter = serve_metadata(app, "ms", {metadata_url: document})
    endpoint, query = authorization_request(app, oauth, "ms")
    assert adapter.requested == [metadata_url]
    assert endpoint == "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
    assert query["scope"] == "openid profile email offline_access"


def test_microsoft_single_tenant_refuses_the_template_in_its_metadata() -> None:
    app, _ = preset_app({"ms": {"preset": "microsoft", "tenant": TENANT, **CREDENTIALS}})
    metadata_url = f"https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration"
    base = f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0"
    serve_metadata(app, "ms", {metadata_url: oidc_document(MICROSOFT_TENANT_ISSUER, base)})
    answer = app.test_client().get("/oauth2/ms/login", headers={"Accept": "application/json"})
    assert answer.status_code == 502
    assert answer.json is not None
    assert answer.json["error"] == "invalid_provider_metadata"


@pytest.mark.parametrize(
    ("preset", "issuer", "document_issuer"),
    [
        ("keycloak", "https://sso.example.com/realms/staff", "https://sso.example.com/realms/staff"),
        ("auth0", "https://acme.eu.auth0.com/", "https://acme.eu.auth0.com/"),
        ("okta", "https://acme.okta.com/oauth2/default", "https://acme.okta.com/oauth2/default"),
        ("gitlab", "https://git.example.com", "https://git.example.com"),
    ],
)
def test_issuer_based_presets_fetch_their_metadata(preset: str, issuer: str, document_issuer: str) -> None:
    app, oauth = preset_app({"idp": {"preset": preset, "issuer": issuer, **CREDENTIALS}})
    metadata_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    base = issuer.rstrip("/") + "/protocol"
    serve_metadata(app, "idp", {metadata_url: oidc_document(document_issuer, base)})
    endpoint, query = authorization_request(app, oauth, "idp")
    assert endpoint == f"{base}/authorize"
    assert query["scope"] == "openid profile email"


# -- the application's keys win -------------------------------------------------------------------


def test_the_applications_keys_override_the_preset() -> None:
    cfg = resolved(
        {
            "preset": "github",
            "scope": ["read:user", "repo"],
            "authorize_url": "https://github.example.com/login/oauth/authorize",
            "client_auth_method": "client_secret_basic",
            "authorize_params": {"allow_signup": "false"},
        }
    )
    assert cfg.scopes == ("read:user", "repo")
    assert cfg.authorize_url == "https://github.example.com/login/oauth/authorize"
    assert cfg.token_url == "https://github.com/login/oauth/access_token"  # not overridden: the preset's
    assert cfg.client_auth_method == "client_secret_basic"
    assert cfg.authorize_params == {"allow_signup": "false"}


def test_an_override_goes_through_the_usual_validation() -> None:
    with pytest.raises(ConfigurationError, match="'token_url' must use https"):
        resolved({"preset": "discord", "token_url": "http://discord.example/token"})


def test_google_with_another_scope_and_offline_access() -> None:
    cfg = resolved({"preset": "google", "scope": "openid email", "authorize_params": {"access_type": "offline"}})
    assert cfg.scopes == ("openid", "email")
    assert cfg.authorize_params == {"access_type": "offline"}
    assert cfg.metadata_url == "https://accounts.google.com/.well-known/openid-configuration"


def test_metadata_none_turns_discovery_off() -> None:
    with pytest.raises(ConfigurationError, match="'authorize_url' is required"):
        resolved({"preset": "keycloak", "issuer": "https://sso.example.com/realms/x", "metadata_url": None})


# -- configuration errors -------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["keycloak", "auth0", "okta"])
def test_a_missing_issuer_is_a_configuration_error(preset: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"preset '{preset}' needs 'issuer' \(e\.g\. 'https://") as info:
        resolved({"preset": preset})
    assert info.value.provider == "p"
    with pytest.raises(ConfigurationError, match="needs 'issuer'"):
        resolved({"preset": preset, "issuer": ""})


def test_an_unknown_preset_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        resolved({"preset": "gogle"})
    message = str(info.value)
    assert "unknown preset 'gogle' (did you mean 'google'?)" in message
    assert "auth0, discord, github, gitlab, google, keycloak, microsoft, okta" in message
    with pytest.raises(ConfigurationError, match="unknown preset 'Okta' \\(did you mean 'okta'"):
        resolved({"preset": "Okta"})
    with pytest.raises(ConfigurationError, match="unknown preset 42"):
        resolved({"preset": 42})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"preset": "auth0", "issuer": "https://acme.auth0.com"}, "Auth0's issuer ends with '/'"),
        ({"preset": "okta", "issuer": "https://acme.okta.com/oauth2/default/"}, "Okta's issuer has no trailing"),
        ({"preset": "keycloak", "issuer": "https://sso.example.com/"}, "Keycloak's issuer has no trailing"),
        ({"preset": "keycloak", "issuer": "https://sso.example.com/staff"}, "must be the realm's URL"),
        ({"preset": "auth0", "issuer": "acme.auth0.com"}, "must be an absolute https URL"),
        ({"preset": "okta", "issuer": ["https://acme.okta.com"]}, "'issuer' must be a URL"),
        ({"preset": "keycloak", "issuer": "http://sso.example.com/realms/x"}, "'issuer' must use https"),
        ({"preset": "gitlab", "issuer": "https://gitlab.example.com/"}, "GitLab's issuer has no trailing"),
    ],
)
def test_an_unusable_issuer_is_a_configuration_error(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        resolved(settings)


def test_tenant_belongs_to_the_microsoft_preset_only() -> None:
    with pytest.raises(ConfigurationError, match='\'tenant\' needs "preset": "microsoft"'):
        resolved({"tenant": "common", "authorize_url": "https://idp.example/a", "token_url": "https://idp.example/t"})
    with pytest.raises(ConfigurationError, match="'tenant' is not a setting of preset 'google'"):
        resolved({"preset": "google", "tenant": "common"})


@pytest.mark.parametrize("tenant", ["", "common/../evil", "a?b", "x#y", 7, "-dash"])
def test_an_unusable_tenant_is_a_configuration_error(tenant: Any) -> None:
    with pytest.raises(ConfigurationError, match="'tenant' must be 'common'"):
        resolved({"preset": "microsoft", "tenant": tenant})


def test_a_domain_tenant_needs_its_issuer() -> None:
    with pytest.raises(ConfigurationError, match=r"is a domain name.*Directory \(tenant\) ID"):
        resolved({"preset": "microsoft", "tenant": "contoso.onmicrosoft.com"})


def test_quirks_are_not_configuration_keys() -> None:
    for key in ("quirks", "issuer_aliases", "tenant_issuer_template"):
        with pytest.raises(ConfigurationError, match=f"unknown key '{key}'"):
            resolved({"preset": "google", key: "x"})


def test_every_preset_needs_only_its_documented_keys() -> None:
    needing_issuer = {"keycloak", "auth0", "okta"}
    for name, preset in PRESETS.items():
        assert set(preset.required) == ({"issuer"} if name in needing_issuer else set())
        if name not in needing_issuer:
            assert resolved({"preset": name}).preset == name


# -- the quirk hooks --------------------------------------------------------------------------------


def test_issuer_alias_is_for_its_issuer_only() -> None:
    quirks = PRESETS["google"].quirks
    google = "https://accounts.google.com"
    assert quirks.id_token_issuers(google, {}) == (google, "accounts.google.com")
    assert quirks.id_token_issuers("https://idp.example", {}) == ("https://idp.example",)
    assert Quirks().id_token_issuers(google, {}) == (google,)
    # RFC 9207's iss parameter is compared exactly: the alias is for ID tokens only.
    assert quirks.response_issuer_matches(google, google)
    assert not quirks.response_issuer_matches(google, "accounts.google.com")


def test_tenant_template_hooks() -> None:
    quirks = Quirks(tenant_issuer_template=MICROSOFT_TENANT_ISSUER)
    own = f"https://login.microsoftonline.com/{TENANT}/v2.0"
    assert quirks.id_token_issuers(MICROSOFT_TENANT_ISSUER, {"tid": TENANT}) == (own,)
    for tid in (None, "", "common", "../x", f"{TENANT}/x", 7):
        assert quirks.id_token_issuers(MICROSOFT_TENANT_ISSUER, {"tid": tid}) == ()
    # a configured issuer other than the template follows the standard rule
    assert quirks.id_token_issuers(own, {"tid": OTHER_TENANT}) == (own,)
    assert quirks.response_issuer_matches(MICROSOFT_TENANT_ISSUER, own)
    for iss in (
        MICROSOFT_TENANT_ISSUER,
        "https://login.microsoftonline.com/common/v2.0",
        f"https://evil.example/{TENANT}/v2.0",
        f"https://login.microsoftonline.com/{TENANT}/v2.0/x",
        "https://login.microsoftonline.com//v2.0",
    ):
        assert not quirks.response_issuer_matches(MICROSOFT_TENANT_ISSUER, iss), iss


# -- end to end against FakeProvider --------------------------------------------------------------


def app_at(provider: FakeProvider, name: str, settings: dict[str, Any]) -> Flask:
    """An app whose provider *name* uses a preset, pointed at FakeProvider by the app's own keys."""
    app = Flask("presets-e2e")
    app.config.update(
        SECRET_KEY="k" * 32,
        OAUTH2_TOKEN_STORE="memory",
        OAUTH2_PROVIDERS={name: {"client_id": provider.client_id, "client_secret": provider.client_secret, **settings}},
    )
    oauth = OAuth2Client(app)

    @app.get("/claims")
    @oauth.token_required(name)
    def claims(token: Token) -> dict[str, Any]:
        return dict(token.claims)

    return app


def microsoft_at(provider: FakeProvider, tenant: str = "organizations") -> Flask:
    provider.metadata_overrides = {"issuer": MICROSOFT_TENANT_ISSUER}
    return app_at(
        provider,
        "ms",
        {"preset": "microsoft", "tenant": tenant, "metadata_url": provider.openid_configuration_url},
    )


def from_tenant(provider: FakeProvider, tid: str | None, iss_tenant: str | None = None, times: int = 1) -> None:
    """The next ID tokens name tenant *iss_tenant* (default *tid*) in ``iss`` and carry ``tid``."""
    issuer = MICROSOFT_TENANT_ISSUER.replace("{tenantid}", iss_tenant or tid or "")

    def forge(claims: dict[str, Any]) -> str:
        return provider.make_id_token({**claims, "iss": issuer, "tid": tid})

    provider.set_fault("token", Fault(status=None, id_token=forge, times=times))


def test_microsoft_multi_tenant_login_end_to_end(fake_provider: FakeProvider) -> None:
    app = microsoft_at(fake_provider)
    client = app.test_client()
    from_tenant(fake_provider, TENANT)
    answer = login(client, fake_provider, name="ms", next_url="/claims")
    assert answer.status_code == 302, answer.data
    claims = client.get("/claims").json
    assert claims is not None
    assert claims["iss"] == f"https://login.microsoftonline.com/{TENANT}/v2.0"
    assert claims["tid"] == TENANT
    # another tenant's user signs in to the same multi-tenant app
    other = app.test_client()
    from_tenant(fake_provider, OTHER_TENANT)
    assert login(other, fake_provider, name="ms").status_code == 302
    assert fake_provider.calls("openid_configuration") == 1


@pytest.mark.parametrize(
    ("tid", "iss_tenant"),
    [
        (TENANT, OTHER_TENANT),  # iss names another tenant than tid
        (None, TENANT),  # no tid
        ("{tenantid}", "{tenantid}"),  # the template itself
        ("common", "common"),
    ],
)
def test_microsoft_multi_tenant_refuses_a_mismatched_issuer(
    fake_provider: FakeProvider, tid: str | None, iss_tenant: str
) -> None:
    app = microsoft_at(fake_provider)
    client = app.test_client()
    from_tenant(fake_provider, tid, iss_tenant)
    answer = client.get("/oauth2/ms/login")
    callback = requests.get(answer.headers["Location"], allow_redirects=False, timeout=5).headers["Location"]
    parts = urlsplit(callback)
    failed = client.get(f"{parts.path}?{parts.query}", headers={"Accept": "application/json"})
    assert failed.status_code == 502, failed.data
    assert failed.json is not None
    assert "issued by" in failed.json["error_description"]
    assert client.get("/claims").status_code == 302  # nothing stored: off to log in again


def test_microsoft_refresh_keeps_the_tenant(fake_provider: FakeProvider) -> None:
    app = microsoft_at(fake_provider)
    client = app.test_client()
    fake_provider.access_token_ttl = 1
    from_tenant(fake_provider, TENANT, times=2)  # the login's ID token and the refresh's
    assert login(client, fake_provider, name="ms", next_url="/claims").status_code == 302
    time.sleep(0.6)  # past half the token's life: the next request refreshes it
    claims = client.get("/claims").json
    assert fake_provider.calls("token", grant_type="refresh_token") == 1
    assert claims is not None
    assert (claims["tid"], claims["iss"]) == (TENANT, f"https://login.microsoftonline.com/{TENANT}/v2.0")


def test_microsoft_single_tenant_refuses_another_tenants_token(fake_provider: FakeProvider) -> None:
    fake_provider.metadata_overrides = {"issuer": f"https://login.microsoftonline.com/{TENANT}/v2.0"}
    app = app_at(
        fake_provider,
        "ms",
        {"preset": "microsoft", "tenant": TENANT, "metadata_url": fake_provider.openid_configuration_url},
    )
    from_tenant(fake_provider, TENANT)
    assert login(app.test_client(), fake_provider, name="ms").status_code == 302
    from_tenant(fake_provider, OTHER_TENANT)
    assert login(app.test_client(), fake_provider, name="ms").status_code == 502


def test_microsoft_multi_tenant_iss_response_parameter(fake_provider: FakeProvider) -> None:
    app = microsoft_at(fake_provider)
    fake_provider.send_iss = f"https://login.microsoftonline.com/{TENANT}/v2.0"
    from_tenant(fake_provider, TENANT)
    assert login(app.test_client(), fake_provider, name="ms").status_code == 302
    fake_provider.send_iss = "https://login.example.org/v2.0"
    assert login(app.test_client(), fake_provider, name="ms").status_code == 400
    assert fake_provider.calls("token") == 1  # refused before the code exchange


def google_at(provider: FakeProvider) -> Flask:
    provider.metadata_overrides = {"issuer": "https://accounts.google.com"}
    return app_at(provider, "google", {"preset": "google", "metadata_url": provider.openid_configuration_url})


@pytest.mark.parametrize("iss", ["https://accounts.google.com", "accounts.google.com"])
def test_google_id_tokens_may_name_either_issuer(fake_provider: FakeProvider, iss: str) -> None:
    app = google_at(fake_provider)
    client = app.test_client()
    fake_provider.set_next_id_token(lambda claims: fake_provider.make_id_token({**claims, "iss": iss}))
    assert login(client, fake_provider, name="google", next_url="/claims").status_code == 302
    claims = client.get("/claims").json
    assert claims is not None
    assert claims["iss"] == iss


def test_google_alias_does_not_stretch_further(fake_provider: FakeProvider) -> None:
    app = google_at(fake_provider)
    fake_provider.set_next_id_token(lambda claims: fake_provider.make_id_token({**claims, "iss": "google.com"}))
    assert login(app.test_client(), fake_provider, name="google").status_code == 502
    # the RFC 9207 response parameter must be the issuer itself
    fake_provider.send_iss = "accounts.google.com"
    assert login(app.test_client(), fake_provider, name="google").status_code == 400


def test_the_alias_belongs_to_google(fake_provider: FakeProvider) -> None:
    fake_provider.metadata_overrides = {"issuer": "https://accounts.google.com/"}
    app = app_at(
        fake_provider,
        "auth0",
        {
            "preset": "auth0",
            "issuer": "https://accounts.google.com/",
            "metadata_url": fake_provider.openid_configuration_url,
        },
    )
    fake_provider.set_next_id_token(
        lambda claims: fake_provider.make_id_token({**claims, "iss": "accounts.google.com"})
    )
    assert login(app.test_client(), fake_provider, name="auth0").status_code == 502


def test_github_preset_end_to_end(fake_provider: FakeProvider) -> None:
    app = app_at(
        fake_provider,
        "gh",
        {
            "preset": "github",
            "authorize_url": fake_provider.authorize_url,
            "token_url": fake_provider.token_url,
            "scope": "read:user repo",
        },
    )
    # Even a session without the default header sends Accept: application/json to the token endpoint.
    app.extensions["oauth2_client"].clients["gh"].http.headers.pop("Accept")
    client = app.test_client()
    start = client.get("/oauth2/gh/login")
    assert parse_qs(urlsplit(start.headers["Location"]).query)["scope"] == ["read:user,repo"]
    assert login(client, fake_provider, name="gh").status_code == 302
    token_request = [r for r in fake_provider.requests if r.endpoint == "token"][-1]
    assert token_request.headers["Accept"] == "application/json"
    assert token_request.auth_method_used == "client_secret_post"


def test_github_errors_with_http_200_are_errors(fake_provider: FakeProvider) -> None:
    app = app_at(
        fake_provider,
        "gh",
        {"preset": "github", "authorize_url": fake_provider.authorize_url, "token_url": fake_provider.token_url},
    )
    fake_provider.set_fault(
        "token", Fault(status=200, json={"error": "bad_verification_code", "error_description": "expired"})
    )
    client = app.test_client()
    answer = client.get("/oauth2/gh/login")
    callback = requests.get(answer.headers["Location"], allow_redirects=False, timeout=5).headers["Location"]
    parts = urlsplit(callback)
    failed = client.get(f"{parts.path}?{parts.query}", headers={"Accept": "application/json"})
    assert 400 <= failed.status_code < 600
    assert failed.status_code != 302
    assert failed.json is not None
    assert failed.json["error"] == "bad_verification_code"


# -- the docs' examples ---------------------------------------------------------------------------


def doc_examples() -> list[str]:
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:(?:    .*)?\n)+)", text)
    return ["\n".join(line[4:] for line in block.splitlines()) for block in blocks if "OAUTH2_PROVIDERS" in block]


def test_every_example_of_the_providers_page_is_a_valid_configuration() -> None:
    examples = doc_examples()
    assert len(examples) >= len(PRESETS)
    for example in examples:
        app = Flask("docs")
        exec(example, {"app": app})  # noqa: S102 - our own documentation
        settings = parse_settings(app.config)
        assert settings.providers, example
        for cfg in settings.providers.values():
            assert cfg.preset in PRESETS
