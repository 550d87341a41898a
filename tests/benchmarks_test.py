"""The benchmark code runs at tiny sizes and reports what it claims (no timing is asserted)."""

import jax
import jax.numpy as jnp
from conftest import tiny_config

from experiments.benchmarks import edit_dp_vs_rapidfuzz, sinkhorn_vs_ott, timing, train_step


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
