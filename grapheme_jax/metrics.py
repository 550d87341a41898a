"""Evaluation metrics, and the JSONL metric writer (no TensorFlow).

Text metrics run on the host over Python strings: exact match and the character edit distance
normalised by the longer of prediction and target (0 = identical, 1 = nothing in common).
Structural metrics compare the text graphs of prediction and target: graph edit distance bounds
(`grapheme_jax.ged`) and Weisfeiler-Lehman similarity and kernel (`grapheme_jax.wl`), re-exported
here.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence

import numpy as np
from absl import logging

from grapheme_jax import edits, ged, wl

GedCosts = ged.GedCosts
ged_bounds = ged.ged_bounds
ged_bounds_texts = ged.ged_bounds_texts
wl_similarity = wl.wl_similarity
wl_kernel = wl.wl_kernel


def exact_match(predictions: Sequence[str], targets: Sequence[str]) -> float:
  """Fraction of predictions equal to their target."""
  _check_same_length(predictions, targets)
  return float(np.mean([p == t for p, t in zip(predictions, targets)]))


def char_edit_distance(predictions: Sequence[str], targets: Sequence[str]) -> float:
  """Mean Levenshtein distance / max(len(prediction), len(target), 1)."""
  _check_same_length(predictions, targets)
  distances = edits.levenshtein_distances(list(zip(predictions, targets)))
  norm = [max(len(p), len(t), 1) for p, t in zip(predictions, targets)]
  return float(np.mean(np.asarray(distances) / np.asarray(norm)))


def text_graph_metrics(
  predictions: Sequence[str],
  targets: Sequence[str],
  skip_window: int,
  costs: ged.GedCosts,
  wl_iterations: int,
) -> dict[str, float]:
  """Mean GED bounds and WL similarity between the text graphs of predictions and targets."""
  _check_same_length(predictions, targets)
  bounds = ged.ged_bounds_batch(list(zip(predictions, targets)), skip_window, costs)
  similarity = wl.wl_similarity_texts(predictions, targets, skip_window, wl_iterations)
  return {
    'ged_lower': float(bounds[:, 0].mean()),
    'ged_upper': float(bounds[:, 1].mean()),
    'wl_similarity': float(np.mean(similarity)),
  }


def _check_same_length(predictions: Sequence[str], targets: Sequence[str]) -> None:
  if len(predictions) != len(targets) or not targets:
    raise ValueError(
      f'need equally many predictions and targets, at least one; got '
      f'{len(predictions)} and {len(targets)}.'
    )


def edit_label_hits(pred: dict, gold: dict, n: int, vocab_size: int) -> tuple[int, int]:
  """(correct ops, correct edit labels) of one example with ``n`` source nodes.

  ``pred`` and ``gold`` hold ``ops`` [L], ``char_ids`` [L] and ``ins_ids`` [L + 1, K]. A label is
  a node's op (with its character for a MODIFY) or a whole slot (every position up to and including
  its end marker; positions after it are not labelled). A gold character outside the vocabulary
  (``IGNORE`` before the end marker, or in a MODIFY) is a miss: no prediction can write it.
  """
  op_ok = pred['ops'][:n] == gold['ops'][:n]
  modify = gold['ops'][:n] == edits.MODIFY
  node_ok = op_ok & (~modify | (pred['char_ids'][:n] == gold['char_ids'][:n]))
  gold_ins = gold['ins_ids'][: n + 1]
  end = gold_ins == vocab_size
  after_end = np.cumsum(end, axis=-1) - end > 0
  slot_ok = np.all(after_end | (pred['ins_ids'][: n + 1] == gold_ins), axis=-1)
  return int(op_ok.sum()), int(node_ok.sum() + slot_ok.sum())


class JsonlWriter:
  """Appends one JSON object per call to ``workdir/metrics.jsonl``.

  A run always starts with :meth:`truncate_after` at the step it starts from (0, or the restored
  checkpoint's), which drops the records of later steps that a killed or crashed attempt wrote, so
  the file never holds a step twice. A record is one ``write`` of one line; a final line without
  its newline (the process was killed while writing it) is dropped there too. With
  ``enabled=False`` (every process but the first of a multi-host run) it writes nothing.
  """

  def __init__(self, workdir: str, filename: str = 'metrics.jsonl', enabled: bool = True):
    self.path = os.path.join(workdir, filename)
    self.enabled = enabled

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    record = {'step': int(step)}
    for key, value in scalars.items():
      value = float(value)
      record[key] = value if math.isfinite(value) else str(value)
    with open(self.path, 'a', encoding='utf-8') as f:
      f.write(json.dumps(record) + '\n')

  def read(self) -> list[dict]:
    """The complete records; a malformed complete line is an error naming file and line."""
    if not os.path.exists(self.path):
      return []
    with open(self.path, encoding='utf-8') as f:
      lines = f.read().split('\n')
    if lines[-1]:
      logging.warning(
        '%s: dropping an incomplete last line (%d characters).', self.path, len(lines[-1])
      )
    records = []
    for number, line in enumerate(lines[:-1], start=1):
      try:
        record = json.loads(line)
      except ValueError as e:
        raise ValueError(f'{self.path}:{number}: not a JSON record ({e}).') from e
      if not isinstance(record, dict) or not isinstance(record.get('step'), int):
        raise ValueError(f'{self.path}:{number}: expected an object with an integer "step".')
      records.append(record)
    return records

  def truncate_after(self, step: int) -> None:
    """Keeps only the records of steps <= ``step``, rewriting the file atomically."""
    if not self.enabled or not os.path.exists(self.path):
      return
    kept = [r for r in self.read() if r['step'] <= step]
    write_atomically(self.path, ''.join(json.dumps(r) + '\n' for r in kept))


class MetricWriter:
  """A run's metrics: ``metrics.jsonl`` (:class:`JsonlWriter`, the record the tools read) and the
  same scalars, plus text summaries, as TensorBoard event files beside it, so that
  ``tensorboard --logdir=DIR`` shows every run under ``DIR``. Written with tensorboardX, which
  needs no TensorFlow.

  :meth:`start` at the step the run starts from truncates the JSONL after it and opens an event
  file that hides (purges) the events of later steps in earlier files: a resumed run shows each
  step once in TensorBoard too. With ``enabled=False`` it writes nothing.
  """

  def __init__(self, workdir: str, enabled: bool = True):
    self.jsonl = JsonlWriter(workdir, enabled=enabled)
    self.workdir = workdir
    self.enabled = enabled
    self._events = None

  def start(self, step: int) -> None:
    self.jsonl.truncate_after(step)
    if self.enabled:
      from tensorboardX import SummaryWriter  # noqa: PLC0415 (imports protobuf: only when used)

      # A restart within the same second would reuse the file name (time in seconds, host): the
      # suffix keeps each attempt's file, in the order TensorBoard reads them (by name).
      self._events = SummaryWriter(
        logdir=self.workdir,
        purge_step=step + 1 if step else None,
        filename_suffix=f'.{time.time_ns()}',
      )

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    self.jsonl.write(step, scalars)
    if self._events is not None:
      for key, value in scalars.items():
        self._events.add_scalar(key, float(value), int(step))
      self._events.flush()

  def write_text(self, step: int, tag: str, text: str) -> None:
    if self._events is not None:
      self._events.add_text(tag, text, int(step))
      self._events.flush()

  def close(self) -> None:
    if self._events is not None:
      self._events.close()
      self._events = None


def write_atomically(path: str, text: str) -> None:
  """Writes ``text`` to a temporary file and renames it: a kill leaves the old file or the new."""
  tmp = path + '.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    f.write(text)
  os.replace(tmp, path)
