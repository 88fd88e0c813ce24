"""``firstright rofr open|offer|notify|respond|gate|signed|withdraw|show|list|instruct``,
``placement-gate|launch-gate|capability`` (API exclusivity and ship-first) and
``open-from-placement`` (place requests, open the first refusals they owe): the durable
first-refusal desk from the command line (same service as ``/api/rofr``).

Every command takes ``--database`` and ``--json``; state-changing ones take ``--key`` (an
idempotency key: rerunning with the same key and arguments prints the same answer and writes
nothing) and ``--at`` (the instant of the event, ISO-8601; default: now). Terms are given as
``--term name=value`` (repeat it), e.g. ``--term price_per_gpu_hour=2.50 --term gpu_type=H100``.
The command line acts as the local operator (it has the database), so no API key is needed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any, TypeVar

import click
from pydantic import BaseModel, ValidationError

from firstright.adapters.db import database_url_from, migrate, open_engine
from firstright.domain.placement.request import PlacementRequest
from firstright.errors import InputError
from firstright.services.contract_loader import load_contracts
from firstright.services.rofr_desk import RofrDesk
from firstright.services.rofr_wire import (
    CapabilityBody,
    GateBody,
    InstructionBody,
    LaunchGateBody,
    NoticeBody,
    OfferEventBody,
    OpenBody,
    PlacementGateBody,
    ResponseBody,
    SignedBody,
    WithdrawBody,
)

DATABASE_HELP = "Database URL (sqlite:///FILE or postgresql://...); env FIRSTRIGHT_DATABASE."
CONTRACTS_ENV = "FIRSTRIGHT_ROFR_CONTRACT"
M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])


def _instant(raw: str | None) -> datetime:
    if raw is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"--at: {raw!r} is not an ISO-8601 instant") from exc
    if at.tzinfo is None:
        raise InputError(f"--at: {raw!r} needs a time zone (e.g. Z)")
    return at.astimezone(UTC)


def _terms(pairs: tuple[str, ...]) -> dict[str, str | int]:
    terms: dict[str, str | int] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InputError(f"--term: {pair!r} is not name=value")
        terms[name.strip()] = int(value) if value.strip().isdigit() else value.strip()
    return terms


def _body(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate({k: v for k, v in data.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in exc.errors()
        )
        raise InputError(problems) from exc


def _desk(database: str | None, contracts: str | None = None) -> RofrDesk:
    engine = open_engine(database_url_from(database))
    migrate(engine)
    source = contracts or os.environ.get(CONTRACTS_ENV, "").strip() or None
    path = source or str(resources.files("firstright") / "examples" / "contracts")
    return RofrDesk(engine, list(load_contracts([path])))


def _print(result: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        return
    if isinstance(result, list):
        for row in result:
            click.echo(
                "  ".join(
                    f"{row.get(k)}" for k in ("request_id", "state", "next_timer", "next_deadline")
                )
                if "request_id" in row
                else json.dumps(row)
            )
        return
    decision = result.get("decision")
    if decision is None:
        click.echo(json.dumps(result, indent=2, sort_keys=True))
        return
    for fired in result.get("timers_fired", []):
        click.echo(f"{fired['t']}  timer {fired.get('via')} -> {fired['state']}")
    for item in result.get("decisions", [decision]):
        gate = f" gate={item['gate']}" if "gate" in item else ""
        note = f" note={item['note']}" if "note" in item else ""
        click.echo(f"{item['t']}  {item['event']} -> {item['state']}{gate}{note}")
        for step in item["trace"]:
            click.echo(f"    {step['clause']} {','.join(step['rule'])}: {step['reason']}")
    timers = ", ".join(f"{t['kind']} {t['deadline']}" for t in result.get("timers", []))
    click.echo(
        f"{result['request_id']}: {result['state']}" + (f" (timers: {timers})" if timers else "")
    )


def _common(command: F) -> F:
    command = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(
        command
    )
    return click.option("--database", default=None, help=DATABASE_HELP)(command)


def _changing(command: F) -> F:
    command = click.option("--key", default=None, help="Idempotency key (safe retries).")(command)
    command = click.option("--at", "at", default=None, help="Instant of the event (default now).")(
        command
    )
    return _common(command)


def _term_option(command: F) -> F:
    return click.option("--term", "terms", multiple=True, help="A term, name=value (repeat).")(
        command
    )


@click.command("open")
@click.argument("request_id")
@click.option("--category", required=True, help="Capacity category, e.g. new_capacity.")
@click.option("--quantity", "quantity_gpus", type=int, default=None, help="GPUs requested.")
@click.option("--offer-party", default=None, help="Third party whose offer triggers the right.")
@_term_option
@click.option("--contract-id", default=None, help="Contract to judge by (if several apply).")
@click.option("--clause-id", default=None, help="first_refusal clause (if several apply).")
@click.option("--contracts", default=None, help=f"Contract file or folder (env {CONTRACTS_ENV}).")
@_changing
def open_command(
    *,
    request_id: str,
    category: str,
    quantity_gpus: int | None,
    offer_party: str | None,
    terms: tuple[str, ...],
    contract_id: str | None,
    clause_id: str | None,
    contracts: str | None,
    **common: Any,
) -> None:
    """Open capacity request REQUEST_ID (as the owner), with the third-party offer if any."""
    offer = {"party": offer_party, "terms": _terms(terms)} if offer_party else None
    if terms and not offer_party:
        raise InputError("--term needs --offer-party (the terms are the third party's offer)")
    body = _body(
        OpenBody,
        {
            "request_id": request_id,
            "category": category,
            "quantity_gpus": quantity_gpus,
            "contract_id": contract_id,
            "clause_id": clause_id,
            "offer": offer,
        },
    )
    desk = _desk(common["database"], contracts)
    result = desk.open(None, body, key=common["key"], at=_instant(common["at"]))
    _print(result, common["as_json"])


@click.command("offer")
@click.argument("request_id")
@click.option("--party", required=True, help="The third party.")
@_term_option
@click.option("--change", is_flag=True, help="A change of that party's terms, not a new offer.")
@_changing
def offer_command(
    request_id: str, party: str, terms: tuple[str, ...], change: bool, **common: Any
) -> None:
    """Record a third party's offer (or a change of its terms)."""
    body = _body(OfferEventBody, {"party": party, "terms": _terms(terms), "change": change})
    desk = _desk(common["database"])
    _print(
        desk.offer(None, request_id, body, key=common["key"], at=_instant(common["at"])),
        common["as_json"],
    )


@click.command("notify")
@click.argument("request_id")
@click.option("--offeror", default=None, help="The third party named in the notice.")
@_term_option
@_changing
def notify_command(
    request_id: str, offeror: str | None, terms: tuple[str, ...], **common: Any
) -> None:
    """Deliver the notice to the holder."""
    body = _body(NoticeBody, {"offeror": offeror, "terms": _terms(terms)})
    desk = _desk(common["database"])
    _print(
        desk.notify(None, request_id, body, key=common["key"], at=_instant(common["at"])),
        common["as_json"],
    )


@click.command("respond")
@click.argument("request_id")
@click.option(
    "--kind",
    required=True,
    type=click.Choice(["accept", "decline", "waive", "counter", "conditional_accept"]),
)
@click.option("--quantity", "quantity_gpus", type=int, default=None, help="GPUs (partial).")
@click.option("--condition", default=None, help="Condition of a conditional acceptance.")
@_term_option
@_changing
def respond_command(
    request_id: str,
    kind: str,
    quantity_gpus: int | None,
    condition: str | None,
    terms: tuple[str, ...],
    **common: Any,
) -> None:
    """Record the holder's response."""
    body = _body(
        ResponseBody,
        {
            "kind": kind,
            "quantity_gpus": quantity_gpus,
            "condition": condition,
            "terms": _terms(terms) or None,
        },
    )
    desk = _desk(common["database"])
    _print(
        desk.respond(None, request_id, body, key=common["key"], at=_instant(common["at"])),
        common["as_json"],
    )


@click.command("gate")
@click.argument("request_id")
@click.option("--party", required=True, help="The third party to contract with.")
@click.option("--workload", default=None, help="Workload the contract serves.")
@_term_option
@_changing
def gate_command(
    request_id: str, party: str, workload: str | None, terms: tuple[str, ...], **common: Any
) -> None:
    """May the owner contract with PARTY on these terms now? Prints APPROVE or BLOCK and why."""
    body = _body(GateBody, {"party": party, "workload": workload, "terms": _terms(terms) or None})
    desk = _desk(common["database"])
    _print(
        desk.gate(None, request_id, body, key=common["key"], at=_instant(common["at"])),
        common["as_json"],
    )


@click.command("placement-gate")
@click.argument("request_id")
@click.option("--party", required=True, help="The cloud the workload would run on.")
@click.option("--workload", required=True, help="The workload, e.g. api_serving.")
@click.option("--segment", "customer_segment", default=None, help="Customer segment served.")
@_changing
def placement_gate_command(
    request_id: str, party: str, workload: str, customer_segment: str | None, **common: Any
) -> None:
    """May WORKLOAD run on PARTY's cloud? APPROVE or BLOCK by API exclusivity and its
    exceptions."""
    body = _body(
        PlacementGateBody,
        {"party": party, "workload": workload, "customer_segment": customer_segment},
    )
    desk = _desk(common["database"])
    _print(
        desk.placement_gate(None, request_id, body, key=common["key"], at=_instant(common["at"])),
        common["as_json"],
    )


@click.command("launch-gate")
@click.argument("request_id")
@click.option("--party", required=True, help="The cloud the product would launch on.")
@click.option("--product", default=None)
@click.option("--workload", default=None, help="The workload the launch serves.")
@click.option("--not-first", is_flag=True, help="Not the product's first launch.")
@_changing
def launch_gate_command(
    request_id: str,
    party: str,
    product: str | None,
    workload: str | None,
    not_first: bool,
    **common: Any,
) -> None:
    """May a product launch (first) on PARTY's cloud? APPROVE or BLOCK by ship-first."""
    body = _body(
        LaunchGateBody,
        {"party": party, "product": product, "workload": workload, "first_launch": not not_first},
    )
    desk = _desk(common["database"])
    _print(
        desk.launch_gate(None, request_id, body, key=common["key"], at=_instant(common["at"])),
        common["as_json"],
    )


@click.command("capability")
@click.argument("request_id")
@click.option("--can-support/--cannot-support", required=True, help="Can the holder support it?")
@click.option("--chooses/--declines", "chooses", required=True, help="Does it choose to?")
@click.option("--committed-date", default=None, help="Date the holder commits to, if any.")
@_changing
def capability_command(
    request_id: str, can_support: bool, chooses: bool, committed_date: str | None, **common: Any
) -> None:
    """Record the holder's answer on supporting a launch (read by ship-first's escape)."""
    body = _body(
        CapabilityBody,
        {
            "can_support": can_support,
            "chooses_to_support": chooses,
            "committed_date": committed_date,
        },
    )
    desk = _desk(common["database"])
    _print(
        desk.capability(None, request_id, body, key=common["key"], at=_instant(common["at"])),
        common["as_json"],
    )


@click.command("open-from-placement")
@click.argument("requests_file", metavar="REQUESTS.yaml", type=click.Path(dir_okay=False))
@click.option("--contracts", default=None, help=f"Contract file or folder (env {CONTRACTS_ENV}).")
@click.option("--at", "at", default=None, help="Instant of requests without 'at' (default now).")
@click.option("--key", default=None, help="Idempotency key prefix (default placement:<id>).")
@_common
def open_from_placement_command(
    *,
    requests_file: str,
    contracts: str | None,
    at: str | None,
    key: str | None,
    database: str | None,
    as_json: bool,
) -> None:
    """Place REQUESTS.yaml under the contracts and open every first refusal owed, with the
    chosen catalog offer as the notice terms; print where the capacity goes now."""
    from firstright.services.rofr_from_placement import place_and_open  # noqa: PLC0415

    requests = _placement_requests(requests_file)
    desk = _desk(database, contracts)
    results = place_and_open(desk, None, requests, at=_instant(at), key=key)
    if as_json:
        for item in results:
            click.echo(json.dumps(item, sort_keys=True))
        return
    for item in results:
        final = item["final"]
        opened = item["desk"]
        head = f"{final['placement_id']}: {final['status']} ({final['outcome']})"
        if opened is not None:
            head += f"  desk request {opened['request_id']} {opened['state']}"
        click.echo(head)
        for line in final["allocations"]:
            click.echo(
                f"    {line['quantity_gpus']} GPUs -> {line['party']} {line['provider']} "
                f"{line['region']} {line['instance_type']} "
                f"at {line['price_per_gpu_hour']} USD/GPU-h"
            )
        if final["deadline"]:
            click.echo(f"    next deadline {final['deadline']}")
        click.echo(f"    {final['reason']}")


def _placement_requests(path: str) -> list[PlacementRequest]:
    from firstright.adapters.yaml_source import load_yaml_file, validate_document  # noqa: PLC0415
    from firstright.domain.placement.request import (  # noqa: PLC0415
        PlacementRequestFile,
        is_request_list,
    )

    doc = load_yaml_file(path)
    if is_request_list(doc.data):
        return list(validate_document(doc, PlacementRequestFile).requests)
    return [validate_document(doc, PlacementRequest)]


@click.command("signed")
@click.argument("request_id")
@click.option("--holder", "by_holder", is_flag=True, help="The holder's definitive agreement.")
@click.option("--party", default=None, help="The third party that signed.")
@_term_option
@_changing
def signed_command(
    request_id: str, by_holder: bool, party: str | None, terms: tuple[str, ...], **common: Any
) -> None:
    """Report a signature (a third-party contract, or the holder's with --holder)."""
    body = _body(
        SignedBody,
        {
            "signer": "holder" if by_holder else "third_party",
            "party": party,
            "terms": _terms(terms) or None,
        },
    )
    desk = _desk(common["database"])
    _print(
        desk.signed(None, request_id, body, key=common["key"], at=_instant(common["at"])),
        common["as_json"],
    )


@click.command("withdraw")
@click.argument("request_id")
@click.option("--reason", default=None)
@_changing
def withdraw_command(request_id: str, reason: str | None, **common: Any) -> None:
    """Withdraw the capacity request."""
    body = _body(WithdrawBody, {"reason": reason})
    desk = _desk(common["database"])
    _print(
        desk.withdraw(None, request_id, body, key=common["key"], at=_instant(common["at"])),
        common["as_json"],
    )


@click.command("show")
@click.argument("request_id")
@_common
def show_command(request_id: str, database: str | None, as_json: bool) -> None:
    """One request with its state, timers and every decision with its trace."""
    shown = _desk(database).show(None, request_id)
    if as_json:
        _print(shown, True)
        return
    click.echo(
        f"{shown['request_id']}: {shown['state']} ({shown['outcome']}) "
        f"owner={shown['owner']} holder={shown['holder']} contract={shown['contract']}"
    )
    for item in shown["decisions"]:
        via = f" via={item['via']}" if "via" in item else ""
        gate = f" gate={item['gate']}" if "gate" in item else ""
        click.echo(f"  #{item['seq']} {item['t']}  {item['event']} -> {item['state']}{gate}{via}")
        for step in item["trace"]:
            click.echo(f"      {step['clause']} {','.join(step['rule'])}: {step['reason']}")
    for timer in shown["timers"]:
        click.echo(f"  pending {timer['kind']} timer: {timer['deadline']}")


@click.command("list")
@click.option("--all", "all_states", is_flag=True, help="Include finished requests.")
@click.option("--limit", type=click.IntRange(1, 500), default=100)
@_common
def list_command(all_states: bool, limit: int, database: str | None, as_json: bool) -> None:
    """Open requests (or all) with their next deadline."""
    rows = _desk(database).list_requests(None, open_only=not all_states, limit=limit)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, sort_keys=True))
        return
    _print(rows, False)


@click.command("instruct")
@click.argument("instruction_id")
@click.option("--holder", required=True, help="The holder party the instruction answers for.")
@click.option("--price-max", required=True, help="Match notices at or below this USD/GPU-h.")
@click.option("--gpu-type", "gpu_types", multiple=True, help="GPU types (repeat; none: any).")
@click.option("--region", "regions", multiple=True, help="Regions (repeat; none: any).")
@click.option("--quantity-max", type=int, required=True, help="Match up to this many GPUs.")
@click.option("--otherwise", type=click.Choice(["decline", "ignore"]), default="decline")
@click.option("--revoke", is_flag=True, help="Revoke INSTRUCTION_ID instead.")
@click.option("--at", "at", default=None, help="From when (default now).")
@_common
def instruct_command(
    *,
    instruction_id: str,
    holder: str,
    price_max: str,
    gpu_types: tuple[str, ...],
    regions: tuple[str, ...],
    quantity_max: int,
    otherwise: str,
    revoke: bool,
    at: str | None,
    database: str | None,
    as_json: bool,
) -> None:
    """Register (or --revoke) a holder's standing instruction: match any notice at or below
    --price-max for these GPU types and regions up to --quantity-max GPUs; decline the rest."""
    desk = _desk(database)
    if revoke:
        _print(desk.revoke_instruction(None, instruction_id, at=_instant(at)), as_json)
        return
    body = _body(
        InstructionBody,
        {
            "instruction_id": instruction_id,
            "price_per_gpu_hour_max": price_max,
            "gpu_types": list(gpu_types),
            "regions": list(regions),
            "quantity_gpus_max": quantity_max,
            "otherwise": otherwise,
        },
    )
    _print(desk.add_instruction(None, holder, body, at=_instant(at)), as_json)


COMMANDS = (
    open_command,
    offer_command,
    notify_command,
    respond_command,
    gate_command,
    signed_command,
    withdraw_command,
    show_command,
    list_command,
    instruct_command,
    placement_gate_command,
    launch_gate_command,
    capability_command,
    open_from_placement_command,
)


def register(group: click.Group) -> None:
    """Add the desk's sub-commands to the ``rofr`` group."""
    for command in COMMANDS:
        group.add_command(command)
