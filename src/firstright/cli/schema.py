"""``firstright schema [KIND]``: print the JSON Schema of an input format (default: contract).

The schemas come from the pydantic models that validate the files, so they never drift from what
``firstright check`` accepts. Kinds provided by other parts load only when asked for.
"""

from __future__ import annotations

import importlib

import click
import orjson
from pydantic import BaseModel

SCHEMAS: dict[str, str] = {
    "contract": "firstright.domain.contracts.model:Contract",
    "placement-request": "firstright.domain.placement.request:PlacementRequest",
    "placement-requests": "firstright.domain.placement.request:PlacementRequestFile",
    "gateway-config": "firstright.gateway.config:GatewayConfig",
    "usage-record": "firstright.domain.usage:UsageRecord",
    "usage": "firstright.domain.usage:UsageRecord",
}


def schema_of(kind: str) -> dict[str, object]:
    """The JSON Schema (validation mode) of one input kind."""
    module_name, attribute = SCHEMAS[kind].split(":")
    try:
        model = getattr(importlib.import_module(module_name), attribute)
    except (ModuleNotFoundError, AttributeError) as exc:
        raise click.UsageError(f"the {kind} schema is not available in this build") from exc
    assert isinstance(model, type) and issubclass(model, BaseModel), SCHEMAS[kind]
    generated: dict[str, object] = model.model_json_schema(mode="validation")
    generated.setdefault("$schema", "https://json-schema.org/draft/2020-12/schema")
    return generated


@click.command()
@click.argument("kind", required=False, default="contract", type=click.Choice(sorted(SCHEMAS)))
def schema(kind: str) -> None:
    """Print the JSON Schema of KIND (contract, placement-request(s), gateway-config, ...)."""
    click.echo(orjson.dumps(schema_of(kind), option=orjson.OPT_INDENT_2).decode())
