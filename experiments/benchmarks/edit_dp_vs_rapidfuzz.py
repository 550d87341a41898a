"""Edit labels from the bit-parallel Levenshtein DP against rapidfuzz's ``Levenshtein.editops``.

Both label the same pairs (random strings of length ``length`` over a 20-letter alphabet, so the
alignments are non-trivial). Ours: one ``edits.edit_labels`` call on the padded batch, labels
included, block_until_ready. rapidfuzz: ``editops`` per pair in a Python loop (its C++ computes the
distance and the edit script). Goal (issue 6): ours >= 0.5x rapidfuzz's pairs/s on the CPU.
"""

from __future__ import annotations

import jax
import numpy as np
from rapidfuzz.distance import Levenshtein

from experiments.benchmarks import timing
from grapheme_jax import edits, graphs


def pairs(count: int, length: int, seed: int = 0) -> list[tuple[str, str]]:
  rng = np.random.default_rng(seed)
  letters = np.array(list('abcdefghijklmnopqrst'))
  return [
    (''.join(rng.choice(letters, length)), ''.join(rng.choice(letters, length)))
    for _ in range(count)
  ]


def run(count: int = 4096, length: int = 64, repeats: int = 15):
  data = pairs(count, length)
  source, source_len = graphs.encode([s for s, _ in data], length)
  target, target_len = graphs.encode([t for _, t in data], length)
  labels = edits.edit_labels(source, source_len, target, target_len)
  distances = np.asarray(labels.distance)
  expected = np.array([Levenshtein.distance(s, t) for s, t in data])
  if not np.array_equal(distances, expected):
    raise AssertionError('The DP and rapidfuzz disagree on a distance.')
  seconds = timing.interleaved(
    {
      'ours': lambda: jax.block_until_ready(
        edits.edit_labels(source, source_len, target, target_len)
      ),
      'rapidfuzz': lambda: [Levenshtein.editops(s, t) for s, t in data],
    },
    repeats=repeats,
  )
  ours, theirs = count / seconds['ours'], count / seconds['rapidfuzz']
  return {
    'name': f'edit labels, {count} pairs of length {length}',
    'ours_pairs_per_s': ours,
    'anchor': 'rapidfuzz editops',
    'anchor_pairs_per_s': theirs,
    'ratio': ours / theirs,
    'goal': 'throughput ratio >= 0.5 (CPU)',
    'met': ours / theirs >= 0.5,
  }
