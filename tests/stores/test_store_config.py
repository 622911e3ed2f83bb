"""How the extension builds its store: the options ``from_config`` receives (and that its
docstring lists), and the warning for encryption keys that a store instance does not use."""

from __future__ import annotations

import os
import re
import warnings
from typing import Any
from typing import ClassVar

import pytest
from cryptography.fernet import Fernet

import flask_oauth2_client
from flask_oauth2_client import OAuth2Client
from flask_oauth2_client.errors import OAuth2Warning
from flask_oauth2_client.stores import MemoryTokenStore
from flask_oauth2_client.stores import TokenStore

PACKAGE_DIR = os.path.dirname(os.path.abspath(flask_oauth2_client.__file__))


class RecordingStore(MemoryTokenStore):
    """A store that keeps the options the extension built it with."""

    received: ClassVar[dict[str, Any]] = {}

    @classmethod
    def from_config(cls, **options: Any) -> TokenStore:
        cls.received = dict(options)
        return cls()


def test_from_config_docstring_lists_every_option_the_extension_passes(make_app: Any) -> None:
    app = make_app(OAUTH2_TOKEN_STORE=RecordingStore, OAUTH2_HTTP_TIMEOUT=4, OAUTH2_REFRESH_LOCK_TIMEOUT=5)
    options = RecordingStore.received
    assert set(options) == {"url", "cipher", "instance_path", "prefix", "lock_ttl"}
    assert options["url"] is None
    assert options["cipher"] is None
    assert options["instance_path"] == app.instance_path
    assert options["prefix"] == "oauth2:"
    assert options["lock_ttl"] == max(5, 3 * 4 + 5)  # as the docstring says
    documented = set(re.findall(r"^\s*``(\w+)``$", TokenStore.from_config.__doc__ or "", re.MULTILINE))
    assert documented == set(options)


def key_warnings(caught: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    return [w for w in caught if issubclass(w.category, OAuth2Warning) and "ENCRYPTION_KEYS" in str(w.message)]


@pytest.mark.parametrize("given_as", ["argument", "config"])
def test_encryption_keys_with_a_store_instance_warn(given_as: str, make_app: Any) -> None:
    key = Fernet.generate_key().decode()
    store = MemoryTokenStore()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if given_as == "argument":
            app = make_app(oauth=OAuth2Client(store=store), OAUTH2_TOKEN_ENCRYPTION_KEYS=[key])
        else:
            app = make_app(OAUTH2_TOKEN_STORE=store, OAUTH2_TOKEN_ENCRYPTION_KEYS=[key])
    (warning,) = key_warnings(caught)
    message = str(warning.message)
    assert "OAUTH2_TOKEN_ENCRYPTION_KEYS is ignored" in message
    assert "MemoryTokenStore" in message
    assert "cipher" in message  # says what to do instead
    assert key not in message
    assert not os.path.abspath(warning.filename).startswith(PACKAGE_DIR)  # points at the app's code
    assert app.extensions["oauth2_client"].store is store  # the instance is used as it is


@pytest.mark.parametrize(
    "config",
    [
        {"OAUTH2_TOKEN_STORE": "memory", "OAUTH2_TOKEN_ENCRYPTION_KEYS": "KEY"},  # built with the keys
        {"OAUTH2_TOKEN_STORE": RecordingStore, "OAUTH2_TOKEN_ENCRYPTION_KEYS": "KEY"},  # a class: built too
        {"OAUTH2_TOKEN_STORE": MemoryTokenStore()},  # an instance, no keys set
    ],
)
def test_no_warning_when_the_keys_are_used_or_absent(config: dict[str, Any], make_app: Any) -> None:
    if config.get("OAUTH2_TOKEN_ENCRYPTION_KEYS") == "KEY":
        config = {**config, "OAUTH2_TOKEN_ENCRYPTION_KEYS": [Fernet.generate_key().decode()]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_app(**config)
    assert key_warnings(caught) == []
