"""The one place that maps errors to exit codes (DESIGN.md §5).

0 ok · 1 invalid input or a rule said no · 2 usage error · 3 runtime failure (storage, network).
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from firstright.errors import FirstrightError, SourceError, ValidationFailed

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_RUNTIME = 3


def report(error: FirstrightError) -> None:
    """Print an error to stderr, one line per located problem."""
    if isinstance(error, ValidationFailed):
        for problem in error.problems:
            click.echo(problem.render(), err=True)
    elif isinstance(error, SourceError):
        click.echo(error.problem.render(), err=True)
    else:
        click.echo(f"error: {error.message}", err=True)


def run_with_exit_codes(command: click.Command, argv: list[str]) -> NoReturn:
    try:
        result = command.main(args=argv, prog_name="firstright", standalone_mode=False)
        if isinstance(result, int):  # click returns the code of --help/--version this way
            sys.exit(result)
    except FirstrightError as error:
        report(error)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_RUNTIME)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as usage:
        usage.show()
        sys.exit(EXIT_USAGE)
    except BrokenPipeError:  # e.g. `firstright ... | head`
        sys.exit(EXIT_OK)
    sys.exit(EXIT_OK)
