"""Benchmarks (`make bench-…`): not collected by pytest; each writes its figures into docs/benchmarks.md."""
