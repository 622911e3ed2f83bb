"""The one key under which the library keeps its data in Flask's session.

``session["_oauth2"]`` is a dict with:

- ``"p"``: pending authorizations (see :mod:`.pending`);
- ``"u"``: the random user id of the default identity (see :mod:`.identity`);
- ``"t"``: tokens of the session store (see :mod:`.stores.session`);
- ``"d"``: when a login last completed, per provider (a guard against redirect loops).
"""

from __future__ import annotations

from typing import Any

from flask import session

SESSION_KEY = "_oauth2"


def bucket() -> dict[str, Any]:
    """The library's dict in the session, created on demand. Call :func:`changed` after writing."""
    data = session.get(SESSION_KEY)
    if not isinstance(data, dict):
        data = {}
        session[SESSION_KEY] = data
    return data


def peek() -> dict[str, Any]:
    """The library's dict for reading only; an empty dict (not saved) when there is none."""
    data = session.get(SESSION_KEY)
    return data if isinstance(data, dict) else {}


def changed() -> None:
    session.modified = True
