"""Publishing: the run lock, the run journal, and the atomic swap of warehouse and report."""
