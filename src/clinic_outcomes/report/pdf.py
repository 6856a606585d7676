"""The PDF's input: the report's HTML with each table set as lines of fixed-width text and each chart as an
image (clinic_outcomes.report.render writes it with WeasyPrint)."""

from __future__ import annotations

import base64
import html
import re
import textwrap
from dataclasses import dataclass, field
from html.parser import HTMLParser

from clinic_outcomes.report.charts import esc

# The PDF: the same HTML, with each table set as lines of fixed-width text.
#
# WeasyPrint lays out every table cell as its own box (about half a millisecond each): the
# report's ~4,700 cells took most of the PDF's time. A row of text is one box, so in the
# PDF each table becomes one line (or a few, where a cell wraps) per row, columns aligned
# in a monospace font. Every cell's text stays as it is: small-cell words included.

PRINT_TABLE_CHARS = 150  # characters per table line: report.css sets them in 11px DejaVu Sans Mono on A4 landscape
PRINT_COLUMN_GAP = 2
_TABLE_RE = re.compile(r'<table class="grid[^"]*"[^>]*>.*?</table>', re.S)


@dataclass
class _Cell:
    text: str = ""  # explicit line breaks (<br>) as "\n"
    span: int = 1


@dataclass
class _Row:
    kind: str  # "head", "body" or "total"
    cells: list[_Cell] = field(default_factory=list)


class _TableReader(HTMLParser):
    """The caption and rows of one of the report's own tables (cell text only; links' "?" left out)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.attrs: dict[str, str | None] = {}
        self.caption: list[str] = []
        self.rows: list[_Row] = []
        self._section = "body"
        self._cell: _Cell | None = None
        self._in_caption = False
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "table":
            self.attrs = named
        elif tag == "thead":
            self._section = "head"
        elif tag == "tbody":
            self._section = "body"
        elif tag == "tr":
            total = "total" in (named.get("class") or "").split()
            self.rows.append(_Row("head" if self._section == "head" else "total" if total else "body"))
        elif tag in ("th", "td"):
            self._cell = _Cell(span=int(named.get("colspan") or 1))
            self.rows[-1].cells.append(self._cell)
        elif tag == "br" and self._cell is not None:
            self._cell.text += "\n"
        elif tag == "caption":
            self._in_caption = True
        elif tag == "a" and "ref" in (named.get("class") or "").split():
            self._skip_depth += 1  # the "?" link to a definition: nothing to follow on paper

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td"):
            self._cell = None
        elif tag == "caption":
            self._in_caption = False
        elif tag == "a" and self._skip_depth:
            self._skip_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._cell is not None:
            self._cell.text += data
        elif self._in_caption:
            self.caption.append(data)


def _squash(text: str) -> str:
    return " ".join(text.split())


def _column_widths(rows: list[_Row], columns: int, budget: int) -> list[int]:
    """Each column as wide as its widest line, narrowed until the table fits the budget.

    Headers wrap first (down to the column's widest value), then the widest values wrap; a column
    is never narrower than its longest word. The widest column gives way first, so widths even out.
    """
    values, headers, longest_word = [0] * columns, [0] * columns, [1] * columns
    for row in rows:
        column = 0
        for cell in row.cells:
            if cell.span == 1 and column < columns:
                widest = max(len(_squash(line)) for line in cell.text.split("\n"))
                if row.kind == "head":
                    headers[column] = max(headers[column], widest)
                else:
                    values[column] = max(values[column], widest)
                longest_word[column] = max(longest_word[column], *(len(word) for word in cell.text.split()), 0)
            column += cell.span
    widths = [max(v, h, w) for v, h, w in zip(values, headers, longest_word)]
    for floor in ([max(v, w) for v, w in zip(values, longest_word)], longest_word):
        while sum(widths) + PRINT_COLUMN_GAP * (columns - 1) > budget:
            narrower = [i for i in range(columns) if widths[i] > floor[i]]
            if not narrower:
                break
            widest = max(narrower, key=lambda i: widths[i])
            widths[widest] -= 1
    return widths


def _cell_lines(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for line in text.split("\n"):
        lines.extend(textwrap.wrap(_squash(line), width) or [""])
    return lines


def text_table(rows: list[_Row], budget: int = PRINT_TABLE_CHARS) -> list[tuple[str, str]]:
    """(kind, text) per row: the cells in aligned columns, first column left, the others right (as on screen)."""
    if not rows:
        return []
    columns = max(sum(cell.span for cell in row.cells) for row in rows)
    widths = _column_widths(rows, columns, budget)
    gap = " " * PRINT_COLUMN_GAP
    out = []
    for row in rows:
        placed: list[tuple[list[str], int, bool]] = []  # lines, width, left-aligned
        column = 0
        for cell in row.cells:
            span = min(cell.span, columns - column)
            width = sum(widths[column:column + span]) + PRINT_COLUMN_GAP * (span - 1)
            placed.append((_cell_lines(cell.text, width), width, column == 0 or span > 1))
            column += span
        height = max((len(lines) for lines, _, _ in placed), default=1)
        text_lines = []
        for index in range(height):
            parts = []
            for lines, width, left in placed:
                piece = lines[index] if index < len(lines) else ""
                parts.append(piece.ljust(width) if left else piece.rjust(width))
            text_lines.append(gap.join(parts).rstrip())
        out.append((row.kind, "\n".join(text_lines)))
    return out


def _text_table_html(match: re.Match[str]) -> str:
    reader = _TableReader()
    reader.feed(match.group(0))
    reader.close()
    attributes = "".join(
        f' {name}="{esc(value)}"' for name, value in reader.attrs.items() if name.startswith("data-") and value is not None
    )
    parts = [f'<div class="text-table"{attributes}>']
    caption = _squash("".join(reader.caption))
    if caption:
        parts.append(f'<p class="caption">{esc(caption)}</p>')
    for kind, text in text_table(reader.rows):
        parts.append(f'<div class="line {kind}">{html.escape(text, quote=False)}</div>')
    parts.append("</div>")
    return "".join(parts)


# Each chart goes to WeasyPrint as an image of the same SVG (a data: URL) instead of inline: WeasyPrint draws
# both with the same SVG renderer (the PDF's bytes are the same), but inline, every element of a chart is
# first tokenised by its HTML parser and given a computed CSS style like any HTML element; as an image the
# SVG is read by an XML parser and styled by nothing but its own attributes. At 1M: the 40 charts cost
# 1.1 CPU s inline, 0.85 as images. The style repeats what report.css gives `svg.chart` on paper.
_CHART_RE = re.compile(r'<svg class="chart" [^>]*>.*?</svg>', re.S)
PRINT_CHART_STYLE = "display: block; max-width: 100%; height: auto;"


def _chart_image(match: re.Match[str]) -> str:
    data = base64.b64encode(match.group(0).encode("utf-8")).decode("ascii")
    return f'<img class="chart" alt="" style="{PRINT_CHART_STYLE}" src="data:image/svg+xml;base64,{data}">'


def print_html(document: str) -> str:
    """The report's HTML as it goes to WeasyPrint: every table as fixed-width lines of text, every chart an image."""
    return _CHART_RE.sub(_chart_image, _TABLE_RE.sub(_text_table_html, document))

