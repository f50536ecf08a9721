"""Benchmarks: scripts a user runs; each starts its own server on 127.0.0.1 and prints a table."""
