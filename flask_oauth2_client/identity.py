"""Who is the current user? The default answer, used when no ``user_id_loader`` is registered:
Flask-Login's ``current_user`` when Flask-Login is set up and someone is logged in, else a random
id kept in the session (so each browser gets its own tokens)."""

from __future__ import annotations

import secrets
import sys

from flask import current_app

from . import _session

__all__ = ["default_user_id", "rotate_session_user_id"]


def default_user_id(*, create: bool) -> str | None:
    """The current user's id. With *create*, a random session id is made when there is none."""
    user_id = _flask_login_user_id()
    if user_id is not None:
        return user_id
    uid = _session.peek().get("u")
    if isinstance(uid, str):
        return uid
    if not create:
        return None
    return _new_session_user_id()


def rotate_session_user_id() -> tuple[str | None, str] | None:
    """Give the browser a new random user id, as after every login with the default identity,
    so that an id planted in the browser by someone else (session fixation) never gets the
    tokens. Returns ``(old id, new id)``, or ``None`` when a Flask-Login user is signed in (their
    id is not ours to change)."""
    if _flask_login_user_id() is not None:
        return None
    old = _session.peek().get("u")
    return (old if isinstance(old, str) else None), _new_session_user_id()


def _new_session_user_id() -> str:
    uid = "session:" + secrets.token_urlsafe(16)
    _session.bucket()["u"] = uid
    _session.changed()
    return uid


def _flask_login_user_id() -> str | None:
    if "flask_login" not in sys.modules or not hasattr(current_app, "login_manager"):
        return None
    from flask_login import current_user

    if current_user is None or not current_user.is_authenticated:
        return None
    user_id = current_user.get_id()
    return None if user_id is None else str(user_id)
