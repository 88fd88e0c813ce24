"""``firstright whatif --demand FILE --contracts A --vs B [--commitments-open] [--json]``.

Places the same demand (the format of ``firstright place``'s requests, each with ``at``) under two
sets of contracts — directories, or single version files taken to govern the whole demand — and
prints how cost, capacity share per cloud, time to capacity and money flows differ, request by
request, with the clauses that caused each difference (see ``services/whatif.py``).

    firstright whatif --demand examples/demand/msft-openai.yaml \\
        --contracts examples/contracts/msft-openai-2025-01-21.yaml \\
        --vs examples/contracts/msft-openai-2025-10-28.yaml
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import click
import orjson

BAR_WIDTH = 30


@click.command()
@click.option(
    "--demand",
    "demand_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Placement requests (default: the demo's demand).",
)
@click.option("--contracts", "side_a", required=True, type=click.Path(exists=True), help="Side A.")
@click.option("--vs", "side_b", required=True, type=click.Path(exists=True), help="Side B.")
@click.option(
    "--commitments-open",
    is_flag=True,
    help="Commitments still to be drawn in full (default: on track from outside spend).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def whatif(
    demand_file: str | None, side_a: str, side_b: str, commitments_open: bool, as_json: bool
) -> None:
    """The same demand under two contract versions: cost, cloud shares, time, causes."""
    from pathlib import Path  # noqa: PLC0415

    from firstright.services import demo_capacity  # noqa: PLC0415
    from firstright.services.whatif import compare, load_side  # noqa: PLC0415

    requests = demo_capacity.load_demand(Path(demand_file) if demand_file else None)
    result = compare(
        requests,
        load_side(side_a, requests),
        load_side(side_b, requests),
        commitments_open=commitments_open,
    ).to_json()
    if as_json:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    render(result)


def render(result: dict[str, Any]) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.markup import escape  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = 140
    a, b = result["a"], result["b"]
    console.print(f"[bold]A[/] {a['label']}\n[bold]B[/] {b['label']}\n")

    share = Table(title="Capacity share per cloud (GPUs)", title_justify="left")
    for column in ("cloud", "A", "", "B", "", "B - A"):
        share.add_column(column)
    for row in result["share"]:
        share.add_row(
            row["provider"],
            f"{row['a_pct']}%",
            _bar(row["a_pct"], "cyan"),
            f"{row['b_pct']}%",
            _bar(row["b_pct"], "magenta"),
            _signed(row["difference_pct"]) + " pp",
        )
    console.print(share)

    totals = Table(title="Totals", title_justify="left")
    for column in ("", "A", "B", "B - A"):
        totals.add_column(column, justify="right")
    totals.add_row(
        "cost", _usd(a["total_usd"]), _usd(b["total_usd"]), _usd(result["cost_difference_usd"])
    )
    totals.add_row(
        "days waiting for capacity",
        str(a["days_to_capacity"]),
        str(b["days_to_capacity"]),
        _signed(str(result["days_to_capacity_difference"])),
    )
    totals.add_row(
        "requests waiting on a first refusal",
        str(a["requests_waiting"]),
        str(b["requests_waiting"]),
        "",
    )
    console.print(totals)

    flows = Table(title="Money flows (capacity spend by payee)", title_justify="left")
    for column in ("payer", "payee", "A", "B"):
        flows.add_column(column, justify="left" if column in ("payer", "payee") else "right")
    pairs: dict[tuple[str, str], list[str]] = {}
    for index, side in enumerate((a, b)):
        for flow in side["flows"]:
            pairs.setdefault((flow["payer"], flow["payee"]), ["0", "0"])[index] = flow["amount_usd"]
    for (payer, payee), amounts in pairs.items():
        flows.add_row(payer, payee, _usd(amounts[0]), _usd(amounts[1]))
    console.print(flows)

    diffs = Table(
        title=f"Requests that differ ({len(result['differences'])} of {result['requests']})",
        title_justify="left",
    )
    for column in ("request", "A", "B", "cost B - A", "days B - A", "caused by"):
        diffs.add_column(column, overflow="fold")
    for diff in result["differences"]:
        causes = "\n".join(
            escape(f"{c['side'].upper()}: {c['clause_id']} [{c['rule']}] {c['result']}")
            for c in diff["caused_by"]
        )
        diffs.add_row(
            diff["request_id"],
            f"{diff['a']['provider']} ({diff['a']['days_to_capacity']} d)",
            f"{diff['b']['provider']} ({diff['b']['days_to_capacity']} d)",
            _usd(diff["cost_difference_usd"]),
            _signed(str(diff["days_difference"])),
            causes or "prices or commitments only",
        )
    console.print(diffs)
    if result["clauses_causing_differences"]:
        console.print(
            "clauses causing the differences: " + ", ".join(result["clauses_causing_differences"])
        )


def _bar(percent: str, colour: str) -> str:
    filled = int(Decimal(percent) * BAR_WIDTH / 100)
    return f"[{colour}]{'█' * filled}[/]"


def _usd(amount: str) -> str:
    """A decimal dollar string as ``$1,234`` (signed when negative)."""
    value = Decimal(amount)
    text = f"${abs(value):,.0f}"
    return f"-{text}" if value < 0 else text


def _signed(number: str) -> str:
    return number if number.startswith("-") or Decimal(number) == 0 else f"+{number}"
