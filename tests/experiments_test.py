"""Tests for the experiment scripts."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import tiny_config

from experiments import breakdown, diagnose_structural, make_long_task, paired
from grapheme_jax import data, train


def test_breakdown_groups_by_head_symbol(tmp_path):
  records = [('(+ 1 2)', '3', '3'), ('(+ 2 2)', '5', '4'), ('(* 2 3)', '6', '6'), ('', 'x', 'x')]
  with open(tmp_path / 'predictions.jsonl', 'w') as f:
    for i, p, t in records:
      f.write(json.dumps({'input': i, 'prediction': p, 'target': t}) + '\n')
  assert breakdown.breakdown(str(tmp_path)) == {'': (1, 1), '*': (1, 1), '+': (1, 2)}
  assert breakdown.head_symbol('(d/dx (sin x))') == 'd/dx'
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump({'model': {'skip_window': 1}}, f)  # A run from before metrics were configured.
  # Only '5' vs '4' differs: one node substitution, identical edges; WL 0.75 at t=0, 0 after.
  got = breakdown.structural(str(tmp_path))
  assert got['ged_lower'] == got['ged_upper'] == 0.25
  assert 0.0 < got['wl_similarity'] < 1.0
  # '3' and '6' cannot be copied from their inputs; '5' cannot either; '' -> 'x' neither.
  assert breakdown.copy_rates(str(tmp_path)) == (0.0, 0.0)
  assert breakdown.is_subsequence('29', '(+ 20 9)') and not breakdown.is_subsequence('92', '(+ 29)')
  assert breakdown.is_subsequence('', '')


def _fake_run(path, seed, problems, right):
  """A finished run's config.json and predictions.jsonl: problem i right iff right[i]."""
  path.mkdir()
  (path / 'config.json').write_text(json.dumps({'seed': seed}))
  with open(path / 'predictions.jsonl', 'w') as f:
    for (question, answer), ok in zip(problems, right):
      f.write(
        json.dumps({'input': question, 'prediction': answer if ok else '?', 'target': answer})
      )
      f.write('\n')


def test_paired_counts_discordant_problems_and_pairs_runs_by_seed(tmp_path):
  problems = [(f'(+ {i} 1)', str(i + 1)) for i in range(6)]
  # Seed 0: B alone right on problems 0-2, A alone on none. Seed 1: A alone on 3, B alone on 4-5.
  _fake_run(tmp_path / 'a1', 1, problems, [0, 0, 0, 1, 0, 0])
  _fake_run(tmp_path / 'a0', 0, problems, [0, 0, 0, 1, 1, 0])
  _fake_run(tmp_path / 'b0', 0, problems, [1, 1, 1, 1, 1, 0])
  _fake_run(tmp_path / 'b1', 1, problems, [0, 0, 0, 0, 1, 1])
  # Groups listed in different orders: runs pair by their configs' seeds.
  got = paired.compare(
    [str(tmp_path / 'a1'), str(tmp_path / 'a0')], [str(tmp_path / 'b0'), str(tmp_path / 'b1')]
  )
  assert [(s['seed'], s['only_a'], s['only_b']) for s in got['per_seed']] == [(0, 0, 3), (1, 1, 2)]
  assert got['mean_difference'] == pytest.approx((3 / 6 + 1 / 6) / 2)
  assert got['stderr_difference'] == pytest.approx(abs(3 / 6 - 1 / 6) / 2)  # sd / sqrt(2), n = 2.
  assert (got['only_a'], got['only_b']) == (1, 5)
  assert got['z'] == pytest.approx(4 / 6**0.5)
  # Exact two-sided binomial: P(X <= 1) + P(X >= 5) for X ~ Bin(6, 1/2) = 14 / 64.
  assert got['p'] == pytest.approx(14 / 64)
  assert paired.format_p(got['p']) == '= 0.22' and paired.format_p(0.0) == '< 1e-300'

  _fake_run(tmp_path / 'b2', 2, problems, [1] * 6)
  with pytest.raises(ValueError, match=r'different seeds: A only \[\], B only \[2\]'):
    paired.compare(
      [str(tmp_path / 'a0'), str(tmp_path / 'a1')], [str(tmp_path / d) for d in ('b0', 'b1', 'b2')]
    )
  _fake_run(tmp_path / 'other', 0, [(q + ' ', a) for q, a in problems], [1] * 6)
  with pytest.raises(
    ValueError, match='Seed 0: the two runs predicted different held-out problems'
  ):
    paired.compare([str(tmp_path / 'a0')], [str(tmp_path / 'other')])
  (tmp_path / 'other' / 'predictions.jsonl').write_text('{"input": "x"}\n')
  with pytest.raises(
    ValueError, match=r"other/predictions.jsonl: not a finished run's file \(KeyError"
  ):
    paired.compare([str(tmp_path / 'other')], [str(tmp_path / 'a0')])
  with pytest.raises(ValueError, match='two runs with seed 0'):
    paired.compare([str(tmp_path / 'a0'), str(tmp_path / 'b0')], [str(tmp_path / 'b0')])


@pytest.mark.slow
def test_diagnose_structural_splits_every_target_node_between_gold_other_and_dummy(tmp_path):
  config = tiny_config()
  config.loss.mode, config.num_train_steps = 'structural', 4
  config.loss.plan_insertions = 1  # The plan's candidates per group are not the model's K + 1.
  config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 4
  config.optimizer.warmup_steps = 1
  train.train_and_evaluate(config, str(tmp_path))
  result = diagnose_structural.diagnose(str(tmp_path), examples=8)
  assert result['step'] == 4
  per = result['per_target_position']
  split = np.add(np.add(per['to_gold'], per['to_other']), per['inserted'])
  np.testing.assert_allclose(split[split > 0], 1.0, rtol=1e-4)  # A unit of mass per target node.
  overall = result['overall']
  assert 0.0 <= overall['gold_mass'] <= 1.0 and 0.0 <= overall['gold_char'] <= 1.0
  assert overall['target_length_per_example'] > 0


def test_long_task_has_long_disjoint_inputs_and_rounded_targets(tmp_path):
  train_items, eval_items = make_long_task.make_splits(60, 20, seed=3)
  assert len(train_items) == 60 and len(eval_items) == 20
  assert not {x['input'] for x in train_items} & {x['input'] for x in eval_items}
  for item in train_items + eval_items:
    assert 40 <= len(item['input']) <= 64 and len(item['target']) <= 64
    numbers = [int(v) for v in item['input'].split(' ')]
    assert item['target'] == ' '.join(str((v + 5) // 10 * 10) for v in numbers)
  assert [make_long_task.round_to_ten(v) for v in (0, 4, 5, 95, 1283, 9995)] == [
    0,
    0,
    10,
    100,
    1280,
    10000,
  ]
  assert make_long_task.make_splits(60, 20, seed=3) == (train_items, eval_items)
  path = tmp_path / 'train.jsonl'
  make_long_task._write(str(path), train_items)
  loaded = data.load_jsonl(str(path))
  assert [(p.input, p.target) for p in loaded] == [(x['input'], x['target']) for x in train_items]
  with pytest.raises(ValueError, match='min_length'):
    make_long_task.example(np.random.default_rng(0), 70, 64)


def test_accelerator_check_reports_each_stage_and_goes_on_past_a_time_limit(tmp_path):
  """Every stage cut at 1 s: each is reported as such, the next one starts, the files are there."""
  script = os.path.join(os.path.dirname(__file__), '..', 'experiments', 'accelerator_check.sh')
  env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])
  env.pop('OUT', None)
  unset = subprocess.run(['bash', script], env=env, capture_output=True, text=True, timeout=60)
  assert unset.returncode != 0 and 'OUT' in unset.stderr
  limits = {f'{s}_LIMIT': '1' for s in ('MAIN', 'BENCH', 'NOTEBOOK', 'GROWTH')}
  env.update(limits, OUT=str(tmp_path / 'out'), TINY='1', SCRATCH=str(tmp_path / 'scratch'))
  env['WHEELS_DIR'] = str(tmp_path / 'no_wheels')  # The packages of this environment.
  done = subprocess.run(['bash', script], env=env, capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr
  log = (tmp_path / 'out' / 'check.log').read_text()
  for stage in ('structural', 'cross_entropy', 'benchmarks', 'notebook', 'growth'):
    assert any(stage in line and '(time limit)' in line for line in log.splitlines()), stage
  assert 'jax' in (tmp_path / 'out' / 'env.txt').read_text()
  rows = [json.loads(line) for line in (tmp_path / 'out' / 'main.jsonl').read_text().splitlines()]
  assert [(r['mode'], r['exit_code']) for r in rows] == [
    ('structural', 124),
    ('cross_entropy', 124),
  ]
