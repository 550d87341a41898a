"""Laws of the evaluation metrics that score edit labels."""

import numpy as np

from grapheme_jax import edits
from grapheme_jax import metrics as metrics_lib

I = edits.IGNORE  # noqa: E741
V = 3  # Vocabulary ids 0..2; 3 is a slot's end marker.


def _labels(ops, char_ids, ins_ids):
  return {
    'ops': np.asarray(ops, np.int32),
    'char_ids': np.asarray(char_ids, np.int32),
    'ins_ids': np.asarray(ins_ids, np.int32),
  }


def test_edit_label_hits_skip_positions_after_the_end_and_miss_characters_outside_the_vocabulary():
  gold = _labels(
    [edits.KEEP, edits.MODIFY, edits.DELETE],  # The last node is padding (n = 2).
    [I, 1, I],
    [[0, V, I], [I, V, I], [V, I, I], [V, I, I]],  # Slot 1 inserts a character outside the vocab.
  )
  right = _labels(
    [edits.KEEP, edits.MODIFY, 0], [2, 1, 0], [[0, V, 2], [0, V, 1], [V, 0, 0], [0] * 3]
  )
  # Ops 2/2; labels: both nodes, slots 0 and 2 (what follows an end marker is not labelled), not
  # slot 1 (nothing can write its character). Padding beyond n counts for nothing.
  assert metrics_lib.edit_label_hits(right, gold, 2, V) == (2, 4)
  wrong_char = _labels([edits.KEEP, edits.MODIFY, 0], [2, 0, 0], right['ins_ids'])
  # The MODIFY's op is right, its label (with the character) is not.
  assert metrics_lib.edit_label_hits(wrong_char, gold, 2, V) == (2, 3)
  oov_modify = dict(gold, char_ids=np.asarray([I, I, I], np.int32))
  assert metrics_lib.edit_label_hits(right, oov_modify, 2, V) == (2, 3)
  full = dict(gold, ins_ids=np.asarray([[0, 1, 2]] * 4, np.int32))  # K insertions, no end marker.
  assert metrics_lib.edit_label_hits(dict(right, ins_ids=full['ins_ids']), full, 2, V) == (2, 5)
