"""Validation of the ``next`` URL: the library only ever redirects within the app's own origin."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["safe_next"]

#: Control characters (C0 and DEL) and backslashes: never in a ``next`` that is kept.
_REFUSED_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


def safe_next(value: object, default: str) -> str:
    """*value* when it is a path on this site, else *default*.

    Accepted: a path starting with a single ``/`` (with optional query and fragment). Refused: any
    scheme or host (``https://evil``, ``https:evil``, ``javascript:...``), scheme-relative URLs
    (``//evil``), backslashes (``/\\evil``, which browsers read as ``//evil``), and control
    characters (browsers drop tabs and newlines, which can turn ``/\\t/evil`` into ``//evil``).
    """
    if not isinstance(value, str) or not value:
        return default
    if _REFUSED_CHARS.search(value):
        return default
    if not value.startswith("/") or value.startswith("//"):
        return default
    try:
        parts = urlsplit(value)
    except ValueError:
        return default
    if parts.scheme or parts.netloc:
        return default
    return value
