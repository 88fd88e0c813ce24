"""``firstright demo [--no-serve] [--database URL] [--host H] [--port P] [--json]``.

Runs the Microsoft–OpenAI seed scenario end to end on the embedded examples (see
``services/demo.py``), prints a summary — contract versions over time, capacity by cloud and why,
the first refusals, gateway traffic (sent through the gateway to simulators the demo starts on
loopback and stops again), money flows and the commitment burn-down — and an admin API key, then
serves the dashboard on localhost until interrupted (``--no-serve``: batch only).
The data goes to ``--database`` (default ``firstright.db`` here), so a later ``firstright serve``
sees it; running the demo again replaces the demo's rows with fresh ones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
import orjson

from firstright.domain.money import format_usd
from firstright.errors import RuntimeFailure


@click.command()
@click.option("--no-serve", is_flag=True, help="Batch only: do not serve the dashboard.")
@click.option("--database", help="Database URL (default: env FIRSTRIGHT_DATABASE, firstright.db).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Dashboard host.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def demo(no_serve: bool, database: str | None, host: str, port: int, as_json: bool) -> None:
    """Run the Microsoft–OpenAI scenario end to end, then serve the dashboard."""
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    from firstright.adapters.db import database_url_from, open_engine  # noqa: PLC0415
    from firstright.services.demo import STEPS, run_demo  # noqa: PLC0415

    if not no_serve:
        _ensure_port_free(host, port)
    url = database_url_from(database)
    engine = open_engine(url)
    console = Console(stderr=True, highlight=False)
    with Progress(
        TextColumn("[bold]demo[/] {task.description:<22}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=as_json,
    ) as progress:
        task = progress.add_task(STEPS[0], total=len(STEPS))
        names = iter(STEPS[1:])
        requests: list[Any] = []

        def step(_name: str) -> None:
            progress.update(task, advance=1, description=next(names, "done"))

        def traffic(done: int, total: int) -> None:
            if not requests:
                requests.append(progress.add_task("  model requests", total=total))
            progress.update(requests[0], completed=done)

        result = run_demo(engine, now=datetime.now(UTC), on_step=step, on_traffic=traffic)
    if as_json:
        click.echo(
            orjson.dumps(
                {**result.summary, "database": url, "admin_key": result.admin_key},
                option=orjson.OPT_INDENT_2,
            ).decode()
        )
    else:
        render_summary(result.summary)
        out = Console(highlight=False, soft_wrap=True)
        out.print(f"\n[bold]database[/]   {url}")
        out.print(f"[bold]admin key[/]  {result.admin_key}   (sign in to the dashboard with it)")
    if no_serve:
        return
    _serve(engine, host, port)


def _ensure_port_free(host: str, port: int) -> None:
    """Refuse before the batch runs, not after it, when the dashboard could not be served."""
    import socket  # noqa: PLC0415

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise RuntimeFailure(
                f"cannot serve the dashboard on {host}:{port} ({exc.strerror}); "
                "choose another --port, or --no-serve"
            ) from exc


def _serve(engine: Any, host: str, port: int) -> None:
    import uvicorn  # noqa: PLC0415

    from firstright.api.app import create_admin_app  # noqa: PLC0415

    click.echo(f"dashboard: http://{host}:{port}/   (Ctrl-C to stop)", err=True)
    uvicorn.run(create_admin_app(engine), host=host, port=port, log_level="warning")


def _usd(micros: int) -> str:
    return format_usd(micros, 0)


def render_summary(summary: dict[str, Any]) -> None:
    """The printed summary: one table per part."""
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = 140

    versions = Table(title="Contract versions of msft-openai", title_justify="left")
    for column in ("version", "in force", "clauses", "assumed terms"):
        versions.add_column(column)
    for span in summary["contracts"]:
        until = span["effective_until"][:10] if span["effective_until"] else "now"
        kinds = ", ".join(f"{k}×{n}" if n > 1 else k for k, n in span["clause_kinds"].items())
        versions.add_row(
            span["version"],
            f"{span['effective_from'][:10]} → {until}",
            kinds,
            str(span["assumptions"]),
        )
    console.print(versions)

    capacity = summary["capacity"]
    requests = Table(
        title="Capacity requests, each under the version in force", title_justify="left"
    )
    for column in ("decided", "request", "version", "GPUs", "cloud", "cost", "why"):
        requests.add_column(column, overflow="fold")
    for row in capacity["requests"]:
        requests.add_row(
            row["decided_at"][:10],
            row["request_id"],
            (row["contract"] or "-").split("@")[-1],
            f"{row['gpus']:,}",
            row["provider"] or "-",
            _usd(row["total_micros"]),
            row["why"],
        )
    console.print(requests)

    clouds = Table(title="Capacity by cloud", title_justify="left")
    for column in ("cloud", "GPUs", "share", "cost", "requests", "via first refusal"):
        clouds.add_column(column, justify="right" if column != "cloud" else "left")
    for row in capacity["by_cloud"]:
        clouds.add_row(
            row["provider"],
            f"{row['gpus']:,}",
            f"{row['share_gpus_pct']}%",
            _usd(row["total_micros"]),
            str(row["requests"]),
            str(row["first_refusals"]),
        )
    clouds.add_row(
        "total",
        f"{capacity['total_gpus']:,}",
        "100%",
        _usd(capacity["total_micros"]),
        str(len(capacity["requests"])),
        "",
        style="bold",
    )
    console.print(clouds)

    if summary.get("desk"):
        desk = Table(title="First refusals at the desk (holder: Microsoft)", title_justify="left")
        for column in ("request", "offeror", "holder's answer", "gate", "state", "days to award"):
            desk.add_column(column, overflow="fold")
        for run in summary["desk"]:
            desk.add_row(
                run["request_id"],
                run["offeror"],
                run["holder_response"],
                run["gate"],
                run["state"],
                str(run["days_to_award"]),
            )
        console.print(desk)

    traffic = summary.get("traffic")
    if traffic and traffic.get("requests"):
        _render_traffic(console, traffic, summary.get("traffic_run"))
    money = summary.get("settlement")
    if money:
        _render_money(console, money)
    for note in summary.get("assumptions", []):
        console.print(f"[dim]* {note}[/]")


def _render_traffic(console: Any, traffic: dict[str, Any], run: dict[str, Any] | None) -> None:
    from rich.table import Table  # noqa: PLC0415

    if run:
        sims = ", ".join(
            f"{sim['name']} ({sim['input_usd_per_mtok']}/{sim['output_usd_per_mtok']} $/Mtok)"
            for sim in run["simulators"]
        )
        console.print(
            f"\n[bold]Gateway traffic[/] {run['sent']:,} requests in {run['duration_s']} s "
            f"to simulators on loopback: {sims}; routed under {run['contract_version']} "
            f"(contracts as of {run['contracts_at'][:10]})."
        )
    split = Table(title="Traffic split by backend", title_justify="left")
    for column in (
        "backend",
        "operator",
        "vendor",
        "requests",
        "share",
        "p50 ms",
        "p95 ms",
        "cost",
    ):
        split.add_column(column, justify="right" if column not in _TEXT_COLUMNS else "left")
    for row in traffic["backends"]:
        split.add_row(
            row["backend"] or "(none)",
            row["operator"] or "-",
            row["vendor"] or "-",
            f"{row['requests']:,}",
            f"{row['share_pct']}%",
            _ms(row["latency_ms_p50"]),
            _ms(row["latency_ms_p95"]),
            format_usd(row["amount_micros"]),
        )
    console.print(split)
    table = Table(
        title=f"Gateway traffic by tenant and backend: {traffic['requests']:,} requests, "
        f"p50 {traffic['latency_ms_p50']} ms, p95 {traffic['latency_ms_p95']} ms, "
        f"{format_usd(traffic['amount_micros'])} at list prices",
        title_justify="left",
    )
    for column in (
        "tenant",
        "backend",
        "operator",
        "vendor",
        "requests",
        "share",
        "after refusal",
        "p50 ms",
        "p95 ms",
        "cost",
    ):
        table.add_column(column, justify="right" if column not in _TEXT_COLUMNS else "left")
    for row in traffic["by_backend"]:
        table.add_row(
            row["tenant"] or "-",
            row["backend"] or "(none)",
            row["operator"] or "-",
            row["vendor"] or "-",
            f"{row['requests']:,}",
            f"{row['share_pct']}%",
            f"{row['after_refusal']:,}",
            _ms(row["latency_ms_p50"]),
            _ms(row["latency_ms_p95"]),
            format_usd(row["amount_micros"]),
        )
    console.print(table)
    if traffic["refusals"]:
        reasons = Table(title="Refusals and spills by backend and reason", title_justify="left")
        for column in ("backend", "reason", "count"):
            reasons.add_column(column, justify="right" if column == "count" else "left")
        for row in traffic["refusals"]:
            reasons.add_row(row["backend"], row["reason"], f"{row['count']:,}")
        console.print(reasons)
    if run:
        for tenant in run["tenants"]:
            console.print(f"[dim]{tenant['tenant']}: {tenant['note']}[/]")
        console.print(f"[dim]traffic {run['settlement_note']}[/]")


_TEXT_COLUMNS = frozenset({"tenant", "backend", "operator", "vendor"})


def _ms(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _render_money(console: Any, money: dict[str, Any]) -> None:
    from rich.table import Table  # noqa: PLC0415

    flows = Table(title="Money flows between the parties, per quarter", title_justify="left")
    for column in ("quarter", "payer", "payee", "what", "amount", "net"):
        flows.add_column(column, justify="right" if column in ("amount", "net") else "left")
    for period in money["periods"]:
        nets = {(n["payer"], n["payee"]): n["amount_micros"] for n in period["net"]}
        for flow in period["flows"]:
            pair = (flow["payer"], flow["payee"])
            net = nets.pop(pair, None)
            flows.add_row(
                period["period"],
                flow["payer"],
                flow["payee"],
                f"{flow['kind']} {flow['clause_id']}",
                format_usd(flow["amount_micros"], 0),
                "" if net is None else format_usd(net, 0),
            )
    console.print(flows)
    for commitment in money.get("commitments") or []:
        table = Table(
            title=f"Commitment burn-down: {commitment['commitment']} "
            f"({_usd(commitment['amount_micros'])})",
            title_justify="left",
        )
        for column in ("quarter", "drawn", "cumulative", "remaining"):
            table.add_column(column, justify="right")
        for row in commitment["points"]:
            table.add_row(
                row["period"],
                format_usd(row["drawn_micros"], 0),
                format_usd(row["cumulative_micros"], 0),
                _usd(row["remaining_micros"]),
            )
        console.print(table)
