"""Held-out results of a finished run: structural metrics, and exact match per head symbol.

python -m experiments.breakdown WORKDIR [WORKDIR ...]

Reads ``WORKDIR/predictions.jsonl`` (written at the end of training) and ``WORKDIR/config.json``.
Prints the mean GED bounds and WL similarity between predicted and target text graphs (the same
function as the ``eval/ged_*`` and ``eval/wl_similarity`` metrics, so it also serves runs made
before those were logged), then exact match per head symbol: for the math curriculum the operator
(``+``, ``-``, ``*``, ``d/dx``, ``solve``...); other inputs fall into one group named by their
first word. Last, the *copy rate*: the fraction of predictions (and, for comparison, of targets)
that are a subsequence of their input, i.e. could be written by keeping and deleting input
characters alone -- a model that copies digits instead of computing shows up here.
"""

from __future__ import annotations

import collections
import json
import os
import sys

from grapheme_jax import metrics


def head_symbol(text: str) -> str:
  """``(+ 16 9)`` -> ``+``; ``How many legs?`` -> ``How``; ``''`` -> ``''``."""
  words = text.lstrip('(').split()
  return words[0] if words else ''


def _records(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, 'predictions.jsonl'), encoding='utf-8') as f:
    return [json.loads(line) for line in f]


def breakdown(workdir: str) -> dict[str, tuple[int, int]]:
  """Maps head symbol -> (correct, total) over the run's evaluation predictions."""
  counts = collections.defaultdict(lambda: [0, 0])
  for record in _records(workdir):
    group = counts[head_symbol(record['input'])]
    group[0] += record['prediction'] == record['target']
    group[1] += 1
  return {k: (v[0], v[1]) for k, v in sorted(counts.items())}


def is_subsequence(text: str, source: str) -> bool:
  """Whether ``text`` can be obtained from ``source`` by deleting characters."""
  rest = iter(source)
  return all(c in rest for c in text)


def copy_rates(workdir: str) -> tuple[float, float]:
  """(predictions, targets): the fraction that are subsequences of their input."""
  records = _records(workdir)
  n = max(len(records), 1)
  pred = sum(is_subsequence(r['prediction'], r['input']) for r in records) / n
  target = sum(is_subsequence(r['target'], r['input']) for r in records) / n
  return pred, target


def structural(workdir: str) -> dict[str, float]:
  """GED bounds and WL similarity of the run's predictions, with the run's own settings."""
  with open(os.path.join(workdir, 'config.json'), encoding='utf-8') as f:
    config = json.load(f)
  records = _records(workdir)
  settings = config.get('metrics', {})
  return metrics.text_graph_metrics(
    [r['prediction'] for r in records],
    [r['target'] for r in records],
    config['model']['skip_window'],
    metrics.GedCosts.from_config(settings) if 'ged_costs' in settings else metrics.GedCosts(),
    settings.get('wl_iterations', 3),
  )


def main(argv: list[str]) -> None:
  if len(argv) < 2:
    sys.exit(__doc__.strip().splitlines()[2])
  for workdir in argv[1:]:
    groups = breakdown(workdir)
    correct, total = (sum(v[i] for v in groups.values()) for i in (0, 1))
    print(f'{workdir}: exact match {correct}/{total} = {correct / total:.3f}')
    print('  ' + ', '.join(f'{k} {v:.4f}' for k, v in structural(workdir).items()))
    for name, (c, t) in groups.items():
      print(f'  {name:>8}  {c:4d}/{t:<4d} {c / t:.3f}')
    pred, target = copy_rates(workdir)
    print(f'  copy rate (subsequence of the input): predictions {pred:.3f}, targets {target:.3f}')


if __name__ == '__main__':
  main(sys.argv)
