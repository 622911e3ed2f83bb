from __future__ import annotations

from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest

from flask_oauth2_client import Token
from flask_oauth2_client.pkce import code_challenge
from flask_oauth2_client.pkce import generate_code_verifier
from flask_oauth2_client.token import format_scope
from flask_oauth2_client.token import parse_scope

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("read:user,repo", ("read:user", "repo")),
        ("openid email  profile", ("openid", "email", "profile")),
        ("a, b ,c\td", ("a", "b", "c", "d")),
        (["a", "b c", "a"], ("a", "b", "c")),
        (("x",), ("x",)),
        ("", ()),
        (None, ()),
    ],
)
def test_parse_scope(given, expected):
    assert parse_scope(given) == expected


def test_format_scope():
    assert format_scope(("a", "b")) == "a b"
    assert format_scope(("a", "b"), ",") == "a,b"


def test_pkce_matches_rfc7636_appendix_b():
    assert (
        code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_pkce_verifier_is_random_and_within_rfc_length():
    verifiers = {generate_code_verifier() for _ in range(50)}
    assert len(verifiers) == 50
    assert all(43 <= len(v) <= 128 for v in verifiers)


def token(**changes):
    base = Token.from_response(
        access_token="at-secret",
        token_type="Bearer",
        expires_in=3600,
        refresh_token="rt-secret",
        scopes=["a", "b"],
        extra={"team": "x"},
        now=NOW,
    )
    return base.replace(**changes)


def test_expiry_from_expires_in_is_absolute_and_aware():
    t = token()
    assert t.expires_at == NOW + timedelta(hours=1)
    assert t.expires_at.tzinfo is not None
    assert not t.is_expired(now=NOW)
    assert t.is_expired(60, now=NOW + timedelta(seconds=3541))
    assert not t.is_expired(60, now=NOW + timedelta(seconds=3539))
    assert Token("x").is_expired(10**9) is False  # unknown lifetime


def test_token_is_immutable():
    t = token()
    with pytest.raises(AttributeError):
        t.access_token = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        t.extra["team"] = "y"  # type: ignore[index]


def test_json_round_trip_is_equal():
    t = token(id_token="header.payload.sig", claims={"sub": "1"})
    again = Token.from_json(t.to_json())
    assert again == t
    assert again.expires_at == t.expires_at
    assert again.extra == {"team": "x"}
    assert again.claims == {"sub": "1"}


@pytest.mark.parametrize("bad", ["", "[]", '{"token_type": "Bearer"}', '{"access_token": 5}', "not json"])
def test_from_json_rejects_garbage(bad):
    with pytest.raises(ValueError, match="not a serialised Token"):
        Token.from_json(bad)


def test_repr_masks_every_secret():
    t = token(id_token="id-secret")
    text = repr(t)
    for secret in ("at-secret", "rt-secret", "id-secret"):
        assert secret not in text
    assert "scopes=['a', 'b']" in text


def test_naive_expiry_is_refused():
    with pytest.raises(ValueError, match="aware"):
        Token("x", expires_at=datetime(2026, 1, 1))


def test_helpers():
    t = token()
    assert t.authorization_header == "Bearer at-secret"
    assert t.has_scopes(["a"])
    assert t.has_scopes("a, b")
    assert not t.has_scopes("ab")
    assert not t.has_scopes(["a", "c"])
    assert t.expires_in is not None
