"""Training and evaluation: state creation, the jitted train step, evaluation, the training loop.

Data flow: text pairs -> gold edit labels from the edit DP (once, before training) -> fixed-budget
batches (a padded ``GraphsTuple`` of the inputs plus dense label arrays) -> ``train_step`` -> at
evaluation, the model's predicted edits are applied to the input text and compared with the target.

Everything that decides a batch or a random number is a pure function of ``(config.seed, step)``,
so a run resumed from a checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax.training import train_state

from grapheme_jax import checkpoints, config_lib, edits, losses, models, parallel
from grapheme_jax import data as data_lib
from grapheme_jax import graphs as graphs_lib
from grapheme_jax import metrics as metrics_lib
from grapheme_jax import workdir as workdir_lib

IGNORE = losses.IGNORE


class InputError(ValueError):
  """Bad data or config: reported in one line by the CLI, before anything is compiled."""


class WorkdirError(RuntimeError):
  """The workdir cannot be written (a missing permission, a full disk): one line from the CLI."""


class Interrupted(KeyboardInterrupt):
  """Ctrl-C during training, after the pending checkpoint saves finished: one line from the CLI."""


# What train_and_evaluate raises for a problem the user fixes: the CLI and the sweep print these as
# one `error:` line, without a traceback.
USER_ERRORS = (
  InputError,
  WorkdirError,
  FloatingPointError,
  Interrupted,
  workdir_lib.WorkdirConflict,
)


def check_workdir(workdir: str) -> None:
  """Creates ``workdir`` and writes a probe file there, so that a bad path fails before training."""
  probe = os.path.join(workdir, f'.write_test.{os.getpid()}')
  try:
    os.makedirs(workdir, exist_ok=True)
    with open(probe, 'w', encoding='utf-8') as f:
      f.write('ok')
    os.remove(probe)
  except OSError as e:
    raise WorkdirError(f'Cannot write to the workdir {workdir!r}: {e.strerror or e}.') from e


@dataclasses.dataclass(frozen=True)
class Examples:
  """A dataset with its gold edit labels, as dense numpy arrays (L = the largest budget length).

  ``ops``/``char_ids`` [N, L] label the input nodes; ``ins_ids`` [N, L + 1, K] hold the vocabulary
  ids of the characters inserted in each slot, then the end marker ``V``, then ``IGNORE``.
  Characters outside the vocabulary (possible in evaluation data only) are ``IGNORE``.
  ``bucket`` [N] is the index of the smallest length budget that holds the example. The texts
  themselves are kept as code points (``-1`` on padding) with the targets' vocabulary ids, for the
  structural loss.
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
    raise ValueError(
      f'{_example_name(split, i, pairs[i])} needs {ins_count[i, slot]} characters inserted in '
      f'one slot, more than model.max_insertions={max_insertions}: {pairs[i].input[:60]!r} -> '
      f'{pairs[i].target[:60]!r}. Raise --config.model.max_insertions.'
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


class TrainState(train_state.TrainState):
  """Flax ``TrainState``; ``apply_fn`` is the model's apply."""


def create_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """AdamW with linear warm-up and cosine decay, after global-norm gradient clipping."""
  opt = config.optimizer
  return _optimizer(
    opt.learning_rate,
    opt.warmup_steps,
    config.num_train_steps,
    opt.end_learning_rate_factor,
    opt.b1,
    opt.b2,
    opt.eps,
    opt.weight_decay,
    opt.grad_clip_norm,
  )


# Cached so that equal configs give the *same* optimizer object: it is static data of the train
# state, and an equal-but-new one would make every jitted step compile again (sweeps, tests).
@functools.lru_cache(maxsize=32)
def _optimizer(
  learning_rate, warmup_steps, decay_steps, end_factor, b1, b2, eps, weight_decay, clip_norm
) -> optax.GradientTransformation:
  schedule = optax.warmup_cosine_decay_schedule(
    init_value=0.0,
    peak_value=learning_rate,
    warmup_steps=warmup_steps,
    decay_steps=decay_steps,
    end_value=learning_rate * end_factor,
  )
  decay_mask = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)  # noqa: E731
  return optax.chain(
    optax.clip_by_global_norm(clip_norm),
    optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=decay_mask),
  )


def create_train_state(
  rng: jax.Array,
  config: ml_collections.ConfigDict,
  model: models.GraphEditModel,
  budget: graphs_lib.Budget,
) -> TrainState:
  """Initialises parameters on a dummy batch of the budget's shape.

  ``step`` is an int32 array from the start (flax leaves a Python 0), so the first train step has
  the signature of every later one.
  """
  dummy = jax.tree.map(jnp.asarray, graphs_lib.batch_dense([], budget))
  params = jax.jit(functools.partial(model.init, train=False))(rng, dummy)['params']
  state = TrainState.create(apply_fn=model.apply, params=params, tx=create_optimizer(config))
  return state.replace(step=jnp.zeros((), jnp.int32))


class LossSpec(NamedTuple):
  """The static part of the loss: one compiled train step per distinct value."""

  mode: str = 'cross_entropy'
  structural: losses.StructuralSpec = losses.StructuralSpec()


_DEFAULT_SPEC = LossSpec()


def loss_spec(config: ml_collections.ConfigDict) -> LossSpec:
  return LossSpec(
    config.loss.mode,
    losses.StructuralSpec(
      config.model.skip_window,
      config.loss.sinkhorn_iterations,
      config.loss.fgw_iterations,
      config.loss.node_cost,
      config.loss.differentiate_plan,
    ),
  )


def loss_weights(config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  """The traced loss settings: a sweep over them reuses one compiled step."""
  keys = ('alpha', 'beta', 'gamma', 'temperature', 'hybrid_lambda')
  return {k: jnp.asarray(config.loss[k], jnp.float32) for k in keys}


def compute_loss(params, state: TrainState, batch, rng, spec: LossSpec, weights):
  """The training loss of ``spec.mode`` and its metrics.

  The cross-entropy is computed (and logged) in every mode; in structural mode it is a monitor.
  """
  outputs = state.apply_fn({'params': params}, batch['graphs'], train=True, rngs={'dropout': rng})
  ce, parts = losses.cross_entropy(outputs, batch)
  parts['cross_entropy'] = ce
  if spec.mode == 'cross_entropy':
    return ce, parts
  structural, struct_parts = losses.structural(outputs, batch, weights, spec.structural)
  parts.update(struct_parts, structural=structural)
  if spec.mode == 'structural':
    return structural, parts
  if spec.mode == 'hybrid':
    lam = weights['hybrid_lambda']
    return lam * structural + (1.0 - lam) * ce, parts
  raise ValueError(f'Unknown loss mode {spec.mode!r}.')


def _global_norm(tree) -> jax.Array:
  return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


@functools.partial(jax.jit, static_argnames='spec', donate_argnums=0)
def train_step(
  state: TrainState, batch, rng: jax.Array, weights=None, spec: LossSpec = _DEFAULT_SPEC
) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step; returns the new state and scalar metrics (still on device).

  ``rng`` is the run's dropout key: step ``s`` uses ``fold_in(rng, s)``, so the key is a pure
  function of the step (resumed runs replay) and needs no host work per step. ``spec`` (static)
  picks the loss; ``weights`` (traced, from :func:`loss_weights`) are its
  alpha/beta/gamma/temperature/hybrid_lambda, unused by the cross-entropy.
  """
  grad_fn = jax.value_and_grad(compute_loss, has_aux=True)
  step_rng = jax.random.fold_in(rng, state.step)
  (loss, parts), grads = grad_fn(state.params, state, batch, step_rng, spec, weights)
  state = state.apply_gradients(grads=grads)
  return state, {'loss': loss, 'grad_norm': _global_norm(grads), **parts}


@jax.jit
def predict_step(state: TrainState, graphs: graphs_lib.DenseGraphs) -> dict[str, jax.Array]:
  """Greedy predictions: op per node, MODIFY char id per node, insertion ids per slot."""
  outputs = state.apply_fn({'params': state.params}, graphs, train=False)
  return {
    'ops': jnp.argmax(outputs['op_logits'], -1),
    'char_ids': jnp.argmax(outputs['char_logits'], -1),
    'ins_ids': jnp.argmax(outputs['ins_logits'], -1),
  }


def predictions_to_edits(source: str, ops, char_ids, ins_ids, vocab: np.ndarray) -> edits.Edits:
  """Turns one example's predicted arrays into an ``Edits`` (insertions stop at the end marker)."""
  n, end = len(source), len(vocab)
  chars = tuple(
    int(vocab[c]) if o == edits.MODIFY else (ord(source[i]) if o == edits.KEEP else -1)
    for i, (o, c) in enumerate(zip(ops[:n], char_ids[:n]))
  )
  insertions = []
  for slot in ins_ids[: n + 1]:
    stop = np.flatnonzero(slot == end)
    insertions.append(''.join(chr(vocab[c]) for c in slot[: stop[0] if len(stop) else len(slot)]))
  return edits.Edits(tuple(int(o) for o in ops[:n]), chars, tuple(insertions))


def eval_batches(examples: Examples, budgets: Sequence[graphs_lib.Budget]):
  """Yields (indices, batch) over all examples, bucket by bucket, in a fixed order."""
  for b, budget in enumerate(budgets):
    members = np.flatnonzero(examples.bucket == b)
    for start in range(0, len(members), budget.batch_size):
      idx = members[start : start + budget.batch_size]
      yield idx, make_batch(examples, idx, budget)


def evaluate(
  state: TrainState,
  examples: Examples,
  budgets: Sequence[graphs_lib.Budget],
  vocab: np.ndarray,
  metrics_config: ml_collections.ConfigDict | None = None,
  mesh: jax.sharding.Mesh | None = None,
) -> tuple[dict[str, float], list[str]]:
  """Decodes every example and returns (metrics, predicted texts in example order).

  With ``metrics_config`` (the config's ``metrics`` section) the metrics also hold the mean GED
  bounds and WL similarity between each prediction's text graph and its target's. With ``mesh``
  the batches are split across its devices (``state`` must be replicated on it).
  """
  predictions, op_hits, label_hits, positions = [None] * len(examples), 0, 0, 0
  for idx, batch in eval_batches(examples, budgets):
    graphs = batch['graphs'] if mesh is None else parallel.shard_batch(batch['graphs'], mesh)
    out = parallel.to_host(predict_step(state, graphs))
    for b, i in enumerate(idx):
      source = examples.pairs[i].input
      n = len(source)
      pred = predictions_to_edits(
        source, out['ops'][b], out['char_ids'][b], out['ins_ids'][b], vocab
      )
      predictions[i] = edits.apply_edits(source, pred)
      node_ok = out['ops'][b, :n] == batch['ops'][b, :n]
      modify = batch['ops'][b, :n] == edits.MODIFY
      node_ok_full = node_ok & (~modify | (out['char_ids'][b, :n] == batch['char_ids'][b, :n]))
      gold_ins = batch['ins_ids'][b, : n + 1]
      slot_ok = np.all((gold_ins == IGNORE) | (out['ins_ids'][b, : n + 1] == gold_ins), axis=-1)
      op_hits += node_ok.sum()
      label_hits += node_ok_full.sum() + slot_ok.sum()
      positions += 2 * n + 1
  targets = [p.target for p in examples.pairs]
  results = {
    'exact_match': metrics_lib.exact_match(predictions, targets),
    'char_edit_distance': metrics_lib.char_edit_distance(predictions, targets),
    'op_accuracy': float(op_hits / max(sum(len(p.input) for p in examples.pairs), 1)),
    'edit_label_accuracy': float(label_hits / positions),
  }
  if metrics_config is not None:
    costs = metrics_lib.GedCosts.from_config(metrics_config.ged_costs)
    results.update(
      metrics_lib.text_graph_metrics(
        predictions, targets, budgets[0].skip_window, costs, metrics_config.wl_iterations
      )
    )
  return results, predictions


def _save_json(path: str, obj: Any) -> None:
  """Writes atomically; ASCII escapes keep every string, lone surrogates too (UTF-8 cannot)."""
  metrics_lib.write_atomically(path, json.dumps(obj, indent=2))


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
  return vocab, make(train_pairs, split='train'), make(eval_pairs, split='eval')


def _log_samples(examples: Examples, predictions: list[str], count: int) -> None:
  for pair, pred in list(zip(examples.pairs, predictions))[:count]:
    mark = 'ok ' if pred == pair.target else 'BAD'
    logging.info('  %s %r -> %r (target %r)', mark, pair.input, pred, pair.target)


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: str, data: tuple | None = None, restart: bool = False
) -> dict[str, float]:
  """Trains ``config`` in ``workdir`` (resuming from its latest checkpoint) and evaluates.

  Returns the final evaluation metrics, also written to ``workdir/results.json``; every held-out
  prediction goes to ``workdir/predictions.jsonl``. ``data`` may hold what :func:`load_data`
  returns for this config (a sweep labels its data once); the config is validated either way.
  Training and evaluation run data-parallel on ``config.num_devices`` devices (``parallel``);
  only the first process of a multi-host run writes files other than checkpoints.

  The run holds ``workdir``'s lock throughout (``workdir.RunLock``). A run of another config
  already there is an error (``workdir.OtherRunError``), or with ``restart`` moved to
  ``workdir/previous_runs/``; a live run there is ``workdir.WorkdirLocked``.
  """
  check_workdir(workdir)
  with workdir_lib.claim(workdir, config, restart):
    return _train_and_evaluate(config, workdir, data)


def _train_and_evaluate(config, workdir, data):
  """``train_and_evaluate`` once the workdir is this run's."""
  try:
    if data is None:
      data = load_data(config)  # Validates the config first.
    else:
      config_lib.validate(config)
    vocab, train_ex, eval_ex = data
    mesh = parallel.make_mesh(config.num_devices, config.batch_size)
  except ValueError as e:
    raise InputError(str(e)) from e
  main_process = jax.process_index() == 0
  logging.info(
    'Data: %d train, %d eval examples; vocabulary of %d characters.',
    len(train_ex),
    len(eval_ex),
    len(vocab),
  )
  logging.info('Data-parallel over %d device(s): %s', mesh.size, mesh.devices.tolist())
  workdir_lib.check_vocabulary(workdir, [chr(c) for c in vocab.tolist()])  # Same data too?
  if main_process:
    _save_json(os.path.join(workdir, 'config.json'), json.loads(config.to_json_best_effort()))
    _save_json(os.path.join(workdir, 'vocab.json'), [chr(c) for c in vocab.tolist()])
  budgets = [
    graphs_lib.Budget(config.batch_size, length, config.model.skip_window)
    for length in bucket_lengths(config.data)
  ]
  model = models.create_model(config.model, len(vocab))
  init_rng, step_rng = jax.random.split(jax.random.key(config.seed))
  state = parallel.replicate(create_train_state(init_rng, config, model, budgets[0]), mesh)
  ckpt = checkpoints.Checkpointer(workdir)
  writer = metrics_lib.JsonlWriter(workdir, enabled=main_process)
  if ckpt.latest_step() is not None:
    try:
      state = ckpt.restore(state)
    except checkpoints.CheckpointError as e:
      raise InputError(str(e)) from e
    logging.info('Resumed from the checkpoint of step %d.', int(state.step))
  # Records of steps after the start point come from an attempt that was killed or crashed.
  try:
    writer.truncate_after(int(state.step))
  except ValueError as e:
    raise WorkdirError(f'{e} Repair or remove that line to resume.') from e
  t0 = time.time()
  evaluate_fn = functools.partial(
    evaluate,
    examples=eval_ex,
    budgets=budgets,
    vocab=vocab,
    metrics_config=config.metrics,
    mesh=mesh,
  )
  try:
    state, final = _train_loop(
      config, state, train_ex, budgets, step_rng, evaluate_fn, ckpt, writer, eval_ex, mesh
    )
    ckpt.close()  # Waits for the pending asynchronous saves.
  except BaseException as e:  # Ctrl-C included: a save under way still completes.
    try:  # Let earlier saves complete; a failing one must not hide the error that stopped us.
      ckpt.close()
    except Exception as close_error:  # noqa: BLE001
      logging.warning('Finishing the pending checkpoint saves failed too: %s', close_error)
    if isinstance(e, OSError):
      raise WorkdirError(
        f'Writing to {workdir} failed: {e.strerror or e}'
        + (f' ({e.filename})' if e.filename else '')
        + f'. The latest complete checkpoint is step {ckpt.latest_step()}; fix the workdir (e.g. '
        'free disk space) and rerun the same command to resume from it.'
      ) from e
    if isinstance(e, KeyboardInterrupt):
      raise Interrupted(
        f'Interrupted. The latest complete checkpoint is step {ckpt.latest_step()}; rerun the '
        'same command to resume from it.'
      ) from e
    raise
  results, preds = final if final is not None else evaluate_fn(state)
  results.update(step=int(state.step), train_seconds=time.time() - t0)
  if not main_process:
    return results
  _save_json(os.path.join(workdir, 'results.json'), results)
  metrics_lib.write_atomically(
    os.path.join(workdir, 'predictions.jsonl'),
    ''.join(
      json.dumps({'input': pair.input, 'prediction': pred, 'target': pair.target}) + '\n'
      for pair, pred in zip(eval_ex.pairs, preds)
    ),
  )
  return results


def _train_loop(
  config, state, train_ex, budgets, step_rng, evaluate_fn, ckpt, writer, eval_ex, mesh
):
  """Trains from ``state.step`` to the end; returns the state and the last step's evaluation.

  Every step's loss and gradient norm stay on the device until the next log, evaluation or
  checkpoint, where they are checked all at once (no host sync per step). A non-finite one stops
  the run before anything is evaluated or saved, so the latest checkpoint is the last finite state.
  """
  schedule = BatchSchedule(train_ex.bucket, config.batch_size, config.seed)
  spec = loss_spec(config)
  weights, step_rng = parallel.replicate((loss_weights(config), step_rng), mesh)
  t_log, s_log, final = time.time(), int(state.step), None
  unchecked = []  # (step, loss, grad_norm) since the last check; values still on the device.

  def check_finite(done: int) -> None:
    values = parallel.to_host([(loss, norm) for _, loss, norm in unchecked])
    bad = [s for (s, _, _), v in zip(unchecked, values) if not np.all(np.isfinite(v))]
    first = unchecked[0][0]  # Called right after a step was appended: never empty.
    unchecked.clear()
    if bad:
      kept = ckpt.latest_step()
      raise FloatingPointError(
        f'Non-finite loss or gradient at step {bad[0]} ({len(bad)} of steps {first}-{done}); '
        'training stopped before saving. '
        + (
          f'The latest checkpoint, step {kept}, is the last finite state.'
          if kept is not None
          else 'No checkpoint was written before it.'
        )
      )

  for step in range(int(state.step), config.num_train_steps):
    idx = schedule.indices(step)
    batch = parallel.shard_batch(make_batch(train_ex, idx, budgets[train_ex.bucket[idx[0]]]), mesh)
    state, step_metrics = train_step(state, batch, step_rng, weights, spec=spec)
    done, last = step + 1, step + 1 == config.num_train_steps
    unchecked.append((done, step_metrics['loss'], step_metrics['grad_norm']))
    log = done % config.log_every_steps == 0 or last
    evaluate_now = done % config.eval_every_steps == 0 or last
    save = done % config.checkpoint_every_steps == 0 or last
    if log or evaluate_now or save:
      check_finite(done)
    if log:
      scalars = {f'train/{k}': float(v) for k, v in parallel.to_host(step_metrics).items()}
      now = time.time()
      scalars['train/steps_per_sec'] = rate = (done - s_log) / max(now - t_log, 1e-9)
      writer.write(done, scalars)
      logging.info(
        'step %d/%d  loss %.4f  %.1f steps/s  ETA %.0f s',
        done,
        config.num_train_steps,
        scalars['train/loss'],
        rate,
        (config.num_train_steps - done) / rate,
      )
      t_log, s_log = now, done
    if evaluate_now:
      results, preds = evaluate_fn(state)
      writer.write(done, {f'eval/{k}': v for k, v in results.items()})
      logging.info(
        'eval at step %d: %s', done, ', '.join(f'{k} {v:.4f}' for k, v in results.items())
      )
      _log_samples(eval_ex, preds, config.num_eval_samples)
      final = (results, preds) if last else None
    if save:
      ckpt.save(done, state)
  return state, final
