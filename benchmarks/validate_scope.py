"""The validate stage on a full night and on the next night (issue 18, decision 1), in one process, no Prefect.

    uv run python benchmarks/validate_scope.py 100k

Uses the cached network of benchmarks/run.py. Night 1 loads every drop but the last (core is built whole, so
validation is `full`); night 2 loads the last drop (one day) and validates the rows it wrote (`night`); then
the same warehouse is validated whole once more (`full`), so the two scopes are timed on the same data, and
once more as a night that wrote nothing (`night`, no core row: the fixed cost). Each
night runs load, core and quality as the flow does before timing validate; GX is imported first (the night's
background imports do that while the load runs). The full-validation day is set to a weekday neither as-of
date falls on. Prints the seconds and the rows each suite checked; writes benchmarks/results/validate-scope-
<size>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import run as bench  # noqa: E402

os.environ.setdefault("CLINIC_OUTCOMES_KEY", bench.KEY)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("size", choices=["100k", "1m"])
    parser.add_argument("--clinics", type=int, default=bench.CLINICS, help=f"clinics in the network (default {bench.CLINICS})")
    args = parser.parse_args()

    import great_expectations  # noqa: F401  (imported before timing, as the night's background imports do)

    from clinic_outcomes.core import build as core_build
    from clinic_outcomes.loading import keys, load
    from clinic_outcomes.quality import tables as quality_tables
    from clinic_outcomes.settings import WEEKDAYS, load_settings
    from clinic_outcomes.validation import validate as validation
    from clinic_outcomes.warehouse import connect, set_variables

    exports, info = bench.dataset(args.size, args.clinics)
    drops = sorted(p for p in exports.iterdir() if p.is_dir())
    as_of_1 = dt.date.fromisoformat(drops[-2].name) + dt.timedelta(days=1)
    as_of_2 = dt.date.fromisoformat(drops[-1].name) + dt.timedelta(days=1)
    settings = load_settings(str(exports / "settings.toml") if (exports / "settings.toml").exists() else None)
    other_day = next(d for d in WEEKDAYS if d not in {WEEKDAYS[as_of_1.weekday()], WEEKDAYS[as_of_2.weekday()]})
    import dataclasses

    settings = dataclasses.replace(settings, full_validation_on=other_day)
    record: dict = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "size": args.size,
                    "dataset": {k: info[k] for k in ("patients", "days", "seed", "bytes") if k in info},
                    "full_on": other_day, "validations": []}

    with tempfile.TemporaryDirectory(dir=bench.DATA) as tmp:
        work = Path(tmp)
        partial = work / "exports"
        partial.mkdir()
        if (exports / "settings.toml").exists():
            shutil.copyfile(exports / "settings.toml", partial / "settings.toml")
        path = work / "warehouse.duckdb"

        def night(run_id: int, as_of: dt.date, full: bool = False, load_new: bool = True) -> dict:
            con = connect(path)
            con.execute(f"set memory_limit = '{settings.memory_limit}'")
            set_variables(con, settings, as_of)
            try:
                if load_new:
                    load.prepare(con, settings, as_of, run_id)
                    load.load_exports(con, partial, secret=keys.load_key(path), run_id=run_id)
                    core_build.build_core(con, run_id=run_id)
                    quality_tables.build(con, settings, as_of)
                start = time.perf_counter()
                scope = validation.decide_scope(con, run_id=run_id, settings=settings, as_of=as_of, full=full)
                outcome = validation.validate(con, run_id=run_id, settings=settings, as_of=as_of, docs_dir=None,
                                              scope=scope.scope)
                seconds = time.perf_counter() - start
                checked = dict(con.execute(
                    "select suite, max(element_count) from quality.expectation_results where run_id = $r "
                    "group by 1 order by 1", {"r": run_id}).fetchall())
                sessions = con.execute("select count(*) from core.sessions").fetchone()[0]
                written = {name: con.execute(f"select count(*) from core.{name} where changed_in_run = $r",
                                             {"r": run_id}).fetchone()[0]
                           for name in ("sessions", "needle_sites", "plans", "pain_checkins", "patients")}
            finally:
                con.close()
            found = {"run_id": run_id, "as_of": as_of.isoformat(), "scope": scope.scope, "reason": scope.reason,
                     "validate_seconds": round(seconds, 2), "core_sessions": sessions, "core_rows_written": written,
                     "rows_checked": checked,
                     "failed": sum(1 for r in outcome.results if not r["success"])}
            print(f"run {run_id} ({scope.scope}, {scope.reason}): validate {seconds:.2f} s; rows checked {checked}",
                  flush=True)
            return found

        for drop in drops[:-1]:
            shutil.copytree(drop, partial / drop.name)
        record["validations"].append(night(1, as_of_1))
        shutil.copytree(drops[-1], partial / drops[-1].name)
        record["validations"].append(night(2, as_of_2))
        record["validations"].append(night(3, as_of_2, full=True, load_new=False))
        # a night with nothing new: what validation costs whatever the rows (GX's set-up, R2 whole)
        record["validations"].append(night(4, as_of_2, load_new=False))

    bench.RESULTS.mkdir(parents=True, exist_ok=True)
    out = bench.RESULTS / f"validate-scope-{args.size}.json"
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
