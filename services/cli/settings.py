"""``aiots settings``: the settings in effect (secrets hidden), or the reference as Markdown."""

from __future__ import annotations

import json

import click


@click.command(name="settings")
@click.option("--markdown", is_flag=True, help="print the reference table (docs/configuration.md)")
def cli(markdown: bool) -> None:
    """Show the settings in effect as JSON (secrets hidden), or the reference table with --markdown."""
    if markdown:
        from aiots.services.common.settings_doc import markdown as table

        click.echo(table(), nl=False)
        return
    from aiots.services.common.settings import get_settings

    click.echo(json.dumps(get_settings().model_dump(mode="json"), indent=2, default=str))
