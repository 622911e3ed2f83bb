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


@oauth2_cli.command("providers")
def providers() -> None:
    """List the configured providers with their grant and endpoints.

    The configuration was already checked when the app started (init_app); this shows what it
    says, without contacting any provider.
    """
    from .extension import _state

    state = _state()
    if not state.settings.providers:
        click.echo("No providers: set OAUTH2_PROVIDERS.")
        return
    for name, cfg in state.settings.providers.items():
        click.echo(f"{name}  ({cfg.grant_type}, client {cfg.client_id}, auth {cfg.client_auth_method})")
        for label, value in (
            ("authorize", cfg.authorize_url),
            ("token", cfg.token_url),
            ("userinfo", cfg.userinfo_url),
            ("revocation", cfg.revocation_url),
            ("issuer", cfg.issuer),
        ):
            if value:
                click.echo(f"  {label:<11}{value}")
        click.echo(f"  {'scopes':<11}{' '.join(cfg.scopes) or '(none)'}")
        if cfg.grant_type in ("authorization_code", "implicit"):
            click.echo(f"  {'pkce':<11}{'S256' if cfg.pkce and cfg.grant_type != 'implicit' else 'off'}")
    click.echo(f"Configuration OK: {len(state.settings.providers)} provider(s), store {state.store!r}.")


@oauth2_cli.command("token")
@click.argument("provider")
@click.option("--scope", "scopes", default=None, help="Scopes to ask for instead of the configured ones.")
@click.option("--show", is_flag=True, help="Also print the access token itself.")
def token(provider: str, scopes: str | None, show: bool) -> None:
    """Fetch a client_credentials token for PROVIDER and print its expiry and scopes."""
    from .errors import OAuth2Error
    from .extension import _state
    from .token import parse_scope

    state = _state()
    if provider not in state.settings.providers:
        raise click.UsageError(f"no provider named {provider!r}; see 'flask oauth2 providers'")
    try:
        fetched = state.extension.client_credentials_token(provider, parse_scope(scopes) or None)
    except OAuth2Error as exc:
        raise click.ClickException(str(exc)) from None
    expiry = "unknown" if fetched.expires_at is None else fetched.expires_at.isoformat(timespec="seconds")
    click.echo(f"token type: {fetched.token_type}")
    click.echo(f"expires at: {expiry}")
    click.echo(f"scopes:     {' '.join(sorted(fetched.scopes)) or '(none)'}")
    if show:
        click.echo(f"token:      {fetched.access_token}")


@oauth2_cli.command("device-login")
@click.argument("provider")
@click.option(
    "--user-id",
    default=None,
    help="Store the token for this user id (as if they had signed in on the web). Default: the application's token.",
)
@click.option("--scope", "scopes", default=None, help="Scopes to ask for instead of the configured ones.")
def device_login(provider: str, user_id: str | None, scopes: str | None) -> None:
    """Sign in to PROVIDER with the device authorization grant (RFC 8628).

    Shows a code and an address: open the address on any device with a browser, enter the code
    and approve. Meanwhile this command polls the provider, then stores the token.
    """
    from .errors import OAuth2Error
    from .extension import _state
    from .token import parse_scope

    state = _state()
    if provider not in state.settings.providers:
        raise click.UsageError(f"no provider named {provider!r}; see 'flask oauth2 providers'")
    oauth = state.extension
    chosen = parse_scope(scopes) or None
    try:
        started = oauth.device_authorization(provider, scopes=chosen)
        click.echo(f"To sign in, open {started.verification_uri}")
        click.echo(f"and enter the code: {started.user_code}")
        if started.verification_uri_complete:
            click.echo(f"(or open {started.verification_uri_complete} directly)")
        click.echo(f"Waiting for your approval (the code expires in {int(started.expires_in // 60)} min)...")
        fetched = oauth.device_token(provider, started, user_id=user_id, scopes=chosen)
    except OAuth2Error as exc:
        raise click.ClickException(_device_failure(exc)) from None
    owner = f"user {user_id!r}" if user_id is not None else "the application"
    expiry = "unknown" if fetched.expires_at is None else fetched.expires_at.isoformat(timespec="seconds")
    click.echo(f"Signed in: token stored for {owner} (expires at {expiry}, scopes {' '.join(sorted(fetched.scopes))}).")


def _device_failure(error: Exception) -> str:
    code = getattr(error, "error", None)
    if code == "access_denied":
        return "The request was denied at the provider; nothing was stored."
    if code == "expired_token":
        return "The code expired before it was approved; run the command again."
    return str(error)
