"""Benchmark the nightly pipeline at clinic-network scale.

    uv run python benchmarks/run.py                      # 100k and 1M sessions, plus the next night at 1M
    uv run python benchmarks/run.py --sizes 100k,1m,10m  # add 10M and its next night (tens of minutes on 2 cores)

For each size it generates a synthetic network (cached in benchmarks/data/),
times DuckDB alone reading the same export files into tables (the bare load: once sniffing every file, once
with the contract's columns and types given; a night's ratio is taken to the faster),
then runs the real nightly flow (`clinic-outcomes run`, a subprocess, against a
local Prefect server this script starts, as a served deployment would have) on
a fresh warehouse and reads each stage's seconds and peak memory from the run
journal. The same network is then written as a single drop of five files and measured the same way. The
next night (at 1M and 10M) loads every drop but the last, then times the night that adds the last drop on
top, against the full night. Results go to benchmarks/results/*.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
RESULTS = ROOT / "benchmarks" / "results"
SESSIONS_PER_PATIENT = 10.1  # measured on the generator at 90 days: 95,238 patients gave 964,440 sessions
DAYS = 90
SEED = 11
SIZES = {"100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}
CLINICS = 40  # issue 18's targets are stated at 40 clinics (the generator's default network has 7)
KEY = "benchmark-key-not-secret-0123456789"


def _env(api_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", CLINIC_OUTCOMES_KEY=KEY,
               PREFECT_LOGGING_LEVEL="WARNING")
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) of the child, and its output."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed ({proc.returncode}):\n{text[-3000:]}")
    return wall, usage.ru_maxrss / 1024, text


def dataset(label: str, clinics: int | None = None) -> tuple[Path, dict]:
    """The cached export folder for a size at `clinics` clinics (default CLINICS; generated once)."""
    clinics = clinics or CLINICS
    patients = round(SIZES[label] / SESSIONS_PER_PATIENT)
    folder = DATA / f"{label}-c{clinics}-p{patients}-d{DAYS}-s{SEED}"
    marker = folder / "generated.json"
    if marker.exists():
        return folder / "exports", json.loads(marker.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    wall, peak, text = run_measured(
        [sys.executable, "-m", "clinic_outcomes.cli", "generate", "--out", str(folder / "exports"),
         "--patients", str(patients), "--days", str(DAYS), "--seed", str(SEED), "--clinics", str(clinics)],
        _env(None),
    )
    info = {"patients": patients, "clinics": clinics, "days": DAYS, "seed": SEED, "generate_seconds": round(wall, 2),
            "generate_peak_mib": round(peak), "generator_output": text.strip().splitlines()[-12:]}
    info["bytes"] = sum(p.stat().st_size for p in (folder / "exports").rglob("*") if p.is_file())
    marker.write_text(json.dumps(info, indent=1))
    return folder / "exports", info


BARE_LOAD = r"""
import sys, time, duckdb, glob
exports, db = sys.argv[1], sys.argv[2]
con = duckdb.connect(db)
start = time.perf_counter()
for entity in ("sessions", "needle_sites", "plans", "pain_checkins", "patients"):
    csvs = sorted(glob.glob(f"{exports}/*/{entity}.csv") + glob.glob(f"{exports}/*/{entity}.csv.gz"))
    parquets = sorted(glob.glob(f"{exports}/*/{entity}.parquet"))
    if csvs:
        con.execute(f"create table {entity}_csv as select * from read_csv({csvs!r}, union_by_name = true, all_varchar = true)")
    if parquets:
        con.execute(f"create table {entity}_parquet as select * from read_parquet({parquets!r}, union_by_name = true)")
con.execute("checkpoint")
print(time.perf_counter() - start)
"""

# The contract's types (exports.md) for the typed bare load; bool, enum and list columns stay text (their
# spellings vary: yes/No/1, any case), timestamps are read as instants (naive ones as UTC: a floor, not a load).
CONTRACT_TYPES = {
    "int": "BIGINT", "date": "DATE", "ts": "TIMESTAMPTZ",
}
CONTRACT = {
    "sessions": {"pain_before": "int", "pain_after": "int", "started_at": "ts", "updated_at": "ts"},
    "needle_sites": {"needles": "int"},
    "plans": {"start_date": "date", "planned_weeks": "int", "planned_sessions": "int", "updated_at": "ts"},
    "pain_checkins": {"recorded_at": "ts", "pain": "int"},
    "patients": {"date_of_birth": "date", "updated_at": "ts"},
}

TYPED_LOAD = r"""
import gzip, json, sys, time, duckdb, glob
exports, db, contract, kinds = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
con = duckdb.connect(db)
start = time.perf_counter()
for entity, typed in contract.items():
    files = sorted(glob.glob(f"{exports}/*/{entity}.csv") + glob.glob(f"{exports}/*/{entity}.csv.gz"))
    parquets = sorted(glob.glob(f"{exports}/*/{entity}.parquet"))
    first = True
    for path in files:  # columns and types given (no sniffing), in each file's own header order
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
            header = [h.strip().lower() for h in f.readline().rstrip("\r\n").split(",")]
        columns = {h: kinds.get(typed.get(h), "VARCHAR") for h in header}
        select = f"select * from read_csv('{path}', header = true, auto_detect = false, delim = ',', quote = '\"', columns = {columns!r})"
        if not first:  # a column that later drops add (plans.chronicity): added to the table, null before
            have = {r[0] for r in con.execute(f"select column_name from (describe {entity}_csv)").fetchall()}
            for h in header:
                if h not in have:
                    con.execute(f'alter table {entity}_csv add column "{h}" {columns[h]}')
        con.execute((f"create table {entity}_csv as " if first else f"insert into {entity}_csv by name ") + select)
        first = False
    if parquets:
        con.execute(f"create table {entity}_parquet as select * from read_parquet({parquets!r}, union_by_name = true)")
con.execute("checkpoint")
print(time.perf_counter() - start)
"""


def bare_load(exports: Path) -> dict:
    """DuckDB alone reading the same files into tables, two ways: sniffing every file (all text), and with the
    contract's columns and types given (no sniffing); the ratio of a night is taken to the faster."""
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        wall, peak, text = run_measured([sys.executable, "-c", BARE_LOAD, str(exports), f"{tmp}/bare.duckdb"], _env(None))
        result["sniffing"] = {"seconds": round(float(text.strip().splitlines()[-1]), 2),
                              "process_seconds": round(wall, 2), "peak_mib": round(peak)}
        wall, peak, text = run_measured([sys.executable, "-c", TYPED_LOAD, str(exports), f"{tmp}/typed.duckdb",
                                         json.dumps(CONTRACT), json.dumps(CONTRACT_TYPES)], _env(None))
        result["typed"] = {"seconds": round(float(text.strip().splitlines()[-1]), 2),
                           "process_seconds": round(wall, 2), "peak_mib": round(peak)}
    result["seconds"] = min(result["sniffing"]["seconds"], result["typed"]["seconds"])
    return result


SINGLE_DROP = {  # raw.* back into the export format: the latest version of every record, in one drop
    "sessions": "select session_id, patient_key as patient_id, plan_id, clinic_id, clinician_id, clinician_role, "
                "coalesce(strftime(started_at_instant, '%Y-%m-%dT%H:%M:%S+00:00'), strftime(started_at_local, "
                "'%Y-%m-%dT%H:%M:%S')) as started_at, status, array_to_string(therapies, ';') as therapies, "
                "condition, pain_before, pain_after, aftercare, adverse_event, "
                "strftime(updated_at, '%Y-%m-%dT%H:%M:%S+00:00') as updated_at from raw.sessions",
    "needle_sites": "select session_id, site, side, needles from raw.needle_sites",
    "plans": "select plan_id, patient_key as patient_id, clinic_id, start_date, planned_weeks, planned_sessions, "
             "pcp_cleared, chronicity, status, strftime(updated_at, '%Y-%m-%dT%H:%M:%S+00:00') as updated_at from raw.plans",
    "pain_checkins": "select checkin_id, patient_key as patient_id, coalesce(strftime(recorded_at_instant, "
                     "'%Y-%m-%dT%H:%M:%S+00:00'), strftime(recorded_at_local, '%Y-%m-%dT%H:%M:%S')) as recorded_at, "
                     "pain, channel from raw.pain_checkins",
    "patients": "select patient_key as patient_id, sex, strftime(updated_at, '%Y-%m-%dT%H:%M:%S+00:00') as updated_at "
                "from raw.patients",
}


def single_drop(label: str, warehouse: Path, many: Path) -> Path:
    """The same network as one drop of five files (raw.* of a night over the many-drop network, written back in
    the export format; patient keys stand in for patient numbers), cached beside the many-drop network."""
    import duckdb

    folder = many.parent / "single-drop"
    marker = folder / "done"
    if marker.exists():
        return folder / "exports"
    shutil.rmtree(folder, ignore_errors=True)
    drop = folder / "exports" / max(p.name for p in many.iterdir() if p.is_dir())
    drop.mkdir(parents=True)
    shutil.copy(many / "settings.toml", folder / "exports" / "settings.toml")
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        for entity, query in SINGLE_DROP.items():
            con.execute(f"copy ({query}) to '{drop / (entity + '.csv')}' (header true)")
    finally:
        con.close()
    marker.write_text(label)
    return folder / "exports"


def nightly(exports: Path, workdir: Path, api_url: str, as_of: dt.date, config: Path) -> dict:
    cmd = [sys.executable, "-m", "clinic_outcomes.cli", "run", "--exports", str(exports),
           "--warehouse", str(workdir / "warehouse.duckdb"), "--reports", str(workdir / "reports"),
           "--as-of", as_of.isoformat(), "--config", str(config)]
    spawned = dt.datetime.now(dt.timezone.utc)
    wall, peak, _ = run_measured(cmd, _env(api_url))
    journal = workdir / "warehouse.duckdb.runs.jsonl"
    record = json.loads(journal.read_text().splitlines()[-1])
    # Start-up: from spawning the CLI to the flow's body starting (its journal line's started_at): the imports
    # the body waits for, and Prefect creating and entering the flow run. The first stage starts right after.
    startup = (dt.datetime.fromisoformat(record["started_at"]) - spawned).total_seconds()
    stages = record.get("stage_seconds", {})
    stage_peaks = [mb for mb in record.get("stage_peak_mb", {}).values() if mb is not None]
    return {
        "seconds": round(wall, 2),
        # The flow resets the kernel's peak mark at each stage (to measure each stage's own peak), which also
        # resets what wait4 reports for the process: the run's peak is the highest of both.
        "peak_mib": round(max([peak, *stage_peaks])),
        "stages": {name: {"seconds": stages[name], "peak_mib": record.get("stage_peak_mb", {}).get(name),
                          "end_mib": record.get("stage_end_mb", {}).get(name)}
                   for name in stages},
        "outside_stages_seconds": round(wall - sum(stages.values()), 2),
        "startup_seconds": round(startup, 2),
        "validate_seconds": record.get("concurrent_seconds", {}).get("validate"),
        "metrics_seconds": record.get("concurrent_seconds", {}).get("metrics"),
        "validate_beside_metrics": record.get("validate_beside_metrics"),
        "rows_loaded": record["rows_loaded"],
        "rows_rejected": record["rows_rejected"],
        "warehouse_mib": round((workdir / "warehouse.duckdb").stat().st_size / 2**20, 1),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def prefect_server(home: Path):
    port = _free_port()
    env = _env(None) | {"PREFECT_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api"
    try:
        import urllib.request

        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).read()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("the local Prefect server did not start") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _print_night(bare: dict, full: dict) -> None:
    print(f"DuckDB bare load into tables: sniffing {bare['sniffing']['seconds']} s, columns and types given "
          f"{bare['typed']['seconds']} s")
    print(f"nightly run end to end: {full['seconds']} s, peak {full['peak_mib']} MiB, "
          f"{full['seconds'] / bare['seconds']:.1f}x the faster bare load; warehouse {full['warehouse_mib']} MiB")
    for name, stage in full["stages"].items():
        print(f"  {name:<20} {stage['seconds']:>7.2f} s  peak {stage['peak_mib']} MiB, "
              f"{stage.get('end_mib')} MiB resident after it")
    how = "one after the other" if full.get("validate_beside_metrics") is False else "side by side"
    print(f"  (validate {full['validate_seconds']} s and metrics {full['metrics_seconds']} s ran {how})")
    print(f"  (outside stages: Prefect flow run, imports, lock, journal) {full['outside_stages_seconds']} s, of which "
          f"start-up (spawn to the flow's body) {full.get('startup_seconds')} s")


def import_seconds() -> float:
    wall, _, _ = run_measured([sys.executable, "-c", "import flows.nightly, clinic_outcomes.validation.validate, clinic_outcomes.metrics.marts, clinic_outcomes.report.render"],
                              _env(None))
    return round(wall, 2)


def ephemeral_overhead(exports: Path, config: Path, as_of: dt.date) -> float:
    """Seconds a run spends outside its stages when no Prefect server is configured (temporary server)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = _env(None) | {"PREFECT_HOME": tmp}
        env.pop("PREFECT_API_URL", None)
        wall, _, _ = run_measured([sys.executable, "-m", "clinic_outcomes.cli", "run", "--exports", str(exports),
                                   "--warehouse", f"{tmp}/w.duckdb", "--reports", f"{tmp}/r", "--as-of",
                                   as_of.isoformat(), "--config", str(config)], env)
        record = json.loads(Path(f"{tmp}/w.duckdb.runs.jsonl").read_text().splitlines()[-1])
        return round(wall - sum(record["stage_seconds"].values()), 2)


def incremental(exports: Path, config: Path, api_url: str, as_of: dt.date) -> dict:
    drops = sorted(p for p in exports.iterdir() if p.is_dir())
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        work, partial = Path(tmp), Path(tmp) / "exports"
        partial.mkdir()
        for drop in drops[:-1]:
            shutil.copytree(drop, partial / drop.name, copy_function=os.link)
        history = nightly(partial, work, api_url, as_of - dt.timedelta(days=1), config)
        shutil.copytree(drops[-1], partial / drops[-1].name, copy_function=os.link)
        night = nightly(partial, work, api_url, as_of, config)
        again = nightly(partial, work, api_url, as_of, config)
    new_bytes = sum(p.stat().st_size for p in drops[-1].iterdir())
    return {"history_run": history, "new_drop_bytes": new_bytes, "night": night, "rerun_without_new_drops": again}


def targets(results: dict) -> list[dict]:
    """Issue 18's targets, each with the figure this run measured (only those it measured)."""
    out: list[dict] = []

    def add(target: str, measured: str, met: bool) -> None:
        out.append({"target": target, "measured": measured, "met": bool(met)})

    clinics = results["clinics"]
    for label in ("1m", "10m"):
        entry = results["sizes"].get(label)
        if entry is None:
            continue
        for name, night in (("90 drops", entry), ("one drop", entry.get("single_drop"))):
            if night is None:
                continue
            ratio = night["nightly"]["seconds"] / night["bare_duckdb_load"]["seconds"]
            if label == "1m":
                add(f"1M sessions ({name}), full night within 10x the bare load (moonshot 5x)",
                    f"{night['nightly']['seconds']} s = {ratio:.1f}x {night['bare_duckdb_load']['seconds']} s", ratio <= 10)
            report = night["nightly"]["stages"].get("report", {}).get("seconds")
            if label == "1m" and report is not None:
                add(f"1M sessions ({name}), report stage within 5 s at 40 clinics",
                    f"{report} s at {clinics} clinics", report <= 5 and clinics >= 40)
            if label == "10m":
                seconds, peak = night["nightly"]["seconds"], night["nightly"]["peak_mib"]
                add(f"10M sessions ({name}) within 5 minutes", f"{seconds} s", seconds <= 300)
                add(f"10M sessions ({name}) within 8 GiB peak", f"{peak / 1024:.2f} GiB", peak <= 8 * 1024)
        inc = entry.get("incremental")
        if inc:
            add(f"next night at {label.upper()} within 15% of a full night",
                f"{inc['night']['seconds']} s = {inc['ratio_to_full_night']:.0%} of {entry['nightly']['seconds']} s",
                inc["ratio_to_full_night"] <= 0.15)
    add("start-up (imports) within 5 s", f"{results['import_seconds']} s", results["import_seconds"] <= 5)
    outside = [entry["nightly"]["outside_stages_seconds"] for entry in results["sizes"].values()]
    if outside:
        add("start-up (a night's time outside its stages, with a Prefect server) within 5 s",
            f"{min(outside)}-{max(outside)} s", max(outside) <= 5)
    startups = [entry["nightly"]["startup_seconds"] for entry in results["sizes"].values()
                if entry["nightly"].get("startup_seconds") is not None]
    if startups:
        add("start-up (spawning the CLI to the flow's body, with a Prefect server) within 5 s",
            f"{min(startups)}-{max(startups)} s", max(startups) <= 5)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100k,1m", help="comma-separated: 100k, 1m, 10m")
    parser.add_argument("--no-incremental", action="store_true")
    parser.add_argument("--clinics", type=int, default=CLINICS,
                        help=f"clinics in the generated networks (default {CLINICS}, as issue 18's targets)")
    args = parser.parse_args()
    if args.clinics < 1:
        parser.error("--clinics must be at least 1")
    sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size {unknown[0]!r}; choose from {', '.join(SIZES)}")
    DATA.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)

    results: dict = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "clinics": args.clinics,
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)},
                     "import_seconds": import_seconds(), "sizes": {}}
    print(f"imports (flow, validation, metrics, report): {results['import_seconds']} s")
    out = RESULTS / f"{results['when'].replace(':', '')}.json"

    def save() -> None:  # after each size as well: a run stopped part way keeps what it measured
        out.write_text(json.dumps(results, indent=1))
    with tempfile.TemporaryDirectory() as prefect_home, prefect_server(Path(prefect_home)) as api_url:
        for label in sizes:
            exports, info = dataset(label, args.clinics)
            config = exports / "settings.toml"
            end = max(dt.date.fromisoformat(p.name) for p in exports.iterdir() if p.is_dir())
            as_of = end + dt.timedelta(days=1)
            bare = bare_load(exports)
            with tempfile.TemporaryDirectory(dir=DATA) as tmp:
                full = nightly(exports, Path(tmp), api_url, as_of, config)
                one_drop = single_drop(label, Path(tmp) / "warehouse.duckdb", exports)
            entry = {"dataset": info, "bare_duckdb_load": bare, "nightly": full,
                     "ratio_to_bare_load": round(full["seconds"] / bare["seconds"], 1)}
            results["sizes"][label] = entry
            print(f"\n== {label} sessions, {len([p for p in exports.iterdir() if p.is_dir()])} drops: "
                  f"{info['bytes'] / 2**20:.0f} MiB of exports (generated in {info['generate_seconds']} s)")
            _print_night(bare, full)
            one_bare = bare_load(one_drop)
            with tempfile.TemporaryDirectory(dir=DATA) as tmp:
                one_full = nightly(one_drop, Path(tmp), api_url, as_of, config)
            entry["single_drop"] = {"bare_duckdb_load": one_bare, "nightly": one_full,
                                    "ratio_to_bare_load": round(one_full["seconds"] / one_bare["seconds"], 1),
                                    "bytes": sum(f.stat().st_size for f in one_drop.rglob("*.csv"))}
            print(f"-- the same network as one drop of five files "
                  f"({entry['single_drop']['bytes'] / 2**20:.0f} MiB)")
            _print_night(one_bare, one_full)
            if label in ("1m", "10m") and not args.no_incremental:
                inc = incremental(exports, config, api_url, as_of)
                inc["ratio_to_full_night"] = round(inc["night"]["seconds"] / full["seconds"], 3)
                entry["incremental"] = inc
                print(f"next night (one new drop, {inc['new_drop_bytes'] / 2**20:.1f} MiB, on {label} sessions "
                      f"of history): {inc['night']['seconds']} s = {inc['ratio_to_full_night']:.0%} of a full night; "
                      "stages " + ", ".join(f"{k} {v['seconds']}" for k, v in inc["night"]["stages"].items()))
                print(f"rerun with no new drops: {inc['rerun_without_new_drops']['seconds']} s")
            save()
        exports, _ = dataset("100k", args.clinics)  # the fixed cost does not depend on the size: measured on the smallest
        end = max(dt.date.fromisoformat(p.name) for p in exports.iterdir() if p.is_dir())
    results["ephemeral_prefect_overhead_seconds"] = ephemeral_overhead(
        exports, exports / "settings.toml", end + dt.timedelta(days=1))
    print(f"\nwithout a Prefect server (temporary local server per run), overhead outside stages: "
          f"{results['ephemeral_prefect_overhead_seconds']} s")
    results["targets"] = targets(results)
    print("\nissue 18's targets:")
    for line in results["targets"]:
        print(f"  {'met   ' if line['met'] else 'MISSED'}  {line['target']}: {line['measured']}")
    save()
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
