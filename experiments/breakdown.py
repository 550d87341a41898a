"""Held-out exact match of a finished run, broken down by the head symbol of each input.

python -m experiments.breakdown WORKDIR [WORKDIR ...]

Reads ``WORKDIR/predictions.jsonl`` (written at the end of training). For the math curriculum the
head symbol is the operator (``+``, ``-``, ``*``, ``d/dx``, ``solve``...); other inputs fall into
one group named by their first word.
"""

from __future__ import annotations

import collections
import json
import os
import sys


def head_symbol(text: str) -> str:
  """``(+ 16 9)`` -> ``+``; ``How many legs?`` -> ``How``; ``''`` -> ``''``."""
  words = text.lstrip('(').split()
  return words[0] if words else ''


def breakdown(workdir: str) -> dict[str, tuple[int, int]]:
  """Maps head symbol -> (correct, total) over the run's evaluation predictions."""
  counts = collections.defaultdict(lambda: [0, 0])
  with open(os.path.join(workdir, 'predictions.jsonl'), encoding='utf-8') as f:
    for line in f:
      record = json.loads(line)
      group = counts[head_symbol(record['input'])]
      group[0] += record['prediction'] == record['target']
      group[1] += 1
  return {k: (v[0], v[1]) for k, v in sorted(counts.items())}


def main(argv: list[str]) -> None:
  if len(argv) < 2:
    sys.exit(__doc__.strip().splitlines()[2])
  for workdir in argv[1:]:
    groups = breakdown(workdir)
    correct, total = (sum(v[i] for v in groups.values()) for i in (0, 1))
    print(f'{workdir}: exact match {correct}/{total} = {correct / total:.3f}')
    for name, (c, t) in groups.items():
      print(f'  {name:>8}  {c:4d}/{t:<4d} {c / t:.3f}')


if __name__ == '__main__':
  main(sys.argv)
