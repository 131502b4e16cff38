"""Observation: the latency recorder and percentiles (chapter 01; chapter 07 adds tracing and
metrics exposition). Pure logic, like `labkit.patterns`.
"""
