"""``firstright sim-upstream``: run the simulated OpenAI-compatible provider (the simulator).

firstright sim-upstream --port 9001 --latency-ms 40 --tokens-per-s 50 --capacity 8
"""

from __future__ import annotations

from decimal import Decimal

import click


@click.command("sim-upstream")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9001, show_default=True, type=click.IntRange(0, 65535))
@click.option("--name", default="sim", show_default=True, help="Shown in replies and stats.")
@click.option("--model", "models", multiple=True, help="Model served (repeat); default: any.")
@click.option("--latency-ms", default=0.0, type=click.FloatRange(0, 600_000), show_default=True)
@click.option("--tokens-per-s", default=0.0, type=click.FloatRange(0, 1e6), show_default=True)
@click.option("--output-tokens", default=16, type=click.IntRange(1, 100_000), show_default=True)
@click.option("--capacity", default=0, type=click.IntRange(0, 1_000_000), help="0: unlimited.")
@click.option("--retry-after-s", default=1, type=click.IntRange(0, 3600), show_default=True)
@click.option("--error-rate", default=0.0, type=click.FloatRange(0, 1), show_default=True)
@click.option("--seed", default=0, type=int, show_default=True)
@click.option("--cut-stream-after", default=0, type=click.IntRange(0, 100_000))
@click.option("--input-usd-per-mtok", default="0", show_default=True)
@click.option("--output-usd-per-mtok", default="0", show_default=True)
def sim_upstream(**options: object) -> None:
    """Run a simulated OpenAI-compatible provider (latency, capacity, errors, prices)."""
    from aiohttp import web  # noqa: PLC0415

    from firstright.domain.money import parse_decimal  # noqa: PLC0415
    from firstright.testing.sim_upstream import SimSettings, create_sim_app  # noqa: PLC0415

    def price(key: str) -> Decimal:
        try:
            value = parse_decimal(str(options[key]))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=f"--{key.replace('_', '-')}") from exc
        if value < 0:
            raise click.BadParameter("must not be negative", param_hint=key)
        return value

    settings = SimSettings(
        name=str(options["name"]),
        models=tuple(str(m) for m in options["models"]),  # type: ignore[attr-defined]
        latency_ms=float(options["latency_ms"]),  # type: ignore[arg-type]
        tokens_per_s=float(options["tokens_per_s"]),  # type: ignore[arg-type]
        output_tokens=int(options["output_tokens"]),  # type: ignore[call-overload]
        capacity=int(options["capacity"]),  # type: ignore[call-overload]
        retry_after_s=int(options["retry_after_s"]),  # type: ignore[call-overload]
        error_rate=float(options["error_rate"]),  # type: ignore[arg-type]
        seed=int(options["seed"]),  # type: ignore[call-overload]
        cut_stream_after=int(options["cut_stream_after"]),  # type: ignore[call-overload]
        input_usd_per_mtok=price("input_usd_per_mtok"),
        output_usd_per_mtok=price("output_usd_per_mtok"),
    )
    host, port = str(options["host"]), int(options["port"])  # type: ignore[call-overload]
    print(f"simulator {settings.name} listening on http://{host}:{port}/v1", flush=True)  # noqa: T201
    web.run_app(create_sim_app(settings), host=host, port=port, print=None, access_log=None)
