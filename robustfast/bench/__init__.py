"""Benchmarks behind `robustfast bench`: timing, result files and tables."""
