"""A user-data task with long inputs: round every number of a list to the nearest ten.

python -m experiments.make_long_task --out_dir=DIR [--train=20000] [--eval=2000] [--seed=0]

Writes ``DIR/train.jsonl`` and ``DIR/eval.jsonl`` (``{"input": ..., "target": ...}`` per line, the
format of ``data.name='jsonl'``) with inputs of ``--min_length`` to ``--max_length`` characters
(default 40-64): space-separated integers of 1-4 digits, each rounded half up in the target
(``'47 1283 95 4'`` -> ``'50 1280 100 0'``). Most edits are local (the last digit becomes 0, a carry
changes the digits before it); a carry past the first digit inserts one (``95`` -> ``100``). The
splits are disjoint. Train on it with

python -m grapheme_jax.main --config=configs/structural.py --workdir=DIR/structural \\
    --config.data.name=jsonl --config.data.train_path=DIR/train.jsonl \\
    --config.data.eval_path=DIR/eval.jsonl --config.data.max_length=64 \\
    --config.data.bucket_lengths='(64,)'
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import app, flags

_OUT_DIR = flags.DEFINE_string('out_dir', None, 'Where to write train.jsonl and eval.jsonl.')
_TRAIN = flags.DEFINE_integer('train', 20000, 'Training examples.')
_EVAL = flags.DEFINE_integer('eval', 2000, 'Held-out examples (disjoint from training).')
_MIN_LENGTH = flags.DEFINE_integer('min_length', 40, 'Shortest input, in characters.')
_MAX_LENGTH = flags.DEFINE_integer('max_length', 64, 'Longest input, in characters.')
_SEED = flags.DEFINE_integer('seed', 0, 'Random seed.')


def round_to_ten(value: int) -> int:
  """The nearest multiple of ten, halves rounded up."""
  return (value + 5) // 10 * 10


def example(rng: np.random.Generator, min_length: int, max_length: int) -> dict[str, str]:
  """One input of ``min_length`` to ``max_length`` characters and its rounded target."""
  if not 4 <= min_length <= max_length:
    raise ValueError(f'Need 4 <= min_length <= max_length, got {min_length} and {max_length}.')
  goal = int(rng.integers(min_length, max_length + 1))
  numbers: list[int] = []
  text = ''
  while True:
    digits = int(rng.integers(1, 5))
    value = int(rng.integers(10 ** (digits - 1) if digits > 1 else 0, 10**digits))
    longer = f'{text} {value}' if text else str(value)
    if len(longer) > goal:
      break
    numbers.append(value)
    text = longer
  if len(text) < min_length:  # Pad with single digits up to the minimum.
    while len(text) + 2 <= goal:
      value = int(rng.integers(0, 10))
      numbers.append(value)
      text = f'{text} {value}'
  return {'input': text, 'target': ' '.join(str(round_to_ten(v)) for v in numbers)}


def make_splits(
  train: int, evaluation: int, min_length: int = 40, max_length: int = 64, seed: int = 0
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
  """Disjoint train and held-out examples (distinct inputs), deterministic in ``seed``.

  Targets fit ``max_length`` too (a carry can make one longer than its input): the task trains
  with ``data.max_length = max_length``, which would reject the longer ones.
  """
  rng = np.random.default_rng(seed)
  seen: set[str] = set()
  out: list[dict[str, str]] = []
  attempts = 0
  while len(out) < train + evaluation:
    attempts += 1
    if attempts > 100 * (train + evaluation):
      raise ValueError(f'Could not draw {train + evaluation} distinct inputs of this length.')
    item = example(rng, min_length, max_length)
    fits = min_length <= len(item['input']) <= max_length and len(item['target']) <= max_length
    if fits and item['input'] not in seen:
      seen.add(item['input'])
      out.append(item)
  return out[:train], out[train:]


def _write(path: str, items: list[dict[str, str]]) -> None:
  with open(path, 'w', encoding='utf-8') as f:
    for item in items:
      f.write(json.dumps(item) + '\n')


def main(argv):
  del argv
  if not _OUT_DIR.value:
    raise app.UsageError('--out_dir is required.')
  train, evaluation = make_splits(
    _TRAIN.value, _EVAL.value, _MIN_LENGTH.value, _MAX_LENGTH.value, _SEED.value
  )
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  _write(os.path.join(_OUT_DIR.value, 'train.jsonl'), train)
  _write(os.path.join(_OUT_DIR.value, 'eval.jsonl'), evaluation)
  lengths = [len(x['input']) for x in train + evaluation]
  print(
    f'{len(train)} train and {len(evaluation)} eval examples in {_OUT_DIR.value}; '
    f'input lengths {min(lengths)}-{max(lengths)}.'
  )


if __name__ == '__main__':
  app.run(main)
