"""Benchmarks (make bench): DP query runner vs plain Parquet scans and peers."""
