"""The ``firstright`` command. Sub-commands live in their own modules and load on first use,
so ``firstright check`` does not pay for importing the gateway or DuckDB."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from firstright import __version__
from firstright.cli.exit_codes import run_with_exit_codes

# name -> "module:attribute"; each attribute is a click.Command or click.Group.
COMMANDS: dict[str, str] = {
    "check": "firstright.cli.check:check",
    "schema": "firstright.cli.schema:schema",
    "place": "firstright.cli.place:place",
    "demo": "firstright.cli.demo:demo",
    "whatif": "firstright.cli.whatif:whatif",
    "db": "firstright.cli.db:db",
    "keys": "firstright.cli.keys:keys",
    "rofr": "firstright.cli.rofr:rofr",
    "serve": "firstright.cli.serve:serve",
    "ledger": "firstright.cli.ledger:ledger",
    "settle": "firstright.cli.settle:settle",
    "sim-upstream": "firstright.cli.sim_upstream:sim_upstream",
}


class LazyGroup(click.Group):
    """A group whose sub-commands are imported only when named (or when help lists them)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command), target
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="firstright")
def cli() -> None:
    """firstright: placement, first refusal, gateway and settlement under AI deals."""


def main(argv: list[str] | None = None) -> Any:
    return run_with_exit_codes(cli, argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    main()
