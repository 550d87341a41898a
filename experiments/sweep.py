"""Runs every point of a config file's ``sweep(add)`` grid, then tabulates and plots the results.

python -m experiments.sweep --config=configs/structural.py --workdir=DIR [--seeds=3] \
    [--parallel=auto] [--config.num_train_steps=500 --config.data.levels='(1,)' ...] \
    [--heatmap=loss.alpha,loss.beta]

A config file declares its grid big_vision style, with dotted keys of its config::

  def sweep(add):
    for alpha in (0.5, 1.0, 2.0):
      for beta in (0.0, 0.5, 1.0):
        add(**{'loss.alpha': alpha, 'loss.beta': beta})

``--config.*`` overrides apply to every point (they may not name a swept key). With ``--seeds=N``
every point trains N times, with ``config.seed`` = s, s + 1, ..., s + N - 1 (s: the config's seed,
0 by default), into ``DIR/<point>/seed=<seed>`` (e.g. ``DIR/alpha=0.5,beta=0/seed=1``); all points
see the same data. By default the runs train one after another in this process: runs whose shapes
are equal reuse the compiled train step, since the loss weights are traced values, and each data
set is labelled once. ``--parallel=auto`` trains one run per GPU at a time, each in its own
process that sees one GPU; ``--parallel=N`` trains N at once (on CPU they share the cores). A
run's results do not depend on where it trained. A run whose ``results.json`` is there for the same
config is skipped, and an interrupted run resumes from its last checkpoint, so a killed sweep is
restarted with the same command. At the end ``experiments.report`` writes into ``DIR``
``results.csv`` (one row per run), ``results.md`` (mean ± standard error over the seeds, best
first), ``report.md`` (the command, the table, the plots and the best point against each other),
``curves.png`` (seed bands), ``heatmap.png`` (seed means over the ``--heatmap`` keys, by default the
first two swept keys) and ``example.png``; ``python -m experiments.report DIR`` redraws them.

The sweep holds a lock on ``DIR`` while it runs, so a second sweep there stops at once, and a point
directory holding a run of another config stops it before anything trains
(``grapheme_jax.workdir``); ``--restart`` moves everything in ``DIR`` to ``DIR/previous_runs/TIME/``
and starts over.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import importlib.util
import json
import multiprocessing
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence

import jax
import ml_collections

from experiments import report
from grapheme_jax import config_lib, input_pipeline, parallel, train
from grapheme_jax import workdir as workdir_lib


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
  """What the labelled data depend on: runs with equal keys share one ``load_data`` call."""
  return json.dumps(
    [_config_json(config)['data'], config.seed, config.model.max_insertions], sort_keys=True
  )


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run of a sweep: a point of the grid with one seed."""

  point: str
  seed: int
  config: ml_collections.ConfigDict

  @property
  def name(self) -> str:
    return f'{self.point}/seed={self.seed}'


def make_runs(
  base: ml_collections.ConfigDict, points: Sequence[Mapping], seeds: int = 1
) -> list[Run]:
  """Every point with seeds ``base.seed``, ..., ``base.seed + seeds - 1``, validated."""
  if not (isinstance(seeds, int) and seeds >= 1):
    raise ValueError(f'--seeds must be an integer >= 1, got {seeds!r}.')
  if seeds > 1 and any('seed' in p for p in points):
    raise ValueError('The sweep sets seed itself; run it with --seeds=1.')
  names = point_names(points)
  duplicates = sorted({n for n in names if names.count(n) > 1})
  if duplicates:
    raise ValueError(f'The sweep adds the same point more than once: {duplicates}.')
  runs = []
  for name, overrides in zip(names, points):
    config = apply_overrides(base, overrides)
    try:
      config_lib.validate(config)
    except ValueError as e:
      raise ValueError(f'Sweep point {name}: {e}') from None
    for seed in range(config.seed, config.seed + seeds):
      seeded = config.copy_and_resolve_references()
      seeded.seed = seed
      runs.append(Run(name, seed, seeded))
  return runs


def run_sweep(
  base: ml_collections.ConfigDict,
  points: Sequence[Mapping],
  workdir: str,
  heatmap: Sequence[str] = (),
  config_name: str = '',
  log: Callable[[str], None] = print,
  restart: bool = False,
  seeds: int = 1,
  processes: int | str = 1,
  command: str = '',
) -> list[dict]:
  """Trains every run (point and seed) not yet finished, then writes the report into ``workdir``.

  Run ``i`` of point ``P`` trains in ``workdir/P/seed=S`` with ``config.seed = S``, for
  ``S = base.seed, ..., base.seed + seeds - 1``. ``processes``: how many runs train at once, each in
  its own process (``'auto'``: one per GPU; see ``resolve_processes``); 1 trains them all here,
  one after another, reusing compiled steps. Returns one row per run (its point, swept values,
  seed and final metrics), in sweep order; on the other processes of a multi-host run, which
  train but write no tables, an empty list. Holds ``workdir``'s lock throughout
  (``workdir.WorkdirLocked`` if another sweep runs there); with ``restart``, what ``workdir``
  holds is first moved to ``workdir/previous_runs/TIME/``.
  """
  runs = make_runs(base, points, seeds)
  processes, platform = resolve_processes(processes, base, log)
  os.makedirs(workdir, exist_ok=True)
  main_process = processes > 1 or jax.process_index() == 0
  with workdir_lib.RunLock(workdir, enabled=main_process):
    if restart:
      kept = (workdir_lib.LOCK_NAME, workdir_lib.PREVIOUS_RUNS)
      workdir_lib.start_over(workdir, sorted(set(os.listdir(workdir)) - set(kept)))
    pending = [r for r in runs if not is_finished(os.path.join(workdir, r.name), r.config)]
    for run in runs:
      if run not in pending:
        log(f'sweep run {run.name}: finished before, skipped')
    if processes > 1:
      _train_in_processes(pending, workdir, processes, platform, log)
    else:
      _train_here(pending, workdir, log)
    if not main_process:  # Multi-host: the first process writes the tables.
      return []
    names = list(dict.fromkeys(r.point for r in runs))
    manifest = {
      'config': config_name,
      'points': [{'name': n, 'overrides': dict(p)} for n, p in zip(names, points)],
      'seeds': sorted({r.seed for r in runs}),
      'heatmap': list(heatmap),
      'command': command,
    }
    report.write_manifest(workdir, manifest)
    files = report.write(workdir, log)
    log(f'sweep finished: {", ".join(files)} in {workdir}')
    return report.load_rows(workdir, manifest)


def _train_here(pending: Sequence[Run], workdir: str, log: Callable[[str], None]) -> None:
  """Trains ``pending`` one after another in this process, labelling each data set once."""
  data_cache, durations = {}, []
  for i, run in enumerate(pending):
    # The first run here includes compilation; later ones reuse its compiled step.
    typical = durations[1:] or durations
    remaining = len(pending) - i
    eta = f'ETA {sum(typical) / len(typical) * remaining / 60:.1f} min' if typical else 'ETA later'
    log(f'sweep run {i + 1}/{len(pending)} {run.name}: running ({remaining} to run, {eta})')
    key = _data_key(run.config)
    if key not in data_cache:
      data_cache[key] = input_pipeline.load_data(run.config)
    start = time.time()
    train.train_and_evaluate(run.config, os.path.join(workdir, run.name), data=data_cache[key])
    durations.append(time.time() - start)


def resolve_processes(
  processes: int | str, config: ml_collections.ConfigDict, log: Callable[[str], None] = print
) -> tuple[int, str]:
  """(number of training processes, platform) for ``--parallel``.

  ``'auto'``: one process per local GPU (each sees one GPU), else 1. An integer N > 1: N processes;
  on GPUs at most one per GPU. Found in a short-lived child process, so that this one never holds
  the accelerators its workers need.
  """
  if processes == 'auto':
    count = 0
  else:
    try:
      count = int(processes)
    except ValueError:
      raise ValueError(
        f"--parallel must be 'auto' or an integer >= 1, got {processes!r}."
      ) from None
    if count < 1:
      raise ValueError(f"--parallel must be 'auto' or an integer >= 1, got {processes!r}.")
    if count == 1:
      return 1, ''
  if config.distributed.initialize:
    raise ValueError('--parallel runs points in processes of one host: not with distributed.*.')
  ctx = multiprocessing.get_context('spawn')
  with ctx.Pool(1) as pool:
    platform, devices = pool.apply(_local_devices)
  if platform == 'gpu':
    count = count or devices
    if count > devices:
      raise ValueError(f'--parallel={count}: this host has {devices} GPU(s), one per process.')
    if config.num_devices not in (-1, 1):
      raise ValueError('--parallel gives each process one GPU: set num_devices to -1 or 1.')
  elif not count:
    log(f'--parallel=auto: one run at a time on {platform} (--parallel=N runs N processes).')
    return 1, platform
  return count, platform


def _local_devices() -> tuple[str, int]:
  return jax.default_backend(), jax.local_device_count()


_WORKER_DATA: dict[str, tuple] = {}  # A worker process's labelled data sets, by _data_key.


def _init_worker(slots, platform: str, cache_dir: str | None) -> None:
  """Gives a new worker process its GPU before jax initialises a backend there."""
  slot = slots.get()
  if platform == 'gpu':
    visible = os.environ.get('CUDA_VISIBLE_DEVICES')
    ids = visible.split(',') if visible else [str(i) for i in range(slot + 1)]
    os.environ['CUDA_VISIBLE_DEVICES'] = ids[slot]
  if cache_dir:
    jax.config.update('jax_compilation_cache_dir', cache_dir)


def _train_in_worker(config: ml_collections.ConfigDict, run_dir: str) -> float:
  key = _data_key(config)
  if key not in _WORKER_DATA:
    _WORKER_DATA[key] = input_pipeline.load_data(config)
  start = time.time()
  train.train_and_evaluate(config, run_dir, data=_WORKER_DATA[key])
  return time.time() - start


def _train_in_processes(
  pending: Sequence[Run], workdir: str, processes: int, platform: str, log: Callable[[str], None]
) -> None:
  """Trains ``pending`` in ``processes`` worker processes, one run per worker at a time.

  Each run trains exactly as it would here (same config, seed and data), so the results are the
  same as a sequential sweep's; the first error stops the sweep (runs under way finish first).
  """
  if not pending:
    return
  ctx = multiprocessing.get_context('spawn')
  slots = ctx.Queue()
  for slot in range(processes):
    slots.put(slot)
  cache_dir = jax.config.jax_compilation_cache_dir
  log(f'sweep: {len(pending)} runs in {processes} processes ({platform})')
  with concurrent.futures.ProcessPoolExecutor(
    processes, mp_context=ctx, initializer=_init_worker, initargs=(slots, platform, cache_dir)
  ) as pool:
    futures = {
      pool.submit(_train_in_worker, run.config, os.path.join(workdir, run.name)): run
      for run in pending
    }
    try:
      for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
        seconds = future.result()
        log(f'sweep run {futures[future].name}: done in {seconds / 60:.1f} min '
            f'({done}/{len(pending)})')  # fmt: skip
    except BaseException:
      pool.shutdown(cancel_futures=True)
      raise


def main(argv: Sequence[str]) -> None:
  from absl import flags, logging  # noqa: PLC0415 (the library functions need no flags)
  from ml_collections import config_flags  # noqa: PLC0415

  from grapheme_jax import main as main_lib  # noqa: PLC0415 (defines --config and --workdir)

  flag_values = flags.FLAGS
  if len(argv) > 1:
    sys.exit(f'error: unexpected arguments {argv[1:]}')
  config_flag = flag_values['config']
  config_path = config_flags.get_config_filename(config_flag)
  parallel.initialize_distributed(main_lib.validated_config())
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
      seeds=flag_values.seeds,
      processes=flag_values.parallel,
      command=' '.join(['python -m experiments.sweep', *(shlex.quote(a) for a in sys.argv[1:])]),
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
  flags.DEFINE_integer('seeds', 1, 'Seeds per point: config.seed, ..., config.seed + seeds - 1.')
  flags.DEFINE_string(
    'parallel', '1', "Runs training at once, each in its own process; 'auto': one per GPU."
  )
  app.run(main, flags_parser=main_lib.parse_flags)
