"""Each private hook of clinic_outcomes.hooks fails here when the library or kernel changes what it relies on."""

from pathlib import Path

from clinic_outcomes import hooks
from clinic_outcomes.runtime import peak_memory_mb, release_memory, resident_memory_mb
from clinic_outcomes.validation import validate


def test_clearing_refs_resets_the_peak_memory_mark():
    if not Path("/proc/self/clear_refs").exists():
        import pytest

        pytest.skip("not Linux")
    ballast = bytearray(200 * 1024 * 1024)  # 200 MiB, touched
    ballast[::4096] = b"x" * len(ballast[::4096])
    high = peak_memory_mb()
    del ballast
    hooks.reset_peak_memory()
    assert peak_memory_mb() < high - 150


def test_release_memory_returns_what_glibc_malloc_keeps_after_a_free():
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim
    except AttributeError:
        import pytest

        pytest.skip("no glibc malloc_trim")
    # 24,000 blocks of 8 KiB (below malloc's mmap threshold, so on its heap), each touched; the last one stays
    # alive, so freeing the others cannot shrink the heap from its top: glibc keeps those pages resident.
    blocks = [bytearray(b"x" * 8192) for _ in range(24_000)]
    kept = blocks[-1]
    del blocks
    held = resident_memory_mb()
    release_memory()
    assert resident_memory_mb() < held - 100
    assert kept[0] == ord("x")


def test_gx_fingerprints_no_batch_while_validating():
    # validate() sets GX's private HASH_THRESHOLD to 0 around each run (clinic_outcomes.hooks.no_batch_fingerprint).
    # If GX renames it or stops reading it, this fails: the fingerprint would silently cost CPU again.
    import pandas as pd

    datasource = validate._context().data_sources.add_pandas("fingerprints")
    batch = datasource.add_dataframe_asset("a").add_batch_definition_whole_dataframe("whole")
    frame = pd.DataFrame({"a": [1, 2]})
    assert "pandas_data_fingerprint" in batch.get_batch(batch_parameters={"dataframe": frame}).batch_markers
    with hooks.no_batch_fingerprint():
        assert "pandas_data_fingerprint" not in batch.get_batch(batch_parameters={"dataframe": frame}).batch_markers
    assert "pandas_data_fingerprint" in batch.get_batch(batch_parameters={"dataframe": frame}).batch_markers


def test_text_reaches_gx_as_the_categorical_pandas_itself_would_build():
    # validate._categorical uses pandas' private (via hooks.categorical_from_codes) CategoricalDtype._from_fastpath (pandas is pinned in uv.lock):
    # this fails when a pandas release removes it or changes what it builds.
    import pandas as pd
    import pyarrow as pa

    column = pa.chunked_array([["b", None, "a"], [], ["a", "c", None, "b"]])
    built = validate._categorical(column)
    expected = pd.Categorical(["b", None, "a", "a", "c", None, "b"])
    assert list(built.astype(object)) == list(expected.astype(object))
    assert sorted(built.categories) == sorted(expected.categories)
    assert built.isna().tolist() == expected.isna().tolist()
    assert pd.Series(built).value_counts().to_dict() == pd.Series(expected).value_counts().to_dict()
