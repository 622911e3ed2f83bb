"""Keep authorization codes and tokens out of the development server's console.

Werkzeug's development server logs every request line, query string included, so the callback's
``GET /oauth2/demo/callback?code=...&state=...`` would print a live authorization code. The filter
below rewrites such values to ``***`` before any handler sees the record.
"""

from __future__ import annotations

import logging
import re

__all__ = ["SECRET_PARAMS", "RedactSecretsFilter", "install_werkzeug_filter", "redact"]

#: Query parameters whose values never belong in a log.
SECRET_PARAMS = ("code", "state", "access_token", "refresh_token", "id_token")

_SECRET_VALUE = re.compile(
    r"(?P<name>[?&;#](?:" + "|".join(SECRET_PARAMS) + r")=)"
    # A value ends at the next parameter, a fragment, whitespace, a quote or an ANSI colour code.
    r"[^&;#\s\"'\x1b]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """*text* with the values of :data:`SECRET_PARAMS` in query strings replaced by ``***``."""
    return _SECRET_VALUE.sub(r"\g<name>***", text)


class RedactSecretsFilter(logging.Filter):
    """A logging filter that applies :func:`redact` to the formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: leave it to the handler
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


def install_werkzeug_filter() -> None:
    """Add :class:`RedactSecretsFilter` to the ``werkzeug`` logger (once per process)."""
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(f, RedactSecretsFilter) for f in logger.filters):
        logger.addFilter(RedactSecretsFilter())
