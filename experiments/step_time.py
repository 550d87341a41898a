"""Train-step time of each loss mode on each length bucket, at the default config.

python -m experiments.step_time [--steps=10]

Builds one batch of ``batch_size`` training examples per bucket from the default data, then times
the first call of the jitted train step (compilation included) and the mean of the next ``steps``
calls, for the cross-entropy, structural and hybrid modes. A measurement, not a benchmark with
anchors (issue 6 adds those).
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from grapheme_jax import config_lib, graphs, models, train


def step_times(config, steps: int = 10) -> list[dict]:
  vocab, examples, _ = train.load_data(config)
  model = models.create_model(config.model, len(vocab))
  rows = []
  for b, length in enumerate(train.bucket_lengths(config.data)):
    members = np.flatnonzero(examples.bucket == b)[: config.batch_size]
    if not len(members):
      continue
    budget = graphs.Budget(config.batch_size, length, config.model.skip_window)
    batch = jax.tree.map(jnp.asarray, train.make_batch(examples, members, budget))
    for mode in config_lib.LOSS_MODES:
      config.loss.mode = mode
      state = train.create_train_state(jax.random.key(0), config, model, budget)
      spec, weights = train.loss_spec(config), train.loss_weights(config)
      t0 = time.perf_counter()
      state, metrics = train.train_step(state, batch, jax.random.key(0), weights, spec=spec)
      jax.block_until_ready(metrics)
      first = time.perf_counter() - t0
      t0 = time.perf_counter()
      for step in range(steps):
        state, metrics = train.train_step(state, batch, jax.random.key(step), weights, spec=spec)
      jax.block_until_ready(metrics)
      rows.append(
        {
          'bucket': length,
          'mode': mode,
          'first_call_s': first,
          'ms_per_step': 1000 * (time.perf_counter() - t0) / steps,
        }
      )
  return rows


def main(argv: list[str]) -> None:
  steps = 10
  for arg in argv[1:]:
    if not arg.startswith('--steps='):
      sys.exit(__doc__.strip().splitlines()[2])
    steps = int(arg.split('=', 1)[1])
  print(f'jax {jax.__version__} on {jax.devices()}')
  for row in step_times(config_lib.base_config(), steps):
    print(
      f'bucket {row["bucket"]:3d}  {row["mode"]:13s}  first call {row["first_call_s"]:5.1f} s  '
      f'{row["ms_per_step"]:6.0f} ms/step'
    )


if __name__ == '__main__':
  main(sys.argv)
