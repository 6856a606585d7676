"""What a night's process needs around the stages: today's date in a zone, the background imports, each
stage's peak memory and the memory it leaves, progress for a terminal, and quiet for a known WeasyPrint notice."""

from __future__ import annotations

import ctypes
import datetime as dt
import gc
import importlib
import logging
import threading
import warnings
from collections.abc import Callable
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


# WeasyPrint says, for every font of every PDF, that it subsets fonts with fontTools because the system has no
# HarfBuzz-Subset (Debian's libharfbuzz-subset is not installed on these machines; the PDF is the same), and warns
# once at import that HarfBuzz-Subset will be required. Both say nothing a night's reader can act on: they are
# dropped here, and only they (any other WeasyPrint warning still shows).
_HARFBUZZ_NOTICE = "Using fontTools instead of HarfBuzz-Subset"


class _NoHarfBuzzNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_HARFBUZZ_NOTICE)


_harfbuzz_filter = _NoHarfBuzzNotice()


def quiet_weasyprint_font_notices() -> None:
    """Drop WeasyPrint's HarfBuzz-Subset notices (idempotent; call before WeasyPrint is imported)."""
    logger = logging.getLogger("weasyprint")
    if _harfbuzz_filter not in logger.filters:
        logger.addFilter(_harfbuzz_filter)
    warnings.filterwarnings("ignore", message="HarfBuzz-Subset will be required", category=DeprecationWarning)


# Progress for a person at a terminal: the CLI sets a listener when stdout is a TTY; otherwise (a served or
# scheduled run, a pipe, a test) the flow's calls do nothing. The flow says when a stage starts and what it counted.
_progress_listener: Callable[[str, str], None] | None = None


def set_progress_listener(listener: Callable[[str, str], None] | None) -> None:
    global _progress_listener
    _progress_listener = listener


def progress(stage: str, detail: str = "") -> None:
    """Tell the terminal (if one listens) which stage the night is in, with counts."""
    listener = _progress_listener
    if listener is not None:
        listener(stage, detail)


def _status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status (Linux), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def peak_memory_mb() -> float | None:
    """The process's peak resident memory since the last reset_peak_memory() (Linux), in MiB."""
    return _status_mb("VmHWM")


def resident_memory_mb() -> float | None:
    """The process's resident memory now (Linux), in MiB."""
    return _status_mb("VmRSS")


def release_memory() -> None:
    """Give the memory a finished stage freed back to the operating system, so the next stage starts low.

    Three allocators share a night's process. glibc's malloc (Python objects, pandas and NumPy under Great
    Expectations) keeps freed memory in its arenas: `malloc_trim(0)` returns it (measured at 10M: 1.87 GiB
    resident after a full validation, 0.37 GiB after the trim). DuckDB's and Polars' jemallocs purge freed pages
    themselves, after a second, from background threads (warehouse.connect turns DuckDB's on; Polars' are on by
    default). Without glibc (musl, macOS) the trim is skipped.
    """
    gc.collect()
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


__all__ = [
    "WARM_MODULES",
    "imports_ready",
    "peak_memory_mb",
    "progress",
    "quiet_weasyprint_font_notices",
    "release_memory",
    "reset_peak_memory",
    "resident_memory_mb",
    "set_progress_listener",
    "today_in",
    "warm_imports",
]
