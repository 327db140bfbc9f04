"""Benchmarks of results-realtime (`make bench`, `python -m bench --help`); see bench/RESULTS.md."""
