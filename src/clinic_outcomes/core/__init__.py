"""Core: the typed, de-identified core.* tables analysts query, built from raw.*."""
