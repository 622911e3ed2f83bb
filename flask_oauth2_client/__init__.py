"""flask-oauth2-client: a correct, secure and fast OAuth 2.0 / OpenID Connect client for Flask."""

from __future__ import annotations

from .errors import AuthorizationError
from .errors import CallbackError
from .errors import ConfigurationError
from .errors import DiscoveryError
from .errors import IDTokenError
from .errors import InvalidTokenResponse
from .errors import OAuth2Error
from .errors import OAuth2Warning
from .errors import ParError
from .errors import ProviderError
from .errors import ProviderUnavailable
from .errors import ReauthorizationRequired
from .errors import StateError
from .errors import StoreError
from .errors import TokenError
from .extension import OAuth2Client
from .signals import authorization_failed
from .signals import token_obtained
from .signals import token_refreshed
from .signals import token_revoked
from .stores import MemoryTokenStore
from .stores import TokenStore
from .token import Token

__all__ = [
    "AuthorizationError",
    "CallbackError",
    "ConfigurationError",
    "DiscoveryError",
    "IDTokenError",
    "InvalidTokenResponse",
    "MemoryTokenStore",
    "OAuth2Client",
    "OAuth2Error",
    "OAuth2Warning",
    "ParError",
    "ProviderError",
    "ProviderUnavailable",
    "ReauthorizationRequired",
    "StateError",
    "StoreError",
    "Token",
    "TokenError",
    "TokenStore",
    "authorization_failed",
    "token_obtained",
    "token_refreshed",
    "token_revoked",
]
