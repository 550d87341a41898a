"""Tests for training: the train step, overfitting, and the end-to-end loop with its faults."""

import errno
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import PAIRS, jsonl_scalars, labelled_examples, tensorboard_scalars, tiny_config
from etils import epath

from grapheme_jax import checkpoints, graphs, input_pipeline, losses, models, train
from grapheme_jax import metrics as metrics_lib


@pytest.fixture(scope='module')
def setup():
  config = tiny_config()
  vocab, ex = labelled_examples()
  budget = graphs.Budget(config.batch_size, 8, config.model.skip_window)
  model = models.create_model(config.model, len(vocab))
  state = train.create_train_state(jax.random.key(0), config, model, budget)
  return config, vocab, ex, budget, state


def _batch(ex, idx, budget):
  return jax.tree.map(jnp.asarray, input_pipeline.make_batch(ex, np.asarray(idx), budget))


@pytest.mark.parametrize('mode', ['cross_entropy', 'structural', 'hybrid'])
def test_train_step_is_finite_and_never_retraces(setup, mode):
  """One trace per mode, whatever the batch and the (traced) loss weights."""
  config, _, ex, budget, state = setup
  config = config.copy_and_resolve_references()
  config.loss.mode = mode
  chex.clear_trace_counter()
  spec = losses.loss_spec(config)
  step = jax.jit(chex.assert_max_traces(train.train_step.__wrapped__, n=1), static_argnames='spec')
  small = [i for i in range(len(ex)) if ex.bucket[i] == 0]
  for i, idx in enumerate([small[:3], small[3:], small[::-1]]):
    config.loss.alpha, config.loss.gamma = 1.0 + i, 2.0 / (1 + i)
    config.loss.temperature, config.loss.hybrid_lambda = 0.1 / (1 + i), 0.3 * i
    weights = losses.loss_weights(config)
    state, metrics = step(state, _batch(ex, idx, budget), jax.random.key(i), weights, spec=spec)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    if mode != 'cross_entropy':
      assert {'node_cost', 'edge_cost', 'clique_cost', 'cross_entropy'} <= set(metrics)
  assert int(state.step) == 3


@pytest.mark.slow
def test_overfits_a_handful_of_pairs():
  config = tiny_config()
  config.model.dropout_rate = 0.0
  config.optimizer.weight_decay = 0.0
  config.optimizer.learning_rate = 3e-3
  config.num_train_steps = 300
  vocab, ex = labelled_examples()
  budgets = [graphs.Budget(config.batch_size, n, 2) for n in (8, 16)]
  model = models.create_model(config.model, len(vocab))
  state = train.create_train_state(jax.random.key(0), config, model, budgets[0])
  batch = _batch(ex, np.arange(len(ex)), budgets[0])
  for step in range(config.num_train_steps):
    state, _ = train.train_step(state, batch, jax.random.key(step))
  results, predictions = train.evaluate(state, ex, budgets, vocab, config.metrics)
  assert predictions == [p.target for p in PAIRS]
  assert results['exact_match'] == 1.0 and results['edit_label_accuracy'] == 1.0
  # Identical predicted and target graphs: zero edit distance, full WL similarity.
  assert results['ged_lower'] == results['ged_upper'] == 0.0
  assert results['wl_similarity'] == 1.0


def _steps(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line)['step'] for line in f]


@pytest.mark.slow
def test_train_and_evaluate_writes_files_and_resumes(tmp_path):
  config = tiny_config()
  workdir = str(tmp_path)
  results = train.train_and_evaluate(config, workdir)
  for name in ('config.json', 'vocab.json', 'metrics.jsonl', 'results.json', 'predictions.jsonl'):
    assert os.path.exists(os.path.join(workdir, name)), name
  assert results['step'] == 20 and 0.0 <= results['exact_match'] <= 1.0
  assert 0.0 <= results['ged_lower'] <= results['ged_upper']
  assert 0.0 <= results['wl_similarity'] <= 1.0
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['10', '20']
  assert _steps(workdir) == [5, 10, 10, 15, 20, 20]  # train/eval records, no duplicates.
  config.num_train_steps = 30
  results = train.train_and_evaluate(config, workdir)  # Resumes at 20, trains 10 more.
  assert results['step'] == 30
  assert _steps(workdir) == [5, 10, 10, 15, 20, 20, 25, 30, 30]


class _Crash(Exception):
  pass


@pytest.mark.slow
def test_resumed_run_equals_uninterrupted_run(tmp_path, monkeypatch):
  config = tiny_config()
  straight = train.train_and_evaluate(config, str(tmp_path / 'straight'))

  real_step = train.train_step

  def crashing_step(state, *args, **kwargs):
    if int(state.step) == 17:  # After the checkpoint of step 10, before the one of step 20.
      raise _Crash()
    return real_step(state, *args, **kwargs)

  monkeypatch.setattr(train, 'train_step', crashing_step)
  with pytest.raises(_Crash):
    train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  monkeypatch.setattr(train, 'train_step', real_step)
  resumed = train.train_and_evaluate(config, str(tmp_path / 'resumed'))

  def records(name):
    with open(tmp_path / name / 'metrics.jsonl') as f:
      return [{k: v for k, v in json.loads(line).items() if 'per_sec' not in k} for line in f]

  assert records('resumed') == records('straight')  # Bitwise-equal losses, no duplicate steps.
  # TensorBoard shows every logged scalar once per step, as in the JSONL, the crashed attempt's
  # step 15 hidden by the resumed one's; and the sample predictions at each evaluation.
  with open(tmp_path / 'resumed' / 'metrics.jsonl') as f:
    expected = jsonl_scalars(json.loads(line) for line in f)
  got = tensorboard_scalars(tmp_path / 'resumed')
  assert got.keys() == expected.keys() and 'eval/wl_similarity' in got
  for tag, values in expected.items():
    assert [s for s, _ in got[tag]] == [s for s, _ in values], tag
    np.testing.assert_allclose([v for _, v in got[tag]], [v for _, v in values], rtol=1e-6)
  assert len([n for n in os.listdir(tmp_path / 'resumed') if n.startswith('events.out')]) == 2
  drop_time = lambda r: {k: v for k, v in r.items() if k != 'train_seconds'}  # noqa: E731
  assert drop_time(resumed) == drop_time(straight)


@pytest.mark.slow
def test_non_finite_step_stops_before_saving_and_keeps_the_last_finite_checkpoint(
  tmp_path, monkeypatch
):
  config = tiny_config()
  config.log_every_steps, config.checkpoint_every_steps = 5, 3  # Saves between log steps.
  real_step = train.train_step

  def poisoned_step(state, *args, **kwargs):
    state, metrics = real_step(state, *args, **kwargs)
    if int(state.step) == 8:  # Step 8 turns every parameter into NaN, as a diverged update would.
      state = state.replace(params=jax.tree.map(lambda p: p * jnp.nan, state.params))
    if int(state.step) >= 8:
      metrics = dict(metrics, loss=metrics['loss'] * jnp.nan)
    return state, metrics

  monkeypatch.setattr(train, 'train_step', poisoned_step)
  message = r'Non-finite loss or gradient at step 8 \(2 of steps 7-9\).*checkpoint, step 6, is'
  with pytest.raises(FloatingPointError, match=message):
    train.train_and_evaluate(config, str(tmp_path))
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['3', '6']  # Step 9 was not saved.
  model = models.create_model(config.model, len(json.loads((tmp_path / 'vocab.json').read_text())))
  budget = graphs.Budget(config.batch_size, 16, config.model.skip_window)
  state = train.create_train_state(jax.random.key(0), config, model, budget)
  state = checkpoints.Checkpointer(str(tmp_path)).restore(state)
  assert int(state.step) == 6
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(state.params))
  assert _steps(str(tmp_path)) == [5]  # Only the finite log step reached the metrics.


def _truncate_files(directory):
  """Cuts every file under ``directory`` to half its size, as a crash or a full disk might."""
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      with open(path, 'r+b') as f:
        f.truncate(os.path.getsize(path) // 2)


@pytest.mark.slow
def test_unreadable_latest_checkpoint_is_reported_moved_aside_and_the_previous_one_used(
  tmp_path, caplog
):
  config = tiny_config()
  workdir = str(tmp_path)
  train.train_and_evaluate(config, workdir)  # Checkpoints 10 and 20.
  _truncate_files(tmp_path / 'checkpoints' / '20')
  config.num_train_steps = 30
  with caplog.at_level('INFO'):
    results = train.train_and_evaluate(config, workdir)
  assert 'Checkpoint of step 20 cannot be read' in caplog.text
  assert 'Resumed from the checkpoint of step 10.' in caplog.text
  assert results['step'] == 30
  assert os.listdir(tmp_path / 'checkpoints_unreadable') == ['20']  # Kept for inspection.
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['10', '20', '30']  # 20 saved anew.
  assert _steps(workdir) == [5, 10, 10, 15, 20, 20, 25, 30, 30]  # No step twice, none lost.
  for step in os.listdir(tmp_path / 'checkpoints'):  # Now every checkpoint is unreadable.
    _truncate_files(tmp_path / 'checkpoints' / step)
  config.num_train_steps = 40
  with pytest.raises(train.InputError, match=r'No checkpoint in .* can be read .tried steps'):
    train.train_and_evaluate(config, workdir)


@pytest.mark.slow
def test_unwritable_workdir_and_full_disk_are_one_clear_error(tmp_path, monkeypatch):
  config = tiny_config()
  (tmp_path / 'a_file').write_text('')
  with pytest.raises(train.WorkdirError, match='Cannot write to the workdir .*a_file/run'):
    train.train_and_evaluate(config, str(tmp_path / 'a_file' / 'run'))

  real_write = metrics_lib.JsonlWriter.write

  def write(self, step, scalars):
    if step >= 15:
      raise OSError(errno.ENOSPC, 'No space left on device', self.path)
    real_write(self, step, scalars)

  monkeypatch.setattr(metrics_lib.JsonlWriter, 'write', write)
  message = (
    r'No space left on device \(.*metrics.jsonl\). The latest complete checkpoint is step 10'
  )
  with pytest.raises(train.WorkdirError, match=message):
    train.train_and_evaluate(config, str(tmp_path / 'run'))


@pytest.mark.slow
@pytest.mark.parametrize(
  'error',
  [
    OSError(errno.ENOSPC, 'No space left on device'),
    # How tensorstore reports a failed array write.
    ValueError('Error writing local file "d/x": [OS error: No space left on device]'),
  ],
)
# orbax leaves the coroutines of the failed save unawaited; that is its cleanup, not ours.
@pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')
def test_a_checkpoint_save_failing_inside_orbax_is_one_clear_error(tmp_path, monkeypatch, error):
  # orbax writes each checkpoint's metadata through etils.epath in its background thread; make
  # the save of step 20 fail there, deep inside orbax.
  path_class = type(epath.Path(str(tmp_path)))
  real_write_text = path_class.write_text

  def write_text(self, *args, **kwargs):
    if f'{os.sep}20.' in str(self):
      raise error
    return real_write_text(self, *args, **kwargs)

  monkeypatch.setattr(path_class, 'write_text', write_text)
  config = tiny_config()
  config.num_train_steps = 30
  with pytest.raises(train.WorkdirError) as info:
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  message = str(info.value)
  assert 'No space left on device' in message and '\n' not in message
  assert 'The latest complete checkpoint is step 10' in message
  assert sorted(os.listdir(tmp_path / 'run' / 'checkpoints'))[0] == '10'


@pytest.mark.parametrize(
  'train_lines, message',
  [
    ([], r'train\.jsonl: file contains no pairs'),
    (['{"input": "abc", "target": "x"}'], r'train example 0 \(.*train\.jsonl:1\) does not fit'),
  ],
)
def test_bad_or_empty_data_stops_before_anything_is_compiled(
  tmp_path, monkeypatch, train_lines, message
):
  def compiled(*args, **kwargs):
    raise AssertionError('labelling or the model started before the data error was raised')

  monkeypatch.setattr(input_pipeline, 'make_examples', compiled)
  monkeypatch.setattr(models, 'create_model', compiled)
  (tmp_path / 'train.jsonl').write_text(''.join(line + '\n' for line in train_lines))
  (tmp_path / 'eval.jsonl').write_text('{"input": "a", "target": "b"}\n')
  config = tiny_config()
  config.data.name = 'jsonl'
  config.data.train_path = str(tmp_path / 'train.jsonl')
  config.data.eval_path = str(tmp_path / 'eval.jsonl')
  config.data.max_length = 2
  config.data.bucket_lengths = ()
  with pytest.raises(train.InputError, match=message):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  config.data.skip_overlong = True  # Skipping every example leaves nothing to train on.
  if train_lines:
    with pytest.raises(train.InputError, match='Empty dataset after filtering: 0 train'):
      train.train_and_evaluate(config, str(tmp_path / 'run'))


def test_data_labelled_for_another_config_is_checked_against_this_ones_loss(tmp_path):
  """A sweep labels its data once: a point whose alignment band cannot reach a target stops."""
  (tmp_path / 'd.jsonl').write_text('{"input": "ba", "target": "babab"}\n')
  config = tiny_config()
  config.data.name, config.data.bucket_lengths = 'jsonl', (16,)
  config.data.train_path = config.data.eval_path = str(tmp_path / 'd.jsonl')
  data = input_pipeline.load_data(config)  # The cross-entropy: no band.
  config.loss.mode, config.loss.alignment_band = 'structural', 2
  with pytest.raises(train.InputError, match=r'3 characters longer.*at least 3'):
    train.train_and_evaluate(config, str(tmp_path / 'run'), data=data)


@pytest.mark.slow
def test_ctrl_c_lets_the_pending_save_finish_and_says_where_to_resume(tmp_path, monkeypatch):
  real_step, calls = train.train_step, []

  def step(state, *args, **kwargs):
    calls.append(1)
    if len(calls) == 11:  # Right after the (asynchronous) save of step 10 started.
      raise KeyboardInterrupt
    return real_step(state, *args, **kwargs)

  monkeypatch.setattr(train, 'train_step', step)
  with pytest.raises(train.Interrupted, match='latest complete checkpoint is step 10; rerun'):
    train.train_and_evaluate(tiny_config(), str(tmp_path))
  assert os.listdir(tmp_path / 'checkpoints') == ['10']  # Finished, not left half-written.
