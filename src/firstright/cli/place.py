"""``firstright place REQUESTS.yaml [--contracts DIR] [--at ISO-TIME] [--json]``.

Places one request or a list (``requests: [...]``) on the cheapest offers the contracts allow
and prints, per request, the choice, the runners-up and why they lost, and the clause trace.
``--json`` prints one JSON object for a single request and JSON Lines (one answer per line) for
a list. Exit 1 when a request cannot be placed (after printing every answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import click
import orjson

from firstright.domain.money import format_usd, round_to_micros
from firstright.errors import NoEligibleOffer, Problem, ValidationFailed

if TYPE_CHECKING:
    from firstright.domain.placement.answer import PlacementAnswer


def _parse_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise click.BadParameter("give a time zone, e.g. 2025-03-01T00:00:00Z")
    return parsed


@click.command()
@click.argument("requests_file", metavar="REQUESTS.yaml", type=click.Path(dir_okay=False))
@click.option(
    "--contracts",
    "contracts_dir",
    type=click.Path(exists=True),
    help="Contract bundles (file or directory); without it no contract applies.",
)
@click.option("--at", "at_text", help="Decision instant for requests without 'at' (ISO 8601).")
@click.option("--json", "as_json", is_flag=True, help="JSON (JSON Lines for a list).")
def place(
    requests_file: str, contracts_dir: str | None, at_text: str | None, as_json: bool
) -> None:
    """Place GPU capacity requests on real cloud offers under the contracts, with a trace."""
    from firstright.adapters.yaml_source import load_yaml_file, validate_document  # noqa: PLC0415
    from firstright.domain.placement.request import (  # noqa: PLC0415
        PlacementRequest,
        PlacementRequestFile,
        is_request_list,
    )
    from firstright.services.placement import place_requests  # noqa: PLC0415

    at = _parse_at(at_text)
    doc = load_yaml_file(requests_file)
    many = is_request_list(doc.data)
    if many:
        requests = list(validate_document(doc, PlacementRequestFile).requests)
        prefix: tuple[str | int, ...] = ("requests",)
    else:
        requests = [validate_document(doc, PlacementRequest)]
        prefix = ()
    if at is None:
        missing = [
            doc.problem(
                (*prefix, i) if many else (),
                "no 'at' in this request and no --at given",
            )
            for i, request in enumerate(requests)
            if request.at is None
        ]
        if missing:
            raise ValidationFailed(missing)

    contracts = None
    if contracts_dir is not None:
        from firstright.services.contract_loader import load_contracts  # noqa: PLC0415

        contracts = load_contracts([Path(contracts_dir)])
        if len(contracts) == 0:
            raise ValidationFailed([Problem(contracts_dir, "no contract bundle found")])

    answers = place_requests(requests, contracts=contracts, at=at)
    if as_json:
        option = 0 if many else orjson.OPT_INDENT_2
        for answer in answers:
            click.echo(orjson.dumps(answer.to_json(), option=option).decode())
    else:
        _render(answers)
    unplaced = [a for a in answers if not a.placed]
    if unplaced:
        first = unplaced[0]
        raise NoEligibleOffer(
            f"{len(unplaced)} of {len(answers)} requests could not be placed "
            f"(first: {first.request_id}: {first.reason})",
            tuple(first.candidates[0].clause_ids) if first.candidates else (),
        )


def _render(answers: Sequence[PlacementAnswer]) -> None:
    """A readable table per request, then its trace, first-refusal notice and counterfactual."""
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = 160
    for answer in answers:
        data = answer.to_json()
        req = data["request"]
        title = (
            f"{data['id']} — {req['party']} {req['workload']}: {req['num_nodes']} x "
            f"{req['count']} {req['accelerator']}{' spot' if req['use_spot'] else ''}, "
            f"{req['hours']} h at {data['at']}"
        )
        table = Table(title=title, title_justify="left", show_lines=False)
        for column in ("", "provider", "region", "instance", "$/h (all nodes)", "total $", "why"):
            table.add_column(column)
        for row in data["candidates"]:
            mark = {"chosen": "✔", "excluded": "✘"}.get(row["outcome"], " ")
            table.add_row(
                mark,
                row["provider"],
                row["region"] + (f" / {row['zone']}" if row["zone"] else ""),
                row["instance_type"],
                row["hourly_price_usd"],
                format_usd(round_to_micros(Decimal(row["total_usd"]))),
                "chosen" if row["outcome"] == "chosen" else row["reason"],
            )
        console.print(table)
        if not answer.placed:
            console.print(f"  [bold red]not placed[/]: {answer.reason}")
        for step in answer.trace:
            console.print(f"  trace: {step.render()}", markup=False)
        refusal = data["first_refusal"]
        if refusal is not None:
            terms = refusal["terms"]
            console.print(
                f"  first refusal due to {refusal['holder']} ({refusal['clause_id']}): notify "
                f"{terms['quantity_gpus']} {terms['gpu_type']} in {terms['region']} from "
                f"{terms['offeror']} at {terms['price_per_gpu_hour']} $/GPU-h, start "
                f"{terms['start']}, {terms['commit_months']} months; {refusal['counterfactual']}",
                markup=False,
            )
            best = refusal["holder_best_offer"]
            if best is not None:
                console.print(
                    f"  {refusal['holder']}'s own best list offer: {best['provider']} "
                    f"{best['region']} {best['instance_type']} at {best['price_per_gpu_hour']} "
                    f"$/GPU-h (needs {best['discount_needed_per_gpu_hour']} off to match)",
                    markup=False,
                )
        if data["counterfactual"] is not None:
            console.print(
                f"  counterfactual: {data['counterfactual']['explanation']}", markup=False
            )
        console.print()
    from firstright.adapters.catalogs import load_market  # noqa: PLC0415

    for correction in load_market().corrections:
        console.print(f"catalog correction: {correction.describe()}", markup=False)
