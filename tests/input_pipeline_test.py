"""Tests for the input pipeline: gold labels, the length filter, buckets and the batch order."""

import json
import logging

import numpy as np
import pytest
from conftest import PAIRS, labelled_examples, tiny_config

from grapheme_jax import data, edits, input_pipeline


def _decode(examples, vocab, i, ops, char_ids, ins_ids):
  source = examples.pairs[i].input
  predicted = edits.predictions_to_edits(source, ops, char_ids, ins_ids, vocab)
  return edits.apply_edits(source, predicted)


@pytest.mark.parametrize('alignment', ['levenshtein', 'positional'])
def test_gold_labels_decode_to_the_target_on_every_math_level(alignment):
  pairs = [p for level in range(1, 8) for p in data.math_problems(level)[::7]] + PAIRS
  pairs += data.kindergarten()
  vocab, ex = labelled_examples(pairs, lengths=(16, 32), alignment=alignment)
  for i in range(len(ex)):
    assert _decode(ex, vocab, i, ex.ops[i], ex.char_ids[i], ex.ins_ids[i]) == pairs[i].target


def test_too_many_insertions_is_an_error_naming_the_example():
  with pytest.raises(ValueError, match=r'test example 1 needs 9 characters.*max_insertions=8'):
    labelled_examples([data.Pair('a', 'a'), data.Pair('a', 'abcdefghij')])
  # Positional labels put every extra character in the last slot: the error names the other way.
  with pytest.raises(ValueError, match=r'max_insertions, or set --config.data.alignment=leven'):
    labelled_examples([data.Pair('ab', 'a0b0c0d0e0f'), data.Pair('a', 'a')], alignment='positional')


def test_overlong_examples_error_or_are_skipped_and_counted(caplog):
  pairs = [data.Pair('abc', 'd'), data.Pair('x' * 9, 'y'), data.Pair('z', 'y' * 10)]
  with pytest.raises(ValueError, match=r'train example 1 does not fit data.max_length=8'):
    input_pipeline.filter_overlong(pairs, 8, skip=False, split='train')
  with caplog.at_level(logging.WARNING):
    assert input_pipeline.filter_overlong(pairs, 8, skip=True, split='train') == pairs[:1]
  assert 'Skipped 2 of 3 train examples longer than data.max_length=8' in caplog.text


def test_buckets_are_the_smallest_that_fit():
  _, ex = labelled_examples([data.Pair('a' * 8, 'b'), data.Pair('a', 'b' * 9), data.Pair('', '')])
  assert ex.bucket.tolist() == [0, 1, 0]


def test_batch_schedule_is_deterministic_and_covers_each_epoch_once():
  bucket = np.array([0] * 10 + [1] * 7)
  a, b = (
    input_pipeline.BatchSchedule(bucket, 4, seed=3),
    input_pipeline.BatchSchedule(bucket, 4, seed=3),
  )
  assert a.steps_per_epoch == 3 + 2
  epoch = [a.indices(s) for s in range(a.steps_per_epoch)]
  assert sorted(np.concatenate(epoch).tolist()) == list(range(17))
  assert all(len(set(bucket[i])) == 1 for i in epoch)  # A batch never mixes buckets.
  for step in [7, 2, 11, 0]:  # Any order of access gives the same batches.
    np.testing.assert_array_equal(a.indices(step), b.indices(step))


def test_a_target_beyond_the_alignment_band_is_an_error_before_training(tmp_path):
  """Structural loss, a bucket wider than 2 W: a target W + 1 longer than its input is refused."""
  rows = [{'input': 'ab', 'target': 'ab'}, {'input': 'ba', 'target': 'babab'}]
  for split in ('train', 'eval'):
    with open(tmp_path / f'{split}.jsonl', 'w') as f:
      f.writelines(json.dumps(r) + '\n' for r in rows)
  config = tiny_config()
  config.loss.mode = 'structural'
  config.data.name, config.data.bucket_lengths = 'jsonl', (16,)
  config.data.train_path = str(tmp_path / 'train.jsonl')
  config.data.eval_path = str(tmp_path / 'eval.jsonl')
  config.loss.alignment_band = 2
  with pytest.raises(ValueError, match=r'train example 1 .*3 characters longer.*at least 3'):
    input_pipeline.load_data(config)
  config.loss.alignment_band = 3  # Fits; and the cross-entropy has no band at all.
  data = input_pipeline.load_data(config)
  narrower = config.copy_and_resolve_references()  # Data labelled once for a sweep's points.
  narrower.loss.alignment_band = 2
  with pytest.raises(ValueError, match=r'train example 1 .*at least 3'):
    input_pipeline.check_loss_fits(narrower, *data[1:])
  config.loss.alignment_band, config.loss.mode = 2, 'cross_entropy'
  input_pipeline.load_data(config)
