"""Training and evaluation: state creation, the jitted train step, evaluation, the training loop.

Data flow: labelled, fixed-budget batches from ``input_pipeline`` -> ``train_step`` (the model's
outputs go to ``losses.compute_loss``) -> at evaluation, the model's predicted edits are decoded
(``edits.predictions_to_edits``), applied to the input text and compared with the target.

Everything that decides a batch or a random number is a pure function of ``(config.seed, step)``,
so a run resumed from a checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax.training import train_state

from grapheme_jax import checkpoints, config_lib, edits, input_pipeline, losses, models, parallel
from grapheme_jax import graphs as graphs_lib
from grapheme_jax import metrics as metrics_lib
from grapheme_jax import workdir as workdir_lib


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


def compute_loss(params, state: TrainState, batch, rng, spec: losses.LossSpec, weights):
  """Runs the model on ``batch`` (dropout from ``rng``) and returns ``losses.compute_loss``."""
  outputs = state.apply_fn({'params': params}, batch['graphs'], train=True, rngs={'dropout': rng})
  return losses.compute_loss(outputs, batch, spec, weights, state.step)


def _global_norm(tree) -> jax.Array:
  return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


_DEFAULT_SPEC = losses.LossSpec()


@functools.partial(jax.jit, static_argnames='spec', donate_argnums=0)
def train_step(
  state: TrainState, batch, rng: jax.Array, weights=None, spec: losses.LossSpec = _DEFAULT_SPEC
) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step; returns the new state and scalar metrics (still on device).

  ``rng`` is the run's dropout key: step ``s`` uses ``fold_in(rng, s)``, so the key is a pure
  function of the step (resumed runs replay) and needs no host work per step. ``spec`` (static)
  picks the loss; ``weights`` (traced, from ``losses.loss_weights``) are its
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


def evaluate(
  state: TrainState,
  examples: input_pipeline.Examples,
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
  for idx, batch in input_pipeline.eval_batches(examples, budgets):
    graphs = batch['graphs'] if mesh is None else parallel.shard_batch(batch['graphs'], mesh)
    out = parallel.to_host(predict_step(state, graphs))
    for b, i in enumerate(idx):
      source = examples.pairs[i].input
      n = len(source)
      pred = edits.predictions_to_edits(
        source, out['ops'][b], out['char_ids'][b], out['ins_ids'][b], vocab
      )
      predictions[i] = edits.apply_edits(source, pred)
      ops_right, labels_right = metrics_lib.edit_label_hits(
        {k: out[k][b] for k in ('ops', 'char_ids', 'ins_ids')},
        {k: batch[k][b] for k in ('ops', 'char_ids', 'ins_ids')},
        n,
        len(vocab),
      )
      op_hits += ops_right
      label_hits += labels_right
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


def _samples(examples: input_pipeline.Examples, predictions: list[str], count: int) -> list[str]:
  """The first ``count`` held-out predictions, a line each: ``ok 'in' -> 'out' (target 'out')``."""
  lines = []
  for pair, pred in list(zip(examples.pairs, predictions))[:count]:
    mark = 'ok ' if pred == pair.target else 'BAD'
    lines.append(f'{mark} {pair.input!r} -> {pred!r} (target {pair.target!r})')
  return lines


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: str, data: tuple | None = None, restart: bool = False
) -> dict[str, float]:
  """Trains ``config`` in ``workdir`` (resuming from its latest checkpoint) and evaluates.

  Returns the final evaluation metrics, also written to ``workdir/results.json``; every held-out
  prediction goes to ``workdir/predictions.jsonl``. ``data`` may hold what ``load_data``
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
      data = input_pipeline.load_data(config)  # Validates the config first.
    else:  # Labelled once for several configs: this one's loss must fit them too.
      config_lib.validate(config)
      input_pipeline.check_loss_fits(config, *data[1:])
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
    for length in input_pipeline.bucket_lengths(config.data)
  ]
  model = models.create_model(config.model, len(vocab))
  init_rng, step_rng = jax.random.split(jax.random.key(config.seed))
  state = parallel.replicate(create_train_state(init_rng, config, model, budgets[0]), mesh)
  ckpt = checkpoints.Checkpointer(workdir)
  writer = metrics_lib.MetricWriter(workdir, enabled=main_process)
  if ckpt.latest_step() is not None:
    try:
      state = ckpt.restore(state)
    except checkpoints.CheckpointError as e:
      raise InputError(str(e)) from e
    logging.info('Resumed from the checkpoint of step %d.', int(state.step))
  # Records of steps after the start point come from an attempt that was killed or crashed.
  try:
    writer.start(int(state.step))
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
    writer.close()
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
  writer.close()
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
  schedule = input_pipeline.BatchSchedule(train_ex.bucket, config.batch_size, config.seed)
  spec = losses.loss_spec(config)
  weights, step_rng = parallel.replicate((losses.loss_weights(config), step_rng), mesh)
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
    budget = budgets[train_ex.bucket[idx[0]]]
    batch = parallel.shard_batch(input_pipeline.make_batch(train_ex, idx, budget), mesh)
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
      samples = _samples(eval_ex, preds, config.num_eval_samples)
      for line in samples:
        logging.info('  %s', line)
      if samples:  # An indented block: TensorBoard shows the texts as they are.
        writer.write_text(done, 'eval/samples', '\n'.join('    ' + line for line in samples))
      final = (results, preds) if last else None
    if save:
      ckpt.save(done, state)
  return state, final
