"""Runs every point of a config file's ``sweep(add)`` grid, then tabulates and plots the results.

python -m experiments.sweep --config=configs/structural.py --workdir=DIR \
    [--config.num_train_steps=500 --config.data.levels='(1,)' ...] [--heatmap=loss.alpha,loss.beta]

A config file declares its grid big_vision style, with dotted keys of its config::

  def sweep(add):
    for alpha in (0.5, 1.0, 2.0):
      for beta in (0.0, 0.5, 1.0):
        add(**{'loss.alpha': alpha, 'loss.beta': beta})

``--config.*`` overrides apply to every point (they may not name a swept key). Every point trains
with the same seed and data into ``DIR/<point>`` (e.g. ``DIR/alpha=0.5,beta=0``), all in this
process: points whose shapes are equal reuse the compiled train step, since the loss weights are
traced values, and the labelled data are built once. A point whose ``results.json`` is there for
the same config is skipped, and an interrupted point resumes from its last checkpoint, so a killed
sweep is restarted with the same command. At the end ``DIR`` holds ``results.csv``, ``results.md``
(sorted by held-out exact match, with GED and WL), ``curves.png`` and ``heatmap.png`` (over the
``--heatmap`` keys, by default the first two swept keys); ``python -m experiments.plot DIR`` redraws
the plots.

The sweep holds a lock on ``DIR`` while it runs, so a second sweep there stops at once, and a point
directory holding a run of another config stops it before anything trains
(``grapheme_jax.workdir``); ``--restart`` moves everything in ``DIR`` to ``DIR/previous_runs/TIME/``
and starts over.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence

import jax
import ml_collections

from experiments import plot as plot_lib
from grapheme_jax import config_lib, input_pipeline, parallel, train
from grapheme_jax import workdir as workdir_lib

# Columns of the results table, from each point's results.json.
METRICS = (
  ('exact_match', 'exact match'),
  ('char_edit_distance', 'char edit distance'),
  ('ged_lower', 'GED lower'),
  ('ged_upper', 'GED upper'),
  ('wl_similarity', 'WL similarity'),
  ('step', 'steps'),
  ('train_seconds', 'train s'),
)


def load_config_module(config_path: str):
  """Imports a config file as a module (``path:argument`` suffixes are ignored here)."""
  path = config_path.split(':', 1)[0]
  spec = importlib.util.spec_from_file_location('_grapheme_jax_config', path)
  if spec is None or not os.path.exists(path):
    raise ValueError(f'Config file {path!r} not found.')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_sweep(config_path: str) -> list[dict]:
  """The points that ``sweep(add)`` of the config file at ``config_path`` adds, in order."""
  module = load_config_module(config_path)
  if not callable(getattr(module, 'sweep', None)):
    raise ValueError(f'{config_path} defines no sweep(add) function.')
  points = []
  module.sweep(lambda **overrides: points.append(dict(overrides)))
  if not points:
    raise ValueError(f'sweep(add) in {config_path} added no point.')
  return points


def apply_overrides(
  config: ml_collections.ConfigDict, overrides: Mapping
) -> ml_collections.ConfigDict:
  """A copy of ``config`` with dotted ``overrides`` set; a bad key or value is a one-line error."""
  config = config.copy_and_resolve_references()
  for key, value in overrides.items():
    *parents, leaf = key.split('.')
    node = config
    for part in parents:
      node = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
      raise ValueError(f'Unknown config key {key!r} in the sweep.')
    try:
      node[leaf] = value
    except TypeError as e:  # ConfigDict refuses a value of another type.
      raise ValueError(f'Sweep value {key}={value!r}: {e}') from None
  return config


def _value_text(value) -> str:
  if isinstance(value, float):
    return f'{value:g}'
  if isinstance(value, tuple | list):
    return '-'.join(_value_text(v) for v in value)
  return str(value)


def point_names(points: Sequence[Mapping]) -> list[str]:
  """Directory names such as ``alpha=0.5,beta=0``: the last part of each key unless two keys share
  it, values with unsafe characters replaced by ``_``."""
  keys = list(dict.fromkeys(k for p in points for k in p))
  leaves = [k.rsplit('.', 1)[-1] for k in keys]
  short = {k: leaf if leaves.count(leaf) == 1 else k for k, leaf in zip(keys, leaves)}
  names = []
  for overrides in points:
    parts = []
    for key, value in overrides.items():
      text = f'{short[key]}={_value_text(value)}'
      parts.append(re.sub(r'[^A-Za-z0-9._=+-]+', '_', text).strip('_'))
    names.append(','.join(parts) or 'base')
  return names


def _config_json(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort())


def is_finished(point_dir: str, config: ml_collections.ConfigDict) -> bool:
  """Whether ``point_dir`` holds the finished run of ``config``.

  A run of another config there is a ``workdir.OtherRunError`` naming the differing keys, as for
  the training CLI: reusing it would mix two experiments in one table, and overwriting it would
  lose a result. (The keys a resumed run may change, ``num_train_steps`` included, may differ.)
  """
  workdir_lib.check_same_run(point_dir, config)
  results_path = os.path.join(point_dir, 'results.json')
  if not os.path.exists(results_path):
    return False
  with open(results_path, encoding='utf-8') as f:
    return json.load(f).get('step') == config.num_train_steps


def _data_key(config: ml_collections.ConfigDict) -> str:
  """What the labelled data depend on: points with equal keys share one ``load_data`` call."""
  return json.dumps(
    [_config_json(config)['data'], config.seed, config.model.max_insertions], sort_keys=True
  )


def run_sweep(
  base: ml_collections.ConfigDict,
  points: Sequence[Mapping],
  workdir: str,
  heatmap: Sequence[str] = (),
  config_name: str = '',
  log: Callable[[str], None] = print,
  restart: bool = False,
) -> list[dict]:
  """Trains every point not yet finished, then writes the tables and plots into ``workdir``.

  Returns one row per point (its name, swept values and final metrics), in sweep order; on the
  other processes of a multi-host run, which train but write no tables, an empty list. Holds
  ``workdir``'s lock throughout (``workdir.WorkdirLocked`` if another sweep runs there); with
  ``restart``, what ``workdir`` holds is first moved to ``workdir/previous_runs/TIME/``.
  """
  names = point_names(points)
  duplicates = sorted({n for n in names if names.count(n) > 1})
  if duplicates:
    raise ValueError(f'The sweep adds the same point more than once: {duplicates}.')
  configs = [apply_overrides(base, p) for p in points]
  for name, config in zip(names, configs):
    try:
      config_lib.validate(config)
    except ValueError as e:
      raise ValueError(f'Sweep point {name}: {e}') from None
  os.makedirs(workdir, exist_ok=True)
  with workdir_lib.RunLock(workdir, enabled=jax.process_index() == 0):
    if restart:
      kept = (workdir_lib.LOCK_NAME, workdir_lib.PREVIOUS_RUNS)
      workdir_lib.start_over(workdir, sorted(set(os.listdir(workdir)) - set(kept)))
    return _run_points(configs, names, points, workdir, heatmap, config_name, log)


def _run_points(configs, names, points, workdir, heatmap, config_name, log) -> list[dict]:
  """``run_sweep`` once the points are valid and ``workdir`` is this sweep's."""
  done = [is_finished(os.path.join(workdir, n), c) for n, c in zip(names, configs)]
  data_cache, durations = {}, []
  for i, (name, config) in enumerate(zip(names, configs)):
    if done[i]:
      log(f'sweep point {i + 1}/{len(points)} {name}: finished before, skipped')
      continue
    remaining = len(points) - i - sum(done[i:])
    # The first point run here includes compilation; later ones reuse its compiled step.
    typical = durations[1:] or durations
    eta = f'ETA {sum(typical) / len(typical) * remaining / 60:.1f} min' if typical else 'ETA later'
    log(f'sweep point {i + 1}/{len(points)} {name}: running ({remaining} to run, {eta})')
    key = _data_key(config)
    if key not in data_cache:
      data_cache[key] = input_pipeline.load_data(config)
    start = time.time()
    train.train_and_evaluate(config, os.path.join(workdir, name), data=data_cache[key])
    durations.append(time.time() - start)
  if jax.process_index() > 0:  # Multi-host: the first process writes the tables.
    return []
  rows = []
  for name, overrides in zip(names, points):
    with open(os.path.join(workdir, name, 'results.json'), encoding='utf-8') as f:
      results = json.load(f)
    rows.append({'point': name, **overrides, **{k: results.get(k) for k, _ in METRICS}})
  keys = list(dict.fromkeys(k for p in points for k in p))
  write_tables(workdir, rows, keys, config_name)
  axes = list(heatmap) or keys[:2]
  x, y = axes if len(axes) == 2 else (None, None)  # One swept key: plot_dir says why no heatmap.
  title = f'{config_name}, {len(points)} points' if config_name else ''
  written = plot_lib.plot_dir(workdir, x, y, title=title, log=log)
  files = ['results.md', 'results.csv', *(os.path.basename(p) for p in written)]
  log(f'sweep finished: {", ".join(files)} in {workdir}')
  return rows


def _cell(value) -> str:
  if isinstance(value, float):
    return f'{value:.4g}' if abs(value) < 100 else f'{value:.0f}'
  return '' if value is None else str(value)


def write_tables(workdir: str, rows: Sequence[dict], keys: Sequence[str], config_name: str) -> None:
  """``results.csv`` in sweep order and ``results.md`` sorted by held-out exact match."""
  columns = ['point', *keys, *(k for k, _ in METRICS)]
  with open(os.path.join(workdir, 'results.csv'), 'w', newline='', encoding='utf-8') as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    writer.writerows(rows)
  ranked = sorted(rows, key=lambda r: -(r['exact_match'] or 0.0))
  header = ['rank', 'point', *keys, *(label for _, label in METRICS)]
  lines = [
    f'# Sweep{" of " + config_name if config_name else ""}: {len(rows)} points',
    '',
    'Held-out metrics at the final step, best exact match first. GED: mean bounds on the graph',
    'edit distance between predicted and target text graphs; WL: Weisfeiler-Lehman similarity.',
    '',
    '| ' + ' | '.join(header) + ' |',
    '|' + '---|' * len(header),
  ]
  for rank, row in enumerate(ranked, 1):
    cells = [str(rank), row['point'], *(_cell(row[k]) for k in keys)]
    cells += [_cell(row[k]) for k, _ in METRICS]
    lines.append('| ' + ' | '.join(cells) + ' |')
  with open(os.path.join(workdir, 'results.md'), 'w', encoding='utf-8') as f:
    f.write('\n'.join(lines) + '\n')


def main(argv: Sequence[str]) -> None:
  from absl import flags, logging  # noqa: PLC0415 (the library functions need no flags)
  from ml_collections import config_flags  # noqa: PLC0415

  from grapheme_jax import main as main_lib  # noqa: PLC0415 (defines --config and --workdir)

  flag_values = flags.FLAGS
  if len(argv) > 1:
    sys.exit(f'error: unexpected arguments {argv[1:]}')
  config_flag = flag_values['config']
  config_path = config_flags.get_config_filename(config_flag)
  parallel.initialize_distributed(flag_values.config)
  main_lib.enable_compilation_cache()
  main_lib.setup_logging()
  try:
    points = load_sweep(config_path)
    swept = {k for p in points for k in p}
    fixed = sorted(set(config_flags.get_override_values(config_flag)) & swept)
    if fixed:
      raise ValueError(f'--config.{fixed[0]} is set on the command line but swept by the config.')
    heatmap = [k for k in flag_values.heatmap if k]
    if heatmap and len(heatmap) != 2:
      raise ValueError(f'--heatmap needs two comma-separated keys, got {heatmap}.')
    logging.info('Sweep of %s: %d points into %s.', config_path, len(points), flag_values.workdir)
    run_sweep(
      flag_values.config,
      points,
      flag_values.workdir,
      heatmap,
      os.path.basename(config_path.split(':', 1)[0]),
      log=logging.info,
      restart=flag_values.restart,
    )
  except (ValueError, *train.USER_ERRORS) as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  from absl import app, flags

  # The training CLI's --config and --workdir flags, and its one-line errors for bad overrides.
  from grapheme_jax import main as main_lib

  flags.DEFINE_list(
    'heatmap', [], 'Two config keys for the heatmap axes (default: first two swept).'
  )
  app.run(main, flags_parser=main_lib.parse_flags)
