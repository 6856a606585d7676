"""The outcome report clinic managers read each morning (issue 7): build and write it.

One self-contained HTML file (inline CSS and SVG charts, no script, no network request) and a PDF of the
same HTML (WeasyPrint), built from the finished warehouse after every run: a network overview, then one
section per clinic. The parts, each in its own module of this package:
- queries: what the report reads (SQL in sql/report/, one statement per file) into one ReportData;
- estimates: the Kaplan-Meier estimates the marts do not carry (per period and per clinic);
- sections: each section's content, every patient-based figure through wording.Formatter;
- wording: plain words, definitions, formats and the small-cell words;
- charts: the SVG charts; pdf: the HTML as it goes to WeasyPrint;
- templates/: the Jinja template and the stylesheet.
"""

from __future__ import annotations

import datetime as dt
import importlib
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb
import jinja2
from markupsafe import Markup

from clinic_outcomes.report import queries
from clinic_outcomes.report.pdf import print_html
from clinic_outcomes.report.queries import ReportInputError
from clinic_outcomes.report.sections import Builder
from clinic_outcomes.report.wording import PERIOD_DAYS, definitions, label_of
from clinic_outcomes.settings import Settings

__all__ = ["ReportInputError", "ReportPaths", "build_html", "render_report"]

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    pdf: Path


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["label"] = label_of
    return env




def build_html(con: duckdb.DuckDBPyConnection, *, settings: Settings, as_of: dt.date,
               data_docs_href: str | None = "data-docs/index.html", run_id: int | None = None) -> str:
    """The report as one self-contained HTML document."""
    missing = queries.missing_inputs(con)
    if missing:
        raise ReportInputError("the warehouse lacks what the report is built from: " + ", ".join(missing))
    with queries.prepared(con, as_of):
        data = queries.load(con, as_of, run_id)
    builder = Builder(data, settings, as_of)
    sections = [builder.section(None)] + [builder.section(clinic) for clinic in data.clinics]
    current_start = as_of - dt.timedelta(days=PERIOD_DAYS - 1)
    context = {
        "as_of": as_of,
        "period": f"{current_start:%d %b %Y} to {as_of:%d %b %Y}",
        "sections": sections,
        "definitions": definitions(settings),
        "quality": queries.data_quality(con, data.run_id, data.runs),
        "data_docs_href": data_docs_href,
        "min_cell": settings.rules.min_cell_patients,
        "css": Markup((TEMPLATES_DIR / "report.css").read_text(encoding="utf-8")),
    }
    return _environment().get_template("report.html.j2").render(**context)


def render_report(
    con: duckdb.DuckDBPyConnection,
    *,
    settings: Settings,
    as_of: dt.date,
    out_dir: Path,
    data_docs_href: str | None = "data-docs/index.html",
    run_id: int | None = None,
) -> ReportPaths:
    """Write report.html and report.pdf (the same document) into out_dir."""
    # WeasyPrint is imported here (loading pango costs time that build_html callers need not pay), in a
    # thread: the import (about a second) runs while the warehouse queries hold no lock on the interpreter.
    loading = threading.Thread(target=importlib.import_module, args=("weasyprint",), name="import-weasyprint", daemon=True)
    loading.start()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        document = build_html(con, settings=settings, as_of=as_of, data_docs_href=data_docs_href, run_id=run_id)
    finally:
        loading.join()
    import weasyprint  # already loaded by the thread; an import error shows here
    paths = ReportPaths(html=out_dir / "report.html", pdf=out_dir / "report.pdf")
    paths.html.write_text(document, encoding="utf-8")
    # base_url None: the HTML refers to nothing outside itself, so WeasyPrint must fetch nothing.
    weasyprint.HTML(string=print_html(document), base_url=None).write_pdf(paths.pdf)
    return paths
