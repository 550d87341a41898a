"""Interleaved timing: both sides of a comparison alternate, so machine noise hits both alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping


def interleaved(
  functions: Mapping[str, Callable[[], object]], repeats: int = 7, warmup: int = 1
) -> dict[str, float]:
  """Median wall seconds of each zero-argument function over ``repeats`` alternating rounds.

  Every function is called ``warmup`` times first (compilation, caches). Functions must block
  until their result is ready (e.g. end with ``jax.block_until_ready``).
  """
  for fn in functions.values():
    for _ in range(warmup):
      fn()
  samples = {name: [] for name in functions}
  for _ in range(repeats):
    for name, fn in functions.items():
      start = time.perf_counter()
      fn()
      samples[name].append(time.perf_counter() - start)
  return {name: statistics.median(times) for name, times in samples.items()}
