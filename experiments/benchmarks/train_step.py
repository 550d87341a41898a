"""The whole train step in each loss mode at the default config: graphs/s, compile time, retraces.

The step runs as training runs it: data-parallel over every local device (``parallel``; one
device on a plain CPU or single-GPU machine). For each mode: the first call on each length bucket
is timed (compilation included); then the
first ``steps`` batches of the training schedule (different batches, both buckets, in the order a
run sees them) are timed together. Traces and compilations during those batches are counted with
jax's own monitoring events (``/jax/core/compile/jaxpr_trace_duration`` and
``backend_compile_duration``); both must stay 0, since every shape was compiled in the warm-up and
the loss weights are traced values.
"""

from __future__ import annotations

import contextlib
import time

import jax
import numpy as np

from grapheme_jax import config_lib, graphs, input_pipeline, losses, models, parallel, train


@contextlib.contextmanager
def count_compilation_events():
  """Counts jax's trace and backend-compile events inside the block: yields a dict of counts."""
  counts = {'traces': 0, 'compiles': 0}
  names = {
    '/jax/core/compile/jaxpr_trace_duration': 'traces',
    '/jax/core/compile/backend_compile_duration': 'compiles',
  }

  def listener(event, duration, **kwargs):
    del duration, kwargs
    if event in names:
      counts[names[event]] += 1

  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    yield counts
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)


def run(config=None, steps: int = 50, modes=config_lib.LOSS_MODES) -> list[dict]:
  config = config_lib.base_config() if config is None else config
  vocab, examples, _ = input_pipeline.load_data(config)
  lengths = input_pipeline.bucket_lengths(config.data)
  budgets = [graphs.Budget(config.batch_size, n, config.model.skip_window) for n in lengths]
  model = models.create_model(config.model, len(vocab))
  schedule = input_pipeline.BatchSchedule(examples.bucket, config.batch_size, config.seed)
  mesh = parallel.make_mesh(config.num_devices, config.batch_size)

  def batch(indices):
    budget = budgets[examples.bucket[indices[0]]]
    return parallel.shard_batch(input_pipeline.make_batch(examples, indices, budget), mesh)

  batches = [batch(schedule.indices(step)) for step in range(steps)]
  members = [np.flatnonzero(examples.bucket == b) for b in range(len(lengths))]
  warmups = {lengths[b]: batch(m[: config.batch_size]) for b, m in enumerate(members) if len(m)}
  rows = []
  for mode in modes:
    config.loss.mode = mode
    spec = losses.loss_spec(config)
    weights, rng = parallel.replicate((losses.loss_weights(config), jax.random.key(0)), mesh)
    state = train.create_train_state(jax.random.key(0), config, model, budgets[0])
    state = parallel.replicate(state, mesh)
    compile_s = {}
    for length, warm in warmups.items():
      start = time.perf_counter()
      state, metrics = train.train_step(state, warm, rng, weights, spec=spec)
      jax.block_until_ready(metrics)
      compile_s[str(length)] = time.perf_counter() - start
    with count_compilation_events() as counts:
      start = time.perf_counter()
      for b in batches:  # train_step folds the step into the key, as in training.
        state, metrics = train.train_step(state, b, rng, weights, spec=spec)
      jax.block_until_ready(metrics)
      seconds = time.perf_counter() - start
    real = sum(int(np.sum(b['weights'])) for b in batches)
    rows.append(
      {
        'name': f'train step, {mode}',
        'devices': mesh.size,
        'graphs_per_s': real / seconds,
        'ms_per_step': 1000 * seconds / steps,
        'first_call_s': compile_s,
        'traces_after_warmup': counts['traces'],
        'compiles_after_warmup': counts['compiles'],
        'buckets_seen': sorted({int(b['ops'].shape[1]) for b in batches}),
      }
    )
  return rows
