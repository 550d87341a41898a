"""Learning curves and heatmaps from the ``metrics.jsonl`` of any runs: one run or a whole sweep.

python -m experiments.plot DIR [--x=loss.alpha --y=loss.beta] [--metric=eval/exact_match]

Finds every run under ``DIR`` (a directory holding ``metrics.jsonl``, ``DIR`` itself included) and
writes into ``DIR``:

* ``curves.png``: the training loss, held-out exact match and held-out WL similarity against the
  step, one line per run;
* ``heatmap.png``: the final value of ``--metric`` for each pair of values of two config keys. The
  keys default to the first two (in config order) whose values differ between the runs, read from
  each run's ``config.json``; with more than two differing keys each cell shows the best run
  among those that share its pair of values, and the title says so. Skipped, with a message, when
  fewer than two keys differ.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from grapheme_jax.workdir import flatten

CURVES = (
  ('train/loss', 'training loss'),
  ('eval/exact_match', 'held-out exact match'),
  ('eval/wl_similarity', 'held-out WL similarity'),
)
METRIC_LABELS = dict(CURVES)


def read_metrics(path: str) -> list[dict]:
  """The records of one ``metrics.jsonl``; a malformed line is an error naming file and line."""
  records = []
  with open(path, encoding='utf-8') as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f'{path}:{number}: not JSON ({e.msg}).') from None
      if not isinstance(record, dict) or not isinstance(record.get('step'), int):
        raise ValueError(f'{path}:{number}: expected an object with an integer "step".')
      records.append(record)
  return records


def find_runs(root: str) -> dict[str, str]:
  """``{name: run directory}`` for every directory under ``root`` that holds ``metrics.jsonl``.

  Names are paths relative to ``root`` (``'.'`` for ``root`` itself), sorted.
  """
  runs = {}
  for directory, subdirs, files in os.walk(root):
    # previous_runs: runs set aside by --restart (grapheme_jax.workdir), not part of this one.
    subdirs[:] = sorted(d for d in subdirs if d not in ('checkpoints', 'previous_runs'))
    if 'metrics.jsonl' in files:
      runs[os.path.relpath(directory, root)] = directory
  return dict(sorted(runs.items()))


def curve(records: Sequence[Mapping], key: str) -> tuple[list[int], list[float]]:
  """(steps, values) of ``key``; a resumed run's repeated steps keep their last value."""
  points = {r['step']: r[key] for r in records if key in r}
  steps = sorted(points)
  return steps, [points[s] for s in steps]


def final_value(records: Sequence[Mapping], key: str) -> float | None:
  steps, values = curve(records, key)
  return values[-1] if values else None


def point_of(name: str) -> str:
  """The sweep point of a run named ``POINT/seed=N`` (``experiments.sweep``); other names as is."""
  match = re.fullmatch(r'(?:(.*)/)?seed=\d+', name)
  return (match.group(1) or '.') if match else name


def seed_band(
  curves: Sequence[tuple[Sequence[int], Sequence[float]]],
) -> tuple[list[int], np.ndarray, np.ndarray]:
  """(steps every curve has, mean, standard error of the mean) over the seeds' curves."""
  steps = sorted(set.intersection(*(set(s) for s, _ in curves)))
  values = np.array([[dict(zip(s, v))[t] for t in steps] for s, v in curves], dtype=np.float64)
  sem = values.std(0, ddof=1) / math.sqrt(len(curves)) if len(curves) > 1 else 0 * values[0]
  return steps, values.mean(0), sem


def plot_curves(runs: Mapping[str, Sequence[Mapping]], path: str, title: str = '') -> None:
  """One panel per metric of ``CURVES``, one line per run, saved as a PNG at ``path``.

  The seeds of one sweep point (runs ``POINT/seed=N``) are drawn as one line, their mean, in a band
  of plus and minus one standard error.
  """
  groups: dict[str, list[Sequence[Mapping]]] = {}
  for name, records in runs.items():
    groups.setdefault(point_of(name), []).append(records)
  fig, axes = plt.subplots(1, len(CURVES), figsize=(5.2 * len(CURVES), 4.2), squeeze=False)
  for ax, (key, label) in zip(axes[0], CURVES):
    for i, (name, members) in enumerate(groups.items()):
      curves = [c for c in (curve(r, key) for r in members) if c[0]]
      if not curves:
        continue
      steps, mean, sem = seed_band(curves)
      marker = 'o' if len(steps) <= 12 else None
      legend = name if len(members) == 1 else f'{name} ({len(members)} seeds)'
      color = f'C{i % 10}'  # A point keeps its colour in every panel.
      ax.plot(steps, mean, marker=marker, markersize=3, color=color, label=legend)
      if len(curves) > 1:
        ax.fill_between(steps, mean - sem, mean + sem, color=color, alpha=0.2, linewidth=0)
    ax.set_xlabel('training step')
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    if key.startswith('eval/'):
      ax.set_ylim(-0.02, 1.02)
  legend = {}  # One entry per run, from whichever panel has it.
  for ax in axes[0]:
    for handle, name in zip(*ax.get_legend_handles_labels()):
      legend.setdefault(name, handle)
  if legend:
    columns = min(len(legend), 4)
    fig.legend(
      list(legend.values()), list(legend), loc='lower center', ncol=columns, fontsize=9,
      frameon=False,
    )  # fmt: skip
    rows = math.ceil(len(legend) / columns)
    fig.subplots_adjust(bottom=0.17 + 0.05 * rows, top=0.88, wspace=0.28)
  band = (
    ' (bands: ±1 standard error over seeds)' if any(len(m) > 1 for m in groups.values()) else ''
  )
  fig.suptitle((title or 'learning curves') + band)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def varying_keys(configs: Sequence[Mapping]) -> list[str]:
  """Config keys (dotted, in the first config's order) whose values differ between ``configs``."""
  flats = [flatten(c) for c in configs]
  keys = list(dict.fromkeys(k for f in flats for k in f))
  return [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]


def _sort_key(value):
  return (0, value, '') if isinstance(value, int | float) else (1, 0, repr(value))


def plot_heatmap(
  points: Sequence[tuple[Mapping, float]], x: str, y: str, metric: str, path: str, title: str = ''
) -> None:
  """Heatmap of ``metric`` over config keys ``x`` (columns) and ``y`` (rows).

  ``points`` are (flat config, value) pairs. A cell with several points shows their best (max)
  value; an empty cell is grey and marked 'n/a'.
  """
  xs = sorted({p[x] for p, _ in points}, key=_sort_key)
  ys = sorted({p[y] for p, _ in points}, key=_sort_key)
  grid = np.full((len(ys), len(xs)), np.nan)
  shared = 0
  for flat, value in points:
    i, j = ys.index(flat[y]), xs.index(flat[x])
    shared += not np.isnan(grid[i, j])
    grid[i, j] = value if np.isnan(grid[i, j]) else max(grid[i, j], value)
  label = METRIC_LABELS.get(metric, metric)
  fig, ax = plt.subplots(figsize=(1.3 * len(xs) + 3.2, 1.0 * len(ys) + 2.4))
  cmap = plt.get_cmap('viridis').with_extremes(bad='#cccccc')
  # Colours span this grid's values, so small differences show; the cells print the values.
  low, high = float(np.nanmin(grid)), float(np.nanmax(grid))
  high = high if high > low else low + 1e-6
  image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=low, vmax=high, origin='lower')
  for i in range(len(ys)):
    for j in range(len(xs)):
      text = 'n/a' if np.isnan(grid[i, j]) else f'{grid[i, j]:.3f}'
      dark = not np.isnan(grid[i, j]) and grid[i, j] < low + 0.6 * (high - low)
      ax.text(j, i, text, ha='center', va='center', color='white' if dark else 'black', fontsize=10)
  ax.set_xticks(range(len(xs)), [str(v) for v in xs])
  ax.set_yticks(range(len(ys)), [str(v) for v in ys])
  ax.set_xlabel(x)
  ax.set_ylabel(y)
  fig.colorbar(
    image, ax=ax, label=f'final {label} (colours span this grid: {low:.3g} to {high:.3g})'
  )
  caption = f'{title}: final {label}' if title else f'final {label}'
  if shared:
    caption += '\n(best run per cell over the other swept keys)'
  ax.set_title(caption, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def draw_text_graph(
  ax, text: str, skip_window: int = 2, title: str = '', width: int | None = None
) -> None:
  """Draws ``graphs.text_to_graph(text)`` on ``ax``: characters left to right (a space as '␣'),
  sequential edges as straight arrows, skip edges as arcs; ``width`` nodes fit across the axes."""
  from grapheme_jax import graphs  # noqa: PLC0415 (plotting runs alone too)

  graph = graphs.text_to_graph(text, skip_window)
  for sender, receiver, distance in zip(graph.senders, graph.receivers, graph.edges):
    ax.annotate(
      '',
      xy=(receiver, 0),
      xytext=(sender, 0),
      arrowprops={
        'arrowstyle': '-|>',
        'color': 'tab:blue' if distance == 1 else 'tab:orange',
        'shrinkA': 9,
        'shrinkB': 9,
        'connectionstyle': f'arc3,rad={-0.25 * (distance - 1)}',
        'lw': 1.0,
      },
    )
  for i, char in enumerate(text):
    ax.scatter([i], [0], s=340, color='white', edgecolors='black', zorder=3)
    label = '\u2423' if char == ' ' else char if char.isprintable() else f'U+{ord(char):04X}'
    ax.text(i, 0, label, ha='center', va='center', fontsize=10, zorder=4)
  ax.set_xlim(-0.8, max(width or len(text), 1) - 0.2)
  ax.set_ylim(-0.5, 0.25 * skip_window + 0.3)
  ax.set_title(f'{title}: {text!r} ({len(text)} nodes, {len(graph.senders)} edges)', fontsize=10)
  ax.axis('off')


def plot_graphs(
  texts: Sequence[tuple[str, str]], path: str | None = None, skip_window: int = 2
) -> plt.Figure:
  """One row per ``(title, text)``: the text graphs of e.g. an input, its prediction and target.

  Blue arrows are sequential edges, orange arcs skip edges. Saved to ``path`` when given.
  """
  width = max((len(t) for _, t in texts), default=1)
  fig, axes = plt.subplots(len(texts), 1, figsize=(max(4.0, 0.55 * width + 1), 1.6 * len(texts)))
  for ax, (title, text) in zip(np.atleast_1d(axes), texts):
    draw_text_graph(ax, text, skip_window, title, width)
  fig.tight_layout()
  if path:
    fig.savefig(path, dpi=110)
  return fig


def plot_dir(
  root: str,
  x: str | None = None,
  y: str | None = None,
  metric: str = 'eval/exact_match',
  title: str = '',
  log: Callable[[str], None] = print,
) -> list[str]:
  """Draws ``curves.png`` and (when two config keys vary) ``heatmap.png`` into ``root``.

  Returns the paths written; says through ``log`` why a heatmap was skipped.
  """
  run_dirs = find_runs(root)
  if not run_dirs:
    raise ValueError(f'No metrics.jsonl under {root}.')
  runs = {name: read_metrics(os.path.join(d, 'metrics.jsonl')) for name, d in run_dirs.items()}
  written = [os.path.join(root, 'curves.png')]
  plot_curves(runs, written[0], title)
  configs, values = {}, {}
  for name, directory in run_dirs.items():
    value = final_value(runs[name], metric)
    config_path = os.path.join(directory, 'config.json')
    if value is not None and os.path.exists(config_path):
      with open(config_path, encoding='utf-8') as f:
        configs[name] = json.load(f)
      values[name] = value
  # Seeds of one point are averaged, not laid out on an axis.
  varying = [k for k in varying_keys(list(configs.values())) if k != 'seed'] if configs else []
  rest = [k for k in varying if k not in (x, y)]
  if x is None and rest:
    x = rest.pop(0)
  if y is None and rest:
    y = rest.pop(0)
  if x is None or y is None:
    log(f'heatmap: skipped, fewer than two config keys differ between the runs ({varying}).')
    return written
  flats = {name: flatten(c) for name, c in configs.items()}
  missing = [k for k in (x, y) if any(k not in f for f in flats.values())]
  if missing:
    raise ValueError(f'Config key(s) {missing} not in every run; varying keys: {varying}.')
  seeds: dict[str, list] = {}  # One cell value per config but its seed: the seeds' mean.
  for name, flat in flats.items():
    seeds.setdefault(repr(sorted((k, v) for k, v in flat.items() if k != 'seed')), []).append(name)
  means = [
    (flats[names[0]], float(np.mean([values[n] for n in names]))) for names in seeds.values()
  ]
  counts = sorted({len(names) for names in seeds.values()})
  if counts != [1]:
    title = f'{title or "sweep"}, mean over {"/".join(map(str, counts))} seeds'
  written.append(os.path.join(root, 'heatmap.png'))
  plot_heatmap(means, x, y, metric, written[-1], title)
  return written


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('dir', help='a run directory or a directory of runs (e.g. a sweep)')
  parser.add_argument('--x', help='config key for the heatmap columns, e.g. loss.alpha')
  parser.add_argument('--y', help='config key for the heatmap rows, e.g. loss.beta')
  parser.add_argument('--metric', default='eval/exact_match', help='metric of the heatmap')
  args = parser.parse_args(argv)
  matplotlib.use('Agg')  # Files only: no window, the same on a laptop, a server or in CI.
  try:
    for path in plot_dir(args.dir, args.x, args.y, args.metric):
      print(path)
  except (OSError, ValueError) as e:
    raise SystemExit(f'error: {e}') from None


if __name__ == '__main__':
  main()
