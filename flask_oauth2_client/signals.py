"""Signals (blinker). The sender is the Flask app; keyword arguments as listed.

- :data:`token_obtained`: ``provider``, ``user_id``, ``token`` — after a login stored a new token.
- :data:`token_refreshed`: ``provider``, ``user_id``, ``token`` — after a refresh stored a new token.
- :data:`token_revoked`: ``provider``, ``user_id`` — after logout or :meth:`OAuth2Client.revoke`.
- :data:`authorization_failed`: ``provider``, ``error`` (an :class:`~.errors.OAuth2Error`) — once per
  failed login callback.
"""

from __future__ import annotations

from blinker import Namespace

__all__ = ["authorization_failed", "token_obtained", "token_refreshed", "token_revoked"]

_signals = Namespace()

token_obtained = _signals.signal("token-obtained")
token_refreshed = _signals.signal("token-refreshed")
token_revoked = _signals.signal("token-revoked")
authorization_failed = _signals.signal("authorization-failed")
