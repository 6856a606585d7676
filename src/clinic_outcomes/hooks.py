"""Every private hook into a library or the kernel, in one place, each guarded by a test
(tests/test_hooks.py) that fails when the library changes what it relies on.

- `categorical_from_codes`: pandas' private `CategoricalDtype._from_fastpath` builds the dtype of a text
  column reaching Great Expectations without re-checking categories DuckDB already made unique.
- `no_batch_fingerprint`: GX's private `HASH_THRESHOLD`, set to 0 while a suite runs, so GX does not hash
  every frame for a `pandas_data_fingerprint` batch marker (Data Docs metadata only).
- `reset_peak_memory`: Linux's `/proc/self/clear_refs` ("5" resets the peak-RSS mark), so each stage's peak
  memory is its own.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported by the caller, in the background, not when the flow starts
    import numpy as np
    import pandas as pd


def reset_peak_memory() -> None:
    """Reset the kernel's peak-RSS mark for this process (Linux), so each stage's peak is its own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def categorical_from_codes(codes: np.ndarray, categories: pd.Index) -> pd.Categorical:
    """A categorical of `codes` (-1 for null) into `categories`, which the caller knows hold each value once.

    pandas' own check of that (hashing every category again, ~0.4 s per million) is skipped:
    _from_fastpath is the constructor pandas itself uses for categories it knows are unique
    (private; pandas is pinned in uv.lock and tests/test_hooks.py guards it).
    """
    import pandas as pd

    dtype = pd.CategoricalDtype._from_fastpath(categories, ordered=False)
    return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)


@contextlib.contextmanager
def no_batch_fingerprint():
    """GX fingerprints no batch inside (tests/test_hooks.py guards it).

    GX's pandas engine hashes each whole frame (pandas.util.hash_pandas_object, then md5) for
    the `pandas_data_fingerprint` batch marker, and skips frames of HASH_THRESHOLD bytes or
    more. The marker is Data Docs metadata only: no result reads it, and a frame built fresh
    by each run has nothing to compare it with. It cost ~0.9 s CPU per run at 1M sessions
    and a hash array per column. A threshold of 0 leaves the marker out.
    """
    from great_expectations.execution_engine import pandas_execution_engine

    threshold = pandas_execution_engine.HASH_THRESHOLD
    pandas_execution_engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        pandas_execution_engine.HASH_THRESHOLD = threshold
