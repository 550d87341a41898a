"""Experiment scripts: analyses and (later) sweeps and benchmarks over grapheme_jax runs."""
