"""The synthetic clinic network: seeded export drops for the demo, tests and benchmarks."""
