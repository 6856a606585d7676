"""clinic-outcomes: the logic of the nightly analytics pipeline for dry-needling clinics.

One subpackage per stage of the night: `loading` (export drops into raw.*), `core` (the tables analysts query),
`quality` (R1 and R2 in SQL), `validation` (Great Expectations), `metrics` (R3-R6 with Polars), `report`
(HTML and PDF), `publishing` (the atomic swap), plus `synthetic` (the generated clinic network), `cli` and
`query`. The Prefect flow that runs them lives in `flows/`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clinic-outcomes")
except PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0+unknown"
