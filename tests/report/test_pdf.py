"""The PDF (issue 17): a print document of its own, a few pages for the network, one or two per clinic, with
real tables, no screen-only marks, no patient identifier, and only figures the HTML report shows.

Page counts are WeasyPrint's (`HTML(...).render().pages`) on whole synthetic networks built stage by stage
without Prefect: the demo's size (cli.DEMO_PATIENTS) and 1,500 patients (as test_report_disclosure's fixture).

Mutants tried (each made a test here fail):
- render._print_document giving a clinic the network's context (network_context for every document) ->
  test_page_counts (a clinic's PDF is 4 pages) and test_a_clinic_pdf_shows_its_figures_beside_the_network_s;
- print.css without `break-inside: avoid` and with `.per-3 .chart-block { width: 100% }` -> test_page_counts
  (network 6 pages);
- print_report.PRINT_CASES = 60 (the whole case list on paper) -> test_the_case_list_is_cut_with_a_pointer_to_
  the_html;
- print.html.j2 keeping the screen's term() macro (a "?" link after every term) -> test_no_screen_only_marks;
- print_report.clinics_table taking each clinic's `previous` text instead of `text` ->
  test_every_figure_printed_is_one_the_html_shows;
- print_report.quality_line counting rejected files instead of rows -> test_quality_line_sums_rejected_rows.
"""

from __future__ import annotations

import csv
import html as html_module
import re
from pathlib import Path

import pytest

import report_fixtures as rf
from clinic_outcomes.report import print_report
from clinic_outcomes.report.render import (
    build_html, build_print_documents, build_print_html, render_report, safe_file_stem,
)

NETWORK_PAGES = 4
CLINIC_PAGES = 2


def _identifiers(exports: Path) -> set[str]:
    """Every direct identifier the exports hold (EMR numbers, names, dates of birth, phones, postal codes)."""
    found: set[str] = set()
    for path in exports.glob("*/patients.csv"):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                found.update(row[name] for name in ("patient_id", "full_name", "date_of_birth", "phone", "postal_code")
                             if row.get(name))
    return found


def _pages(document: str) -> int:
    import weasyprint

    return len(weasyprint.HTML(string=document, base_url=None).render().pages)


def _text(document: str) -> str:
    """What a reader sees of a print document: its text, images (the charts) left out."""
    without_images = re.sub(r"<img [^>]*>", " ", document)
    body = without_images[without_images.index("<body>"):]
    return " ".join(html_module.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def _cells(document: str, table: str) -> list[list[str]]:
    """A table's body rows, each a list of its cells' text."""
    found = re.search(rf'<table data-table="{table}"[^>]*>.*?<tbody>(.*?)</tbody>', document, re.S)
    assert found, table
    return [[_text(f"<body>{cell}") for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", found.group(1), re.S)]


@pytest.fixture(scope="module", params=["demo", 1500])
def network(request, tmp_path_factory):
    from clinic_outcomes.cli import DEMO_PATIENTS

    patients = DEMO_PATIENTS if request.param == "demo" else request.param
    root = tmp_path_factory.mktemp(f"pdf-{request.param}")
    con, settings, as_of, exports = rf.generated_network(root, patients)
    render_report(con, settings=settings, as_of=as_of, out_dir=root / "reports", data_docs_href=None)
    printed = build_print_documents(con, settings=settings, as_of=as_of)
    clinics = [scope for scope in printed if scope is not None]
    assert clinics and printed[clinics[0]] == build_print_html(con, settings=settings, as_of=as_of, clinic_id=clinics[0])
    yield {"con": con, "settings": settings, "as_of": as_of, "exports": exports, "reports": root / "reports",
           "printed": printed, "clinics": clinics}
    con.close()


def test_page_counts(network):
    pages = {scope: _pages(document) for scope, document in network["printed"].items()}
    assert pages[None] <= NETWORK_PAGES, pages
    assert all(1 <= n <= CLINIC_PAGES for scope, n in pages.items() if scope is not None), pages
    # the file the night writes is this document (its footer counts its pages)
    written = rf.pdf_text((network["reports"] / "report.pdf").read_bytes())
    assert f"page {pages[None]} of {pages[None]}" in written


def test_no_screen_only_marks(network):
    for scope, document in network["printed"].items():
        assert 'class="ref"' not in document and "<a " not in document, scope
        assert not re.search(r"<(?!img)[a-z]+[^>]* title=", document), scope  # no hover-only text
        assert "?" not in _text(document), scope
        # charts as images: the network's 2 relief curves, 3 funnels and 3 trends; a clinic's trends (a trend
        # whose every month is under the minimum cell is not drawn)
        assert "<svg" not in document and document.count('<img class="chart"') >= (8 if scope is None else 1), scope
        assert "text-table" not in document and "<table" in document, scope  # real tables


def test_no_patient_identifier_in_the_pdf(network):
    identifiers = _identifiers(network["exports"])
    assert len(identifiers) > 1000
    for scope, document in network["printed"].items():
        shown = _text(document)
        leaked = {value for value in identifiers if value in shown}
        assert not leaked, (scope, sorted(leaked)[:5])
    pdf_text = rf.pdf_text((network["reports"] / "report.pdf").read_bytes())
    assert "Clinics side by side" in pdf_text
    assert not {value for value in identifiers if len(value) > 5 and value in pdf_text}


def test_every_figure_printed_is_one_the_html_shows(network):
    """R7: each clinic's row in the network PDF's clinics table holds the texts of that clinic's own HTML report."""
    con, settings, as_of = network["con"], network["settings"], network["as_of"]
    rows = {row[0]: row for row in _cells(network["printed"][None], "clinics")}
    assert len(rows) == len(network["clinics"]) + 1
    for clinic in network["clinics"][:3]:
        page = build_html(con, settings=settings, as_of=as_of, clinic_id=clinic, data_docs_href=None)
        figures = rf.figures(page, clinic)
        row = rows[settings.clinic_name(clinic)]
        keys = print_report.CLINIC_COLUMNS
        assert row[1:1 + len(keys)] == [figures[key] for key in keys], clinic
    network_figures = rf.figures(build_html(con, settings=settings, as_of=as_of, data_docs_href=None), "network")
    assert rows["All clinics"][1:1 + len(print_report.CLINIC_COLUMNS)] == [
        network_figures[key] for key in print_report.CLINIC_COLUMNS]


def test_small_cells_keep_their_words(network):
    shown = " ".join(_text(document) for document in network["printed"].values())
    assert "fewer than 11" in shown
    assert not re.search(r"\b(?:[1-9]|10) patients\b", shown)


def test_a_clinic_pdf_shows_its_figures_beside_the_network_s(network):
    clinic = network["clinics"][0]
    document = network["printed"][clinic]
    rows = _cells(document, "comparison")
    network_headline = {row[0]: row for row in _cells(network["printed"][None], "clinics")}["All clinics"]
    assert [row[0] for row in rows][:2] == ["Patients", "Plans in care"]
    assert rows[0][-1] == network_headline[1]  # patients, all clinics
    assert "Clinics side by side" not in _text(document) and "Relief by condition" not in _text(document)


def test_the_case_list_is_cut_with_a_pointer_to_the_html(network):
    for clinic in network["clinics"]:
        stem = safe_file_stem(clinic)
        html_rows = rf.table_rows((network["reports"] / "clinics" / f"{stem}.html").read_text(encoding="utf-8"),
                                  clinic, "retreatment")
        document = network["printed"][clinic]
        if not html_rows:
            assert 'data-table="retreatment"' not in document
            continue
        printed = _cells(document, "retreatment")
        assert printed == html_rows[:print_report.PRINT_CASES]
        more = len(html_rows) - print_report.PRINT_CASES
        if more > 0:
            assert f"{more} more in the HTML report" in _text(document)
        else:
            assert "more in the HTML report" not in _text(document)


def test_quality_line_sums_rejected_rows():
    quality = {"run_id": 3, "expectations": [{"suite": "s"}],
               "rejected": [{"entity": "sessions", "rows_rejected": 5}, {"entity": "plans", "rows_rejected": 1200}]}
    assert print_report.quality_line(quality) == (
        "Run 3: 1,205 rows rejected (plans, sessions); 1 data check failed. "
        "The HTML report's data-quality section has the details.")
    assert print_report.quality_line({"run_id": 4, "rejected": [], "expectations": []}).startswith(
        "Run 4: no rows rejected; every data check passed.")
    assert print_report.quality_line({"run_id": None}) == "No run recorded yet."


def test_the_small_fixture_prints_without_identifiers(tmp_path):
    """The report tests' fixture plants identifiers and never-stored values (report_fixtures.NEVER_SHOWN):
    none reaches any PDF, the network's or a clinic's."""
    con = rf.build_warehouse()
    render_report(con, settings=rf.settings(min_cell_patients=2), as_of=rf.AS_OF, out_dir=tmp_path)
    pdfs = [tmp_path / "report.pdf", *sorted((tmp_path / "clinics").glob("*.pdf"))]
    assert len(pdfs) == 3
    for path in pdfs:
        rf.assert_absent(rf.pdf_text(path.read_bytes()), str(path))
