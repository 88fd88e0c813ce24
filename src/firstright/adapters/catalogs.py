"""Read the shipped price catalogs and model prices from files (the only I/O of the market).

The default files live in the package (``firstright/data``), so a fresh install needs nothing
else; ``catalog_dir`` points at another directory of ``<provider>.csv`` files in SkyPilot's
format. Foreign errors become :class:`SourceError` with the file and line.
"""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path

from firstright.domain.market.catalog import CatalogDataError, Market, Row, build_market
from firstright.domain.market.model_prices import ModelPriceBook, parse_model_prices
from firstright.errors import SourceError
from firstright.limits import INPUT_FILE_BYTES_MAX

CATALOG_FILE_BYTES_MAX = 64 * 1024 * 1024
NOT_PROVIDER_FILES = frozenset({"common_accelerators"})
"""CSV files in a catalog directory that are not a provider's offers."""


def default_data_dir() -> Path:
    """``firstright/data`` inside the installed package."""
    return Path(str(resources.files("firstright") / "data"))


def default_catalog_dir() -> Path:
    return default_data_dir() / "catalogs"


def read_catalog_rows(catalog_dir: Path) -> dict[str, list[Row]]:
    """``provider -> rows`` for every ``<provider>.csv`` in ``catalog_dir``."""
    if not catalog_dir.is_dir():
        raise SourceError(str(catalog_dir), "not a directory of catalog CSV files")
    catalogs: dict[str, list[Row]] = {}
    for path in sorted(catalog_dir.glob("*.csv")):
        if path.stem in NOT_PROVIDER_FILES:
            continue
        catalogs[path.stem] = _read_csv(path)
    if not catalogs:
        raise SourceError(str(catalog_dir), "no <provider>.csv catalog files found")
    return catalogs


def _read_csv(path: Path) -> list[Row]:
    try:
        if path.stat().st_size > CATALOG_FILE_BYTES_MAX:
            raise SourceError(str(path), f"file larger than {CATALOG_FILE_BYTES_MAX} bytes")
        with path.open(encoding="utf-8", newline="") as handle:
            return [dict(row) for row in csv.DictReader(handle)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(str(path), f"cannot read catalog: {exc}") from exc


def load_market(catalog_dir: Path | None = None) -> Market:
    """The market of the shipped catalogs (cached), or of ``catalog_dir``."""
    if catalog_dir is None:
        return _default_market()
    return _market_from(catalog_dir)


@cache
def _default_market() -> Market:
    return _market_from(default_catalog_dir())


def _market_from(catalog_dir: Path) -> Market:
    rows = read_catalog_rows(catalog_dir)
    try:
        return build_market(rows)
    except CatalogDataError as exc:
        # Row index 0 is the first data row, on line 2 of the file (after the header).
        raise SourceError(
            str(catalog_dir / f"{exc.provider}.csv"), str(exc), line=exc.row_index + 2, column=1
        ) from exc


def load_model_prices(path: Path | None = None) -> ModelPriceBook:
    """Token prices from the shipped ``model_prices.json`` (cached) or from ``path``."""
    if path is None:
        return _default_model_prices()
    return _model_prices_from(path)


@cache
def _default_model_prices() -> ModelPriceBook:
    return _model_prices_from(default_data_dir() / "model_prices.json")


def _model_prices_from(path: Path) -> ModelPriceBook:
    try:
        if path.stat().st_size > INPUT_FILE_BYTES_MAX * 4:
            raise SourceError(str(path), f"file larger than {INPUT_FILE_BYTES_MAX * 4} bytes")
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle, parse_float=Decimal)
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(str(path), f"cannot read model prices: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise SourceError(str(path), exc.msg, line=exc.lineno, column=exc.colno) from exc
    if not isinstance(data, dict):
        raise SourceError(str(path), "expected a JSON object of model -> prices")
    return parse_model_prices(data)
