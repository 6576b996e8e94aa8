"""Measurements behind ``scripts/benchmark.py``: XNNPACK coverage, file sizes, LiteRT latency, batch-N export.

Each module imports what it needs when called; importing ``qatzoo.bench`` imports nothing heavy.
"""
