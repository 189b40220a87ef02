"""Load benchmark of the order path (``python benchmarks/run.py``); see docs/benchmarks.md."""
