"""``firstright rofr``: the first-refusal workflow from the command line.

``firstright rofr replay FILE [--case ID] [--json]`` replays scenario files in the format of
specs/rofr_cases.yaml. ``--json`` prints JSON Lines, one object per case:
``{"id", "decisions": [...], "outcome", "allocation"}``; without it, a table per case and the
clause-level trace of each decision.
"""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from firstright.domain.rofr.decision import Decision
from firstright.services.rofr_replay import CaseResult, dumps, iso_z, replay_file


@click.group()
def rofr() -> None:
    """Right of first refusal: replay scenarios through the state machine."""


@rofr.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--case", "case_id", metavar="ID", help="Replay only this case.")
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, one object per case.")
def replay(file: str, case_id: str | None, as_json: bool) -> None:
    """Replay the cases of FILE and print each decision, the outcome and the allocation."""
    results = replay_file(file, case_id=case_id)
    if as_json:
        for result in results:
            click.echo(dumps(result.to_json()))
        return
    console = Console(highlight=False, soft_wrap=True, width=None if _is_tty() else 160)
    for result in results:
        _print_case(console, result)


def _is_tty() -> bool:
    return sys.stdout.isatty()


def _details(decision: Decision) -> str:
    parts = []
    for name in ("deadline", "closing_deadline", "release_until"):
        value = getattr(decision, name)
        if value is not None:
            parts.append(f"{name}={iso_z(value)}")
    for name in ("cycle", "baseline_price", "timely", "holder_quantity", "released_quantity"):
        value = getattr(decision, name)
        if value is not None:
            parts.append(f"{name}={str(value).lower() if isinstance(value, bool) else value}")
    if decision.missing:
        parts.append("missing=" + ",".join(decision.missing))
    if decision.needs_review:
        parts.append("needs_review")
    return " ".join(parts)


def _print_case(console: Console, result: CaseResult) -> None:
    allocation = ", ".join(f"{p}: {q}" for p, q in result.allocation.items()) or "-"
    table = Table(
        title=f"{result.id} ({result.main_request_id}): {result.outcome.value}  "
        f"allocation {allocation}",
        title_justify="left",
    )
    for column in ("#", "t", "request", "event", "state", "gate", "note", "details"):
        table.add_column(column, overflow="fold")
    for index, d in enumerate(result.decisions, 1):
        gate = (
            Text(d.gate.value, style="green" if d.gate.value == "APPROVE" else "red")
            if d.gate
            else Text("")
        )
        table.add_row(
            str(index),
            iso_z(d.t),
            d.request_id,
            d.via.value if d.via else d.event,
            d.state.value,
            gate,
            d.note_code or "",
            _details(d),
        )
    console.print(table)
    console.print("trace:")
    for index, d in enumerate(result.decisions, 1):
        for step_no, e in enumerate(d.trace):
            lead = f"  {index:>2}." if step_no == 0 else "     +"
            console.print(
                f"{lead} [{e.clause_id}] {','.join(e.rule_ids)} -> {e.result}: {e.reason}",
                markup=False,
            )
            if e.inputs:
                shown = ", ".join(f"{k}={v}" for k, v in e.inputs.items())
                console.print(f"         inputs: {shown}", markup=False)
            for line in e.comparison:
                console.print(f"         compare: {line}", markup=False)
            if e.counterfactual and step_no == 0:
                console.print(f"         holder could have: {e.counterfactual}", markup=False)
    console.print()


from firstright.cli.rofr_desk import register as _register_desk  # noqa: E402

_register_desk(rofr)
