"""The legacy implicit grant (RFC 6749 §4.2), opt-in with ``grant_type = "implicit"``.

The provider puts the token in the URL fragment, which never reaches the server: the callback
serves a page whose script reads the fragment, removes it from the address bar and the history,
and posts its fields with the state to ``/oauth2/<provider>/implicit`` as a form. There the state is
verified (single use), the error fields handled and the token validated and stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from werkzeug.wrappers import Response

if TYPE_CHECKING:
    from .extension import _AppState

__all__ = ["page", "receive"]


def page(provider: str) -> Response:
    """The page whose script posts the fragment back."""
    raise NotImplementedError


def receive(state: _AppState, provider: str) -> Response:
    """Verify and store the posted fragment."""
    raise NotImplementedError
