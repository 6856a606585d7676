"""Validation: every Great Expectations suite of expectations/, with its severity, and the data docs."""
