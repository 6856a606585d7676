"""Helpers for the tests of the nightly run as a whole: a real local Prefect server,
`clinic-outcomes run` as a subprocess, published states to start from, and snapshots
of what readers see (warehouse tables and bytes, the report behind `reports/latest`).

Every nightly run here talks to one Prefect server started for the test session
(`python -m prefect server start` with a PREFECT_HOME of its own), so no run pays
for a temporary server of its own. The synthetic network is tiny and generated once
per session; its drops are split into a first night and two later nights.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import functools
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

REPO = Path(__file__).resolve().parents[1]
KEY = "flow-tests-patient-key-0123456789"  # CLINIC_OUTCOMES_KEY for every run of these tests
PATIENTS, DAYS, SEED = 8, 9, 3
# The generated drops, by night: the first night loads all but the last two drops.
NEW_DROPS_PER_NIGHT = 1
SCRATCH = Path(tempfile.mkdtemp(prefix="clinic-outcomes-flowtests-"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float, interval: float = 0.02, what: str = "condition"):
    """Poll `condition` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """End a process this module started, and its own process group (it was started in a new session)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(grace)


def kill_now(proc: subprocess.Popen) -> None:
    """SIGKILL the run's whole process group: no handler, no cleanup, like a power cut of the run."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def base_env(prefect_home: Path, api_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        GX_ANALYTICS_ENABLED="false",
        CLINIC_OUTCOMES_KEY=KEY,
        PYTHONUNBUFFERED="1",
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


class PrefectServer:
    """`python -m prefect server start` on a free port, with a PREFECT_HOME (and SQLite database) of its own."""

    def __init__(self, home: Path):
        self.home = home
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.log = home / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> "PrefectServer":
        self.home.mkdir(parents=True, exist_ok=True)
        env = base_env(self.home)
        env["PREFECT_SERVER_UI_ENABLED"] = "false"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        try:
            wait_for(self._healthy, timeout, interval=0.25, what=f"the Prefect server's {self.api_url}/health")
        except BaseException:
            self.stop()
            raise
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            pytest.fail(f"the Prefect server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


_shared_server: PrefectServer | None = None


def shared_server() -> PrefectServer:
    """The session's one server, started on first use (stopped by the fixture's finalizer, or at exit)."""
    global _shared_server
    if _shared_server is None or _shared_server.proc is None:
        _shared_server = PrefectServer(SCRATCH / "prefect-server").start()
        atexit.register(_shared_server.stop)
    return _shared_server


@pytest.fixture(scope="session")
def prefect_server():
    """Import into a test module to use; every module's copy shares one server process."""
    server = shared_server()
    yield server
    server.stop()


# --------------------------------------------------------------------------- drops and sites


@functools.cache
def generated() -> tuple[Path, tuple[str, ...], str]:
    """The synthetic network's drops (generated once): folder, drop names in order, end date."""
    from clinic_outcomes.synthetic.generate import generate

    out = SCRATCH / "generated"
    summary = generate(out, patients=PATIENTS, days=DAYS, seed=SEED)
    # One drop the day before, holding what a real night also meets: a row the loader rejects and a stray file.
    early = out / (summary.first_date - dt.timedelta(days=1)).isoformat()
    early.mkdir()
    (early / "pain_checkins.csv").write_text(
        "checkin_id,patient_id,recorded_at,pain,channel\nk_bad,P_none,2026-11-01T10:00:00Z,11,sms\n"
    )
    (early / "readme.txt").write_text("not an export file\n")
    drops = tuple(sorted(p.name for p in out.iterdir() if p.is_dir()))
    return out, drops, summary.end_date.isoformat()


def first_night_drops() -> tuple[str, ...]:
    _, drops, _ = generated()
    return drops[: -2 * NEW_DROPS_PER_NIGHT]


def second_night_drops() -> tuple[str, ...]:
    _, drops, _ = generated()
    return drops[-2 * NEW_DROPS_PER_NIGHT : -NEW_DROPS_PER_NIGHT]


def third_night_drops() -> tuple[str, ...]:
    _, drops, _ = generated()
    return drops[-NEW_DROPS_PER_NIGHT:]


def all_drops() -> tuple[str, ...]:
    return generated()[1]


def as_of() -> str:
    """The evaluation date of every run here: the day after the last drop."""
    return (dt.date.fromisoformat(generated()[2]) + dt.timedelta(days=1)).isoformat()


@dataclass(frozen=True)
class Site:
    """One installation: exports, warehouse, reports and the run's environment."""

    root: Path
    api_url: str

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def journal(self) -> Path:
        return self.root / "warehouse.duckdb.runs.jsonl"

    @property
    def config(self) -> Path:
        return self.exports / "settings.toml"

    def env(self) -> dict[str, str]:
        return base_env(self.root / "prefect-home", self.api_url)

    def add_drops(self, names) -> None:
        source, _, _ = generated()
        self.exports.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / "settings.toml", self.config)
        for name in names:
            shutil.copytree(source / name, self.exports / name)

    def run_args(self) -> list[str]:
        return [
            sys.executable, "-m", "clinic_outcomes.cli", "run",
            "--exports", str(self.exports), "--warehouse", str(self.warehouse), "--reports", str(self.reports),
            "--as-of", as_of(), "--config", str(self.config),
        ]

    def start_run(self, args: list[str] | None = None) -> subprocess.Popen:
        """`clinic-outcomes run` in its own process group; stdout and stderr go to files beside the site."""
        n = len(list(self.root.glob("run-output-*.txt")))
        out = (self.root / f"run-output-{n}.txt").open("wb")
        try:
            return subprocess.Popen(
                args or self.run_args(), cwd=REPO, env=self.env(), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            out.close()

    def run(self, args: list[str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
        proc = subprocess.Popen(
            args or self.run_args(), cwd=REPO, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, start_new_session=True, text=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        finally:
            stop_process(proc)
        return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)

    def run_ok(self) -> subprocess.CompletedProcess:
        done = self.run()
        assert done.returncode == 0, f"run failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        return done

    def journal_lines(self) -> list[dict]:
        if not self.journal.exists():
            return []
        lines = []
        for line in self.journal.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                lines.append(json.loads(line))
        return lines


def new_site(tmp_path: Path, server: PrefectServer, drops=()) -> Site:
    site = Site(tmp_path / "site", server.api_url)
    site.root.mkdir(parents=True)
    site.add_drops(drops)
    return site


def clone_site(source: Site, tmp_path: Path) -> Site:
    """A copy of a published installation (warehouse, journal, reports with their `latest` link, exports)."""
    target = tmp_path / "site"
    shutil.copytree(source.root, target, symlinks=True, ignore=shutil.ignore_patterns("prefect-home", "run-output-*"))
    return Site(target, source.api_url)


@functools.cache
def _published(name: str, nights: tuple[tuple[str, ...], ...], api_url: str) -> Site:
    site = Site(SCRATCH / "published" / name, api_url)
    site.root.mkdir(parents=True)
    for drops in nights:
        site.add_drops(drops)
        site.run_ok()
    return site


def published_first_night(server: PrefectServer) -> Site:
    """An installation after one published run over the first night's drops (built once per session)."""
    return _published("first-night", (first_night_drops(),), server.api_url)


def published_all_drops(server: PrefectServer) -> Site:
    """A clean installation after one run over every drop at once (built once per session)."""
    return _published("all-drops", (all_drops(),), server.api_url)


# --------------------------------------------------------------------------- what readers see


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tables(warehouse: Path, schemas=("raw", "core", "quality", "marts", "ops")) -> list[str]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            "select schema_name || '.' || table_name from duckdb_tables() "
            "where schema_name in (select unnest($s)) order by 1",
            {"s": list(schemas)},
        ).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def read_table(warehouse: Path, table: str, exclude: tuple[str, ...] = (), where: str = "true") -> pa.Table:
    """A table's rows in a canonical order (every column), optionally without some columns."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        cols = "*" + (f" exclude ({', '.join(exclude)})" if exclude else "")
        return con.sql(f"select {cols} from {table} where {where} order by all").to_arrow_table()
    finally:
        con.close()


def query(warehouse: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@dataclass(frozen=True)
class Published:
    """What a reader sees of an installation: warehouse bytes, the report `latest` points at, and its bytes."""

    warehouse_sha256: str
    latest_target: str
    report_html_sha256: str
    report_pdf_sha256: str | None


def published(site: Site) -> Published:
    latest = site.reports / "latest"
    pdf = latest / "report.pdf"
    return Published(
        warehouse_sha256=sha256(site.warehouse),
        latest_target=os.readlink(latest),
        report_html_sha256=sha256(latest / "report.html"),
        report_pdf_sha256=sha256(pdf) if pdf.exists() else None,
    )


def runs(site: Site) -> list[tuple]:
    """ops.runs of the published warehouse as (run_id, status)."""
    return query(site.warehouse, "select run_id, status from ops.runs order by run_id")
