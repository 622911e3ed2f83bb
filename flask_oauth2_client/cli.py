"""``flask oauth2 ...`` commands."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

__all__ = ["oauth2_cli"]

oauth2_cli = AppGroup("oauth2", help="flask-oauth2-client commands.")


@oauth2_cli.command("init-db")
def init_db() -> None:
    """Create the token table of the 'sql' store (it is also created on first use)."""
    from .extension import _state

    store = _state().store
    create = getattr(store, "create_table", None)
    if create is None:
        click.echo(f"{type(store).__name__} needs no set-up.")
        return
    create()
    table = getattr(store, "table", None)
    click.echo(f"Token table {getattr(table, 'name', '?')!r} is ready ({current_app.name}).")
