"""Turning errors into short 4xx/5xx pages (or JSON for API clients): one table, no traceback,
no secret. Also the security headers of every response the library produces (SECURITY.md P-22)."""

from __future__ import annotations

from typing import TypeVar

from flask import Response
from flask import jsonify
from flask import render_template
from flask import request
from werkzeug.wrappers import Response as BaseResponse

from .errors import AuthorizationError
from .errors import CallbackError
from .errors import DiscoveryError
from .errors import IDTokenError
from .errors import InvalidTokenResponse
from .errors import OAuth2Error
from .errors import ParError
from .errors import ProviderUnavailable
from .errors import ReauthorizationRequired
from .errors import StoreError
from .errors import TokenError

ResponseT = TypeVar("ResponseT", bound=BaseResponse)

__all__ = ["error_response", "no_store", "status_and_code", "wants_json"]

_AUTHORIZATION_STATUS = {"access_denied": 403, "temporarily_unavailable": 503, "server_error": 502}
_UNAVAILABLE_STATUS = {"timeout": 504, "unavailable": 503, "unreachable": 502, "server_error": 502}


def no_store(response: ResponseT) -> ResponseT:
    """Mark *response* as neither cacheable nor leaking its URL through ``Referer``."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def wants_json() -> bool:
    """``True`` when the client prefers JSON to HTML (``Accept: application/json``)."""
    accept = request.accept_mimetypes
    return accept.best_match(["text/html", "application/json"]) == "application/json" and (
        accept["application/json"] > accept["text/html"]
    )


def status_and_code(error: OAuth2Error) -> tuple[int, str]:
    """The HTTP status and the short error code shown for *error* (SECURITY.md invariant 1)."""
    if isinstance(error, AuthorizationError):
        return _AUTHORIZATION_STATUS.get(error.error, 400), error.error
    if isinstance(error, CallbackError):
        return (401 if error.reason == "login_required" else 400), error.reason
    if isinstance(error, TokenError):
        # invalid_grant at the callback: the code was refused; the user can simply try again.
        return (400 if error.error == "invalid_grant" else 502), error.error
    if isinstance(error, ProviderUnavailable):
        code = "provider_timeout" if error.kind == "timeout" else "provider_unavailable"
        return _UNAVAILABLE_STATUS.get(error.kind, 502), code
    if isinstance(error, InvalidTokenResponse):
        return 502, "invalid_token_response"
    if isinstance(error, IDTokenError):
        return 502, error.reason
    if isinstance(error, DiscoveryError):
        return 502, "invalid_provider_metadata"
    if isinstance(error, ParError):
        return 502, "pushed_authorization_failed"
    if isinstance(error, StoreError):
        return 503, "store_unavailable"
    if isinstance(error, ReauthorizationRequired):
        return 401, "reauthorization_required"
    return 502, "oauth2_error"


def error_response(error: OAuth2Error, status: int | None = None) -> Response:
    """A short error page (JSON when asked for) for *error*."""
    default_status, code = status_and_code(error)
    status = status or default_status
    description = error.message
    if wants_json():
        response = jsonify(error=code, error_description=description)
    else:
        response = Response(
            render_template(
                "oauth2/error.html", status=status, error=code, description=description, provider=error.provider
            ),
            mimetype="text/html",
        )
    response.status_code = status
    if status in (503, 504):
        response.headers["Retry-After"] = "30"
    return no_store(response)
