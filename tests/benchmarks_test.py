"""The benchmark code runs at tiny sizes and reports what it claims (no timing is asserted)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config

from experiments.benchmarks import edit_dp_vs_rapidfuzz, growth, sinkhorn_vs_ott, timing, train_step


def test_sinkhorn_benchmark_solves_the_same_problem_as_ott():
  row = sinkhorn_vs_ott.run(batch=3, n=6, iterations=5, repeats=1)
  assert row['max_plan_difference'] < 1e-5  # Same updates, same order: the same plan.
  assert row['ours_ms'] > 0 and row['anchor_ms'] > 0
  assert row['ratio'] == row['ours_ms'] / row['anchor_ms']


def test_edit_dp_benchmark_checks_distances_against_rapidfuzz():
  row = edit_dp_vs_rapidfuzz.run(count=8, length=6, repeats=1)
  assert row['ours_pairs_per_s'] > 0 and row['anchor_pairs_per_s'] > 0
  assert row['met'] == (row['ratio'] >= 0.5)


def test_compilation_counter_sees_traces_and_the_train_step_has_none_after_warmup():
  with train_step.count_compilation_events() as counts:
    jax.jit(lambda x: x * 3 + 1)(jnp.arange(5.0))
  assert counts['traces'] >= 1 and counts['compiles'] >= 1
  config = tiny_config()
  rows = train_step.run(config, steps=4, modes=('cross_entropy',))
  assert rows[0]['traces_after_warmup'] == rows[0]['compiles_after_warmup'] == 0
  assert rows[0]['graphs_per_s'] > 0


def test_interleaved_timing_calls_each_function_warmup_plus_repeats_times():
  calls = {'a': 0, 'b': 0}

  def bump(name):
    calls[name] += 1

  seconds = timing.interleaved({'a': lambda: bump('a'), 'b': lambda: bump('b')}, repeats=3)
  assert calls == {'a': 4, 'b': 4} and set(seconds) == {'a', 'b'}


def _node_term_config():
  """The tiny config with configs/structural.py's loss weights, as the benchmarks run it."""
  config = tiny_config()
  config.loss.beta = config.loss.gamma = 0.0
  return config


def test_growth_measures_time_and_memory_per_size_and_fits_the_exponent():
  np.testing.assert_allclose(growth.exponent([16, 32, 64], [1.0, 8.0, 64.0]), 3.0)
  config = _node_term_config()
  (row,) = growth.run(config, lengths=(8, 16), steps=1, modes=('structural',), fit_from=8)
  assert [p['nodes'] for p in row['points']] == [8, 16] and row['fit_lengths'] == [8, 16]
  small, large = row['points']
  assert large['peak_bytes_xla'] > small['peak_bytes_xla'] > 0  # The alignment DP's [B, L, K, M].
  assert small['ms_per_step'] > 0 and np.isfinite(row['time_exponent'])
  assert row['memory_exponent'] > 0


def test_bucket_table_times_each_variant_per_length_against_the_cross_entropy():
  from experiments.benchmarks import __main__ as bench  # noqa: PLC0415

  rows = bench._buckets(_node_term_config(), (8,), batch=2, steps=1)
  assert [r['name'] for r in rows] == [
    'bucket, cross_entropy, batch 2',
    'bucket, structural, batch 2',
    'bucket, structural, beta=0.5 gamma=2, batch 2',
    'bucket, structural, beta=0.5 gamma=2, plan_insertions=1, batch 2',
    'bucket, structural, beta=0.5 gamma=2, plan_insertions=1, differentiate_plan, batch 2',
  ]
  assert rows[0]['points'][0]['ratio_to_cross_entropy'] == 1.0
  assert all(r['points'][0]['ratio_to_cross_entropy'] > 0 for r in rows)


def test_list_flags_parse_and_reject_anything_else(capsys):
  from experiments.benchmarks import __main__ as bench  # noqa: PLC0415

  parser = bench.argparse.ArgumentParser()
  assert bench.parse_list(parser, 'batches', '64,512', int) == [64, 512]
  assert bench.parse_list(parser, 'sections', 'growth,anchors', str, bench.SECTIONS) == [
    'growth',
    'anchors',
  ]
  bad_values = [('batches', b, None) for b in ('0', '64,', 'x', '-8')]
  bad_values += [('sections', s, bench.SECTIONS) for s in ('', 'growth,speed')]
  for flag, bad, allowed in bad_values:
    with pytest.raises(SystemExit) as exit_info:
      bench.parse_list(parser, flag, bad, int if allowed is None else str, allowed)
    assert exit_info.value.code == 2
    assert f'--{flag}={bad!r}' in capsys.readouterr().err
  rows = bench._with_batch([{'name': 'train step, structural', 'graphs_per_s': 1.0}], 512)
  assert rows == [{'name': 'train step, structural, batch 512', 'graphs_per_s': 1.0, 'batch': 512}]
