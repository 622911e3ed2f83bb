"""Validation of the ``next`` URL: the library only ever redirects within the app's own origin."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["safe_next"]


def safe_next(value: object, default: str) -> str:
    """*value* when it is a path on this site, else *default*.

    Accepted: a path starting with a single ``/`` (with optional query and fragment). Refused: any
    scheme or host (``https://evil``, ``https:evil``, ``javascript:...``), scheme-relative URLs
    (``//evil``), backslashes (``/\\evil``, which browsers read as ``//evil``), and control
    characters (browsers drop tabs and newlines, which can turn ``/\\t/evil`` into ``//evil``).
    """
    if not isinstance(value, str) or not value:
        return default
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value) or "\\" in value:
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
