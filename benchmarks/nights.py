"""Many incremental nights in a row: does each night's cost and the warehouse file follow the new data?

    uv run python benchmarks/nights.py 1m --nights 10

Holds back the last N drops of a cached benchmark network (see run.py), runs one night over the rest of the
history, then one night per held-back drop, each with the next as-of date, through the real flow against a
local Prefect server. Prints and records (benchmarks/results/nights-*.json) each night's seconds, stages,
peak memory, the warehouse file's size and DuckDB's own count of its used and free blocks; at the end, the
size of a warehouse built from scratch over every drop in one night, for comparison.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402


def _blocks(path: Path) -> dict:
    con = duckdb.connect(str(path), read_only=True)
    try:
        (used, free, total), = con.execute(
            "select used_blocks, free_blocks, total_blocks from pragma_database_size()"
        ).fetchall()
    finally:
        con.close()
    return {"used_blocks": int(used), "free_blocks": int(free), "total_blocks": int(total)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("size", choices=sorted(bench.SIZES))
    parser.add_argument("--clinics", type=int, default=bench.CLINICS, help=f"clinics in the network (default {bench.CLINICS})")
    parser.add_argument("--nights", type=int, default=10)
    parser.add_argument("--no-scratch", action="store_true",
                        help="skip the last step (a warehouse built from scratch over every drop, for its size)")
    args = parser.parse_args()
    exports, info = bench.dataset(args.size, args.clinics)
    config = exports / "settings.toml"
    drops = sorted(p for p in exports.iterdir() if p.is_dir())
    if not 1 <= args.nights < len(drops):
        parser.error(f"--nights must be between 1 and {len(drops) - 1}")
    last = dt.date.fromisoformat(drops[-1].name)
    history, held = drops[: -args.nights], drops[-args.nights:]
    record: dict = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "size": args.size,
                    "dataset": info, "nights": []}
    RESULTS = bench.RESULTS
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as prefect_home, bench.prefect_server(Path(prefect_home)) as api_url, \
            tempfile.TemporaryDirectory(dir=bench.DATA) as tmp:
        work, partial = Path(tmp), Path(tmp) / "exports"
        partial.mkdir()
        for drop in history:
            shutil.copytree(drop, partial / drop.name, copy_function=os.link)
        as_of = dt.date.fromisoformat(history[-1].name) + dt.timedelta(days=1)
        first = bench.nightly(partial, work, api_url, as_of, config)
        record["history_run"] = first | _blocks(work / "warehouse.duckdb")
        print(f"history ({len(history)} drops): {first['seconds']} s, warehouse {first['warehouse_mib']} MiB", flush=True)
        for drop in held:
            shutil.copytree(drop, partial / drop.name, copy_function=os.link)
            as_of = dt.date.fromisoformat(drop.name) + dt.timedelta(days=1)
            night = bench.nightly(partial, work, api_url, as_of, config) | _blocks(work / "warehouse.duckdb")
            night["drop"], night["drop_bytes"] = drop.name, sum(p.stat().st_size for p in drop.iterdir())
            record["nights"].append(night)
            print(f"night {drop.name}: {night['seconds']} s, warehouse {night['warehouse_mib']} MiB "
                  f"(used {night['used_blocks']}, free {night['free_blocks']} blocks)", flush=True)
        if not args.no_scratch:
            scratch = work / "scratch"
            scratch.mkdir()
            full = bench.nightly(partial, scratch, api_url, last + dt.timedelta(days=1), config)
            record["from_scratch"] = full | _blocks(scratch / "warehouse.duckdb")
            print(f"from scratch over every drop: {full['seconds']} s, warehouse {full['warehouse_mib']} MiB "
                  f"(used {record['from_scratch']['used_blocks']}, free {record['from_scratch']['free_blocks']} blocks)")
    out = RESULTS / f"nights-{args.size}-{record['when'].replace(':', '')}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
