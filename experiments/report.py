"""The tables, plots and conclusion numbers of a sweep: ``report.md`` beside its runs.

python -m experiments.report SWEEP_DIR

``experiments.sweep`` calls this at its end; run it alone to redraw a sweep's report (e.g. after
copying the directory elsewhere). ``SWEEP_DIR`` holds ``sweep.json`` (written by the sweep: the
points, their config overrides, the seeds and the command) and one run per point and seed in
``SWEEP_DIR/<point>/seed=<seed>/``. Writes into ``SWEEP_DIR``:

* ``results.csv``: one row per run (point, swept values, seed, final held-out metrics), in sweep
  order. Wall times are left out, so the file depends only on what was computed: a parallel sweep
  writes the same file as a sequential one.
* ``results.md``: one row per point, best mean exact match first: mean ± standard error over the
  seeds of each metric (the sample standard deviation over sqrt(seeds)), and the mean wall time.
* ``curves.png``, ``heatmap.png`` (``experiments.plot``: seed bands, means) and ``example.png``:
  the input, predicted and target text graphs of one held-out example of the best point.
* ``report.md``: the command, the table, the plots and the numbers a conclusion rests on: the best
  point against every other, the difference of the means with its standard error, and the two
  points' runs paired by seed and compared held-out problem by problem (``experiments.paired``:
  the problems only one of them got right, McNemar's exact p): whether the trained models differ,
  for gaps that a few seeds' means cannot resolve.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from experiments import paired
from grapheme_jax import metrics as metrics_lib

MANIFEST = 'sweep.json'
# Final held-out metrics from each run's results.json: (key, label, higher is better).
METRICS = (
  ('exact_match', 'exact match', True),
  ('char_edit_distance', 'char edit distance', False),
  ('ged_lower', 'GED lower', False),
  ('ged_upper', 'GED upper', False),
  ('wl_similarity', 'WL similarity', True),
)


def run_dir(workdir: str, point: str, seed: int) -> str:
  """Where the sweep trains ``point`` with ``seed``."""
  return os.path.join(workdir, point, f'seed={seed}')


def write_manifest(workdir: str, manifest: Mapping) -> None:
  metrics_lib.write_atomically(os.path.join(workdir, MANIFEST), json.dumps(manifest, indent=2))


def read_manifest(workdir: str) -> dict:
  path = os.path.join(workdir, MANIFEST)
  if not os.path.exists(path):
    raise ValueError(
      f'{workdir} holds no {MANIFEST}: not a directory written by experiments.sweep.'
    )
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def mean_and_sem(values: Sequence[float]) -> tuple[float, float | None]:
  """Mean and standard error of the mean (sample standard deviation / sqrt(n)); None for n = 1."""
  array = np.asarray(values, dtype=np.float64)
  if array.size == 0:
    raise ValueError('No values to average.')
  sem = float(array.std(ddof=1) / math.sqrt(array.size)) if array.size > 1 else None
  return float(array.mean()), sem


def load_rows(workdir: str, manifest: Mapping) -> list[dict]:
  """One row per run, in sweep order: point, swept values, seed, results.json's metrics.

  A run without ``results.json`` (not trained yet, or killed) is an error naming it.
  """
  rows = []
  for point in manifest['points']:
    for seed in manifest['seeds']:
      path = os.path.join(run_dir(workdir, point['name'], seed), 'results.json')
      if not os.path.exists(path):
        raise ValueError(f'{path} is missing: rerun the sweep to finish that run.')
      with open(path, encoding='utf-8') as f:
        results = json.load(f)
      rows.append(
        {
          'point': point['name'],
          **point['overrides'],
          'seed': seed,
          **{key: results.get(key) for key, *_ in METRICS},
          'step': results.get('step'),
          'train_seconds': results.get('train_seconds'),
        }
      )
  return rows


def summarize(rows: Sequence[Mapping], manifest: Mapping) -> list[dict]:
  """One dict per point (sweep order): its overrides, seeds, and (mean, sem) per metric."""
  summary = []
  for point in manifest['points']:
    runs = [r for r in rows if r['point'] == point['name']]
    entry = {'point': point['name'], 'overrides': point['overrides'], 'seeds': len(runs)}
    for key in [k for k, *_ in METRICS] + ['step', 'train_seconds']:
      values = [r[key] for r in runs if r[key] is not None]
      entry[key] = mean_and_sem(values) if values else (None, None)
    summary.append(entry)
  return summary


def _number(value: float | None) -> str:
  if value is None:
    return ''
  return f'{value:.4g}' if abs(value) < 100 else f'{value:.0f}'


def _mean_sem(pair: tuple[float | None, float | None]) -> str:
  mean, sem = pair
  if mean is None:
    return ''
  if sem is None:
    return _number(mean)
  digits = 3 if abs(mean) < 10 else 1
  return f'{mean:.{digits}f} ± {sem:.{digits}f}'


def _csv(workdir: str, rows: Sequence[Mapping], keys: Sequence[str]) -> None:
  columns = ['point', *keys, 'seed', *(k for k, *_ in METRICS), 'step']
  with open(os.path.join(workdir, 'results.csv'), 'w', newline='', encoding='utf-8') as f:
    writer = csv.DictWriter(f, columns, extrasaction='ignore')
    writer.writeheader()
    writer.writerows(rows)


def table(summary: Sequence[Mapping], keys: Sequence[str]) -> list[str]:
  """Markdown table lines, best mean exact match first."""
  ranked = sorted(summary, key=lambda s: -(s['exact_match'][0] or 0.0))
  header = ['rank', 'point', *keys, 'seeds', *(label for _, label, _ in METRICS), 'steps']
  lines = ['| ' + ' | '.join(header + ['train s']) + ' |', '|' + '---|' * (len(header) + 1)]
  for rank, entry in enumerate(ranked, 1):
    cells = [str(rank), entry['point']]
    cells += [_number(v) if isinstance(v, float) else str(v) for v in _values(entry, keys)]
    cells += [str(entry['seeds']), *(_mean_sem(entry[k]) for k, *_ in METRICS)]
    cells += [_number(entry['step'][0]), _number(entry['train_seconds'][0])]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return lines


def _values(entry: Mapping, keys: Sequence[str]) -> list:
  return [entry['overrides'].get(k, '') for k in keys]


def comparisons(summary: Sequence[Mapping], metric: str = 'exact_match') -> list[dict]:
  """The best point (highest mean ``metric``) against each other point.

  Each dict: ``other``, ``difference`` (best minus other), its standard error
  sqrt(sem_best^2 + sem_other^2) (None with one seed) and ``z`` = difference / standard error.
  """
  ranked = sorted(summary, key=lambda s: -(s[metric][0] or 0.0))
  best = ranked[0]
  out = []
  for other in ranked[1:]:
    difference = best[metric][0] - other[metric][0]
    sems = (best[metric][1], other[metric][1])
    se = math.hypot(*sems) if None not in sems else None
    if se is None:
      z = None
    else:  # Equal seeds' values (se = 0): apart unless the means are equal too.
      z = (
        difference / se
        if se > 0
        else (0.0 if difference == 0 else math.copysign(math.inf, difference))
      )
    out.append({'best': best['point'], 'other': other['point'], 'difference': difference,
                'se': se, 'z': z})  # fmt: skip
  return out


def _paired_text(workdir: str, best: str, other: str, seeds: Sequence[int]) -> str:
  """The two points' runs compared held-out problem by problem (``experiments.paired``)."""
  try:
    result = paired.compare(
      [run_dir(workdir, best, s) for s in seeds], [run_dir(workdir, other, s) for s in seeds]
    )
  except OSError:  # A run without predictions: an interrupted sweep.
    return ''
  except ValueError as e:  # E.g. a swept data key: the points predicted different problems.
    return f' Not paired by problem: {e}'
  return (
    f' Paired by held-out problem: only {best} right on {result["only_a"]}, only {other} on '
    f'{result["only_b"]} (McNemar exact p {paired.format_p(result["p"])}).'
  )


def _conclusion_lines(summary: Sequence[Mapping], workdir: str, seeds: Sequence[int]) -> list[str]:
  best = max(summary, key=lambda s: s['exact_match'][0] or 0.0)
  lines = [
    f'- Best mean held-out exact match: **{best["point"]}**, '
    f'{_mean_sem(best["exact_match"])} over {best["seeds"]} seed(s).'
  ]
  for c in comparisons(summary):
    problems = _paired_text(workdir, c['best'], c['other'], seeds)
    if c['se'] is None:
      lines.append(
        f'- vs {c["other"]}: {c["difference"]:+.3f} (one seed: no standard error).{problems}'
      )
      continue
    verdict = 'more than 2 s.e. apart' if abs(c['z']) >= 2 else 'within 2 s.e.: not separated'
    lines.append(
      f'- vs {c["other"]}: {c["difference"]:+.3f} ± {c["se"]:.3f} '
      f'(difference / s.e. = {c["z"]:.1f}; {verdict}).{problems}'
    )
  return lines


def example(workdir: str, point: str, seed: int) -> dict | None:
  """One held-out example of a run's ``predictions.jsonl``: the first it gets wrong, else the
  first; None when the file is missing or empty."""
  path = os.path.join(run_dir(workdir, point, seed), 'predictions.jsonl')
  if not os.path.exists(path):
    return None
  with open(path, encoding='utf-8') as f:
    records = [json.loads(line) for line in f if line.strip()]
  wrong = [r for r in records if r['prediction'] != r['target']]
  return (wrong or records or [None])[0]


def write(workdir: str, log: Callable[[str], None] = print) -> list[str]:
  """Writes the tables, plots and ``report.md`` of the sweep in ``workdir``; returns the files."""
  import matplotlib.pyplot as plt  # noqa: PLC0415

  from experiments import plot as plot_lib  # noqa: PLC0415

  manifest = read_manifest(workdir)
  keys = list(dict.fromkeys(k for p in manifest['points'] for k in p['overrides']))
  rows = load_rows(workdir, manifest)
  summary = summarize(rows, manifest)
  _csv(workdir, rows, keys)
  seeds = manifest['seeds']
  name = manifest.get('config', '')
  heading = f'{name}: {len(summary)} points × {len(seeds)} seed(s)'
  intro = [
    'Held-out metrics at the final step: mean ± standard error over seeds '
    f'{", ".join(map(str, seeds))} (per-seed values in `results.csv`). GED: mean bounds on the',
    'graph edit distance between predicted and target text graphs; WL: Weisfeiler-Lehman '
    'similarity; train s: mean wall time of a run.',
  ]
  results_md = [f'# Sweep of {heading}', '', *intro, '', *table(summary, keys)]
  metrics_lib.write_atomically(os.path.join(workdir, 'results.md'), '\n'.join(results_md) + '\n')
  heatmap = manifest.get('heatmap') or keys[:2]
  x, y = heatmap if len(heatmap) == 2 else (None, None)  # One swept key: plot_dir says why.
  title = f'{name}, {len(summary)} points × {len(seeds)} seeds' if name else ''
  written = plot_lib.plot_dir(workdir, x, y, title=title, log=log)
  best = max(summary, key=lambda s: s['exact_match'][0] or 0.0)
  shown = example(workdir, best['point'], seeds[0])
  if shown is not None:
    texts = [('input', shown['input']), ('predicted', shown['prediction']),
             ('target', shown['target'])]  # fmt: skip
    config_path = os.path.join(run_dir(workdir, best['point'], seeds[0]), 'config.json')
    with open(config_path, encoding='utf-8') as f:
      skip_window = json.load(f)['model']['skip_window']
    written.append(os.path.join(workdir, 'example.png'))
    plt.close(plot_lib.plot_graphs(texts, written[-1], skip_window))
  report = [f'# Study: {heading}', '']
  if manifest.get('command'):
    report += ['Reproduce:', '', '```', manifest['command'], '```', '']
  report += [*intro, '', *table(summary, keys), '', '## What the numbers say', '']
  report += _conclusion_lines(summary, workdir, seeds)
  report += ['', '## Plots', '']
  report += [f'![{os.path.basename(p)}]({os.path.basename(p)})' for p in written]
  if shown is not None:
    report += [
      '',
      f'Example (held-out, best point, seed {seeds[0]}; the first it gets wrong if any): '
      f'input {shown["input"]!r}, predicted {shown["prediction"]!r}, target {shown["target"]!r}.',
    ]
  metrics_lib.write_atomically(os.path.join(workdir, 'report.md'), '\n'.join(report) + '\n')
  return ['results.md', 'results.csv', 'report.md', *(os.path.basename(p) for p in written)]


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('dir', help='a sweep directory (experiments.sweep --workdir)')
  args = parser.parse_args(argv)
  import matplotlib  # noqa: PLC0415

  matplotlib.use('Agg')
  try:
    files = write(args.dir)
  except (OSError, ValueError, KeyError) as e:
    raise SystemExit(f'error: {e}') from None
  print(f'{", ".join(files)} in {args.dir}')


if __name__ == '__main__':
  main()
