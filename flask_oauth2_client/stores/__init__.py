"""Token stores: where tokens are kept between requests.

``OAUTH2_TOKEN_STORE`` takes a short name (``"session"``, ``"memory"``, ``"sql"``, ``"redis"``), a
dotted import path of a
:class:`TokenStore` subclass (``"myapp.tokens:MyStore"`` or ``"myapp.tokens.MyStore"``), or an
instance. An instance is used as it is: ``OAUTH2_TOKEN_STORE_URL`` and
``OAUTH2_TOKEN_ENCRYPTION_KEYS`` do not apply to it (give it its own cipher); setting the keys
with an instance is warned about at ``init_app``.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigurationError
from ..errors import OAuth2Warning
from ..errors import warn
from .base import KeyedLocks
from .base import TokenStore
from .memory import MemoryTokenStore

__all__ = ["BUILTIN_STORES", "KeyedLocks", "MemoryTokenStore", "TokenStore", "create_store"]

BUILTIN_STORES = {
    "memory": "flask_oauth2_client.stores.memory:MemoryTokenStore",
    "session": "flask_oauth2_client.stores.session:SessionTokenStore",
    "sql": "flask_oauth2_client.stores.sql:SQLTokenStore",
    "redis": "flask_oauth2_client.stores.redis:RedisTokenStore",
}


def create_store(spec: Any, **options: Any) -> TokenStore:
    """Build the store named by *spec* (see the module docstring), passing *options* to its
    :meth:`TokenStore.from_config`."""
    if isinstance(spec, TokenStore):
        if options.get("cipher") is not None:
            warn(
                f"OAUTH2_TOKEN_ENCRYPTION_KEYS is ignored: the token store is a {type(spec).__name__} instance, "
                "which is used as it is; give it its own cipher (cipher=TokenCipher(keys)) and remove the setting",
                OAuth2Warning,
            )
        return spec
    if isinstance(spec, type) and issubclass(spec, TokenStore):
        return spec.from_config(**options)
    if not isinstance(spec, str) or not spec:
        raise ConfigurationError("OAUTH2_TOKEN_STORE must be a store name, an import path or a TokenStore")
    path = BUILTIN_STORES.get(spec, spec)
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attr:
        known = ", ".join(sorted(BUILTIN_STORES))
        raise ConfigurationError(f"OAUTH2_TOKEN_STORE: unknown store {spec!r}; use one of {known} or an import path")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        if spec in BUILTIN_STORES:
            raise
        raise ConfigurationError(f"OAUTH2_TOKEN_STORE: cannot import {spec!r} ({exc})") from None
    if not (isinstance(target, type) and issubclass(target, TokenStore)):
        raise ConfigurationError(f"OAUTH2_TOKEN_STORE: {spec!r} is not a TokenStore subclass")
    return target.from_config(**options)
