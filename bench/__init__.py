"""Benchmark and chaos tooling (issue 7 and 8): see docs/performance.md."""
