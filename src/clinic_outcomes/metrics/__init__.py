"""Metrics R3-R6 with lazy Polars: relief, relief duration, plan outcomes, safety (marts.*)."""
