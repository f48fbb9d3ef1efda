"""Benchmarks: `make bench` runs every bench/bench_*.py module's `run()`.

Targets are ratios measured in one run (10,000 rows vs 100, a view vs a bare view), so the
figures mean the same on a laptop and on CI; absolute times are printed for context only.
Results are written to docs/benchmarks.md by hand after a run.
"""
