"""Shared test settings: compilation cache, tiny config, labelled pairs, the CLI in a subprocess."""

import os
import sys

import jax
import numpy as np
import pytest

from grapheme_jax import config_lib, data, input_pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Compiled programs are reused across test runs (and across the processes of pytest-xdist).
jax.config.update(
  'jax_compilation_cache_dir',
  os.path.join(os.path.dirname(os.path.dirname(__file__)), '.jax_cache'),
)
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)


def tiny_config():
  """A config small enough to compile and train in seconds on 2 CPU cores."""
  config = config_lib.base_config()
  config.batch_size = 8
  config.num_train_steps = 20
  config.log_every_steps = 5
  config.eval_every_steps = 10
  config.checkpoint_every_steps = 10
  config.data.name = 'kindergarten'
  config.data.bucket_lengths = (16,)
  config.data.max_length = 32
  config.model.embed_dim = 16
  config.model.hidden_dim = 32
  config.model.num_layers = 2
  config.model.num_heads = 2
  config.model.codepoint_buckets = 256
  config.model.max_relative_offset = 8
  config.optimizer.warmup_steps = 5
  return config


@pytest.fixture
def config():
  return tiny_config()


def config_flags(config) -> list[str]:
  """``--config.KEY=VALUE`` for every key where ``config`` differs from ``base_config()``.

  CLI tests start from :func:`tiny_config` (with their own changes) and pass these flags, so that
  every test runs one shared tiny config rather than a hand-written near-copy of it.
  """
  base = config_lib.base_config()
  flags = []
  for key in config_lib.leaf_keys(base):
    value = config_lib._get(config, key)
    if value != config_lib._get(base, key):
      flags.append(
        f'--config.{key}={value!r}' if isinstance(value, tuple) else f'--config.{key}={value}'
      )
  return flags


# Pairs that exercise every kind of edit: insertion before the first character, into an empty
# input, deletion to empty, substitutions, several insertions in one slot, non-ASCII.
PAIRS = [
  data.Pair('bc', 'abc'),
  data.Pair('', 'xy'),
  data.Pair('xyz', ''),
  data.Pair('(+ 1 2)', '3'),
  data.Pair('cat', 'act'),
  data.Pair('hello', 'hello!!'),
  data.Pair('Zürich', 'Zurich'),
  data.Pair('ab', 'ba'),
]


def labelled_examples(pairs=PAIRS, vocab=None, lengths=(8, 16), k=8, alignment='levenshtein'):
  """(vocabulary, ``input_pipeline.Examples``) of ``pairs``; by default the targets' vocabulary."""
  vocab = np.asarray(data.vocabulary(pairs) if vocab is None else vocab, np.int32)
  return vocab, input_pipeline.make_examples(pairs, vocab, lengths, k, 'test', alignment)


def cli_command(*args: str) -> tuple[list[str], dict[str, str]]:
  """argv and environment that run the training CLI with ``args`` (in cwd ``ROOT``).

  Every compiled step goes to the cache the test names with ``--compilation_cache``, never to the
  user's, however fast it compiled.
  """
  env = dict(os.environ, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0')
  env.pop('JAX_COMPILATION_CACHE_DIR', None)
  return [sys.executable, '-m', 'grapheme_jax.main', *args], env


def tensorboard_scalars(workdir) -> dict[str, list[tuple[int, float]]]:
  """Every scalar of the event files in ``workdir`` as TensorBoard shows it: {tag: [(step, v)]}."""
  from tensorboard.backend.event_processing import event_accumulator

  events = event_accumulator.EventAccumulator(
    str(workdir), size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0}
  )
  events.Reload()
  return {t: [(e.step, e.value) for e in events.Scalars(t)] for t in events.Tags()['scalars']}


def jsonl_scalars(records) -> dict[str, list[tuple[int, float]]]:
  out = {}
  for record in records:
    for key, value in record.items():
      if key != 'step':
        out.setdefault(key, []).append((record['step'], value))
  return out
