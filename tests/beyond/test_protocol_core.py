"""The protocol core of the "beyond" features against FakeProvider, without Flask: client
assertions (private_key_jwt, client_secret_jwt), pushed authorization requests, DPoP-bound tokens
with the server's nonce, and device authorization polling."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jwt
import pytest
import requests

from flask_oauth2_client import ParError
from flask_oauth2_client import TokenError
from flask_oauth2_client.client import ProviderClient
from flask_oauth2_client.config import parse_settings
from flask_oauth2_client.device import poll_device_token
from flask_oauth2_client.device import start_device_authorization
from flask_oauth2_client.keys import ClientKey
from flask_oauth2_client.pkce import code_challenge
from flask_oauth2_client.testing import FakeProvider
from flask_oauth2_client.testing import Fault

REDIRECT = "http://localhost/oauth2/p/callback"
VERIFIER = "v" * 64
LONG_SECRET = "s" * 40


def provider_client(fake: FakeProvider, **settings: Any) -> ProviderClient:
    raw = {"client_id": fake.client_id, "client_secret": fake.client_secret, "scope": "read", **settings}
    raw = {k: v for k, v in raw.items() if v is not None}
    raw.setdefault("metadata_url", fake.openid_configuration_url)
    cfg = parse_settings({"OAUTH2_PROVIDERS": {"p": raw}}).providers["p"]
    return ProviderClient(cfg, timeout=5)


def authorize(client: ProviderClient, state: str = "st") -> tuple[str, dict[str, list[str]]]:
    """The authorization URL, and the answer FakeProvider (auto-approving) redirects back with."""
    url = client.authorization_url(redirect_uri=REDIRECT, state=state, code_challenge=code_challenge(VERIFIER))
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    return url, parse_qs(urlsplit(answer.headers["Location"]).query)


def log_in(client: ProviderClient):
    _, back = authorize(client)
    return client.exchange_code(back["code"][0], redirect_uri=REDIRECT, code_verifier=VERIFIER)


# -- client authentication by JWT --------------------------------------------------------------


def test_private_key_jwt(fake_provider: FakeProvider):
    key = ClientKey.generate("ES256")
    fake_provider.register_client("jwt-client", auth_method="private_key_jwt", jwks={"keys": [key.public_jwk()]})
    client = provider_client(fake_provider, client_id="jwt-client", client_secret=None, client_keys=[key.private_jwk()])
    assert client.auth_method == "private_key_jwt"
    token = log_in(client)
    assert token.access_token
    [exchange] = [r for r in fake_provider.requests if r.endpoint == "token"]
    assert exchange.auth_method_used == "private_key_jwt"
    assertion = jwt.decode(exchange.form["client_assertion"], options={"verify_signature": False})
    assert assertion["iss"] == assertion["sub"] == "jwt-client"
    assert assertion["aud"] == fake_provider.issuer  # a single string: the issuer
    assert assertion["exp"] - assertion["iat"] == 60
    assert jwt.get_unverified_header(exchange.form["client_assertion"])["kid"] == key.kid
    # every request gets a new assertion (a jti is single use)
    client.refresh(str(token.refresh_token))
    jtis = {
        jwt.decode(r.form["client_assertion"], options={"verify_signature": False})["jti"]
        for r in fake_provider.requests
        if r.endpoint == "token"
    }
    assert len(jtis) == 2


def test_private_key_jwt_with_an_unknown_key_is_refused(fake_provider: FakeProvider):
    registered, other = ClientKey.generate("RS256"), ClientKey.generate("RS256")
    fake_provider.register_client("jwt-client", auth_method="private_key_jwt", jwks={"keys": [registered.public_jwk()]})
    client = provider_client(
        fake_provider, client_id="jwt-client", client_secret=None, client_keys=[other.private_jwk()]
    )
    with pytest.raises(TokenError) as caught:
        log_in(client)
    assert caught.value.error == "invalid_client"


def test_client_secret_jwt(fake_provider: FakeProvider):
    fake_provider.register_client("hs-client", LONG_SECRET, auth_method="client_secret_jwt")
    client = provider_client(
        fake_provider, client_id="hs-client", client_secret=LONG_SECRET, client_auth_method="client_secret_jwt"
    )
    assert log_in(client).access_token
    [exchange] = [r for r in fake_provider.requests if r.endpoint == "token"]
    assert exchange.auth_method_used == "client_secret_jwt"
    assert LONG_SECRET not in str(exchange.form)  # the secret signs; it does not travel
    assert jwt.get_unverified_header(exchange.form["client_assertion"])["alg"] == "HS256"


def test_revocation_authenticates_with_an_assertion_too(fake_provider: FakeProvider):
    key = ClientKey.generate("EdDSA")
    fake_provider.register_client("jwt-client", auth_method="private_key_jwt", jwks={"keys": [key.public_jwk()]})
    client = provider_client(fake_provider, client_id="jwt-client", client_secret=None, client_keys=[key.private_jwk()])
    token = log_in(client)
    client.revoke(token.access_token, token_type_hint="access_token")
    assert not fake_provider.is_active(token.access_token)


# -- pushed authorization requests ---------------------------------------------------------------


def test_par_sends_only_client_id_and_request_uri(fake_provider: FakeProvider):
    client = provider_client(fake_provider, par=True)
    url, back = authorize(client, state="pushed-state")
    query = parse_qs(urlsplit(url).query)
    assert set(query) == {"client_id", "request_uri"}
    assert query["request_uri"][0].startswith("urn:ietf:params:oauth:request_uri:")
    assert back["state"] == ["pushed-state"]
    [push] = [r for r in fake_provider.requests if r.endpoint == "par"]
    assert push.form["state"] == "pushed-state"
    assert push.form["code_challenge_method"] == "S256"
    assert client.exchange_code(back["code"][0], redirect_uri=REDIRECT, code_verifier=VERIFIER).access_token


def test_par_is_used_when_the_metadata_requires_it(fake_provider: FakeProvider):
    fake_provider.require_par = True
    client = provider_client(fake_provider)
    assert client.uses_par
    url, back = authorize(client)
    assert "request_uri" in parse_qs(urlsplit(url).query)
    assert "code" in back


def test_a_refused_push_is_a_par_error(fake_provider: FakeProvider):
    client = provider_client(fake_provider, par=True)
    fake_provider.set_fault("par", Fault(status=400, json={"error": "invalid_request", "error_description": "no"}))
    with pytest.raises(ParError, match="invalid_request") as caught:
        client.authorization_url(redirect_uri=REDIRECT, state="s", code_challenge=code_challenge(VERIFIER))
    assert caught.value.error == "invalid_request"
    fake_provider.set_fault("par", Fault(status=201, json={"expires_in": 60}))
    with pytest.raises(ParError, match="no usable request_uri"):
        client.authorization_url(redirect_uri=REDIRECT, state="s", code_challenge=code_challenge(VERIFIER))


# -- DPoP ------------------------------------------------------------------------------------------


def test_dpop_bound_token_with_the_servers_nonce(fake_provider: FakeProvider):
    fake_provider.dpop = True
    fake_provider.require_dpop_nonce = True
    client = provider_client(fake_provider, dpop=True)
    token = log_in(client)
    assert token.token_type == "DPoP"
    assert token.is_dpop
    assert token.dpop_key is not None
    proofs = [p for p in fake_provider.dpop_proofs if p.endpoint == "token"]
    assert [p.accepted for p in proofs] == [False, True]  # asked for the nonce, then accepted
    assert proofs[1].claims["nonce"] == fake_provider.dpop_nonce
    assert proofs[1].jkt == token.dpop_key.thumbprint
    # the API: a proof with ath, and the nonce remembered for the resource server's origin too
    url = fake_provider.userinfo_url
    answer = requests.get(url, headers=token.request_headers("GET", url, nonce=client.dpop_nonces.get(url)), timeout=5)
    assert answer.status_code == 200, answer.text
    # refresh with the same key
    fresh = client.refresh(str(token.refresh_token), previous=token)
    assert fresh.dpop_key is not None
    assert fresh.dpop_key.thumbprint == token.dpop_key.thumbprint


def test_a_dpop_token_type_is_refused_when_dpop_was_not_asked_for(fake_provider: FakeProvider):
    from flask_oauth2_client.client import parse_token_response

    body = b'{"access_token": "a", "token_type": "DPoP", "expires_in": 60}'
    with pytest.raises(Exception, match="DPoP was not asked for"):
        parse_token_response(200, "application/json", body, provider="p")


def test_without_dpop_the_token_is_bearer(fake_provider: FakeProvider):
    fake_provider.dpop = True
    token = log_in(provider_client(fake_provider))
    assert token.token_type == "Bearer"
    assert token.dpop_jwk is None
    assert fake_provider.dpop_proofs == []


# -- device authorization grant --------------------------------------------------------------------


def test_device_flow_polls_until_approved(fake_provider: FakeProvider):
    fake_provider.device_interval = 1
    client = provider_client(fake_provider)
    started = start_device_authorization(client)
    assert started.verification_uri == fake_provider.device_verification_url
    assert "device_code" not in repr(started)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            fake_provider.approve_device(started.user_code)

    token = poll_device_token(client, started, sleep=sleep)
    assert token.access_token
    assert waits == [1.0, 1.0]
    assert fake_provider.calls("token", grant_type="urn:ietf:params:oauth:grant-type:device_code") == 2


def test_device_flow_slows_down_and_reports_denial(fake_provider: FakeProvider):
    fake_provider.device_interval = 1
    fake_provider.device_slow_down_increment = 1
    client = provider_client(fake_provider)
    started = start_device_authorization(client)
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # polls at once: the provider says slow_down
        waits.append(seconds)
        if len(waits) == 3:
            fake_provider.deny_device(started.user_code)

    with pytest.raises(TokenError) as caught:
        poll_device_token(client, started, sleep=sleep)
    assert caught.value.error == "access_denied"
    assert waits[0] == 1.0
    assert waits[-1] > waits[0]  # slower after slow_down


def test_device_flow_stops_when_the_codes_expire(fake_provider: FakeProvider):
    fake_provider.device_interval = 1
    client = provider_client(fake_provider)
    started = start_device_authorization(client)
    now = [0.0]
    with pytest.raises(TokenError) as caught:
        poll_device_token(client, started, sleep=lambda s: None, clock=lambda: started.deadline + now[0])
    assert caught.value.error == "expired_token"
