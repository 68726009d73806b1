"""``aiots``: one command for the whole system.

Subcommands live in small modules of this package, each exposing a click command or group
named ``cli``; they are loaded lazily so ``aiots --help`` stays fast and one broken module never
breaks the others. Exit codes: 0 ok, 1 error (one clear line on stderr), 2 usage error,
130 interrupted.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

# command name -> module (relative to aiots.services.cli) exposing ``cli``
COMMANDS: dict[str, str] = {
    "up": "up",
    "serve": "serve",
    "gateway": "gateway",
    "token": "token",
    "db": "db",
    "collect": "collect",
    "backfill": "backfill",
    "replay": "replay",
    "signals": "signals",
    "quote": "quote",
    "chain": "chain",
    "greeks": "greeks",
    "portfolio": "portfolio",
    "backtest": "backtest",
    "settings": "settings",
}


class LazyGroup(click.Group):
    """Loads subcommand modules on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        mod_name = COMMANDS.get(cmd_name)
        if mod_name is None:
            return None
        try:
            mod = importlib.import_module(f"aiots.services.cli.{mod_name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(f"cli.{mod_name}"):

                @click.command(name=cmd_name, help="(not available in this build)")
                def _missing() -> None:
                    raise click.ClickException(f"'aiots {cmd_name}' is not available in this build")

                return _missing
            raise
        cmd: Any = mod.cli
        return cmd  # type: ignore[no-any-return]


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """AI-OTS: options analytics and live trade signals."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main() -> None:
    """Entry point: one clear line on errors unless --debug."""
    debug = "--debug" in sys.argv
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        exc.show()
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        click.echo(f"error: {exc} (run with --debug for details)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
