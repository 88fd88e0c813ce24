"""Example inputs shipped with firstright (the embedded default the demo and ``check`` use)."""

from __future__ import annotations

from pathlib import Path


def default_contracts_dir() -> Path:
    """The folder of example contract bundles: Microsoft–OpenAI (2019, 2024-06, 2025-01-21,
    2025-10-28, 2026-04-27) and Amazon–Anthropic (2023-09, 2024-11, 2026-04)."""
    return Path(__file__).resolve().parent / "contracts"
