"""Measurement: derived metrics, statistics, FLOPs, peaks, memory, provenance."""
