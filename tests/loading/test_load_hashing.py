"""The ledger's file hashes: computed two files at a time, they are the same digests in the same order."""

from __future__ import annotations

import hashlib

import pytest

from clinic_outcomes.loading.load import file_sha256, files_sha256


def test_files_sha256_gives_each_files_digest_in_order(tmp_path):
    paths = []
    for i in range(7):
        path = tmp_path / f"f{i}.csv"
        path.write_bytes((f"row {i}\n" * (i * 50_000 + 1)).encode())  # several 1 MiB blocks for some
        paths.append(path)
    expected = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert files_sha256(paths) == expected
    assert files_sha256(paths[::-1]) == expected[::-1]
    assert files_sha256(paths[:1]) == expected[:1]
    assert files_sha256([]) == []
    assert [file_sha256(p) for p in paths] == expected


def test_files_sha256_raises_for_a_file_that_cannot_be_read(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("a\n")
    with pytest.raises(FileNotFoundError):
        files_sha256([good, tmp_path / "gone.csv", good])
