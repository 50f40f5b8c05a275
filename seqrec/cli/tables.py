"""Rich tables of metrics for the command line (one row per model, or one metric per row)."""

from __future__ import annotations

from typing import Any


def fmt(number: float | None) -> str:
    """A metric to 4 decimals; ``-`` for None or NaN."""
    if number is None or number != number:  # None or NaN
        return "-"
    return f"{number:.4f}"


def _titled(title: str | None, table: Any) -> Any:
    """``table`` under ``title`` on a line of its own (a rich table title wraps to the table's
    width; widening the table to fit it pads every column instead)."""
    from rich.console import Group
    from rich.text import Text

    return table if title is None else Group(Text(title, style="italic"), table)


def metrics_table(rows: dict[str, dict[str, float]], columns: list[str], title: str | None = None,
                  extra: dict[str, dict[str, str]] | None = None) -> Any:
    """One row per model: ``rows[model][column]`` to 4 decimals (``seconds`` to 1; a missing or
    NaN value as ``-``), then the text columns of ``extra[model]`` (e.g. a Pareto mark), under
    ``title``. Returns a rich renderable."""
    from rich.table import Table

    table = Table()
    table.add_column("model")
    for column in columns:
        table.add_column(column, justify="right")
    extra_columns = sorted({c for cells in (extra or {}).values() for c in cells})
    for column in extra_columns:
        table.add_column(column, justify="center")
    for name, metrics in rows.items():
        cells = [f"{metrics[column]:.1f}" if column == "seconds" else fmt(metrics.get(column))
                 for column in columns]
        cells += [(extra or {}).get(name, {}).get(column, "") for column in extra_columns]
        table.add_row(name, *cells)
    return _titled(title, table)


def metric_list(metrics: dict[str, float], title: str) -> Any:
    """One row per metric (name, value to 4 decimals) under ``title``; a rich renderable."""
    from rich.table import Table

    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, number in metrics.items():
        table.add_row(name, fmt(number))
    return _titled(title, table)
