"""Two groups of runs compared problem by problem: is a gap in held-out exact match more than noise?

python -m experiments.paired RUN_A [RUN_A ...] --vs RUN_B [RUN_B ...]

Pairs the runs of the two groups by their config's ``seed`` (a seed also draws the train/held-out
split, so two runs with one seed predicted the same held-out problems, in the same order), reads
each run's ``predictions.jsonl`` and prints

* per seed: the exact match of A and of B, and how many problems only A and only B got right;
* the seed-level paired difference B - A: mean and standard error over the seeds (this counts the
  training's randomness: what a rerun with new seeds would see);
* McNemar's test over all paired problems: of the problems exactly one of the two got right, B's
  share against 1/2, as ``z = (only_b - only_a) / sqrt(only_a + only_b)`` and the exact two-sided
  binomial p. It treats the trained models as fixed, so it says whether *these* models differ,
  with far more resolution than a few seeds' means when the held-out set is small.

A held-out set of n problems gives one run's exact match a binomial standard error of about
sqrt(p (1 - p) / n) (0.03 for 240 problems at 0.7), so a few seeds cannot resolve a gap of 0.01.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys

from scipy import stats


def _run(workdir: str) -> tuple[int, list[dict]]:
  """(seed, held-out predictions) of a finished run; a malformed file is a ValueError naming it."""
  path = os.path.join(workdir, 'config.json')
  try:
    with open(path, encoding='utf-8') as f:
      seed = int(json.load(f)['seed'])
    path = os.path.join(workdir, 'predictions.jsonl')
    with open(path, encoding='utf-8') as f:
      records = [json.loads(line) for line in f]
    for key in ('input', 'prediction', 'target'):
      for number, record in enumerate(records, 1):
        if key not in record:
          raise KeyError(f'{key} (line {number})')
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f"{path}: not a finished run's file ({type(e).__name__}: {e})") from e
  return seed, records


def _by_seed(workdirs: list[str], name: str) -> dict[int, list[dict]]:
  runs: dict[int, list[dict]] = {}
  for workdir in workdirs:
    seed, records = _run(workdir)
    if seed in runs:
      raise ValueError(f'Group {name} has two runs with seed {seed} (the second: {workdir}).')
    runs[seed] = records
  return runs


def compare(group_a: list[str], group_b: list[str]) -> dict[str, object]:
  """The numbers the module docstring lists, for the seeds both groups ran.

  Raises:
    ValueError: a seed run by one group only, two runs of one seed in a group, or paired runs
      whose held-out problems differ (another data config).
  """
  a, b = _by_seed(group_a, 'A'), _by_seed(group_b, 'B')
  if a.keys() != b.keys():
    raise ValueError(
      f'The groups ran different seeds: A only {sorted(a.keys() - b.keys())}, '
      f'B only {sorted(b.keys() - a.keys())}; pairing needs the same seeds on both sides.'
    )
  per_seed = []
  for seed in sorted(a):
    ra, rb = a[seed], b[seed]
    inputs_a, inputs_b = [r['input'] for r in ra], [r['input'] for r in rb]
    if inputs_a != inputs_b:
      first = next(
        (i for i, (x, y) in enumerate(zip(inputs_a, inputs_b)) if x != y), min(len(ra), len(rb))
      )
      raise ValueError(
        f'Seed {seed}: the two runs predicted different held-out problems ({len(ra)} and '
        f'{len(rb)}, first difference at #{first}); compare runs of one data config.'
      )
    right_a = [r['prediction'] == r['target'] for r in ra]
    right_b = [r['prediction'] == r['target'] for r in rb]
    per_seed.append(
      {
        'seed': seed,
        'problems': len(ra),
        'exact_match_a': sum(right_a) / max(len(ra), 1),
        'exact_match_b': sum(right_b) / max(len(rb), 1),
        'only_a': sum(x and not y for x, y in zip(right_a, right_b)),
        'only_b': sum(y and not x for x, y in zip(right_a, right_b)),
      }
    )
  diffs = [s['exact_match_b'] - s['exact_match_a'] for s in per_seed]
  only_a = sum(s['only_a'] for s in per_seed)
  only_b = sum(s['only_b'] for s in per_seed)
  discordant = only_a + only_b
  return {
    'per_seed': per_seed,
    'mean_difference': statistics.mean(diffs),
    'stderr_difference': statistics.stdev(diffs) / math.sqrt(len(diffs))
    if len(diffs) > 1
    else float('nan'),
    'only_a': only_a,
    'only_b': only_b,
    'z': (only_b - only_a) / math.sqrt(discordant) if discordant else 0.0,
    'p': stats.binomtest(only_b, discordant, 0.5).pvalue if discordant else 1.0,
  }


def format_p(p: float) -> str:
  """'= 0.22' (two significant digits), or '< 1e-300' for a p-value that underflowed to 0."""
  return f'= {p:.2g}' if p > 0 else '< 1e-300'


def main(argv: list[str]) -> None:
  if '--vs' not in argv[1:] or argv[1] == '--vs' or argv[-1] == '--vs':
    sys.exit(__doc__.strip().splitlines()[2])
  split = argv.index('--vs')
  try:
    result = compare(argv[1:split], argv[split + 1 :])
  except (OSError, ValueError) as e:  # Both name the file.
    sys.exit(f'error: {e}')
  print('seed  problems  A      B      only A  only B')
  for s in result['per_seed']:
    print(
      f'{s["seed"]:>4}  {s["problems"]:>8}  {s["exact_match_a"]:.3f}  {s["exact_match_b"]:.3f}'
      f'  {s["only_a"]:>6}  {s["only_b"]:>6}'
    )
  print(
    f'B - A over {len(result["per_seed"])} seeds: {result["mean_difference"]:+.4f} '
    f'± {result["stderr_difference"]:.4f} (standard error)'
  )
  print(
    f'McNemar, all paired problems: only A {result["only_a"]}, only B {result["only_b"]}, '
    f'z = {result["z"]:+.2f}, exact two-sided p {format_p(result["p"])}'
  )


if __name__ == '__main__':
  main(sys.argv)
