"""Time each stage of the night in one process, without Prefect: where does the time go?

    uv run python benchmarks/stages.py 1m                 # every stage on a fresh warehouse
    uv run python benchmarks/stages.py 1m --from validate # reuse the warehouse kept after `quality`
    uv run python benchmarks/stages.py 1m --profile report  # cProfile one stage (top 30 by cumulative time)

Uses the cached export folders of benchmarks/run.py. The warehouse after each
stage is kept in benchmarks/data/stages-<size>/ so that one stage can be timed
again on its own while it is being made faster.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import os
import pstats
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import run as bench  # noqa: E402

os.environ.setdefault("CLINIC_OUTCOMES_KEY", bench.KEY)
STAGES = ("load", "core", "quality", "validate", "metrics", "report")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("size", choices=sorted(bench.SIZES))
    parser.add_argument("--clinics", type=int, default=bench.CLINICS, help=f"clinics in the network (default {bench.CLINICS})")
    parser.add_argument("--from", dest="start", choices=STAGES, default="load")
    parser.add_argument("--only", choices=STAGES)
    parser.add_argument("--profile", choices=STAGES)
    parser.add_argument("--memory-limit", help="DuckDB memory_limit for every stage (default: the settings')")
    parser.add_argument("--work", type=Path, help="folder for the kept warehouses (default benchmarks/data/stages-SIZE)")
    args = parser.parse_args()

    from clinic_outcomes.loading import keys
    from clinic_outcomes.core import build as core_build
    from clinic_outcomes.loading import load
    from clinic_outcomes.metrics import marts as metrics
    from clinic_outcomes.quality import tables as quality_tables
    from clinic_outcomes.report import render as report
    from clinic_outcomes.validation import validate as validation
    from clinic_outcomes.settings import load_settings
    from clinic_outcomes.warehouse import connect, set_variables

    exports, _ = bench.dataset(args.size, args.clinics)
    settings = load_settings(str(exports / "settings.toml") if (exports / "settings.toml").exists() else None)
    as_of = max(dt.date.fromisoformat(p.name) for p in exports.iterdir() if p.is_dir()) + dt.timedelta(days=1)
    shared = bench.DATA / f"stages-{args.size}-c{args.clinics}"
    work = args.work or shared
    work.mkdir(parents=True, exist_ok=True)
    saved = {stage: work / f"after-{stage}.duckdb" for stage in STAGES}
    building = work / "building.duckdb"

    def run_stage(stage: str) -> None:
        con = connect(building)
        con.execute(f"set memory_limit = '{args.memory_limit or settings.memory_limit}'")
        set_variables(con, settings, as_of)
        try:
            if stage == "load":
                load.prepare(con, settings, as_of, 1)
                load.load_exports(con, exports, secret=keys.load_key(building), run_id=1)
            elif stage == "core":
                core_build.build_core(con)
            elif stage == "quality":
                quality_tables.build(con, settings, as_of)
            elif stage == "validate":
                validation.validate(con, run_id=1, settings=settings, as_of=as_of, docs_dir=work / "docs")
            elif stage == "metrics":
                metrics.compute_marts(con, settings, as_of)
            elif stage == "report":
                from clinic_outcomes.publishing import publish
                from clinic_outcomes.publishing.runs import write_ops_runs

                record = publish.RunRecord(run_id=1, started_at=dt.datetime.now(dt.timezone.utc).isoformat(),
                                           as_of=as_of.isoformat(), status="published")
                write_ops_runs(con, publish.RunJournal(work / "stages.duckdb"), record)
                report.render_report(con, settings=settings, as_of=as_of, out_dir=work / "report",
                                     data_docs_href="data-docs/index.html", run_id=1)
        finally:
            con.close()

    stages = STAGES[STAGES.index(args.start):]
    if args.only:
        stages = (args.only,)
    first = stages[0]
    building.unlink(missing_ok=True)
    if first != "load":
        before = saved[STAGES[STAGES.index(first) - 1]]
        if not before.exists():  # another --work folder: start from the shared warehouses
            before = shared / before.name
        shutil.copyfile(before, building)
    from clinic_outcomes.hooks import reset_peak_memory
    from clinic_outcomes.runtime import peak_memory_mb

    for stage in stages:
        reset_peak_memory()
        start = time.perf_counter()
        if stage == args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(run_stage, stage)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        else:
            run_stage(stage)
        seconds = time.perf_counter() - start
        peak = peak_memory_mb()
        print(f"{stage:10s} {seconds:7.2f} s" + (f"  peak {peak / 1024:5.2f} GiB" if peak is not None else ""), flush=True)
        shutil.copyfile(building, saved[stage])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
