"""Every bad callback: a clean 4xx/5xx, nothing stored, the pending login spent only when its
state was shown, and no request to the token endpoint for what can be rejected before."""

from __future__ import annotations

import time

import pytest
from helpers import callback_path
from helpers import login
from helpers import provider_answer
from helpers import provider_config

from flask_oauth2_client import authorization_failed
from flask_oauth2_client.testing import Fault


def assert_clean_error(response, status, code=None):
    assert response.status_code == status
    body = response.get_data(as_text=True)
    assert "Traceback" not in body
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    if code is not None:
        assert code in body


def assert_no_token(client):
    assert client.get("/protected").status_code == 302


def test_missing_state_is_400_and_consumes_nothing(client, fake_provider):
    path = provider_answer(client, fake_provider)
    without_state = path.replace("state=", "x=")
    assert_clean_error(client.get(without_state), 400, "invalid_state")
    assert fake_provider.calls("token") == 0
    assert client.get(path).status_code == 302  # the real answer still works


def test_unknown_state_is_400_and_consumes_nothing(client, fake_provider):
    path = provider_answer(client, fake_provider)
    forged = path.split("state=")[0] + "state=forged-state-value"
    assert_clean_error(client.get(forged), 400, "invalid_state")
    assert fake_provider.calls("token") == 0
    assert client.get(path).status_code == 302


def test_replayed_callback_is_400(client, fake_provider):
    path = provider_answer(client, fake_provider)
    assert client.get(path).status_code == 302
    assert_clean_error(client.get(path), 400, "invalid_state")
    assert fake_provider.calls("token") == 1


def test_callback_in_another_browser_is_400(app, client, fake_provider):
    path = provider_answer(client, fake_provider)
    attacker = app.test_client()
    assert_clean_error(attacker.get(path), 400, "invalid_state")
    assert fake_provider.calls("token") == 0
    assert_no_token(attacker)


def test_expired_state_is_400_and_spent(make_app, fake_provider):
    app = make_app(OAUTH2_STATE_TTL=1)
    client = app.test_client()
    path = provider_answer(client, fake_provider)
    time.sleep(1.1)
    assert_clean_error(client.get(path), 400, "expired_state")
    assert fake_provider.calls("token") == 0
    assert_clean_error(client.get(path), 400, "invalid_state")


def test_state_of_another_provider_is_400_and_spent(make_app, fake_provider):
    app = make_app(OAUTH2_PROVIDERS={"demo": provider_config(fake_provider), "other": provider_config(fake_provider)})
    client = app.test_client()
    path = provider_answer(client, fake_provider, name="other")
    wrong = path.replace("/oauth2/other/", "/oauth2/demo/")
    assert_clean_error(client.get(wrong), 400, "invalid_state")
    assert_clean_error(client.get(path), 400, "invalid_state")
    assert fake_provider.calls("token") == 0


def test_access_denied_is_403_with_the_code(app, client, fake_provider):
    fake_provider.set_fault("authorize", Fault(json={"error": "access_denied", "error_description": "User said no"}))
    failures = []
    with authorization_failed.connected_to(lambda sender, **kw: failures.append(kw), app):
        response = login(client, fake_provider)
    assert_clean_error(response, 403, "access_denied")
    assert "User said no" in response.get_data(as_text=True)
    assert len(failures) == 1
    assert failures[0]["error"].error == "access_denied"
    assert fake_provider.calls("token") == 0
    assert_no_token(client)


def test_provider_error_as_json(client, fake_provider):
    fake_provider.set_fault("authorize", Fault(json={"error": "invalid_scope"}))
    path = provider_answer(client, fake_provider)
    response = client.get(path, headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_scope"
    assert "error_description" in response.json


def test_temporarily_unavailable_redirect_is_503(client, fake_provider):
    fake_provider.set_fault("authorize", Fault(json={"error": "temporarily_unavailable"}))
    assert_clean_error(login(client, fake_provider), 503)


@pytest.mark.parametrize("param", ["code", "iss", "error"])
def test_repeated_parameter_is_400_and_spends_the_state(client, fake_provider, param):
    path = provider_answer(client, fake_provider)
    assert_clean_error(client.get(f"{path}&{param}=one&{param}=two"), 400, "invalid_request")
    assert fake_provider.calls("token") == 0
    assert_clean_error(client.get(path), 400, "invalid_state")


def test_repeated_state_is_400_and_spends_nothing(client, fake_provider):
    path = provider_answer(client, fake_provider)
    assert_clean_error(client.get(f"{path}&state=other"), 400)
    assert client.get(path).status_code == 302


def test_missing_code_is_400(client, fake_provider):
    path = provider_answer(client, fake_provider)
    state = path.split("state=")[1].split("&")[0]
    assert_clean_error(client.get(f"/oauth2/demo/callback?state={state}"), 400, "missing_code")
    assert fake_provider.calls("token") == 0


def test_matching_iss_is_accepted(make_app, fake_provider):
    fake_provider.send_iss = True
    app = make_app(provider={"issuer": fake_provider.issuer})
    assert login(app.test_client(), fake_provider).status_code == 302


def test_iss_mismatch_is_400_before_any_exchange(make_app, fake_provider):
    fake_provider.send_iss = True
    app = make_app(provider={"issuer": "https://attacker.example"})
    client = app.test_client()
    assert_clean_error(login(client, fake_provider), 400, "invalid_issuer")
    assert fake_provider.calls("token") == 0
    assert_no_token(client)


TOKEN_ENDPOINT_FAULTS = [
    pytest.param(Fault(status=400, json={"error": "invalid_grant"}), 400, "invalid_grant", id="invalid_grant"),
    pytest.param(Fault(status=401, json={"error": "invalid_client"}), 502, "invalid_client", id="invalid_client"),
    pytest.param(Fault(status=500, body="boom"), 502, "provider_unavailable", id="500"),
    pytest.param(Fault(status=503, body="later"), 503, "provider_unavailable", id="503"),
    pytest.param(Fault(status=400, json={"error": "temporarily_unavailable"}), 503, None, id="temporarily_unavailable"),
    pytest.param(
        Fault(status=200, body="<html>hello</html>", content_type="text/html"),
        502,
        "invalid_token_response",
        id="html",
    ),
    pytest.param(Fault(status=200, json={"token_type": "Bearer"}), 502, "invalid_token_response", id="no-access-token"),
    pytest.param(
        Fault(status=200, json={"access_token": "abc", "token_type": "mac"}), 502, "invalid_token_response", id="mac"
    ),
    pytest.param(Fault(status=200, json={"access_token": "abc"}), 502, "invalid_token_response", id="no-token-type"),
    pytest.param(
        Fault(
            status=200,
            body='{"access_token":"a","access_token":"b","token_type":"Bearer"}',
            content_type="application/json",
        ),
        502,
        "invalid_token_response",
        id="repeated-member",
    ),
    pytest.param(Fault(status=200, body="x" * (1024 * 1024 + 10)), 502, "invalid_token_response", id="too-large"),
]


@pytest.mark.parametrize(("fault", "status", "code"), TOKEN_ENDPOINT_FAULTS)
def test_token_endpoint_failures(app, client, fake_provider, fault, status, code):
    fake_provider.set_fault("token", fault)
    failures = []
    with authorization_failed.connected_to(lambda sender, **kw: failures.append(kw), app):
        response = login(client, fake_provider)
    assert_clean_error(response, status, code)
    assert len(failures) == 1
    assert fake_provider.calls("token") == 1
    assert_no_token(client)


def test_token_endpoint_timeout_is_504(make_app, fake_provider):
    app = make_app(OAUTH2_HTTP_TIMEOUT=0.3)
    client = app.test_client()
    fake_provider.set_fault("token", Fault(status=None, delay=2.0))
    assert_clean_error(login(client, fake_provider), 504, "provider_timeout")
    assert_no_token(client)


def test_unreachable_token_endpoint_is_502(make_app, fake_provider):
    app = make_app(provider={"token_url": "http://127.0.0.1:9/token"})
    client = app.test_client()
    assert_clean_error(login(client, fake_provider), 502, "provider_unavailable")
    assert_no_token(client)


def test_callback_path_helper_keeps_query():
    assert callback_path("http://localhost/a/b?c=d&e=f") == "/a/b?c=d&e=f"


def test_token_endpoint_redirect_is_not_followed(client, fake_provider):
    # Were the redirect followed, the second request would succeed (the fault applies once).
    fake_provider.set_fault("token", Fault(status=307, body="", headers={"Location": fake_provider.token_url}, times=1))
    assert_clean_error(login(client, fake_provider), 502, "invalid_token_response")
    assert fake_provider.calls("token") == 1
    assert_no_token(client)
