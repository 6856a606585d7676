"""The PDFs typeset in worker processes (report/pdf.py, issue 18): the same documents as one process writes,
every file written, and a worker's failure is the stage's failure.

Mutants tried (each made a test here fail):
- PdfWriter.wait returning without waiting for the futures -> test_parallel_pdfs_equal_the_serial_ones (files
  missing when render_report returns);
- write_pdf swallowing WeasyPrint's error -> test_a_worker_s_failure_fails_the_stage;
- processes_for ignoring the setting (always one per core) -> test_the_setting_names_the_processes.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

import report_fixtures as rf
from clinic_outcomes.report.pdf import PdfWriter, processes_for
from clinic_outcomes.report.render import render_report


def test_the_setting_names_the_processes():
    assert processes_for(3) == 3
    assert processes_for(1) == 1
    assert processes_for(0) == len(os.sched_getaffinity(0))


def test_parallel_pdfs_equal_the_serial_ones(tmp_path):
    con = rf.build_warehouse()
    try:
        written = {}
        for processes in (1, 2):
            settings = dataclasses.replace(rf.settings(min_cell_patients=2), pdf_processes=processes)
            out = tmp_path / f"p{processes}"
            render_report(con, settings=settings, as_of=rf.AS_OF, out_dir=out, data_docs_href=None)
            pdfs = sorted(path.relative_to(out) for path in out.rglob("*.pdf"))
            htmls = sorted(path.relative_to(out) for path in out.rglob("*.html"))
            assert [p.with_suffix("") for p in pdfs] == [h.with_suffix("") for h in htmls]  # a PDF per report
            written[processes] = {str(p): rf.pdf_text((out / p).read_bytes()) for p in pdfs}
    finally:
        con.close()
    assert len(written[1]) >= 2  # the network and at least one clinic
    assert written[2] == written[1]


def test_a_worker_s_failure_fails_the_stage(tmp_path):
    missing = tmp_path / "no-such-folder" / "x.pdf"
    with PdfWriter(2) as pdfs:
        pdfs.submit("<html><body><p>fine</p></body></html>", tmp_path / "fine.pdf")
        pdfs.submit("<html><body><p>lost</p></body></html>", missing)
        with pytest.raises(FileNotFoundError):
            pdfs.wait()
    assert not missing.exists()


def test_one_process_writes_in_this_process(tmp_path):
    with PdfWriter(1) as pdfs:
        pdfs.submit("<html><body><p>one</p></body></html>", tmp_path / "one.pdf")
        pdfs.wait()
    assert "one" in rf.pdf_text((tmp_path / "one.pdf").read_bytes())
