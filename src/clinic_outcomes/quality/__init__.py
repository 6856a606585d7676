"""Quality rules in SQL: R1 re-treatment flags and R2 plan completion (quality.*)."""
