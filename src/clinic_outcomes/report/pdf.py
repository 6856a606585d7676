"""Typesetting the reports' PDFs with WeasyPrint, in worker processes when the machine has more than one core.

WeasyPrint is pure Python and holds the interpreter for all of its work (layout, drawing, writing), so threads
cannot share it out: each PDF is typeset in a process of its own (issue 18, decision 2: the per-clinic reports
may render in parallel processes). The processes are started with `spawn` (never `fork`: the night's process
runs DuckDB's and Prefect's threads, which a forked child would inherit mid-lock) as soon as the report stage
begins, so each imports WeasyPrint while the main process still computes `marts.report_cells`; then each
document is handed to a worker as soon as it is built, and the stage waits for all. A worker that fails fails the stage with
its error (a retry of the task starts over). With one process (`[report] pdf_processes = 1`, or a one-core
machine) the PDFs are typeset one after another in the night's own process, as before.

What the stage's peak memory (ops.runs) measures is the night's own process; each worker holds its own
WeasyPrint beside it (a peak of 73 MiB for a worker typesetting two-page clinic PDFs: the largest child's
ru_maxrss, measured 2026-12-07).
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from types import TracebackType


def processes_for(setting: int) -> int:
    """How many processes typeset PDFs: the setting, or (0, the default) one per core this process may use."""
    if setting > 0:
        return setting
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def write_pdf(printed: str, path: str) -> str:
    """Typeset one print document (HTML that refers to nothing outside itself) into `path`."""
    import weasyprint

    # base_url None: the HTML refers to nothing outside itself, so WeasyPrint must fetch nothing.
    weasyprint.HTML(string=printed, base_url=None).write_pdf(path)
    return path


def _start_worker() -> None:
    from clinic_outcomes.runtime import quiet_weasyprint_font_notices

    quiet_weasyprint_font_notices()
    importlib.import_module("weasyprint")


class PdfWriter:
    """Typesets the report stage's PDFs: `submit` each (printed HTML, path), then `wait` (in a `with` block).

    Start it early: with more than one process, the workers start and import WeasyPrint at once; with one, a
    thread imports WeasyPrint meanwhile (loading pango costs about a second the warehouse queries can hide).
    """

    def __init__(self, processes: int) -> None:
        self.processes = max(1, processes)
        self._pending: list[tuple[str, Path]] = []
        self._futures: list[Future[str]] = []
        self._pool: ProcessPoolExecutor | None = None
        self._importing: threading.Thread | None = None
        if self.processes > 1:
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
            )
            # A pool starts its processes on demand: one task per process starts them all now.
            for _ in range(self.processes):
                self._pool.submit(int)
        else:
            self._importing = threading.Thread(
                target=_start_worker, name="import-weasyprint", daemon=True
            )
            self._importing.start()

    def submit(self, printed: str, path: Path) -> None:
        """Typeset `printed` into `path`: at once in a worker, or (one process) when `wait` is called."""
        if self._pool is not None:
            self._futures.append(self._pool.submit(write_pdf, printed, str(path)))
        else:
            self._pending.append((printed, Path(path)))

    def wait(self) -> None:
        """Return when every document submitted is written; a worker's error is raised here."""
        if self._pool is None:
            pending, self._pending = self._pending, []
            if self._importing is not None:
                self._importing.join()
                self._importing = None
            importlib.import_module("weasyprint")  # an import error shows here, with its own message
            for printed, path in pending:
                write_pdf(printed, str(path))
            return
        futures, self._futures = self._futures, []
        for future in futures:
            future.result()  # the first failure is raised; close() cancels what has not started

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._importing is not None:
            self._importing.join()
            self._importing = None

    def __enter__(self) -> "PdfWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
