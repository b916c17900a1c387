"""The benches (see docs/operations.md, Benchmarks); a package so they share bench/support.py and bench/peers/."""
