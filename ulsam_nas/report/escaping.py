"""Text from a study is data wherever it lands: a received study's name, paper labels, genomes,
verdicts and attributes may hold markup or spreadsheet formulas. ``fill`` is the one way such
text enters the report's HTML (escaped), ``plotly_text`` the way it enters a Plotly figure,
``markdown_text`` the way it enters the dashboard's note, and ``write_csv`` the one way a table
is written (a text cell a spreadsheet would run as a formula gets a leading ``'``, as OWASP
advises).
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import pandas as pd

from ..safe_files import write_file

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP's list of what a spreadsheet may run


def fill(template: str, **values: object) -> str:
    """``template.format(**values)``, every text value HTML-escaped: the markup is the template's
    alone, so a label such as ``<img onerror=...>`` shows as text and runs nothing."""
    return template.format(**{name: escape(value) if isinstance(value, str) else value for name, value in values.items()})


def plotly_text(text: str) -> str:
    """``text`` for a Plotly title, label or hover text, which plotly.js parses for tags such as
    ``<br>`` and ``<a href>``: ``<``, ``>`` and ``&`` escaped, which plotly.js shows as the
    characters. Quotes stay: plotly.js would show ``&quot;`` as written."""
    return escape(text, quote=False)


def markdown_text(text: str) -> str:
    """``text`` for the markdown of an optuna-dashboard note: HTML-escaped, since markdown may carry
    raw HTML and shows a character reference such as ``&lt;`` as the character."""
    return escape(text)


def spreadsheet_safe(cell: object) -> object:
    """A text cell that begins like a formula, prefixed with ``'``; anything else as it is."""
    return "'" + cell if isinstance(cell, str) and cell.startswith(FORMULA_STARTS) else cell


def write_csv(frame: pd.DataFrame, path: Path, root: Path | None = None) -> None:
    """``frame`` as CSV without its index; its text cells and headers through ``spreadsheet_safe``,
    its numbers (negative ones included) as numbers. Written through no symbolic link below
    ``root`` (default: the file's folder; ``safe_files.write_file``)."""
    text = frame.select_dtypes(include=["object", "string"]).columns
    safe = frame.assign(**{column: frame[column].map(spreadsheet_safe) for column in text})
    write_file(path.parent if root is None else root, path, safe.rename(columns=spreadsheet_safe).to_csv(index=False))
