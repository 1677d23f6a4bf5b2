"""CSV files the portal streams (billing's exports, an asset's telemetry): one line at a time,
cells a spreadsheet would run as formulas made harmless."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse

# The OpenAPI response of an endpoint that answers with one of these files.
SCHEMA = {(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV, a header line first")}


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_rows(header: list[str], rows: Iterable[list[Any]]) -> Iterator[str]:
    """CSV text, one line at a time (for a streaming response). Cells that a spreadsheet would
    run as formulas are prefixed with a quote."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([_safe(cell) for cell in row])


def _safe(cell: Any) -> Any:
    if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(cell):
        return "'" + cell
    return "" if cell is None else cell


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
