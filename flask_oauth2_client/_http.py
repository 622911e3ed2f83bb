"""HTTP plumbing shared by every request to a provider: one pooled session per provider, answers
read with a size cap, and the one careful JSON/form decoder (no repeated members, no absurd
nesting). No Flask import."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from typing import NamedTuple
from urllib.parse import parse_qsl

import requests

from .errors import ProviderError
from .errors import ProviderUnavailable

__all__ = ["MAX_RESPONSE_BYTES", "Answer", "decode_body", "exchange", "new_session", "printable", "send"]

#: Token, metadata and JWKS answers larger than this are refused (SECURITY.md P-24).
MAX_RESPONSE_BYTES = 1024 * 1024


class _TooLarge(Exception):
    pass


def new_session() -> requests.Session:
    """A :class:`requests.Session` for one provider (connection pooling)."""
    session = requests.Session()
    session.headers["Accept"] = "application/json"
    session.headers["User-Agent"] = "flask-oauth2-client"
    return session


class Answer(NamedTuple):
    """A provider's answer, read whole (within :data:`MAX_RESPONSE_BYTES`)."""

    status: int
    content_type: str
    body: bytes
    headers: Mapping[str, str]


def send(
    http: requests.Session,
    method: str,
    url: str,
    *,
    timeout: float,
    what: str,
    provider: str,
    malformed: type[ProviderError],
    **options: Any,
) -> tuple[int, str, bytes]:
    """Send one request and read its answer: (status, content type, body). Redirects are never
    followed (RFC 9700 §4.12: credentials must not travel to another place).

    :raises ProviderUnavailable: network failure or timeout.
    :raises malformed: the answer is larger than :data:`MAX_RESPONSE_BYTES`.
    """
    answer = exchange(http, method, url, timeout=timeout, what=what, provider=provider, malformed=malformed, **options)
    return answer.status, answer.content_type, answer.body


def exchange(
    http: requests.Session,
    method: str,
    url: str,
    *,
    timeout: float,
    what: str,
    provider: str,
    malformed: type[ProviderError],
    **options: Any,
) -> Answer:
    """:func:`send`, with the answer's headers (a case-insensitive mapping)."""
    try:
        response = http.request(method, url, timeout=timeout, allow_redirects=False, stream=True, **options)
        with response:
            body = _read_capped(response)
            return Answer(response.status_code, response.headers.get("Content-Type", ""), body, response.headers)
    except requests.Timeout:
        raise ProviderUnavailable(f"the {what} did not answer in time", provider=provider, kind="timeout") from None
    except requests.RequestException as exc:
        raise ProviderUnavailable(
            f"the {what} could not be reached ({type(exc).__name__})", provider=provider, kind="unreachable"
        ) from None
    except _TooLarge:
        raise malformed(f"the {what} answered with more than {MAX_RESPONSE_BYTES} bytes", provider=provider) from None


def _read_capped(response: requests.Response) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdecimal() and len(declared) < 20 and int(declared) > MAX_RESPONSE_BYTES:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=65536):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def printable(value: str | None, limit: int = 200) -> str | None:
    """Providers' texts end up in pages and logs: keep them short and single-line."""
    if value is None:
        return None
    cleaned = "".join(ch if ch.isprintable() else " " for ch in value)
    return cleaned[:limit]


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


class RepeatedMember(ValueError):
    """A JSON object or form body names a member twice (RFC 6749 §3.1)."""


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise RepeatedMember(f"repeated member {printable(str(key), 40)!r}")
        result[key] = value
    return result


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")
_MAX_JSON_DEPTH = 32


def _nested_too_deep(text: str) -> bool:
    """Whether JSON nests deeper than any provider answer does. Checked before parsing so that a
    hostile answer never drives the recursive parser near the interpreter's stack limit."""
    if text.count("[") + text.count("{") <= _MAX_JSON_DEPTH:
        return False
    depth = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        depth += 1 if match.group() in "[{" else -1
        if depth > _MAX_JSON_DEPTH:
            return True
    return False


def decode_body(content_type: str, body: bytes, *, forms: bool = True) -> dict[str, Any] | None:
    """The answer as a dict, or ``None`` when it is neither a JSON object nor (with *forms*) a form
    body. Repeated members raise :class:`RepeatedMember` (a :class:`ValueError`). Some providers
    (GitHub without ``Accept``) answer the token endpoint form-encoded."""
    media = media_type(content_type)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if forms and media == "application/x-www-form-urlencoded":
        return _parse_form(text)
    try:
        data = None if _nested_too_deep(text) else json.loads(text, object_pairs_hook=_reject_duplicates)
    except RepeatedMember:
        raise
    except (ValueError, RecursionError):  # not JSON, a 5000-digit number...
        data = None
    if forms and data is None and media == "text/plain":
        return _parse_form(text)
    return data if isinstance(data, dict) else None


def _parse_form(text: str) -> dict[str, Any] | None:
    try:
        pairs = parse_qsl(text.strip(), keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return None
    return _reject_duplicates(list(pairs)) if pairs else None


def json_object(body: bytes, content_type: str = "application/json") -> Mapping[str, Any] | None:
    """A JSON object answer (metadata, JWKS, UserInfo), or ``None`` when it is not one."""
    try:
        return decode_body(content_type, body, forms=False)
    except ValueError:
        return None
