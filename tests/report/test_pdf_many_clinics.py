"""The network's PDF at many clinics: the clinics' table runs over the page break (its header repeated) instead
of being pushed whole onto a page of its own, which left page 1 and page 2 all but blank at 40 clinics
(issue 18's benchmark network, seen 2026-12-07).

Mutant tried: print.html.j2 without the `breakable` class on the clinics' table -> this test (pages 1 and 2
end right after the tiles and the heading).
"""

from __future__ import annotations

import pytest

import report_fixtures as rf
from clinic_outcomes.report.render import build_print_html, render_report

CLINICS = 24


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    import weasyprint

    root = tmp_path_factory.mktemp("many-clinics")
    con, settings, as_of, _ = rf.generated_network(root, 900, clinics=CLINICS)
    try:
        render_report(con, settings=settings, as_of=as_of, out_dir=root / "reports", data_docs_href=None)
        printed = build_print_html(con, settings=settings, as_of=as_of)
    finally:
        con.close()
    return weasyprint.HTML(string=printed, base_url=None).render().pages


def _text(page) -> str:
    """The text laid out on a WeasyPrint page."""
    out = []

    def walk(box):
        if hasattr(box, "text"):
            out.append(box.text)
        for child in getattr(box, "children", ()):
            walk(child)

    walk(page._page_box)
    return " ".join(out)


def test_the_clinics_table_starts_under_its_heading_and_runs_on(pages):
    first = _text(pages[0])
    assert "Clinics side by side" in first
    assert "Clinic 001" in first  # the table starts on the page of its heading
    later = [i for i, page in enumerate(pages) if f"Clinic {CLINICS:03d}" in _text(page)]
    assert later and later[0] >= 1  # and runs over the break
    assert "Patients" in _text(pages[later[0]])  # its header repeated there
