"""clinic-outcomes: the nightly dry-needling outcomes pipeline."""
