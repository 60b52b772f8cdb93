"""Rendering a report: Markdown, self-contained HTML with charts, JSON and CSV."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterable, Iterator
from typing import Any

from complaints.reports.document import (
    Block,
    Bullets,
    Chart,
    Heading,
    Para,
    Table,
    evidence_document,
    report_document,
)
from complaints.reports.model import Report

__all__ = ["FORMATS", "csv_cell", "render", "to_csv", "to_html", "to_json", "to_markdown"]

FORMATS = ("md", "html", "json", "csv")

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")
_NUMERIC_TD = '<td class="n">'


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    """Render blocks as GitHub-flavoured Markdown (charts are left out)."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Para):
            out.append(block.text)
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            numeric = block.numeric or [False] * len(block.headers)
            lines = ["| " + " | ".join(_md_cell(h) for h in block.headers) + " |",
                     "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            if block.caption:
                lines += ["", f"*{block.caption}*"]
            out.append("\n".join(lines))
        # Charts are for the HTML report; the Markdown carries the same data as tables.
    return "\n\n".join(out) + "\n"


def _inline(text: str) -> str:
    escaped = html.escape(text, quote=False)
    escaped = _BOLD.sub(r"<strong>\1</strong>", escaped)
    return _CODE.sub(r"<code>\1</code>", escaped)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1b1f24;
max-width:1100px;margin:2rem auto;padding:0 1.5rem;line-height:1.45}
h1{font-size:1.7rem;border-bottom:3px solid #005ea5;padding-bottom:.3rem}
h2{font-size:1.3rem;margin-top:2.2rem;color:#003078;border-bottom:1px solid #d0d7de}
h3{font-size:1.05rem;margin-top:1.4rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;vertical-align:top}
th{background:#f3f6f9;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
caption{caption-side:bottom;text-align:left;font-size:.8rem;color:#57606a;padding-top:.3rem}
figure{margin:1rem 0;page-break-inside:avoid}
figcaption{font-size:.85rem;color:#57606a}
figure svg{width:100%;max-width:960px;height:auto}
td:first-child{white-space:nowrap}
ul{padding-left:1.3rem}
@media print{body{margin:0;max-width:none}h2{page-break-after:avoid}}
"""


def to_html(blocks: list[Block], report: Report | None = None) -> str:
    """Render blocks as one self-contained HTML page, charts drawn inline as SVG.

    Args:
        blocks: The document.
        report: The figures the charts are drawn from (None: no charts).

    Returns:
        The page.

    """
    charts: dict[str, str] = {}
    if report is not None and any(isinstance(b, Chart) for b in blocks):
        from complaints.reports.charts import draw_all

        charts = draw_all(report)
    title = next((b.text for b in blocks if isinstance(b, Heading)), "Complaints report")
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items)
                        + "</ul>")
        elif isinstance(block, Table):
            numeric = block.numeric or [False] * len(block.headers)
            head = "".join(f"<th>{_inline(h)}</th>" for h in block.headers)
            rows = "".join(
                "<tr>" + "".join((_NUMERIC_TD if n else "<td>") + _inline(c) + "</td>"
                                 for c, n in zip(row, numeric, strict=True)) + "</tr>"
                for row in block.rows)
            caption = f"<caption>{_inline(block.caption)}</caption>" if block.caption else ""
            body.append(f"<table>{caption}<thead><tr>{head}</tr></thead>"
                        f"<tbody>{rows}</tbody></table>")
        elif isinstance(block, Chart) and block.name in charts:
            body.append(f'<figure role="img" aria-label="{html.escape(block.caption)}">'
                        f"{charts[block.name]}<figcaption>{html.escape(block.caption)}"
                        "</figcaption></figure>")
    plain_title = html.escape(_BOLD.sub(r"\1", title))
    return ('<!DOCTYPE html>\n<html lang="en-GB"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{plain_title}</title><style>{_CSS}</style>"
            "</head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def to_json(report: Report) -> str:
    """Render the report's figures as indented JSON."""
    return report.model_dump_json(indent=2) + "\n"


_KEYS = ("provision", "month", "name", "kind", "reference", "stage")


def _rows(section: str, value: Any, item: str = "") -> Iterator[list[str]]:
    """Flatten one figure into (section, item, measure, value) rows."""
    if isinstance(value, list):
        for element in value:
            if isinstance(element, dict):
                key = next((k for k in _KEYS if k in element), "")
                label = str(element.get(key, ""))
                if key == "stage" and "working_days" in element:  # histogram bucket
                    label = f"stage {element['stage']} / {element['working_days']} WD"
                elif key == "stage" and "reason" in element:
                    label = f"stage {element['stage']} / {element['reason']}"
                for measure, inner in element.items():
                    if measure == key:
                        continue
                    if isinstance(inner, list | dict):
                        yield from _rows(f"{section}.{measure}", inner, label)
                    else:
                        yield [section, label, measure, "" if inner is None else str(inner)]
            else:
                yield [section, item, "", str(element)]
    elif isinstance(value, dict):
        for measure, inner in value.items():
            if isinstance(inner, list | dict):
                yield from _rows(f"{section}.{measure}", inner, item)
            else:
                yield [section, item, measure, "" if inner is None else str(inner)]
    else:
        yield [section, item, "", "" if value is None else str(value)]


#: What makes a spreadsheet read a cell as a formula (OWASP "CSV Injection"): the four
#: formula starters, and tab / carriage return, which some spreadsheets skip first.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: A plain decimal number, which a spreadsheet reads as a number and never as a formula.
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


def csv_cell(value: str) -> str:
    """``value`` made safe to open in a spreadsheet (OWASP: prefix a single quote).

    A cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return (a category
    or an extension reason typed by staff, an id from an integration) would be run as a
    formula by Excel or LibreOffice (``=HYPERLINK(...)`` sending data away, ``@SUM``,
    ``-2+3``); a leading ``'`` makes it text and is not shown. A cell that is a plain
    number, negative ones included (``-1.5``), is left as it is: it can run nothing and
    must stay a number for whoever sums the column. Quoting and double quotes are the
    ``csv`` module's business.
    """
    if value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


class _SafeWriter:
    """A ``csv.writer`` whose every cell goes through :func:`csv_cell`."""

    def __init__(self, buffer: io.StringIO) -> None:
        self._minimal = csv.writer(buffer, lineterminator="\n")
        self._quoted = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)

    def writerow(self, row: Iterable[str]) -> None:
        safe = [csv_cell(cell) for cell in row]
        # The csv module quotes a cell holding the line terminator ("\n") but not a bare
        # "\r", which readers take as the end of the row: such a row is quoted in full.
        writer = self._quoted if any("\r" in cell for cell in safe) else self._minimal
        writer.writerow(safe)

    def writerows(self, rows: Iterable[Iterable[str]]) -> None:
        for row in rows:
            self.writerow(row)


def to_csv(report: Report) -> str:
    """Render every figure as CSV rows: section, item, measure, value.

    Scalars are in section ``report``; lists give one row per element and measure (e.g.
    ``ch02,1,pct_within_base,80.0``), nested lists a dotted section
    (``evidence.exceptions``). No cell can run as a formula (:func:`csv_cell`).
    """
    data = report.model_dump(mode="json")
    buffer = io.StringIO()
    writer = _SafeWriter(buffer)
    writer.writerow(["section", "item", "measure", "value"])
    for name, value in data.items():
        if isinstance(value, list | dict):
            if name == "method":
                for n, text in enumerate(value, 1):
                    writer.writerow(["method", str(n), "", text])
                continue
            writer.writerows(_rows(name, value))
        else:
            writer.writerow(["report", "", name, "" if value is None else str(value)])
    return buffer.getvalue()


def render(report: Report, fmt: str, *, evidence_only: bool = False) -> str:
    """Render ``report`` in ``fmt`` (one of :data:`FORMATS`).

    Args:
        report: The figures.
        fmt: ``md``, ``html``, ``json`` or ``csv``.
        evidence_only: Render only the evidence pack (md / html), or only its items
            (json / csv) when the report carries one.

    Returns:
        The rendered text.

    Raises:
        ValueError: For an unknown format.

    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if evidence_only:
        items = report.evidence or []
        if fmt == "json":
            from pydantic import TypeAdapter

            from complaints.reports.model import EvidenceItem

            adapter = TypeAdapter(list[EvidenceItem])
            return adapter.dump_json(items, indent=2).decode() + "\n"
        if fmt == "csv":
            buffer = io.StringIO()
            writer = _SafeWriter(buffer)
            writer.writerow(["section", "item", "measure", "value"])
            writer.writerows(_rows("evidence", [i.model_dump(mode="json") for i in items]))
            return buffer.getvalue()
        blocks = evidence_document(items, report)
        return to_markdown(blocks) if fmt == "md" else to_html(blocks)
    if fmt == "json":
        return to_json(report)
    if fmt == "csv":
        return to_csv(report)
    blocks = report_document(report)
    return to_markdown(blocks) if fmt == "md" else to_html(blocks, report)
