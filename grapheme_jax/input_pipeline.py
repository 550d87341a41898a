"""The input pipeline: labelled examples, fixed-budget batches and the order they come in.

Text pairs (``data.py``) -> gold edit labels from the edit DP (``edits.py``), once, before training
-> :class:`Examples` (dense numpy arrays) -> :func:`make_batch`: a padded ``GraphsTuple`` of the
inputs plus dense label arrays, for one length budget. :class:`BatchSchedule` decides which examples
form training batch ``s`` as a pure function of ``(seed, s)``, so a resumed run replays the batches
of the uninterrupted one; :func:`eval_batches` walks the held-out set in a fixed order. Everything
here is numpy on the host (the DP runs jit-compiled in chunks).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from grapheme_jax import alignment, config_lib, edits
from grapheme_jax import data as data_lib
from grapheme_jax import graphs as graphs_lib

IGNORE = edits.IGNORE


@dataclasses.dataclass(frozen=True)
class Examples:
  """A dataset with its gold edit labels, as dense numpy arrays (L = the largest budget length).

  ``ops``/``char_ids`` [N, L] label the input nodes; ``ins_ids`` [N, L + 1, K] hold the vocabulary
  ids of the characters inserted in each slot, then the end marker ``V``, then ``IGNORE``.
  Characters outside the vocabulary (possible in evaluation data only) are ``IGNORE``.
  ``bucket`` [N] is the index of the smallest length budget that holds the example. The texts
  themselves are kept as code points (0 beyond each text's length, which masks them) with the
  targets' vocabulary ids, for the structural loss.
  """

  pairs: tuple[data_lib.Pair, ...]
  source_len: np.ndarray
  source_codes: np.ndarray
  target_codes: np.ndarray
  target_len: np.ndarray
  target_ids: np.ndarray
  ops: np.ndarray
  char_ids: np.ndarray
  ins_ids: np.ndarray
  bucket: np.ndarray

  def __len__(self) -> int:
    return len(self.pairs)


def bucket_lengths(data_config: ml_collections.ConfigDict) -> tuple[int, ...]:
  """The length budgets: ``data.bucket_lengths`` below ``data.max_length``, then ``max_length``."""
  smaller = sorted({int(b) for b in data_config.bucket_lengths if 0 < b < data_config.max_length})
  return (*smaller, data_config.max_length)


def to_vocab_ids(codes: np.ndarray, vocab: np.ndarray) -> np.ndarray:
  """Maps code points to indices into the sorted ``vocab``; unknown or negative -> ``IGNORE``."""
  idx = np.clip(np.searchsorted(vocab, codes), 0, len(vocab) - 1)
  return np.where((vocab[idx] == codes) & (codes >= 0), idx, IGNORE).astype(np.int32)


def _example_name(split: str, index: int, pair: data_lib.Pair) -> str:
  """'train example 3', with the file and line it came from where there is one."""
  return f'{split} example {index}' + (f' ({pair.origin})' if pair.origin else '')


def filter_overlong(
  pairs: Sequence[data_lib.Pair], max_length: int, skip: bool, split: str
) -> list[data_lib.Pair]:
  """Raises on (or, if ``skip``, drops and counts) pairs longer than the budget; never truncates."""
  kept = [p for p in pairs if len(p.input) <= max_length and len(p.target) <= max_length]
  if len(kept) < len(pairs):
    i, bad = next(
      (i, p) for i, p in enumerate(pairs) if len(p.input) > max_length or len(p.target) > max_length
    )
    if not skip:
      raise ValueError(
        f'{_example_name(split, i, bad)} does not fit data.max_length={max_length} (input has '
        f'{len(bad.input)} characters, target {len(bad.target)}): {bad.input[:60]!r} -> '
        f'{bad.target[:60]!r}. Raise --config.data.max_length, or set '
        f'--config.data.skip_overlong=True to skip such examples.'
      )
    logging.warning(
      'Skipped %d of %d %s examples longer than data.max_length=%d (the first: %s).',
      len(pairs) - len(kept),
      len(pairs),
      split,
      max_length,
      _example_name(split, i, bad),
    )
  return kept


def make_examples(
  pairs: Sequence[data_lib.Pair],
  vocab: np.ndarray,
  lengths: Sequence[int],
  max_insertions: int,
  split: str,
  alignment: str = 'levenshtein',
  chunk: int = 1024,
) -> Examples:
  """Labels every pair (``alignment``: 'levenshtein' DP or 'positional') as vocabulary ids."""
  if len(vocab) == 0:
    raise ValueError(
      f'The output vocabulary is empty: every training target is the empty string, so there is '
      f'no character to write ({split} data). Add examples with non-empty targets.'
    )
  if alignment == 'levenshtein':
    label_fn = edits.edit_labels
  elif alignment == 'positional':
    label_fn = edits.positional_labels
  else:
    raise ValueError(f'Unknown alignment {alignment!r}.')
  max_length = lengths[-1]
  source, source_len = graphs_lib.encode([p.input for p in pairs], max_length)
  target, target_len = graphs_lib.encode([p.target for p in pairs], max_length)
  ops, chars, ins_chars, ins_count = _label_in_chunks(
    label_fn, (source, source_len, target, target_len), max_insertions, chunk
  )
  over = np.argwhere(ins_count > max_insertions)
  if len(over):
    i, slot = over[0]
    other_way = (
      ", or set --config.data.alignment=levenshtein (it inserts where the target's extra "
      'characters are, not all after the last one)'
      if alignment == 'positional'
      else ''
    )
    raise ValueError(
      f'{_example_name(split, i, pairs[i])} needs {ins_count[i, slot]} characters inserted in '
      f'one slot, more than model.max_insertions={max_insertions}: {pairs[i].input[:60]!r} -> '
      f'{pairs[i].target[:60]!r}. Raise --config.model.max_insertions{other_way}.'
    )
  ins_ids = to_vocab_ids(ins_chars, vocab)
  k = np.arange(max_insertions)[None, None, :]
  ins_ids = np.where(k < ins_count[..., None], ins_ids, IGNORE)
  ins_ids = np.where(k == ins_count[..., None], len(vocab), ins_ids)  # End marker.
  longest = np.maximum(source_len, target_len)
  bucket = np.searchsorted(np.asarray(lengths), longest)  # Smallest bucket with length >= longest.
  return Examples(
    tuple(pairs),
    source_len,
    source,
    target,
    target_len,
    to_vocab_ids(target, vocab),
    ops.astype(np.int32),
    to_vocab_ids(chars, vocab),
    ins_ids.astype(np.int32),
    bucket.astype(np.int32),
  )


def _label_in_chunks(label_fn, arrays, max_insertions: int, chunk: int):
  """Runs ``label_fn`` + ``insertion_targets`` over fixed-size chunks (one compilation each)."""
  num_slots = arrays[0].shape[1] + 1
  outputs = [[], [], [], []]
  for start in range(0, len(arrays[0]), chunk):
    rows = [a[start : start + chunk] for a in arrays]
    real, pad = len(rows[0]), chunk - len(rows[0])
    rows = [np.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)) for a in rows]
    labels = label_fn(*rows)
    ins_chars, ins_count = edits.insertion_targets(
      rows[2], rows[3], labels.target_slot, num_slots=num_slots, max_insertions=max_insertions
    )
    for out, a in zip(outputs, (labels.ops, labels.chars, ins_chars, ins_count)):
      out.append(np.asarray(a)[:real])
  return tuple(np.concatenate(out) for out in outputs)


def make_batch(
  examples: Examples, indices: np.ndarray, budget: graphs_lib.Budget
) -> dict[str, Any]:
  """The batch of ``examples[indices]``, padded to ``budget`` (extra slots get weight 0)."""
  n, pad, length = len(indices), budget.batch_size - len(indices), budget.max_length

  def rows(a: np.ndarray, width: int | None = None, fill: int = IGNORE) -> np.ndarray:
    a = a[indices] if width is None else a[indices, :width]
    return np.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1), constant_values=fill)

  return {
    'graphs': graphs_lib.batch_dense([examples.pairs[i].input for i in indices], budget),
    'source_len': rows(examples.source_len, fill=0),
    'ops': rows(examples.ops, length),
    'char_ids': rows(examples.char_ids, length),
    'ins_ids': rows(examples.ins_ids, length + 1),
    'source_codes': rows(examples.source_codes, length),
    'target_codes': rows(examples.target_codes, length),
    'target_len': rows(examples.target_len, fill=0),
    'target_ids': rows(examples.target_ids, length),
    'weights': np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)]),
  }


class BatchSchedule:
  """The training batches as a pure function of ``(seed, step)``.

  Every epoch, each length bucket is shuffled and cut into ``ceil(n / batch_size)`` batches of
  near-equal size (at most ``batch_size``; missing slots are padded with weight 0, no example is
  dropped), and the order of all batches is shuffled. Epoch ``e`` uses
  ``np.random.default_rng([seed, e])``, so a resumed run sees the same batches as an
  uninterrupted one.
  """

  def __init__(self, bucket: np.ndarray, batch_size: int, seed: int):
    self._members = [np.flatnonzero(bucket == b) for b in np.unique(bucket)]
    self._batch_size, self._seed = batch_size, seed
    self.steps_per_epoch = sum(-(-len(m) // batch_size) for m in self._members)
    self._epoch, self._batches = None, None

  def indices(self, step: int) -> np.ndarray:
    epoch = step // self.steps_per_epoch
    if epoch != self._epoch:
      rng = np.random.default_rng([self._seed, epoch])
      batches = [
        chunk
        for m in self._members
        for chunk in np.array_split(rng.permutation(m), -(-len(m) // self._batch_size))
      ]
      self._batches = [batches[i] for i in rng.permutation(len(batches))]
      self._epoch = epoch
    return self._batches[step % self.steps_per_epoch]


def eval_batches(examples: Examples, budgets: Sequence[graphs_lib.Budget]):
  """Yields (indices, batch) over all examples, bucket by bucket, in a fixed order."""
  for b, budget in enumerate(budgets):
    members = np.flatnonzero(examples.bucket == b)
    for start in range(0, len(members), budget.batch_size):
      idx = members[start : start + budget.batch_size]
      yield idx, make_batch(examples, idx, budget)


def load_data(config: ml_collections.ConfigDict):
  """Datasets, vocabulary and labelled examples for ``config`` (validated first)."""
  config_lib.validate(config)
  train_pairs, eval_pairs = data_lib.get_datasets(config.data, config.seed)
  lengths = bucket_lengths(config.data)
  train_pairs = filter_overlong(train_pairs, lengths[-1], config.data.skip_overlong, 'train')
  eval_pairs = filter_overlong(eval_pairs, lengths[-1], config.data.skip_overlong, 'eval')
  if not train_pairs or not eval_pairs:
    raise ValueError(
      f'Empty dataset after filtering: {len(train_pairs)} train and '
      f'{len(eval_pairs)} eval examples.'
    )
  vocab = np.asarray(data_lib.vocabulary(train_pairs), np.int32)
  make = functools.partial(
    make_examples,
    vocab=vocab,
    lengths=lengths,
    max_insertions=config.model.max_insertions,
    alignment=config.data.alignment,
  )
  train_examples, eval_examples = make(train_pairs, split='train'), make(eval_pairs, split='eval')
  check_loss_fits(config, train_examples, eval_examples)
  return vocab, train_examples, eval_examples


def check_loss_fits(config: ml_collections.ConfigDict, train_ex: Examples, eval_ex: Examples):
  """Raises ValueError if ``config``'s loss cannot score every example (the alignment band).

  Part of :func:`load_data`; a sweep that labels its data once for several configs calls it for
  each of them, since the band is a loss setting, not a data one.
  """
  if config.loss.mode == 'cross_entropy' or config.loss.node_cost != 'alignment':
    return
  lengths = np.asarray(bucket_lengths(config.data))
  for split, examples in (('train', train_ex), ('eval', eval_ex)):
    alignment.check_band(
      examples.source_len,
      examples.target_len,
      config.loss.alignment_band,
      lengths[examples.bucket],
      lambda i, s=split, e=examples: _example_name(s, i, e.pairs[i]),
    )
