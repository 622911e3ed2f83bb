"""FakeProvider, exercised over its real socket with ``requests``."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import quote_plus
from urllib.parse import urlsplit

import pytest
import requests

from flask_oauth2_client.testing import FakeProvider
from flask_oauth2_client.testing import Fault

CB = "http://127.0.0.1:9/callback?app=1"
BASIC = ("demo-client", "demo-secret")
T = 5  # seconds; every request has a timeout


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize(p: FakeProvider, **params: str | None) -> requests.Response:
    query: dict[str, str | None] = {
        "response_type": "code",
        "client_id": p.client_id,
        "redirect_uri": CB,
        "state": "st ate/+",
        "code_challenge_method": "S256",
        **params,
    }
    return requests.get(p.authorize_url, params=query, allow_redirects=False, timeout=T)


def redirect_params(r: requests.Response, part: str = "query") -> dict[str, str]:
    assert r.status_code == 302, r.text
    url = urlsplit(r.headers["Location"])
    assert url.netloc == "127.0.0.1:9"
    assert url.path == "/callback"
    return dict(parse_qsl(url.query if part == "query" else url.fragment))


def get_code(p: FakeProvider, **params: str) -> tuple[str, str]:
    verifier, challenge = pkce()
    q = redirect_params(authorize(p, code_challenge=challenge, **params))
    assert q["state"] == "st ate/+"
    return q["code"], verifier


def post(url: str, auth: tuple[str, str] | None = BASIC, **data: str) -> requests.Response:
    return requests.post(url, data=data, auth=auth, allow_redirects=False, timeout=T)


def exchange(p: FakeProvider, code: str, verifier: str, extra: dict[str, str] | None = None) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CB}
    data = {**data, "code_verifier": verifier, **(extra or {})}
    return requests.post(p.token_url, data=data, auth=BASIC, allow_redirects=False, timeout=T)


def bearer(url: str, token: str) -> requests.Response:
    return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=T)


def error_of(r: requests.Response, status: int = 400) -> str:
    assert r.status_code == status, r.text
    assert r.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = r.json()
    assert body["error_description"]
    return str(body["error"])


def test_authorization_code_with_pkce(fake_provider: FakeProvider) -> None:
    p = fake_provider
    r = authorize(p, code_challenge=pkce()[1], scope="read write")
    assert r.headers["Location"].startswith(CB + "&code=")
    code, verifier = get_code(p, scope="read write")
    r = exchange(p, code, verifier)
    assert r.status_code == 200
    assert (r.headers["Cache-Control"], r.headers["Pragma"]) == ("no-store", "no-cache")
    tok = r.json()
    assert tok["token_type"] == "Bearer"
    assert tok["expires_in"] == 3600
    assert tok["scope"] == "read write"
    assert tok["refresh_token"]
    assert bearer(p.api_url, tok["access_token"]).json()["user"] == "alice"
    assert bearer(p.userinfo_url, tok["access_token"]).json() == {
        "sub": "alice",
        "name": "Alice Liddell",
        "email": "alice@example.test",
    }


def test_code_reuse_is_refused_and_revokes_tokens(fake_provider: FakeProvider) -> None:
    code, verifier = get_code(fake_provider)
    tok = exchange(fake_provider, code, verifier).json()
    assert error_of(exchange(fake_provider, code, verifier)) == "invalid_grant"
    assert bearer(fake_provider.api_url, tok["access_token"]).status_code == 401
    refresh = post(fake_provider.token_url, grant_type="refresh_token", refresh_token=tok["refresh_token"])
    assert error_of(refresh) == "invalid_grant"


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"code_verifier": "x" * 43}, "invalid_grant"),
        ({"redirect_uri": "http://127.0.0.1:9/other"}, "invalid_grant"),
        ({"code": "unknown"}, "invalid_grant"),
        ({"grant_type": "urn:nope"}, "unsupported_grant_type"),
    ],
)
def test_token_request_errors(fake_provider: FakeProvider, extra: dict[str, str], error: str) -> None:
    code, verifier = get_code(fake_provider)
    assert error_of(exchange(fake_provider, code, verifier, extra)) == error


def test_repeated_or_non_form_token_parameters(fake_provider: FakeProvider) -> None:
    url = fake_provider.token_url
    body = "grant_type=password&username=alice&password=wonderland&scope=a&scope=b"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    r = requests.post(url, data=body, headers=headers, auth=BASIC, timeout=T)
    assert error_of(r) == "invalid_request"
    r = requests.post(url, json={"grant_type": "client_credentials"}, auth=BASIC, timeout=T)
    assert error_of(r) == "invalid_request"


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "id_token"}, "unsupported_response_type"),
        ({"scope": "read\twrite"}, "invalid_scope"),
    ],
)
def test_authorize_errors_redirect(fake_provider: FakeProvider, params: dict[str, str | None], error: str) -> None:
    q = redirect_params(authorize(fake_provider, **{"code_challenge": pkce()[1], **params}))
    assert (q["error"], q["state"]) == (error, "st ate/+")
    assert "code" not in q


def test_authorize_repeated_parameter(fake_provider: FakeProvider) -> None:
    url = f"{fake_provider.authorize_url}?response_type=code&client_id=demo-client"
    url += "&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&scope=a&scope=b"
    r = requests.get(url, allow_redirects=False, timeout=T)
    assert redirect_params(r)["error"] == "invalid_request"


@pytest.mark.parametrize(
    "params",
    [{"client_id": "nobody"}, {"redirect_uri": "https://evil.example/cb#x"}, {"redirect_uri": None}],
)
def test_bad_client_or_redirect_uri_never_redirects(fake_provider: FakeProvider, params: dict[str, str | None]) -> None:
    r = authorize(fake_provider, code_challenge=pkce()[1], **params)
    assert r.status_code == 400
    assert "Location" not in r.headers


def test_registered_redirect_uris_need_exact_match(fake_provider: FakeProvider) -> None:
    fake_provider.register_client("c2", "s2", redirect_uris=[CB])
    assert authorize(fake_provider, client_id="c2", code_challenge=pkce()[1], redirect_uri=CB + "x").status_code == 400
    code, verifier = get_code(fake_provider, client_id="c2")
    assert (
        post(
            fake_provider.token_url,
            auth=("c2", "s2"),
            grant_type="authorization_code",
            code=code,
            redirect_uri=CB,
            code_verifier=verifier,
        ).status_code
        == 200
    )


def test_refresh_rotation_and_scope(fake_provider: FakeProvider) -> None:
    p = fake_provider
    first = p.issue_token(scopes=("read", "write"), expires_in=0)
    assert bearer(p.api_url, first["access_token"]).status_code == 401
    r = post(p.token_url, grant_type="refresh_token", refresh_token=first["refresh_token"], scope="read")
    second = r.json()
    assert second["scope"] == "read"
    assert second["refresh_token"] != first["refresh_token"]
    assert bearer(p.api_url, second["access_token"]).status_code == 200
    again = post(p.token_url, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert error_of(again) == "invalid_grant"
    # the rotated refresh token keeps the original grant's scope, and no more
    wider = post(p.token_url, grant_type="refresh_token", refresh_token=second["refresh_token"], scope="admin")
    assert error_of(wider) == "invalid_scope"
    third = post(p.token_url, grant_type="refresh_token", refresh_token=second["refresh_token"])
    assert third.json()["scope"] == "read write"
    assert p.calls("token", grant_type="refresh_token") == 4


def test_concurrent_refreshes_have_one_winner(fake_provider: FakeProvider) -> None:
    rt = fake_provider.issue_token()["refresh_token"]

    def refresh(_: int) -> int:
        r = post(fake_provider.token_url, grant_type="refresh_token", refresh_token=rt)
        return r.status_code

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(refresh, range(8))) == [200] + [400] * 7


def test_refresh_without_rotation(fake_provider: FakeProvider) -> None:
    fake_provider.rotate_refresh_tokens = False
    rt = fake_provider.issue_token()["refresh_token"]
    for _ in range(2):
        r = post(fake_provider.token_url, grant_type="refresh_token", refresh_token=rt)
        assert r.status_code == 200
        assert "refresh_token" not in r.json()


def test_client_credentials(fake_provider: FakeProvider) -> None:
    r = post(fake_provider.token_url, grant_type="client_credentials", scope="jobs")
    tok = r.json()
    assert "refresh_token" not in tok
    assert tok["scope"] == "jobs"
    assert bearer(fake_provider.userinfo_url, tok["access_token"]).json() == {"sub": "demo-client"}
    fake_provider.register_client("spa", auth_method="none")
    r = post(fake_provider.token_url, auth=None, grant_type="client_credentials", client_id="spa")
    assert error_of(r) == "unauthorized_client"


def test_password_grant(fake_provider: FakeProvider) -> None:
    fake_provider.add_user("bob", "builder", email="bob@example.test")
    r = post(fake_provider.token_url, grant_type="password", username="bob", password="builder")
    me = bearer(fake_provider.userinfo_url, r.json()["access_token"]).json()
    assert me == {"sub": "bob", "email": "bob@example.test"}
    r = post(fake_provider.token_url, grant_type="password", username="bob", password="nope")
    assert error_of(r) == "invalid_grant"


def test_implicit_grant_uses_the_fragment(fake_provider: FakeProvider) -> None:
    r = authorize(fake_provider, response_type="token", scope="read")
    assert urlsplit(r.headers["Location"]).query == "app=1"
    frag = redirect_params(r, part="fragment")
    assert frag["token_type"] == "Bearer"
    assert (frag["expires_in"], frag["scope"], frag["state"]) == ("3600", "read", "st ate/+")
    assert "refresh_token" not in frag
    assert bearer(fake_provider.api_url, frag["access_token"]).status_code == 200


SECRET = "s e:c+"  # needs form-urlencoding inside HTTP Basic (RFC 6749 2.3.1)


@pytest.mark.parametrize(
    ("method", "basic", "data", "status", "used"),
    [
        ("client_secret_basic", SECRET, {}, 200, "client_secret_basic"),
        ("client_secret_basic", None, {"client_secret": SECRET}, 401, "client_secret_post"),
        ("client_secret_post", None, {"client_secret": SECRET}, 200, "client_secret_post"),
        ("client_secret_post", SECRET, {}, 401, "client_secret_basic"),
        ("client_secret_basic", "wrong", {}, 401, "client_secret_basic"),
        ("none", None, {}, 200, "none"),
        ("none", SECRET, {}, 401, "client_secret_basic"),
    ],
)
def test_client_authentication(
    fake_provider: FakeProvider,
    method: str,
    basic: str | None,
    data: dict[str, str],
    status: int,
    used: str,
) -> None:
    fake_provider.register_client("c", None if method == "none" else SECRET, auth_method=method)
    auth = None if basic is None else ("c", quote_plus(basic))
    if auth is None:
        data = {"client_id": "c", **data}
    r = post(fake_provider.token_url, auth=auth, grant_type="password", username="alice", password="wonderland", **data)
    assert r.status_code == status, r.text
    if status == 401:
        assert r.json()["error"] == "invalid_client"
        assert r.headers["WWW-Authenticate"].startswith("Basic")
    assert fake_provider.requests[-1].auth_method_used == used
    assert fake_provider.requests[-1].client_id == "c"


def test_faults(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.set_fault("token", Fault(status=500, body="oops", times=1))
    r = post(p.token_url, grant_type="client_credentials")
    assert (r.status_code, r.text, r.headers["Content-Type"]) == (500, "oops", "text/plain; charset=utf-8")
    assert post(p.token_url, grant_type="client_credentials").status_code == 200  # times=1 is spent
    p.set_fault("token", Fault(status=400, json={"error": "invalid_grant"}, grant_type="refresh_token"))
    assert post(p.token_url, grant_type="client_credentials").status_code == 200
    rt = p.issue_token()["refresh_token"]
    assert post(p.token_url, grant_type="refresh_token", refresh_token=rt).json() == {"error": "invalid_grant"}
    p.set_fault("api", Fault(status=503, headers={"Retry-After": "7"}))
    r = bearer(p.api_url, p.issue_token()["access_token"])
    assert (r.status_code, r.headers["Retry-After"]) == (503, "7")
    p.clear_faults()
    assert post(p.token_url, grant_type="refresh_token", refresh_token=rt).status_code == 200


def test_fault_validation() -> None:
    with pytest.raises(ValueError, match="times"):
        Fault(times=0)
    with pytest.raises(ValueError, match="status"):
        Fault(status=42)


def test_fault_delay(fake_provider: FakeProvider) -> None:
    fake_provider.set_fault("metadata", Fault(status=None, delay=0.3, times=2))
    start = time.monotonic()
    assert requests.get(fake_provider.metadata_url, timeout=T).status_code == 200
    assert time.monotonic() - start >= 0.3
    with pytest.raises(requests.Timeout):
        requests.get(fake_provider.metadata_url, timeout=0.05)


def test_authorize_error_fault_redirects(fake_provider: FakeProvider) -> None:
    fake_provider.set_fault("authorize", Fault(json={"error": "access_denied", "error_description": "no"}))
    q = redirect_params(authorize(fake_provider, code_challenge=pkce()[1]))
    assert q == {"app": "1", "error": "access_denied", "error_description": "no", "state": "st ate/+"}
    assert authorize(fake_provider, client_id="nobody").status_code == 400  # still no open redirect


def test_calls_and_recorded_requests(fake_provider: FakeProvider) -> None:
    p = fake_provider
    get_code(p)
    post(p.token_url, grant_type="client_credentials")
    post(
        p.token_url,
        auth=None,
        grant_type="password",
        client_id="demo-client",
        client_secret="demo-secret",
        username="alice",
        password="wonderland",
    )
    assert (p.calls("authorize"), p.calls("token"), p.calls("token", grant_type="password")) == (1, 2, 1)
    assert p.requests[0].query["client_id"] == "demo-client"
    last = p.requests[-1]
    assert (last.endpoint, last.method, last.grant_type) == ("token", "POST", "password")
    assert (last.client_id, last.auth_method_used, last.form["username"]) == (
        "demo-client",
        "client_secret_post",
        "alice",
    )
    with pytest.raises(ValueError, match="unknown endpoint"):
        p.calls("tokens")


def test_bearer_checks(fake_provider: FakeProvider) -> None:
    p = fake_provider
    tok = p.issue_token()["access_token"]
    r = requests.get(p.api_url, timeout=T)
    assert r.status_code == 401
    assert "error=" not in r.headers["WWW-Authenticate"]
    r = requests.get(p.userinfo_url, params={"access_token": tok}, timeout=T)
    assert r.status_code == 400
    for url in (p.api_url, p.userinfo_url):
        r = bearer(url, "bogus")
        assert (r.status_code, r.headers["WWW-Authenticate"]) == (401, 'Bearer error="invalid_token"')
    p.expire_access_tokens()
    assert bearer(p.api_url, tok).status_code == 401


def test_revocation(fake_provider: FakeProvider) -> None:
    p = fake_provider
    tok = p.issue_token()
    assert post(p.revocation_url, token="unknown").status_code == 200
    assert post(p.revocation_url, auth=("demo-client", "x"), token=tok["refresh_token"]).status_code == 401
    assert p.is_active(tok["refresh_token"])
    r = post(p.revocation_url, token=tok["refresh_token"], token_type_hint="refresh_token")
    assert (r.status_code, r.text) == (200, "")
    assert bearer(p.api_url, tok["access_token"]).status_code == 401
    assert not p.is_active(tok["refresh_token"])
    assert p.calls("revoke") == 3


def test_metadata(fake_provider: FakeProvider) -> None:
    meta = requests.get(fake_provider.metadata_url, timeout=T).json()
    assert meta["issuer"] == fake_provider.issuer == fake_provider.url
    assert meta["token_endpoint"] == fake_provider.token_url
    assert meta["revocation_endpoint"] == fake_provider.revocation_url
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert "client_secret_basic" in meta["token_endpoint_auth_methods_supported"]
    assert "refresh_token" in meta["grant_types_supported"]


def test_send_iss(fake_provider: FakeProvider) -> None:
    fake_provider.send_iss = True
    q = redirect_params(authorize(fake_provider, code_challenge=pkce()[1]))
    assert q["iss"] == fake_provider.issuer


@pytest.mark.parametrize(("decision", "expected"), [("approve", "code"), ("deny", "error")])
def test_consent_page(fake_provider: FakeProvider, decision: str, expected: str) -> None:
    fake_provider.auto_approve = False
    fake_provider.add_user("bob", "builder")
    verifier, challenge = pkce()
    r = authorize(fake_provider, code_challenge=challenge, login_hint="bob")
    assert r.status_code == 200
    assert "<title>Authorize demo-client</title>" in r.text
    assert 'id="approve"' in r.text
    assert 'id="deny"' in r.text
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', r.text))
    form = {k: html.unescape(v) for k, v in form.items()}
    assert form["state"] == "st ate/+"
    r = post(fake_provider.authorize_url, auth=None, **form, username="bob", decision=decision)
    q = redirect_params(r)
    assert expected in q
    if decision == "approve":
        tok = exchange(fake_provider, q["code"], verifier).json()
        assert bearer(fake_provider.api_url, tok["access_token"]).json()["user"] == "bob"
    else:
        assert q["error"] == "access_denied"


def test_reset(fake_provider: FakeProvider) -> None:
    p = fake_provider
    url = p.url
    p.register_client("c2", "s2")
    p.auto_approve = False
    p.set_fault("token", Fault())
    tok = p.issue_token()
    p.reset()
    assert p.url == url
    assert (p.auto_approve, p.requests) == (True, [])
    assert not p.is_active(tok["access_token"])
    assert post(p.token_url, grant_type="client_credentials").status_code == 200
    assert post(p.token_url, auth=("c2", "s2"), grant_type="client_credentials").status_code == 401


def test_lifecycle_and_quietness(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="loopback"):
        FakeProvider(host="192.0.2.1")
    provider = FakeProvider()
    with pytest.raises(RuntimeError):
        _ = provider.url
    with provider:
        port = provider.port
        tok = provider.issue_token()["access_token"]
        assert bearer(provider.api_url, tok).status_code == 200
        with pytest.raises(OSError, match="in use"):
            FakeProvider(port=port).start()
    with pytest.raises(requests.ConnectionError):
        requests.get(provider.metadata_url, timeout=T)
    with provider:  # restarts on the same port, state kept
        assert provider.port == port
        assert bearer(provider.api_url, tok).status_code == 200
    out, err = capfd.readouterr()
    assert tok not in out + err
    assert "GET /" not in out + err
