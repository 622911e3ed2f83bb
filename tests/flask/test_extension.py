"""Setting the extension up: app factories, several apps, config errors that name the key, the
security warnings of init_app, and logout."""

from __future__ import annotations

import pytest
from flask import Flask
from helpers import login
from helpers import provider_config

from flask_oauth2_client import ConfigurationError
from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import OAuth2Warning
from flask_oauth2_client import token_revoked


def new_app(providers, **config):
    app = Flask("cfgtest")
    app.config.update(SECRET_KEY="k" * 32, OAUTH2_TOKEN_STORE="memory", OAUTH2_PROVIDERS=providers)
    app.config.update(config)
    return app


def test_app_factory_and_two_apps_with_one_instance(fake_provider):
    oauth = OAuth2Client()
    first = new_app({"one": provider_config(fake_provider)})
    second = new_app({"two": provider_config(fake_provider)}, OAUTH2_URL_PREFIX="/auth")
    oauth.init_app(first)
    oauth.init_app(second)
    assert first.test_client().get("/oauth2/one/login").status_code == 302
    assert first.test_client().get("/oauth2/two/login").status_code == 404
    assert second.test_client().get("/auth/two/login").status_code == 302
    assert not hasattr(oauth, "app")


def test_init_app_twice_is_an_error(fake_provider):
    app = new_app({"demo": provider_config(fake_provider)})
    OAuth2Client(app)
    with pytest.raises(RuntimeError, match="already registered"):
        OAuth2Client(app)


def test_init_app_does_no_network_io():
    app = new_app(
        {
            "demo": {
                "client_id": "x",
                "client_secret": "y",
                "authorize_url": "http://127.0.0.1:9/a",
                "token_url": "http://127.0.0.1:9/t",
            }
        }
    )
    OAuth2Client(app)  # port 9 is closed: any request would fail


VALID = {
    "client_id": "c",
    "client_secret": "s",
    "authorize_url": "https://p.example/a",
    "token_url": "https://p.example/t",
}
BAD_PROVIDER_CONFIGS = [
    ({"client_secret": "s"}, "'client_id' is required"),
    ({"client_id": "c", "client_secret": "s", "token_url": "https://p.example/t"}, "'authorize_url' is required"),
    ({"client_id": "c", "client_secret": "s", "authorize_url": "https://p.example/a"}, "'token_url' is required"),
    (
        {
            "client_id": "c",
            "client_secret": "s",
            "authorize_url": "http://p.example/a",
            "token_url": "https://p.example/t",
        },
        "must use https",
    ),
    (
        {"client_id": "c", "client_secret": "s", "authorize_url": "p.example/a", "token_url": "https://p.example/t"},
        "absolute",
    ),
    (
        {
            "client_id": "c",
            "client_secret": "s",
            "authorize_url": "https://p.example/a",
            "token_url": "https://p.example/t",
            "scopes": "x",
        },
        "unknown key 'scopes' (did you mean 'scope'?)",
    ),
    (
        {
            "client_id": "c",
            "authorize_url": "https://p.example/a",
            "token_url": "https://p.example/t",
            "client_auth_method": "client_secret_post",
        },
        "'client_secret' is required",
    ),
    (
        {
            "client_id": "c",
            "client_secret": "s",
            "authorize_url": "https://p.example/a",
            "token_url": "https://p.example/t",
            "client_auth_method": "tls_client_auth",
        },
        "'client_auth_method' must be one of",
    ),
    (
        {
            "client_id": "c",
            "client_secret": "s",
            "authorize_url": "https://p.example/a",
            "token_url": "https://p.example/t",
            "grant_type": "jwt-bearer",
        },
        "'grant_type' must be one of",
    ),
    (
        {
            "client_id": "c",
            "client_secret": "s",
            "authorize_url": "https://p.example/a",
            "token_url": "https://p.example/t",
            "authorize_params": {"state": "fixed"},
        },
        "'state' is set by the library",
    ),
    (
        {
            "client_id": "c",
            "client_secret": "s",
            "authorize_url": "https://p.example/a",
            "token_url": "https://p.example/t",
            "pkce": "yes",
        },
        "'pkce' must be True or False",
    ),
    (
        {
            "client_id": "c",
            "client_secret": "s",
            "authorize_url": "https://p.example/a",
            "token_url": "https://p.example/t",
            "scope": 5,
        },
        "'scope' must be a list or a string",
    ),
    (
        {
            "client_id": "c",
            "client_secret": "s",
            "authorize_url": "https://p.example/a",
            "token_url": "https://p.example/t",
            "redirect_uri": "/relative",
        },
        "'redirect_uri' must be an absolute",
    ),
    ({**VALID, "authorize_params": {"scope": "x"}}, "use the provider's 'scope' setting"),
    ({**VALID, "scope_separator": "+"}, "'scope_separator' must be"),
    ({"client_id": "c", "client_secret": "s", "metadata_url": "http://p.example/.well-known/x"}, "must use https"),
    ({**VALID, "id_token_algorithms": ["RS256", "HS256"]}, "may not contain 'HS256'"),
    ({**VALID, "id_token_algorithms": ["none"]}, "may not contain 'none'"),
    ({**VALID, "trusted_audiences": [1]}, "'trusted_audiences' must be a list of strings"),
    ({**VALID, "post_logout_redirect_uri": "/bye"}, "'post_logout_redirect_uri' must be an absolute"),
    ({**VALID, "issuer": "p.example"}, "'issuer' must be an absolute https URL"),
]


@pytest.mark.parametrize(("settings", "message"), BAD_PROVIDER_CONFIGS)
def test_provider_config_errors_name_the_provider_and_key(settings, message):
    with pytest.raises(ConfigurationError) as info:
        OAuth2Client(new_app({"corp": settings}))
    assert "OAUTH2_PROVIDERS['corp']" in str(info.value)
    assert message in str(info.value)
    assert info.value.provider == "corp"
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("OAUTH2_HTTP_TIMEOUT", 0),
        ("OAUTH2_HTTP_TIMEOUT", None),
        ("OAUTH2_STATE_TTL", "600"),
        ("OAUTH2_MAX_PENDING_LOGINS", 0),
        ("OAUTH2_REFRESH_LEEWAY", -1),
        ("OAUTH2_URL_PREFIX", "oauth"),
        ("OAUTH2_DEFAULT_NEXT", "https://evil.example"),
        ("OAUTH2_DEFAULT_NEXT", "/\\evil.example"),
        ("OAUTH2_TOKEN_STORE", "nosuchstore"),
        ("OAUTH2_TOKEN_STORE", "os.path:join"),
        ("OAUTH2_TOKEN_ENCRYPTION_KEYS", ["not-a-fernet-key"]),
        ("OAUTH2_PROVIDERS", ["github"]),
    ],
)
def test_global_config_errors_name_the_key(key, value):
    app = new_app({})
    app.config[key] = value
    with pytest.raises(ConfigurationError, match=key):
        OAuth2Client(app)


def test_encryption_key_is_never_in_the_error():
    app = new_app({}, OAUTH2_TOKEN_ENCRYPTION_KEYS=["s3cr3t-but-malformed"])
    with pytest.raises(ConfigurationError) as info:
        OAuth2Client(app)
    assert "s3cr3t" not in str(info.value)


def test_unknown_global_setting_warns():
    with pytest.warns(OAuth2Warning, match="did you mean 'OAUTH2_STATE_TTL'"):
        OAuth2Client(new_app({}, OAUTH2_STATE_TTLS=5))


def test_pkce_off_warns(fake_provider):
    with pytest.warns(OAuth2Warning, match="PKCE is disabled"):
        OAuth2Client(new_app({"demo": provider_config(fake_provider, pkce=False)}))


@pytest.mark.parametrize("grant", ["password", "implicit"])
def test_legacy_grants_warn(grant, fake_provider):
    with pytest.warns(DeprecationWarning, match="RFC 9700"):
        OAuth2Client(new_app({"demo": provider_config(fake_provider, grant_type=grant)}))


def test_samesite_strict_warns(fake_provider):
    with pytest.warns(OAuth2Warning, match="Strict"):
        OAuth2Client(new_app({"demo": provider_config(fake_provider)}, SESSION_COOKIE_SAMESITE="Strict"))


def test_cookie_session_store_warns(fake_provider):
    with pytest.warns(OAuth2Warning, match="cookie session"):
        OAuth2Client(new_app({"demo": provider_config(fake_provider)}, OAUTH2_TOKEN_STORE="session"))


def test_config_from_prefixed_env(monkeypatch, fake_provider):
    monkeypatch.setenv("FLASK_OAUTH2_PROVIDERS__demo__client_id", "12345")
    monkeypatch.setenv("FLASK_OAUTH2_PROVIDERS__demo__client_secret", "from-env")
    monkeypatch.setenv("FLASK_OAUTH2_PROVIDERS__demo__authorize_url", fake_provider.authorize_url)
    monkeypatch.setenv("FLASK_OAUTH2_PROVIDERS__demo__token_url", fake_provider.token_url)
    monkeypatch.setenv("FLASK_OAUTH2_STATE_TTL", "120")
    app = Flask("envtest")
    app.config.update(SECRET_KEY="k" * 32, OAUTH2_TOKEN_STORE="memory")
    app.config.from_prefixed_env()
    OAuth2Client(app)
    settings = app.extensions["oauth2_client"].settings
    assert settings.providers["demo"].client_id == "12345"
    assert settings.state_ttl == 120


def test_custom_store_by_import_path_and_instance(fake_provider):
    from flask_oauth2_client import MemoryTokenStore

    app = new_app(
        {"demo": provider_config(fake_provider)},
        OAUTH2_TOKEN_STORE="flask_oauth2_client.stores.memory:MemoryTokenStore",
    )
    OAuth2Client(app)
    assert isinstance(app.extensions["oauth2_client"].store, MemoryTokenStore)
    store = MemoryTokenStore()
    app2 = new_app({"demo": provider_config(fake_provider)})
    OAuth2Client(app2, store=store)
    assert app2.extensions["oauth2_client"].store is store


def test_logout_revokes_deletes_and_signals(make_app, fake_provider):
    oauth = OAuth2Client(user_id_loader=lambda: "u-logout")
    app = make_app(oauth=oauth)
    client = app.test_client()
    login(client, fake_provider)
    token = app.extensions["oauth2_client"].store.get("demo", "u-logout")
    events = []
    with token_revoked.connected_to(lambda sender, **kw: events.append(kw), app):
        response = client.post("/oauth2/demo/logout", data={"next": "/bye"}, headers={"Origin": "http://localhost"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/bye"
    assert app.extensions["oauth2_client"].store.get("demo", "u-logout") is None
    assert events == [{"provider": "demo", "user_id": "u-logout"}]
    assert not fake_provider.is_active(token.access_token)
    hints = [r.form.get("token_type_hint") for r in fake_provider.requests if r.endpoint == "revoke"]
    assert hints == ["refresh_token", "access_token"]


def test_logout_refuses_cross_site_posts_and_get(app, client, fake_provider):
    login(client, fake_provider)
    assert client.post("/oauth2/demo/logout", headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.post("/oauth2/demo/logout", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.get("/oauth2/demo/logout").status_code == 405
    assert client.get("/protected").status_code == 200


def test_logout_with_revocation_down_still_deletes(make_app, fake_provider):
    oauth = OAuth2Client(user_id_loader=lambda: "u2")
    app = make_app(oauth=oauth, provider={"revocation_url": "http://127.0.0.1:9/revoke"})
    client = app.test_client()
    login(client, fake_provider)
    response = client.post("/oauth2/demo/logout", data={"next": "//evil"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert app.extensions["oauth2_client"].store.get("demo", "u2") is None


def test_callback_without_an_app_user_is_401_before_any_exchange(make_app, fake_provider):
    oauth = OAuth2Client(user_id_loader=lambda: None)
    app = make_app(oauth=oauth)
    client = app.test_client()
    response = login(client, fake_provider)
    assert response.status_code == 401
    assert fake_provider.calls("token") == 0


def test_logout_from_a_no_referrer_page_is_same_origin(app, client, fake_provider):
    login(client, fake_provider)
    headers = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/oauth2/demo/logout", headers=headers).status_code == 303
    assert client.post("/oauth2/demo/logout", headers={"Origin": "null"}).status_code == 403
