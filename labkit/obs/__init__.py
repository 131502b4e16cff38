"""Observation: the latency recorder and percentiles (chapter 01), windowed rates and duplicate
counts (`rates`, chapter 02's live kitchen); chapter 07 adds tracing and metrics exposition.
Pure logic, like `labkit.patterns`.
"""
