"""``aiots gateway``: generate the Envoy config and run Envoy in front of the four services."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click

from aiots.services.common.settings import get_settings


@click.command(name="gateway")
@click.option("--print-config", is_flag=True, help="Print the generated Envoy YAML and exit.")
@click.option(
    "--openapi",
    "openapi_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the OpenAPI 3 document to FILE ('-' for stdout) and exit.",
)
@click.option("--base-id", type=int, default=None, help="Envoy --base-id (distinct per Envoy on a host).")
@click.option("--port", type=int, default=None, help="Listener port (default: gateway.port, 8000).")
def cli(print_config: bool, openapi_file: Path | None, base_id: int | None, port: int | None) -> None:
    """Envoy with REST/JSON transcoding, JWT auth, roles and rate limits (Ctrl-C stops it)."""
    from aiots.gateway import openapi, render, run

    settings = get_settings()
    updates: dict[str, int] = {}
    if base_id is not None:
        updates["base_id"] = base_id
    if port is not None:
        updates["port"] = port
    if updates:
        settings = settings.model_copy(update={"gateway": settings.gateway.model_copy(update=updates)})
    if openapi_file is not None:
        text = json.dumps(openapi.build(), indent=2) + "\n"
        if str(openapi_file) == "-":
            click.echo(text, nl=False)
        else:
            openapi_file.write_text(text)
            click.echo(f"wrote {openapi_file}", err=True)
        return
    if print_config:
        m, _ = run.prepare(settings)
        click.echo(render.to_yaml(m), nl=False)
        return
    sys.exit(asyncio.run(run.run(settings)))
