"""What a night's process needs around the stages: today's date in a zone, the background imports, and
each stage's peak memory."""

from __future__ import annotations

import datetime as dt
import importlib
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

from clinic_outcomes.hooks import reset_peak_memory


def today_in(timezone: str) -> dt.date:
    return dt.datetime.now(ZoneInfo(timezone)).date()



# Modules the later stages need and that take seconds to import (GX alone ~5 s): imported in a background
# thread while the load runs (DuckDB releases the GIL), so the night does not wait for them. Every task that
# needs them first waits for the thread, so no module is ever imported by two threads at once.
WARM_MODULES = (
    "pandas",
    "great_expectations",
    "great_expectations.data_context.types.base",
    "great_expectations.core.run_identifier",
    "great_expectations.render.renderer.site_builder",  # data docs
    "jinja2.ext",
    "multiprocessing.synchronize",
    "pandas.core.methods.to_dict",
    "tzdata.zoneinfo",
    "clinic_outcomes.validation.validate",
    "clinic_outcomes.metrics.marts",
    "weasyprint",
    "clinic_outcomes.report.render",
)
_warm_lock = threading.Lock()
_warm_thread: threading.Thread | None = None


def _import_all(names: tuple[str, ...]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the task that needs it imports it again and reports the error itself
            pass


def warm_imports() -> None:
    """Start importing WARM_MODULES in the background (once per process)."""
    global _warm_thread
    with _warm_lock:
        if _warm_thread is None:
            _warm_thread = threading.Thread(target=_import_all, args=(WARM_MODULES,), name="warm-imports", daemon=True)
            _warm_thread.start()


def imports_ready() -> None:
    """Wait until the background imports are done (at once if they never started)."""
    thread = _warm_thread
    if thread is not None:
        thread.join()


def peak_memory_mb() -> float | None:
    """The process's peak resident memory since the last reset_peak_memory() (Linux), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


__all__ = ["WARM_MODULES", "imports_ready", "peak_memory_mb", "reset_peak_memory", "today_in", "warm_imports"]
