"""Fuzz the loader (derandomised, modest): random bytes and random CSV structure (quotes, separators, BOM, CR/LF
mixes, control characters, long fields, wrong headers, gzip of junk). For every example: the load ends, and
for every file every data row is loaded or recorded as rejected, the two counts add up, and for a file that
loads they add up to its physical records (Python's csv module over the same bytes, blank lines skipped).

The row limit is lowered to 4 KiB here (physical.LIMIT, which the reader's max_line_size follows), so that
long rows, rows just over the limit and rows spanning prescan blocks come up cheaply.

Mutants tried (each made this test fail within its examples):
- quote parity per line instead of physical._QuoteState (the first version): the explicit example below;
- (survived: `... or size > LIMIT` dropped from physical.normalised_copy's oversize test: a record over the
  limit made of short lines then reaches DuckDB, whose max_line_size rejects it itself, so the counts still
  add up; the reason then lacks the size.)
"""

from __future__ import annotations

import csv
import gzip
import io

from hypothesis import HealthCheck, example, given, settings, strategies as st

from clinic_outcomes import warehouse
from clinic_outcomes.loading import load, physical
from clinic_outcomes.settings import Settings
from load_fixtures import AS_OF, SECRET, session, site

SMALL_LIMIT = 4096
HEADERS = {
    "needle_sites": [",".join(site()), "Session_ID , SITE,side", "session_id,site", "site,side,needles,session_id,extra"],
    "sessions": [",".join(session()), ",".join(list(session())[:8])],
}
VALUES = {"needle_sites": list(site().values()), "sessions": list(session().values())}
PIECES = st.sampled_from(['"', '""', ",", "\n", "\r\n", "\r", " ", "x", "\ufeff", "\x00", "\u202e", "é", "left", "s1", "3"])


@st.composite
def fields(draw, entity: str, index: int) -> str:
    kind = draw(st.integers(0, 9))
    if kind < 5:  # a plausible value
        values = VALUES[entity]
        return values[index % len(values)]
    if kind < 8:  # junk from the pieces that make CSV hard
        return "".join(draw(st.lists(PIECES, max_size=6)))
    if kind == 8:  # a quoted field, maybe holding line breaks and quotes
        inner = "".join(draw(st.lists(PIECES, max_size=5))).replace('"', '""')
        return f'"{inner}"'
    return "L" * draw(st.sampled_from([SMALL_LIMIT // 2, SMALL_LIMIT - 200, SMALL_LIMIT + 1, 3 * SMALL_LIMIT]))


@st.composite
def csv_files(draw, entity: str) -> bytes:
    header = draw(st.sampled_from(HEADERS[entity]))
    width = draw(st.integers(2, 6))
    lines = [header]
    for _ in range(draw(st.integers(0, 8))):
        n = width if draw(st.booleans()) else draw(st.integers(1, 7))
        lines.append(",".join(draw(fields(entity, i)) for i in range(n)))
    ends = [draw(st.sampled_from(["\n", "\r\n", "\n\n", "\r\n"])) for _ in lines]
    text = "".join(line + end for line, end in zip(lines, ends))
    if draw(st.booleans()):
        text = text.rstrip("\r\n")  # no line end after the last line
    data = (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + text.encode("utf-8")
    return data


@st.composite
def export_files(draw) -> dict[str, bytes]:
    files = {}
    for entity in draw(st.lists(st.sampled_from(["needle_sites", "sessions"]), min_size=1, max_size=2, unique=True)):
        kind = draw(st.integers(0, 9))
        if kind == 0:
            files[f"{entity}.csv"] = draw(st.binary(max_size=300))
        elif kind == 1:
            files[f"{entity}.csv.gz"] = draw(st.binary(max_size=100))  # gzip of nothing: junk
        elif kind == 2:
            files[f"{entity}.csv.gz"] = gzip.compress(draw(csv_files(entity)), mtime=0)
        else:
            files[f"{entity}.csv"] = draw(csv_files(entity))
    return files


def physical_records(data: bytes) -> int | None:
    """Data records as Python's csv module reads them (blank lines skipped); None if it cannot."""
    try:
        reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
        next(reader)
        return sum(1 for row in reader if row)
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(files=export_files())
# Found by this test: a quote inside an unquoted field is literal (it opens no quoted field), so the over-long
# line after it is a record of its own.
@example(files={"needle_sites.csv": b'session_id,site,side,needles\ns1,lumbar_multifidus,' + b"L" * 2048
                + b'\r\ns1,lumbar_multifidus,\x003",2,s1,lumbar_multifidus\n' + b"L" * 12288 + b"\n"})
def test_every_row_of_every_file_is_loaded_or_rejected_and_the_counts_add_up(tmp_path_factory, monkeypatch_module, files):
    exports = tmp_path_factory.mktemp("fuzz") / "exports"
    (exports / "d1").mkdir(parents=True)
    for name, data in files.items():
        (exports / "d1" / name).write_bytes(data)
    con = warehouse.connect(None)
    try:
        load.prepare(con, Settings(), AS_OF, 1)
        summary = load.load_exports(con, exports, secret=SECRET, run_id=1)
        recorded = dict(con.execute("select source_file, count(*) from quality.rejected_rows group by all").fetchall())
    finally:
        con.close()
    assert len(summary.files) + len(summary.already_loaded) == len(files)  # the same bytes twice: loaded once
    for result in summary.files:
        path = result.file.relpath
        assert result.rows_read == result.rows_loaded + result.rows_rejected, path
        if result.status == "rejected":
            assert (result.rows_loaded, recorded.get(path)) == (0, 1), path
            continue
        assert recorded.get(path, 0) == result.rows_rejected, path
        data = files[result.file.path.name]
        text = gzip.decompress(data) if path.endswith(".gz") else data
        expected = physical_records(text)
        if expected is not None:
            assert result.rows_read == expected, (path, text[:400])


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(physical, "LIMIT", SMALL_LIMIT)
        yield patch
