"""The night's working copy is compacted when a fifth or more of the published file's blocks are free (issue 18),
and copied byte for byte otherwise.

Mutants tried (each made a test here fail): the threshold compared with `>` the other way round (compacts the
dense file, the byte-identical test fails); COMPACT_AT_FREE_SHARE = 1.0 (never compacts: the size test fails);
free share computed as used/total (compacts the dense file)."""

import duckdb

from clinic_outcomes.publishing import publish


def _warehouse(path, rows: int, drop_most: bool) -> None:
    con = duckdb.connect(str(path))
    con.execute("create schema core")
    con.execute(f"create table core.big as select range as id, repeat('x', 200) || range as text from range({rows})")
    con.execute("comment on table core.big is 'kept by the compacting copy'")
    con.execute("create table core.kept as select 1 as one")
    if drop_most:
        con.execute("drop table core.big")
        con.execute("create table core.big as select 1 as id, 'small' as text")
    con.execute("checkpoint")
    con.close()


def test_a_file_with_many_free_blocks_is_copied_compacted(tmp_path):
    published, building = tmp_path / "w.duckdb", tmp_path / "w.building"
    publish._create_empty(published, "v1.5.0")
    _warehouse(published, 300_000, drop_most=True)
    assert publish.free_block_share(published) >= publish.COMPACT_AT_FREE_SHARE
    publish.stage_copy(published, building, "v1.5.0")
    assert building.stat().st_size < published.stat().st_size / 2
    assert publish.free_block_share(building) < publish.COMPACT_AT_FREE_SHARE
    con = duckdb.connect(str(building), read_only=True)
    assert con.execute("select * from core.big").fetchall() == [(1, "small")]
    assert con.execute("select * from core.kept").fetchall() == [(1,)]
    con.close()


def test_a_dense_file_is_copied_byte_for_byte(tmp_path):
    published, building = tmp_path / "w.duckdb", tmp_path / "w.building"
    publish._create_empty(published, "v1.5.0")
    _warehouse(published, 300_000, drop_most=False)
    assert publish.free_block_share(published) < publish.COMPACT_AT_FREE_SHARE
    publish.stage_copy(published, building, "v1.5.0")
    assert building.read_bytes() == published.read_bytes()
