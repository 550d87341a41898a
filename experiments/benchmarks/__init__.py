"""Benchmarks against the anchors of issue 6: ``python -m experiments.benchmarks``.

Each comparison runs both sides in one process, interleaved, after warm-up, and reports the ratio.
"""
