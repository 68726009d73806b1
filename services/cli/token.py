"""``aiots token``: issue a JWT signed with the development key (see aiots.gateway.tokens)."""

from __future__ import annotations

from pathlib import Path

import click

from aiots.services.common.settings import get_settings

ROLES = ("viewer", "trader", "admin")


@click.command(name="token")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True)
@click.option(
    "--ttl", default="1h", show_default=True, help="Lifetime: 90s, 15m, 1h; at most gateway.jwt_max_lifetime_s (24h)."
)
@click.option("--subject", "--sub", default="dev", show_default=True, help="The 'sub' claim (audit log).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Use the dev key of the stack started with 'aiots up --data-dir DIR' (keys in DIR/keys).",
)
def cli(role: str, ttl: str, subject: str, data_dir: Path | None) -> None:
    """Print a bearer token for the gateway: curl -H "Authorization: Bearer $(aiots token)"."""
    from aiots.gateway import tokens

    gw = get_settings().gateway
    if data_dir is not None:
        gw = gw.model_copy(update={"dev_key_dir": data_dir / "keys"})
    if gw.jwks_file is not None:
        raise click.ClickException(
            "gateway.jwks_file is set: tokens must come from that identity provider, not the dev key"
        )
    try:
        ttl_s = tokens.parse_ttl(ttl)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from exc
    if ttl_s > gw.jwt_max_lifetime_s:
        raise click.BadParameter(
            f"{ttl} is longer than the gateway accepts ({gw.jwt_max_lifetime_s} s, gateway.jwt_max_lifetime_s; "
            "AIOTS_GATEWAY__JWT_MAX_LIFETIME_S raises it)",
            param_hint="--ttl",
        )
    tokens.ensure_jwks(gw)
    click.echo(tokens.issue_token(gw, role=role, subject=subject, ttl_s=ttl_s))
