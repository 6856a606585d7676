"""Typesetting the reports' PDFs with WeasyPrint, in worker processes when the machine has more than one core.

WeasyPrint is pure Python and holds the interpreter for all of its work (layout, drawing, writing), so threads
cannot share it out: each PDF is typeset in a process of its own (issue 18, decision 2: the per-clinic reports
may render in parallel processes). The processes are started with `spawn` (never `fork`: the night's process
runs DuckDB's and Prefect's threads, which a forked child would inherit mid-lock) as soon as the report stage
begins, so each imports WeasyPrint while the main process still computes `marts.report_cells`; then each
document is handed to a worker as soon as it is built, and the stage waits for all. A worker that fails fails the stage with
its error (a retry of the task starts over). With one process (`[report] pdf_processes = 1`, or a one-core
machine) the PDFs are typeset one after another in the night's own process, as before.

A PDF whose print document is the same, byte for byte, as one the previous published report typeset (the same
document at the same place, by the same WeasyPrint) is copied from there instead of typeset again: each report
folder keeps the digests of its print documents in `pdf-digests.json` (written once every PDF is written). A
rerun of a night, or a clinic whose document did not change, then costs a file copy. A document names its as-of
date, so a new night's documents are all new.

What the stage's peak memory (ops.runs) measures is the night's own process; each worker holds its own
WeasyPrint beside it (a peak of 73 MiB for a worker typesetting two-page clinic PDFs: the largest child's
ru_maxrss, measured 2026-12-07).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import multiprocessing
import os
import shutil
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


DIGESTS = "pdf-digests.json"  # in each report folder: {PDF path relative to the folder: its print document's digest}


def typesetter() -> str:
    """The WeasyPrint that typesets the PDFs (part of each document's digest)."""
    return f"weasyprint {importlib.metadata.version('weasyprint')}"


def document_digest(printed: str, typeset_by: str) -> str:
    """What a PDF is typeset from: the print document and the WeasyPrint that typesets it (`typesetter()`)."""
    return hashlib.sha256(f"{typeset_by}\n".encode("utf-8") + printed.encode("utf-8")).hexdigest()


def _read_digests(folder: Path | None) -> dict[str, str]:
    """A report folder's digests; none when it has none or they cannot be read (every PDF is then typeset)."""
    if folder is None:
        return {}
    try:
        found = json.loads((folder / DIGESTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(found, dict):
        return {}
    return {str(k): v for k, v in found.items() if isinstance(v, str)}


class PdfWriter:
    """Typesets the report stage's PDFs: `submit` each (printed HTML, path), then `wait` (in a `with` block).

    Start it early: with more than one process, the workers start and import WeasyPrint at once; with one, a
    thread imports WeasyPrint meanwhile (loading pango costs about a second the warehouse queries can hide).

    `root`: the report folder the PDFs are written in; `previous`: the last published report folder, whose
    PDFs are copied where their print documents are unchanged. With a root, `wait` writes root's digests.
    """

    def __init__(self, processes: int, *, root: Path | None = None, previous: Path | None = None) -> None:
        self.processes = max(1, processes)
        self.root = None if root is None else Path(root).resolve()
        self.previous = None if previous is None else Path(previous)
        self._earlier: dict[str, str] = {}
        self._typeset_by = ""
        if self.root is not None:
            self._earlier = _read_digests(self.previous)
            self._typeset_by = typesetter()  # once per report, not per document
            (self.root / DIGESTS).unlink(missing_ok=True)  # an earlier attempt's, for PDFs this one replaces
        self._digests: dict[str, str] = {}
        self.reused: list[str] = []  # the PDFs copied from `previous`, relative to root
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

    def _reuse(self, printed: str, path: Path) -> bool:
        """Record the document's digest; copy the previous report's PDF of it when that is the same document."""
        if self.root is None:
            return False
        target = Path(path).resolve()
        relative = target.relative_to(self.root).as_posix()
        digest = self._digests[relative] = document_digest(printed, self._typeset_by)
        if self.previous is None or self._earlier.get(relative) != digest:
            return False
        source = self.previous / relative
        if not source.is_file() or source.resolve() == target:
            return False
        shutil.copyfile(source, path)
        self.reused.append(relative)
        return True

    def submit(self, printed: str, path: Path) -> None:
        """Typeset `printed` into `path`: at once in a worker, or (one process) when `wait` is called; or copy
        it from the previous report when its document is unchanged."""
        if self._reuse(printed, path):
            return
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
        else:
            futures, self._futures = self._futures, []
            for future in futures:
                future.result()  # the first failure is raised; close() cancels what has not started
        self._write_digests()

    def _write_digests(self) -> None:
        """Once every PDF is written: root's digests, for the next report to reuse (atomically replaced)."""
        if self.root is None:
            return
        target = self.root / DIGESTS
        partial = target.with_name(f".{DIGESTS}.{os.getpid()}")
        partial.write_text(json.dumps(self._digests, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(partial, target)

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
