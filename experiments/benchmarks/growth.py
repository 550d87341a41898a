"""How the train step grows with graph size: time and peak memory at 16 ... 256 nodes per graph.

For each loss mode and each length ``L``, one batch of ``batch`` random graphs of exactly ``L``
nodes (targets: random strings of ``L`` characters, positional labels) at the default model and
loss settings. The step is compiled ahead of time (``lower().compile()``), which gives the
compile time and XLA's buffer assignment: peak memory = arguments + outputs + temporaries -
donated (aliased) buffers, what the device must hold at once. On a GPU or TPU the allocator's
measured peak is reported too. Then ``steps`` calls of the compiled step are timed (median).

The exponent is the least-squares slope of log(time) and log(memory) against log(L) over the
largest sizes, where fixed per-step costs no longer dominate. Expected: the model is
O(L^2) (attention; message passing is O(L w)); the structural loss works on N = (L + 1)(K + 1)
candidates against L + 1 target nodes, with [B, N, N, w] pair tensors, so it is O(L^2) in memory
and about O(L^3) in time (Gromov-Wasserstein products N^2 M) with K fixed.
"""

from __future__ import annotations

import statistics
import time

import jax
import numpy as np

from grapheme_jax import config_lib, data, graphs, input_pipeline, losses, models, parallel, train

LENGTHS = (16, 32, 64, 128, 256)


def _examples(config, length: int, batch: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  letters = np.array(list('abcdefghijklmnopqrst'))
  pairs = [
    data.Pair(''.join(rng.choice(letters, length)), ''.join(rng.choice(letters, length)))
    for _ in range(batch)
  ]
  vocab = np.asarray(data.vocabulary(pairs), np.int32)
  examples = input_pipeline.make_examples(
    pairs, vocab, (length,), config.model.max_insertions, 'growth', 'positional'
  )
  return vocab, examples


class CompiledStep:
  """One train step compiled ahead of time on one batch of graphs of exactly ``length`` nodes."""

  def __init__(self, config, length: int, batch: int):
    config = config.copy_and_resolve_references()
    config.data.max_length, config.batch_size = length, batch
    self.mode, self.nodes, self.batch = config.loss.mode, length, batch
    vocab, examples = _examples(config, length, batch)
    budget = graphs.Budget(batch, length, config.model.skip_window)
    mesh = parallel.make_mesh(1, batch)
    model = models.create_model(config.model, len(vocab))
    self.state = parallel.replicate(
      train.create_train_state(jax.random.key(0), config, model, budget), mesh
    )
    host_batch = input_pipeline.make_batch(examples, np.arange(batch), budget)
    self.device_batch = parallel.shard_batch(host_batch, mesh)
    self.rng, self.weights = parallel.replicate(
      (jax.random.key(0), losses.loss_weights(config)), mesh
    )
    start = time.perf_counter()
    self.compiled = train.train_step.lower(
      self.state, self.device_batch, self.rng, self.weights, spec=losses.loss_spec(config)
    ).compile()
    self.compile_s = time.perf_counter() - start
    memory = self.compiled.memory_analysis()
    self.peak_bytes_xla = None
    if memory is not None:
      self.peak_bytes_xla = (
        memory.argument_size_in_bytes
        + memory.output_size_in_bytes
        + memory.temp_size_in_bytes
        - memory.alias_size_in_bytes
      )

  def __call__(self) -> float:
    """Seconds of one step (the state advances, as in training)."""
    start = time.perf_counter()
    self.state, metrics = self.compiled(self.state, self.device_batch, self.rng, self.weights)
    jax.block_until_ready(metrics)
    return time.perf_counter() - start

  def row(self, times) -> dict:
    return {
      'mode': self.mode,
      'nodes': self.nodes,
      'batch': self.batch,
      'compile_s': self.compile_s,
      'ms_per_step': 1000 * statistics.median(times),
      'peak_bytes_xla': self.peak_bytes_xla,
    }


def measure(config, length: int, batch: int, steps: int) -> dict:
  """Compile time, peak memory and median step time of one (mode, length) point."""
  step = CompiledStep(config, length, batch)
  step()  # A warm-up.
  row = step.row([step() for _ in range(steps)])
  row['peak_bytes_measured'] = (jax.devices()[0].memory_stats() or {}).get('peak_bytes_in_use')
  return row


def measure_interleaved(configs, length: int, batch: int, steps: int) -> list[dict]:
  """:func:`measure` for several configs at one length, their steps called in turn.

  Each round calls every config's step once, so a change in the machine's load (other processes,
  clock, caches) falls on all of them alike, and ratios between them stay comparable where
  back-to-back measurements drift by 10-40 % on a shared CPU.
  """
  compiled = [CompiledStep(config, length, batch) for config in configs]
  times = [[] for _ in compiled]
  for round_ in range(steps + 1):  # The first round is a warm-up.
    for step, seconds in zip(compiled, times):
      elapsed = step()
      if round_:
        seconds.append(elapsed)
  return [step.row(seconds) for step, seconds in zip(compiled, times)]


def exponent(lengths, values) -> float:
  """Least-squares slope of log(value) against log(length)."""
  return float(np.polyfit(np.log(lengths), np.log(values), 1)[0])


def run(
  config=None,
  lengths=LENGTHS,
  batch: int = 8,
  steps: int = 3,
  modes=config_lib.LOSS_MODES,
  fit_from: int = 64,
) -> list[dict]:
  """One row per mode: per-length measurements and exponents fitted over lengths >= fit_from."""
  config = config_lib.base_config() if config is None else config
  rows = []
  for mode in modes:
    config.loss.mode = mode
    points = [measure(config, n, batch, steps) for n in lengths]
    fit = [p for p in points if p['nodes'] >= fit_from] or points
    row = {
      'name': f'growth, {mode}, batch {batch}',
      'points': points,
      'fit_lengths': [p['nodes'] for p in fit],
      'time_exponent': exponent([p['nodes'] for p in fit], [p['ms_per_step'] for p in fit]),
    }
    if all(p['peak_bytes_xla'] for p in fit):
      row['memory_exponent'] = exponent(
        [p['nodes'] for p in fit], [p['peak_bytes_xla'] for p in fit]
      )
    rows.append(row)
  return rows
