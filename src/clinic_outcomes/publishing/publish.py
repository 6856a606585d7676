"""Publishing without ever showing a half-written warehouse or report.

- One run at a time: an exclusive flock on `<warehouse>.lock` (released by the
  kernel if the run dies, so a killed run never blocks the next one).
- Each run builds the next warehouse in a new file (a copy of the published one,
  so history and the file ledger carry over) and publishes it by `os.replace`,
  an atomic rename. Readers that opened the old file keep reading it; new
  readers open the new one; no reader ever takes a lock the run needs.
- Reports are written to `reports/runs/<run>/` and published by atomically
  re-pointing the `reports/latest` symlink, right after the warehouse rename
  (the night's commit point). A run stopped between the two leaves the link one
  run behind; every run starts by pointing it at the published warehouse's run.
- The run journal `<warehouse>.runs.jsonl` (append-only, beside the warehouse)
  records every run, failed ones included; ops.runs in each published warehouse
  is built from it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb


class RunInProgress(RuntimeError):
    """Another nightly run holds the warehouse."""


class RunLock:
    def __init__(self, warehouse: Path):
        self.path = warehouse.with_name(warehouse.name + ".lock")
        self._fh = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise RunInProgress(
                f"another run is already working on {self.path.with_suffix('')} ({holder}); refusing to start a second one"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%SZ}\n")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def building_path(warehouse: Path, run_id: int) -> Path:
    return warehouse.with_name(f".{warehouse.name}.run{run_id}.building")


def remove_leftovers(warehouse: Path) -> list[Path]:
    """Delete what killed runs left behind (only called while holding the run lock)."""
    removed = []
    for path in warehouse.parent.glob(f".{warehouse.name}.run*.building*"):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


# The night's working copy is written compacted (COPY FROM DATABASE into a new file) instead of copied byte for
# byte once this share of the published file's blocks is free: DuckDB reuses free blocks but never gives them
# back, so a file written night after night only grows. Below it, the byte copy is cheaper.
COMPACT_AT_FREE_SHARE = 0.2


def _probe(path: Path) -> tuple[str | None, float]:
    """The storage version a DuckDB file is written in, as DuckDB tags it (e.g. 'v1.5.0+'), and the share of its
    blocks that are free; opened read-only."""
    con = duckdb.connect()
    try:
        con.execute("attach $path as probed (read_only)", {"path": str(path)})
        tags = con.execute("select tags['storage_version'] from duckdb_databases() where database_name = 'probed'").fetchall()
        blocks = con.execute(
            "select free_blocks, total_blocks from pragma_database_size() where database_name = 'probed'"
        ).fetchall()
    finally:
        con.close()
    free, total = blocks[0] if blocks else (0, 0)
    return (tags[0][0] if tags else None), (free / total if total else 0.0)


def storage_tag(path: Path) -> str | None:
    """The storage version a DuckDB file is written in, as DuckDB tags it (e.g. 'v1.5.0+'); opened read-only."""
    return _probe(path)[0]


def free_block_share(path: Path) -> float:
    """The share of a DuckDB file's blocks that are free (left by deleted or rewritten data)."""
    return _probe(path)[1]


def _create_empty(path: Path, storage_version: str) -> None:
    """A new, empty DuckDB file written in the given storage version (a later connection keeps that version)."""
    con = duckdb.connect()
    try:
        # storage_version was checked by the settings parser (a DuckDB version string); DuckDB takes no parameter here.
        con.execute(f"attach '{str(path).replace(chr(39), chr(39) * 2)}' as created (storage_version '{storage_version}')")
        con.execute("detach created")
    finally:
        con.close()


def _tag_of_version(storage_version: str, scratch: Path) -> str | None:
    probe = scratch.with_name(scratch.name + ".probe")
    probe.unlink(missing_ok=True)
    try:
        _create_empty(probe, storage_version)
        return storage_tag(probe)
    finally:
        probe.unlink(missing_ok=True)
        Path(str(probe) + ".wal").unlink(missing_ok=True)


def stage_copy(warehouse: Path, building: Path, storage_version: str = "v1.5.0") -> None:
    """Start the next warehouse as a copy of the published one (or empty on the first night), in the storage
    version of the settings ([warehouse] storage_version), so that analysts' older DuckDB can open what we publish.

    DuckDB keeps a file's storage version when it writes to it, so the copy is a plain file copy while the
    published file is already in that version; when the setting changed (or a warehouse from before the setting
    is met) the copy is made by `COPY FROM DATABASE` into a new file of the set version (comments and views
    included), once. The same compacting copy is made when COMPACT_AT_FREE_SHARE of the published file's blocks
    are free, so the warehouse does not grow night after night with blocks DuckDB never returns.
    """
    building.unlink(missing_ok=True)
    Path(str(building) + ".wal").unlink(missing_ok=True)
    if not warehouse.exists():
        _create_empty(building, storage_version)
        return
    wal = Path(str(warehouse) + ".wal")
    if wal.exists():
        # A published file is always checkpointed; a WAL means a writer opened it outside the pipeline.
        raise RuntimeError(f"{wal} exists: something wrote to the published warehouse; checkpoint or remove it")
    tag, free_share = _probe(warehouse)
    if tag == _tag_of_version(storage_version, building) and free_share < COMPACT_AT_FREE_SHARE:
        shutil.copyfile(warehouse, building)
        return
    _create_empty(building, storage_version)
    con = duckdb.connect()
    try:
        con.execute("attach $path as published (read_only)", {"path": str(warehouse)})
        con.execute("attach $path as building", {"path": str(building)})
        con.execute("copy from database published to building")
        con.execute("detach building")
    finally:
        con.close()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_warehouse(building: Path, warehouse: Path) -> None:
    """Atomically replace the published warehouse with the finished build."""
    con = duckdb.connect(str(building))
    con.execute("checkpoint")
    con.close()
    with building.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(building, warehouse)
    _fsync_dir(warehouse.parent)


def published_run_id(warehouse: Path) -> int | None:
    """The run whose warehouse is published: the warehouse records itself in ops.runs before its rename."""
    if not warehouse.exists():
        return None
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error:
        return None
    try:
        rows = con.execute("select max(run_id) from ops.runs where status = 'published'").fetchall()
    except duckdb.Error:
        return None
    finally:
        con.close()
    return rows[0][0] if rows else None


def reconcile_reports(reports: Path, warehouse: Path) -> None:
    """Point reports/latest at the report of the published warehouse's run.

    The warehouse rename is the commit point and the link follows it; a run killed
    between the two left the link one run behind, and this puts it right.
    """
    run_id = published_run_id(warehouse)
    if run_id is None:
        return
    run_dir = report_run_dir(reports, run_id)
    latest = reports / "latest"
    if run_dir.is_dir() and (not latest.exists() or latest.resolve() != run_dir.resolve()):
        publish_reports(reports, run_dir)


def report_run_dir(reports: Path, run_id: int) -> Path:
    return reports / "runs" / f"run-{run_id:05d}"


def publish_reports(reports: Path, run_dir: Path, keep: int = 30) -> Path:
    """Point reports/latest at run_dir atomically; keep the newest `keep` runs' folders."""
    latest = reports / "latest"
    tmp = reports / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.relative_to(reports), target_is_directory=True)
    os.replace(tmp, latest)
    _fsync_dir(reports)
    runs = sorted((reports / "runs").glob("run-*"))
    for old in runs[:-keep]:
        if old.resolve() != run_dir.resolve():
            shutil.rmtree(old, ignore_errors=True)
    return latest


@dataclass
class RunRecord:
    run_id: int
    started_at: str
    as_of: str
    status: str = "running"  # running | published | failed | refused | abandoned
    finished_at: str | None = None
    rows_loaded: int = 0
    rows_rejected: int = 0
    files_loaded: int = 0
    files_rejected: int = 0
    expectations_failed: int = 0
    critical_failed: int = 0
    message: str | None = None
    flow_run_id: str | None = None  # Prefect's flow-run id (None outside Prefect's engine)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stage_peak_mb: dict[str, float] = field(default_factory=dict)
    # the process's resident memory when each stage has ended and released what it freed (runtime.release_memory)
    stage_end_mb: dict[str, float] = field(default_factory=dict)
    concurrent_seconds: dict[str, float] = field(default_factory=dict)  # validate's and the metrics' seconds
    # validate and the metrics side by side (True), or one after the other (False: [validation] beside_metrics_up_to)
    validate_beside_metrics: bool | None = None


class RunJournal:
    """Append-only JSON lines; the last line for a run_id is its state."""

    def __init__(self, warehouse: Path):
        self.path = warehouse.with_name(warehouse.name + ".runs.jsonl")

    def records(self) -> list[RunRecord]:
        if not self.path.exists():
            return []
        latest: dict[int, dict] = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill; the run's earlier line still stands
                latest[row["run_id"]] = row
        known = set(RunRecord.__dataclass_fields__)
        return [RunRecord(**{k: v for k, v in row.items() if k in known}) for _, row in sorted(latest.items())]

    def next_run_id(self) -> int:
        records = self.records()
        return (records[-1].run_id + 1) if records else 1

    def write(self, record: RunRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(record), sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def close_abandoned(self, published_run: int | None = None) -> None:
        """Runs still 'running' when a new run holds the lock were killed: say so.

        A run killed after its warehouse rename did publish (the warehouse says so): record it as published.
        """
        now = dt.datetime.now(dt.timezone.utc).isoformat()
        for record in self.records():
            if record.status != "running":
                continue
            if record.run_id == published_run:
                record.status, record.finished_at = "published", record.finished_at or now
                record.message = "published; the run was stopped before it could say so"
            else:
                record.status, record.finished_at = "abandoned", now
                record.message = "the run stopped without finishing (killed or crashed); nothing was published"
            self.write(record)
