"""parse_token_response: the one place token endpoint answers are validated."""

from __future__ import annotations

import json
import logging

import pytest

from flask_oauth2_client import InvalidTokenResponse
from flask_oauth2_client import ProviderUnavailable
from flask_oauth2_client import TokenError
from flask_oauth2_client.client import parse_token_response

JSON = "application/json"


def parse(body, status=200, content_type=JSON, **kw):
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    return parse_token_response(status, content_type, raw, provider="p", **kw)


def test_minimal_bearer_response():
    t = parse({"access_token": "a", "token_type": "bearer", "expires_in": 60})
    assert t.token_type == "Bearer"
    assert t.expires_in is not None
    assert 55 < t.expires_in <= 60


def test_form_encoded_response_like_github():
    t = parse(
        b"access_token=gho_x&scope=repo%2Cgist&token_type=bearer", content_type="application/x-www-form-urlencoded"
    )
    assert t.access_token == "gho_x"
    assert t.scopes == {"repo", "gist"}


def test_json_with_charset_and_text_plain_json():
    assert parse({"access_token": "a", "token_type": "Bearer"}, content_type="application/json; charset=utf-8")
    assert parse({"access_token": "a", "token_type": "Bearer"}, content_type="text/plain")


def test_scope_missing_means_the_requested_ones():
    assert parse({"access_token": "a", "token_type": "Bearer"}, requested_scopes=("x", "y")).scopes == {"x", "y"}
    assert parse({"access_token": "a", "token_type": "Bearer", "scope": "z"}, requested_scopes=("x",)).scopes == {"z"}


def test_unknown_fields_are_kept_as_extra():
    t = parse({"access_token": "a", "token_type": "Bearer", "team": {"id": 1}})
    assert t.extra == {"team": {"id": 1}}


@pytest.mark.parametrize(
    ("value", "known"),
    [
        (3600, True),
        ("3600", True),
        (" 120 ", True),
        (-5, False),
        ("soon", False),
        (None, False),
        (True, False),
        ([1], False),
    ],
)
def test_expires_in_forms(value, known, caplog):
    body = {"access_token": "a", "token_type": "Bearer"}
    if value is not None:
        body["expires_in"] = value
    with caplog.at_level(logging.WARNING, logger="flask_oauth2_client"):
        t = parse(body)
    assert (t.expires_at is not None) is known
    assert bool(caplog.records) is not known


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("<html>login</html>", "text/html", "not a JSON object"),
        ("[1, 2]", JSON, "not a JSON object"),
        ({"token_type": "Bearer"}, JSON, "no access_token"),
        ({"access_token": "", "token_type": "Bearer"}, JSON, "no access_token"),
        ({"access_token": "a"}, JSON, "no token_type"),
        ({"access_token": "a", "token_type": "MAC"}, JSON, "only Bearer"),
        ({"access_token": "a", "token_type": "Bearer", "refresh_token": 5}, JSON, "refresh_token"),
        ({"access_token": "a", "token_type": "Bearer", "scope": 5}, JSON, "scope"),
        ('{"access_token": "a", "token_type": "Bearer", "token_type": "x"}', JSON, "repeated"),
        (b"access_token=a&access_token=b&token_type=bearer", "application/x-www-form-urlencoded", "repeated"),
        (b"\xff\xfe", JSON, "not a JSON object"),
    ],
)
def test_unusable_answers(body, content_type, message):
    with pytest.raises(InvalidTokenResponse, match=message):
        parse(body, content_type=content_type)


def test_token_type_default_for_presets():
    assert parse({"access_token": "a"}, default_token_type="bearer").token_type == "Bearer"


def test_oauth_error_answers():
    with pytest.raises(TokenError) as info:
        parse({"error": "invalid_grant", "error_description": "code\nexpired"}, status=400)
    assert info.value.error == "invalid_grant"
    assert info.value.status_code == 400
    assert "\n" not in (info.value.description or "")
    with pytest.raises(TokenError):
        parse({"error": "bad_verification_code"}, status=200)  # GitHub answers errors with 200


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [(500, "x", "server_error"), (503, "", "unavailable"), (400, {"error": "temporarily_unavailable"}, "unavailable")],
)
def test_provider_failures(status, body, kind):
    with pytest.raises(ProviderUnavailable) as info:
        parse(body, status=status)
    assert info.value.kind == kind


def test_4xx_without_an_oauth_error_is_invalid():
    with pytest.raises(InvalidTokenResponse, match="HTTP 404"):
        parse("not found", status=404, content_type="text/plain")
