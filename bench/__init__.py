"""Benchmarks, each a script printing JSON (`python bench/<name>.py --help`); the `_` modules
are their shared plumbing."""
