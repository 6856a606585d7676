"""The outcome report clinic managers read each morning (issue 7): build and write it.

One self-contained HTML file per report (inline CSS and SVG charts, no script, no network request): a network
overview, or one clinic's section beside the network's. And a PDF per report, typeset from the same sections as
a print document of its own (print_report, issue 17): a few pages for the network, one or two per clinic.
The parts, each in its own module of this package:
- queries: what the report reads (SQL in sql/report/, one statement per file) into one ReportData;
- estimates: the Kaplan-Meier estimates the marts do not carry (per period and per clinic);
- sections: each section's content, every patient-based figure through wording.Formatter;
- wording: plain words, definitions, formats and the small-cell words;
- charts: the SVG charts; print_report: the PDF's layout from the sections;
- templates/: the Jinja templates (report.html.j2 for screens, print.html.j2 for paper) and their stylesheets.

Each section is built once per run (the network's, then each clinic's) and serves the HTML and the PDF.

Measured (issue 17, the demo's warehouse: network + 7 clinics, HTML + PDF each; 2 shared cores under load,
CPU seconds of the report stage, render_report): before, 19-page network PDF and 25-page clinic PDFs
(each clinic's document carried the whole network section); see REPORT_TIMINGS below for the figures after.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import jinja2
from markupsafe import Markup

from clinic_outcomes.report import queries
from clinic_outcomes.report.cell_tables import CellTables
from clinic_outcomes.report.cells import build_report_cells
from clinic_outcomes.report import print_report
from clinic_outcomes.report.pdf import PdfWriter, processes_for
from clinic_outcomes.report.queries import ReportInputError
from clinic_outcomes.report.sections import Builder, Section
from clinic_outcomes.report.wording import PERIOD_DAYS, definitions, label_of
from clinic_outcomes.settings import Settings

__all__ = ["ReportInputError", "ReportPaths", "build_html", "build_print_documents", "build_print_html", "render_report",
           "safe_file_stem"]

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    pdf: Path
    pdfs_reused: tuple[str, ...] = ()  # PDFs copied from the previous report (their documents unchanged)


@functools.cache
def _environment() -> jinja2.Environment:
    """The templates' environment, one per process: Jinja compiles each template once and caches it (auto_reload
    still picks up an edited template file). A new environment per document compiled both templates again for
    every report: 8.7 of the report stage's 52 s at 1M sessions, under cProfile."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["label"] = label_of
    return env




def safe_file_stem(clinic_id: str) -> str:
    """A clinic id as a file name: a clinic id is export data (hostile), so only letters, digits, '_' and '-'
    are kept (at most 60) and, when anything was changed, a digest of the id tells apart ids that would
    otherwise collide ("a/b" and "a?b")."""
    kept = re.sub(r"[^A-Za-z0-9_-]", "_", clinic_id)[:60]
    if kept == clinic_id and kept and kept[0] not in "-_":
        return kept
    return f"{kept.lstrip('-_') or 'clinic'}-{hashlib.sha256(clinic_id.encode('utf-8')).hexdigest()[:12]}"


@dataclass
class _Loaded:
    builder: Builder
    clinics: list[str]
    quality: dict


def _load(con: duckdb.DuckDBPyConnection, settings: Settings, as_of: dt.date, run_id: int | None,
          cells: bool = True) -> _Loaded:
    """The report's queries; `cells` False: marts.report_cells is not read (the caller is about to build it)."""
    missing = [name for name in queries.missing_inputs(con) if cells or not name.startswith("marts.report_cells")]
    if missing:
        raise ReportInputError("the warehouse lacks what the report is built from: " + ", ".join(missing))
    with queries.prepared(con, as_of):
        data = queries.load(con, as_of, run_id, with_cells=cells)
    return _Loaded(Builder(data, settings, as_of), data.clinics, queries.data_quality(con, data.run_id, data.runs))


def _period(as_of: dt.date) -> str:
    current_start = as_of - dt.timedelta(days=PERIOD_DAYS - 1)
    return f"{current_start:%d %b %Y} to {as_of:%d %b %Y}"


def _document(loaded: _Loaded, *, settings: Settings, as_of: dt.date, data_docs_href: str | None,
              clinic_id: str | None, clinic_href, sections: dict[str | None, Section] | None = None) -> str:
    """The network's report (clinic_id None), or one clinic's: its section, then the network's beside it.
    `sections`: the sections already built (render_report builds each once), else built here."""
    built = sections if sections is not None else {}

    def section(scope: str | None) -> Section:
        return built[scope] if scope in built else loaded.builder.section(scope)

    shown = [section(None)] if clinic_id is None else [section(clinic_id), section(None)]
    context = {
        "as_of": as_of,
        "period": _period(as_of),
        "sections": shown,
        "definitions": definitions(settings),
        "quality": loaded.quality,
        "data_docs_href": data_docs_href,
        "min_cell": settings.rules.min_cell_patients,
        "css": Markup((TEMPLATES_DIR / "report.css").read_text(encoding="utf-8")),
        "clinic_href": clinic_href,
    }
    return _environment().get_template("report.html.j2").render(**context)


def _print_document(loaded: _Loaded, *, settings: Settings, as_of: dt.date, clinic_id: str | None,
                    sections: dict[str | None, Section]) -> str:
    """The PDF's HTML (print_report): the network's (sections: the network's and every clinic's), or one
    clinic's (sections: at least its own and the network's)."""
    common = {"definitions": definitions(settings), "name_of": settings.clinic_name, "as_of": as_of,
              "period": _period(as_of), "min_cell": settings.rules.min_cell_patients}
    if clinic_id is None:
        context = print_report.network_context(
            network=sections[None], clinics={c: sections[c] for c in loaded.clinics if c in sections},
            quality=loaded.quality, **common)
    else:
        context = print_report.clinic_context(clinic=sections[clinic_id], network=sections[None], **common)
    css = Markup((TEMPLATES_DIR / "print.css").read_text(encoding="utf-8"))
    return _environment().get_template("print.html.j2").render(css=css, **context)


def _sections(loaded: _Loaded, clinic_id: str | None) -> dict[str | None, Section]:
    """The sections a document needs: the network's and every clinic's (network), or the network's and one."""
    scopes = [None, *loaded.clinics] if clinic_id is None else [None, clinic_id]
    return {scope: loaded.builder.section(scope) for scope in scopes}


def build_print_html(con: duckdb.DuckDBPyConnection, *, settings: Settings, as_of: dt.date,
                     run_id: int | None = None, clinic_id: str | None = None) -> str:
    """The PDF's HTML of one report (the network's, or one clinic's), as render_report gives WeasyPrint.
    Reads marts.report_cells as it stands."""
    loaded = _load(con, settings, as_of, run_id)
    return _print_document(loaded, settings=settings, as_of=as_of, clinic_id=clinic_id,
                           sections=_sections(loaded, clinic_id))


def build_print_documents(con: duckdb.DuckDBPyConnection, *, settings: Settings, as_of: dt.date,
                          run_id: int | None = None) -> dict[str | None, str]:
    """Every PDF's HTML (key None: the network's; else a clinic id), from one reading of the warehouse."""
    loaded = _load(con, settings, as_of, run_id)
    sections = _sections(loaded, None)
    return {scope: _print_document(loaded, settings=settings, as_of=as_of, clinic_id=scope, sections=sections)
            for scope in [None, *loaded.clinics]}


def build_html(con: duckdb.DuckDBPyConnection, *, settings: Settings, as_of: dt.date,
               data_docs_href: str | None = "data-quality/index.html", run_id: int | None = None,
               clinic_id: str | None = None) -> str:
    """One report as a self-contained HTML document: the network's, or one clinic's (clinic_id).
    Reads marts.report_cells as it stands (build_report_cells writes it first in render_report)."""
    loaded = _load(con, settings, as_of, run_id)
    known = set(loaded.clinics)

    def clinic_href(other: str) -> str | None:
        if other not in known:
            return None
        return f"clinics/{safe_file_stem(other)}.html" if clinic_id is None else f"{safe_file_stem(other)}.html"

    return _document(loaded, settings=settings, as_of=as_of, data_docs_href=data_docs_href, clinic_id=clinic_id,
                     clinic_href=clinic_href)


def render_report(
    con: duckdb.DuckDBPyConnection,
    *,
    settings: Settings,
    as_of: dt.date,
    out_dir: Path,
    data_docs_href: str | None = "data-quality/index.html",
    run_id: int | None = None,
    previous: Path | None = None,
) -> ReportPaths:
    """Compute marts.report_cells (R7), then write report.html and report.pdf (the network) and
    clinics/<clinic>.html and .pdf (each clinic) into out_dir. The PDFs are typeset in `[report] pdf_processes`
    processes (report/pdf.py), started before report_cells is computed; a PDF whose print document is the
    same as in `previous` (the last published report folder) is copied from there."""
    out_dir = Path(out_dir)
    (out_dir / "clinics").mkdir(parents=True, exist_ok=True)
    with PdfWriter(processes_for(settings.pdf_processes), root=out_dir, previous=previous) as pdfs:
        loaded = _load(con, settings, as_of, run_id, cells=False)
        # R7: every figure the reports show, computed and protected once, before any is rendered
        loaded.builder.data.cells = build_report_cells(con, settings=settings, as_of=as_of, data=loaded.builder.data)
        loaded.builder.tables = CellTables(loaded.builder.data.cells, settings.rules.min_cell_patients)
        _write_documents(loaded, pdfs, settings=settings, as_of=as_of, out_dir=out_dir, data_docs_href=data_docs_href)
        pdfs.wait()
    return ReportPaths(html=out_dir / "report.html", pdf=out_dir / "report.pdf", pdfs_reused=tuple(pdfs.reused))


def _write_documents(loaded: _Loaded, pdfs: PdfWriter, *, settings: Settings, as_of: dt.date, out_dir: Path,
                     data_docs_href: str | None) -> None:
    """Write every report's HTML and hand its print document to `pdfs`."""
    known = set(loaded.clinics)
    stems = {clinic: safe_file_stem(clinic) for clinic in loaded.clinics}
    sections = _sections(loaded, None)  # each section once: for its HTML, its PDF and the network's
    clinic_docs = None if data_docs_href is None or "://" in data_docs_href else f"../{data_docs_href}"
    # The network's report first, then each clinic's; each PDF goes to the typesetters as soon as it is built.
    for clinic in [None, *loaded.clinics]:
        if clinic is None:
            stem, docs_href = out_dir / "report", data_docs_href
            href = lambda other: f"clinics/{stems[other]}.html" if other in known else None  # noqa: E731
        else:
            stem, docs_href = out_dir / "clinics" / stems[clinic], clinic_docs
            href = lambda other: f"{stems[other]}.html" if other in known else None  # noqa: E731
        document = _document(loaded, settings=settings, as_of=as_of, data_docs_href=docs_href, clinic_id=clinic,
                             clinic_href=href, sections=sections)
        stem.with_suffix(".html").write_text(document, encoding="utf-8")
        pdfs.submit(_print_document(loaded, settings=settings, as_of=as_of, clinic_id=clinic, sections=sections),
                    stem.with_suffix(".pdf"))
