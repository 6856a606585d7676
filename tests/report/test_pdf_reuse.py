"""A PDF whose print document did not change since the last published report is copied, not typeset again
(report/pdf.py, issue 18: a rerun's cost follows what changed).

Mutants tried (each made a test here fail):
- _reuse ignoring the digest (copying whenever the previous folder has the file) -> test_a_new_night_typesets_every_pdf
  and test_only_the_changed_document_is_typeset;
- the digest leaving out WeasyPrint's version -> test_another_weasyprint_typesets_again;
- wait() not writing the digests -> test_a_rerun_copies_the_unchanged_pdfs (nothing reused);
- an earlier attempt's digests kept when an attempt starts in the same folder -> test_a_failed_attempt_leaves_no_digests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

import report_fixtures as rf
from clinic_outcomes.report import pdf as pdf_module
from clinic_outcomes.report.pdf import DIGESTS, PdfWriter
from clinic_outcomes.report.render import render_report


@pytest.fixture(scope="module")
def con():
    connection = rf.build_warehouse()
    yield connection
    connection.close()


def _render(con, out, as_of=rf.AS_OF, previous=None, run_id=None):
    settings = dataclasses.replace(rf.settings(min_cell_patients=2), pdf_processes=1)
    return render_report(con, settings=settings, as_of=as_of, out_dir=out, data_docs_href=None, previous=previous,
                         run_id=run_id)


def _pdfs(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.pdf")}


def test_a_rerun_copies_the_unchanged_pdfs(con, tmp_path):
    first = _render(con, tmp_path / "run-1")
    assert first.pdfs_reused == ()
    digests = json.loads((tmp_path / "run-1" / DIGESTS).read_text())
    assert set(digests) == set(_pdfs(tmp_path / "run-1"))  # every PDF, by its path in the folder
    again = _render(con, tmp_path / "run-2", previous=tmp_path / "run-1")
    assert set(again.pdfs_reused) == set(digests)  # the same documents: all copied
    assert _pdfs(tmp_path / "run-2") == _pdfs(tmp_path / "run-1")
    assert json.loads((tmp_path / "run-2" / DIGESTS).read_text()) == digests


def test_a_new_night_typesets_every_pdf(con, tmp_path):
    _render(con, tmp_path / "run-1")
    later = _render(con, tmp_path / "run-2", as_of=rf.AS_OF + dt.timedelta(days=1), previous=tmp_path / "run-1")
    assert later.pdfs_reused == ()  # each document names its as-of date
    assert "As of " + f"{rf.AS_OF + dt.timedelta(days=1):%d %B %Y}" in rf.pdf_text(
        (tmp_path / "run-2" / "report.pdf").read_bytes())


def _write(folder, documents: dict[str, str], previous=None) -> list[str]:
    """Typeset {file name: paragraph} into `folder` (one process), reusing `previous`; the PDFs reused."""
    folder.mkdir(exist_ok=True)
    with PdfWriter(1, root=folder, previous=previous) as pdfs:
        for name, text in documents.items():
            pdfs.submit(f"<html><body><p>{text}</p></body></html>", folder / name)
        pdfs.wait()
    return pdfs.reused


def test_only_the_changed_document_is_typeset(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    _write(old, {"one.pdf": "one", "two.pdf": "two"})
    assert _write(new, {"one.pdf": "one", "two.pdf": "two, changed"}, previous=old) == ["one.pdf"]
    assert "changed" in rf.pdf_text((new / "two.pdf").read_bytes())
    assert (new / "one.pdf").read_bytes() == (old / "one.pdf").read_bytes()


def test_another_weasyprint_typesets_again(tmp_path, monkeypatch):
    _write(tmp_path / "old", {"one.pdf": "one"})
    monkeypatch.setattr(pdf_module.importlib.metadata, "version", lambda name: "0.0-another")
    assert _write(tmp_path / "new", {"one.pdf": "one"}, previous=tmp_path / "old") == []


@pytest.mark.parametrize("digests", ["not json", "[1, 2]", '{"one.pdf": 7}'])
def test_unreadable_digests_typeset_everything(tmp_path, digests):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    (old / "one.pdf").write_bytes(b"%PDF-not this one")
    (old / DIGESTS).write_text(digests)
    with PdfWriter(1, root=new, previous=old) as pdfs:
        pdfs.submit("<html><body><p>one</p></body></html>", new / "one.pdf")
        pdfs.wait()
    assert pdfs.reused == []
    assert "one" in rf.pdf_text((new / "one.pdf").read_bytes())


def test_a_missing_previous_pdf_is_typeset(tmp_path):
    _write(tmp_path / "old", {"one.pdf": "one"})
    (tmp_path / "old" / "one.pdf").unlink()
    assert _write(tmp_path / "new", {"one.pdf": "one"}, previous=tmp_path / "old") == []
    assert "one" in rf.pdf_text((tmp_path / "new" / "one.pdf").read_bytes())


def test_a_failed_attempt_leaves_no_digests(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    (root / DIGESTS).write_text('{"one.pdf": "from an earlier attempt"}')
    with PdfWriter(1, root=root) as pdfs:
        pdfs.submit("<html><body><p>one</p></body></html>", root / "one.pdf")
        pdfs.submit("<html><body><p>lost</p></body></html>", root / "no-such-folder" / "x.pdf")
        with pytest.raises(FileNotFoundError):
            pdfs.wait()
    assert not (root / DIGESTS).exists()
