"""Tests for the sweep runner and the plotting script."""

import csv
import json
import math
import os
import re
import statistics
import subprocess
import sys

import pytest
from conftest import tiny_config

from experiments import paired, plot, report, sweep
from grapheme_jax import config_lib, train
from grapheme_jax import workdir as workdir_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POINTS = [{'loss.alpha': a, 'loss.beta': b} for a in (0.5, 2.0) for b in (0.0, 1.0)]


def _base():
  config = tiny_config()
  config.loss.mode = 'structural'
  config.loss.plan = 'always'  # One compiled step for beta = 0 and beta > 0.
  config.num_train_steps = 4
  config.optimizer.warmup_steps = 1
  config.log_every_steps = 2
  config.eval_every_steps = 2
  config.checkpoint_every_steps = 2
  return config


@pytest.mark.parametrize('name', ['structural', 'hybrid', 'cross_entropy'])
def test_every_config_file_declares_a_valid_sweep(name):
  path = os.path.join(ROOT, 'configs', f'{name}.py')
  points = sweep.load_sweep(path)
  assert len(points) >= 4
  assert len(set(sweep.point_names(points))) == len(points)
  base = sweep.load_config_module(path).get_config()
  for point in points:
    config = sweep.apply_overrides(base, point)
    config_lib.validate(config)
    for key, value in point.items():
      section, _, leaf = key.rpartition('.')
      assert (config[section] if section else config)[leaf] == value
  assert base.loss.alpha == 1.0  # The base config is not changed.


def test_bad_sweeps_are_one_line_errors(tmp_path):
  base = config_lib.base_config()
  with pytest.raises(ValueError, match="Unknown config key 'loss.alpah'"):
    sweep.apply_overrides(base, {'loss.alpah': 1.0})
  with pytest.raises(ValueError, match="Unknown config key 'seed.x'"):
    sweep.apply_overrides(base, {'seed.x': 1})
  with pytest.raises(ValueError, match='loss.sinkhorn_iterations'):
    sweep.apply_overrides(base, {'loss.sinkhorn_iterations': 2.5})
  path = tmp_path / 'nosweep.py'
  path.write_text('def get_config():\n  return None\n')
  with pytest.raises(ValueError, match='defines no sweep'):
    sweep.load_sweep(str(path))
  with pytest.raises(ValueError, match='Sweep point alpha=-1: Invalid config: loss.alpha=-1'):
    sweep.run_sweep(_base(), [{'loss.alpha': -1.0}], str(tmp_path / 'bad'))
  with pytest.raises(ValueError, match='same point more than once'):
    sweep.run_sweep(_base(), [{'loss.alpha': 1.0}] * 2, str(tmp_path / 'twice'))
  assert sweep.point_names([{'data.levels': (1,), 'loss.gamma': 2.0}]) == ['levels=1,gamma=2']
  assert sweep.point_names([{'loss.alpha': 1.0, 'metrics.alpha': 2.0}]) == [
    'loss.alpha=1,metrics.alpha=2'
  ]


@pytest.mark.slow
def test_sweep_runs_every_point_once_reuses_compilation_and_resumes(tmp_path):
  workdir = str(tmp_path / 'sweep')
  cache_sizes, messages = [], []

  def log(message):
    messages.append(message)
    cache_sizes.append(train.train_step._cache_size())

  rows = sweep.run_sweep(_base(), POINTS, workdir, config_name='test', log=log)
  names = sweep.point_names(POINTS)
  assert (
    [r['point'] for r in rows]
    == names
    == ['alpha=0.5,beta=0', 'alpha=0.5,beta=1', 'alpha=2,beta=0', 'alpha=2,beta=1']
  )
  # Points 2..4 differ only in traced weights: no new compilation after the first point.
  assert cache_sizes[1] == cache_sizes[2] == cache_sizes[3] == cache_sizes[4] >= 1
  assert 'sweep run 2/4 alpha=0.5,beta=1/seed=0: running (3 to run, ETA' in messages[1]
  assert messages[-1].startswith(
    'sweep finished: results.md, results.csv, report.md, curves.png, heatmap.png, example.png'
  )
  runs = [os.path.join(workdir, name, 'seed=0') for name in names]
  for run in runs:
    assert json.load(open(os.path.join(run, 'results.json')))['step'] == 4
  with open(os.path.join(workdir, 'results.csv')) as f:
    table = list(csv.DictReader(f))
  assert [r['point'] for r in table] == names and {r['seed'] for r in table} == {'0'}
  assert {float(r['loss.alpha']) for r in table} == {0.5, 2.0}
  assert all(0.0 <= float(r['exact_match']) <= 1.0 and r['wl_similarity'] for r in table)
  markdown = open(os.path.join(workdir, 'results.md')).read().splitlines()
  rows_md = [line for line in markdown if line.startswith('| ') and line[2].isdigit()]
  exact = [float(line.split('|')[6]) for line in rows_md]
  assert len(rows_md) == 4 and exact == sorted(exact, reverse=True)
  assert 'GED lower' in markdown[5] and 'WL similarity' in markdown[5]
  for png in ('curves.png', 'heatmap.png', 'example.png'):
    with open(os.path.join(workdir, png), 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  assert '![example.png](example.png)' in open(os.path.join(workdir, 'report.md')).read()

  # An interrupted sweep: one run lost its results (killed before writing them), the others
  # finished. A rerun skips the finished runs and completes the other one.
  lost = os.path.join(runs[2], 'results.json')
  os.remove(lost)
  finished = {r: os.path.getmtime(os.path.join(r, 'results.json')) for r in runs[:2]}
  messages.clear()
  sweep.run_sweep(_base(), POINTS, workdir, log=messages.append)
  assert sum('finished before, skipped' in m for m in messages) == 3
  assert any(
    m.startswith('sweep run 1/1 alpha=2,beta=0/seed=0: running (1 to run') for m in messages
  )
  assert os.path.exists(lost)
  for run, mtime in finished.items():
    assert os.path.getmtime(os.path.join(run, 'results.json')) == mtime

  # The same workdir with another config is refused, not mixed into one table or overwritten.
  other = _base()
  other.model.hidden_dim = 48
  with pytest.raises(
    workdir_lib.OtherRunError, match='holds a run of another config: model.hidden_dim: 32 → 48'
  ):
    sweep.run_sweep(other, POINTS, workdir)
  assert not os.path.exists(os.path.join(workdir, workdir_lib.LOCK_NAME))  # Released.
  # --restart moves the whole sweep aside, never deletes it, and starts over.
  before = sorted(os.listdir(workdir))
  sweep.run_sweep(_base(), POINTS[:1], workdir, log=messages.append, restart=True)
  (moved,) = os.listdir(os.path.join(workdir, 'previous_runs'))
  assert sorted(os.listdir(os.path.join(workdir, 'previous_runs', moved))) == before
  assert [n for n in sorted(os.listdir(workdir)) if ',' in n] == names[:1]


@pytest.mark.slow
def test_seeds_give_mean_and_standard_error_and_parallel_processes_give_the_same_results(tmp_path):
  points = [{'loss.alpha': 0.5}, {'loss.alpha': 2.0}]
  base = _base()
  base.seed = 4  # Seeds 4, 5, 6.
  # The node term alone: no plan to compile in each of the three processes.
  base.loss.beta = base.loss.gamma = 0.0
  base.loss.plan = 'auto'
  sequential = str(tmp_path / 'sequential')
  rows = sweep.run_sweep(base, points, sequential, seeds=3, log=lambda _: None)
  assert [(r['point'], r['seed']) for r in rows] == [
    (p, s) for p in ('alpha=0.5', 'alpha=2') for s in (4, 5, 6)
  ]
  for row in rows:
    config = json.load(open(os.path.join(sequential, row['point'], f'seed={row["seed"]}',
                                         'config.json')))  # fmt: skip
    assert config['seed'] == row['seed']
  assert len({r['ged_upper'] for r in rows}) > 1  # The seeds differ.
  with open(os.path.join(sequential, 'results.csv')) as f:
    table = list(csv.DictReader(f))
  markdown = open(os.path.join(sequential, 'results.md')).read()
  for point in ('alpha=0.5', 'alpha=2'):
    values = [float(r['ged_upper']) for r in table if r['point'] == point]
    assert len(values) == 3
    mean, sem = statistics.mean(values), statistics.stdev(values) / math.sqrt(3)
    digits = 3 if abs(mean) < 10 else 1
    line = next(x for x in markdown.splitlines() if f' {point} |' in x)
    assert f' {mean:.{digits}f} ± {sem:.{digits}f} |' in line
    assert line.split('|')[4].strip() == '3'  # seeds
  # The conclusion pairs the two points' runs by seed, problem by problem (experiments.paired).
  manifest = report.read_manifest(sequential)
  summary = report.summarize(report.load_rows(sequential, manifest), manifest)
  (comparison,) = report.comparisons(summary)
  best, other = comparison['best'], comparison['other']
  pair = paired.compare(
    [os.path.join(sequential, best, f'seed={s}') for s in (4, 5, 6)],
    [os.path.join(sequential, other, f'seed={s}') for s in (4, 5, 6)],
  )
  conclusion = open(os.path.join(sequential, 'report.md')).read()
  assert (
    f'Paired by held-out problem: only {best} right on {pair["only_a"]}, only {other} on '
    f'{pair["only_b"]} (McNemar exact p {paired.format_p(pair["p"])}).'
  ) in conclusion
  parallel = str(tmp_path / 'parallel')
  messages = []
  sweep.run_sweep(base, points, parallel, seeds=3, processes=2, log=messages.append)
  assert any('6 runs in 2 processes' in m for m in messages)
  with open(os.path.join(sequential, 'results.csv'), 'rb') as a:
    with open(os.path.join(parallel, 'results.csv'), 'rb') as b:
      assert a.read() == b.read()


def test_seed_and_parallel_arguments_are_checked(tmp_path):
  with pytest.raises(ValueError, match='sets seed itself'):
    sweep.run_sweep(_base(), [{'seed': 1}], str(tmp_path / 'a'), seeds=2)
  with pytest.raises(ValueError, match='--seeds must be an integer >= 1'):
    sweep.run_sweep(_base(), POINTS, str(tmp_path / 'b'), seeds=0)
  with pytest.raises(ValueError, match="--parallel must be 'auto' or an integer >= 1"):
    sweep.run_sweep(_base(), POINTS, str(tmp_path / 'c'), processes='two')
  assert not os.path.exists(tmp_path / 'a')  # Nothing written before the checks.


def test_report_statistics():
  assert report.mean_and_sem([1.0]) == (1.0, None)
  mean, sem = report.mean_and_sem([0.70, 0.72, 0.74])
  assert mean == pytest.approx(0.72) and sem == pytest.approx(0.02 / math.sqrt(3))
  summary = [
    {'point': 'a', 'exact_match': (0.5, 0.03)},
    {'point': 'b', 'exact_match': (0.7, 0.04)},
    {'point': 'c', 'exact_match': (0.7, 0.0)},
  ]
  best, *others = report.comparisons(summary)
  assert best['best'] == 'b' and best['other'] == 'c' and best['z'] == 0.0
  (other,) = others
  assert other['other'] == 'a' and other['difference'] == pytest.approx(0.2)
  assert other['se'] == pytest.approx(0.05) and other['z'] == pytest.approx(4.0)
  # The seed band: mean and standard error at the steps every seed logged.
  steps, mean, sem = plot.seed_band([([1, 2, 3], [1.0, 2.0, 3.0]), ([2, 3], [4.0, 5.0])])
  assert steps == [2, 3] and list(mean) == [3.0, 4.0] and list(sem) == pytest.approx([1.0, 1.0])
  assert plot.point_of('alpha=1,beta=0/seed=2') == 'alpha=1,beta=0'
  assert plot.point_of('seed=2') == '.' and plot.point_of('run') == 'run'


@pytest.mark.slow
@pytest.mark.parametrize(
  'config,message',
  [
    ('configs/structural.py', 'error: --config.loss.beta is set on the command line but swept'),
    ('configs/missing.py', "error: .*No such file or directory: 'configs/missing.py'"),
  ],
)
def test_sweep_cli_rejects_a_bad_config_in_one_line(tmp_path, config, message):
  result = subprocess.run(
    [sys.executable, '-m', 'experiments.sweep', f'--config={config}', f'--workdir={tmp_path}',
     '--config.loss.beta=3'],
    cwd=ROOT, capture_output=True, text=True, timeout=300,
  )  # fmt: skip
  assert result.returncode != 0
  assert re.search(message, result.stderr), result.stderr
  assert 'Traceback' not in result.stderr


def _fake_run(directory, config, records):
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, 'config.json'), 'w') as f:
    json.dump(config, f)
  with open(os.path.join(directory, 'metrics.jsonl'), 'w') as f:
    f.writelines(json.dumps(r) + '\n' for r in records)


def test_plot_redraws_curves_and_picks_the_varying_keys(tmp_path, capsys):
  for a in (1.0, 2.0):
    for g in (0.0, 2.0):
      for seed in (0, 1):
        config = {'seed': seed, 'loss': {'alpha': a, 'gamma': g, 'mode': 'structural'}}
        records = [
          {'step': 10, 'train/loss': 2.0},
          {'step': 20, 'train/loss': 1.0, 'eval/exact_match': 0.1 * a + g / 10 + seed / 100},
        ]
        _fake_run(tmp_path / f'a{a}_g{g}_s{seed}', config, records)
  written = plot.plot_dir(str(tmp_path), x='loss.alpha', y='loss.gamma')
  assert [os.path.basename(p) for p in written] == ['curves.png', 'heatmap.png']
  configs = [json.load(open(tmp_path / d / 'config.json')) for d in sorted(os.listdir(tmp_path))
             if d.startswith('a')]  # fmt: skip
  assert plot.varying_keys(configs) == ['seed', 'loss.alpha', 'loss.gamma']
  assert plot.final_value(plot.read_metrics(str(tmp_path / 'a2.0_g2.0_s1' / 'metrics.jsonl')),
                          'eval/exact_match') == pytest.approx(0.41)  # fmt: skip
  # A single run: curves only, with a message about the heatmap.
  single = tmp_path / 'a1.0_g0.0_s0'
  assert [os.path.basename(p) for p in plot.plot_dir(str(single))] == ['curves.png']
  assert 'heatmap: skipped' in capsys.readouterr().out


def test_plot_reports_malformed_metrics_with_file_and_line(tmp_path):
  _fake_run(tmp_path, {'seed': 0}, [{'step': 1, 'train/loss': 1.0}])
  with open(tmp_path / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 2, "train/loss": \n')
  with pytest.raises(ValueError, match=r'metrics.jsonl:2: not JSON'):
    plot.plot_dir(str(tmp_path))
  with pytest.raises(ValueError, match='No metrics.jsonl'):
    plot.plot_dir(str(tmp_path / 'empty'))
  # A resumed run may log a step twice: the curve keeps one point per step, the last.
  assert plot.curve([{'step': 1, 'x': 1.0}, {'step': 1, 'x': 2.0}], 'x') == ([1], [2.0])
