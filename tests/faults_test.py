"""Kill -9 at random moments, including during a checkpoint save: the rerun loses nothing.

The training CLI is started, killed with SIGKILL, and started again in the same workdir until it
finishes. The final parameters, optimizer state, metrics and predictions must equal, bit for bit,
those of an uninterrupted run with the same seed (timings aside), and ``metrics.jsonl`` must hold
every logged step exactly once.
"""

import json
import os
import signal
import subprocess
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import (
  ROOT,
  cli_command,
  config_flags,
  jsonl_scalars,
  tensorboard_scalars,
  tiny_config,
)

from grapheme_jax import metrics as metrics_lib

STEPS, LOG_EVERY, EVAL_EVERY, SAVE_EVERY = 60, 3, 40, 10
# Keys whose values are wall-clock measurements, the only ones allowed to differ.
TIMING_KEYS = ('train/steps_per_sec', 'train_seconds')


def _start(workdir, cache, log):
  """Starts the CLI; its log goes to the file ``log`` (a pipe nobody reads could fill and block)."""
  config = tiny_config()
  config.num_train_steps, config.log_every_steps = STEPS, LOG_EVERY
  config.eval_every_steps, config.checkpoint_every_steps = EVAL_EVERY, SAVE_EVERY
  config.batch_size, config.data.bucket_lengths = 4, ()
  config.model.hidden_dim, config.model.embed_dim, config.model.num_layers = 16, 8, 1
  config.model.codepoint_buckets = 64
  argv, env = cli_command(
    '--config=configs/cross_entropy.py',
    f'--workdir={workdir}',
    f'--compilation_cache={cache}',
    *config_flags(config),
  )
  with open(log, 'w') as f:
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=f)


def _finish(proc, log):
  """Waits for a run that must succeed."""
  assert proc.wait(timeout=300) == 0, open(log).read()[-3000:]


def _temporary(workdir) -> set[str]:
  """Checkpoint saves under way or interrupted: orbax writes each to a temporary directory first."""
  try:
    return {name for name in os.listdir(os.path.join(workdir, 'checkpoints')) if not name.isdigit()}
  except FileNotFoundError:
    return set()


def _last_logged_step(workdir) -> int:
  records = metrics_lib.JsonlWriter(str(workdir)).read()  # Complete lines only.
  return records[-1]['step'] if records else 0


def _kill_when(proc, condition, timeout=120.0):
  """Polls every millisecond; SIGKILLs ``proc`` once ``condition()`` holds. True if it did."""
  deadline = time.monotonic() + timeout
  while proc.poll() is None and time.monotonic() < deadline:
    if condition():
      proc.send_signal(signal.SIGKILL)
      proc.wait()
      return True
    time.sleep(0.001)
  proc.wait(timeout=timeout)
  return False


def _read(workdir):
  """Final checkpoint (as numpy), metrics records, results and predictions of a run."""
  steps = sorted(int(s) for s in os.listdir(os.path.join(workdir, 'checkpoints')))
  state = ocp.StandardCheckpointer().restore(
    os.path.join(workdir, 'checkpoints', str(steps[-1]), 'state')
  )
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    records = [json.loads(line) for line in f]
  with open(os.path.join(workdir, 'results.json')) as f:
    results = json.load(f)
  with open(os.path.join(workdir, 'predictions.jsonl'), 'rb') as f:
    predictions = f.read()
  for record in [*records, results]:
    for key in TIMING_KEYS:
      record.pop(key, None)
  return steps[-1], state, records, results, predictions


@pytest.mark.slow
def test_sigkill_at_random_moments_and_during_saves_loses_nothing(tmp_path):
  cache = tmp_path / 'cache'
  reference = tmp_path / 'reference'
  log = tmp_path / 'reference.log'
  _finish(_start(reference, cache, log), log)

  rng = np.random.default_rng(0)
  workdir = tmp_path / 'killed'
  # Each condition gets the attempt's start time and the temporary directories that an earlier
  # attempt left (the new process removes them when it opens the checkpoints).
  # Startup takes about 5 s here and training about 2 s: the random time can land in either.
  kill_step, kill_time = int(rng.integers(1, SAVE_EVERY)), rng.uniform(0.5, 8.0)
  kills = [
    # Before the first checkpoint: the rerun starts from scratch over the metrics of this one.
    ('at a random step', lambda t0, old: _last_logged_step(workdir) >= kill_step),
    ('during a checkpoint save', lambda t0, old: bool(_temporary(workdir) - old)),
    ('at a random time', lambda t0, old: time.monotonic() - t0 > kill_time),
    ('during a checkpoint save', lambda t0, old: bool(_temporary(workdir) - old)),
  ]
  killed, killed_while_saving = [], 0
  for attempt, (what, condition) in enumerate(kills):
    old = _temporary(workdir)
    t0 = time.monotonic()
    log = tmp_path / f'attempt_{attempt}.log'
    proc = _start(workdir, cache, log)
    if _kill_when(proc, lambda condition=condition, t0=t0, old=old: condition(t0, old)):
      assert proc.returncode == -signal.SIGKILL
      left = _temporary(workdir) - old
      killed.append((what, _last_logged_step(workdir), sorted(left)))
      killed_while_saving += bool(left)
    else:  # It finished first (possible for the random time): it must have succeeded.
      _finish(proc, log)
  assert len(killed) >= 2, killed
  assert killed_while_saving >= 1, killed  # A temporary checkpoint directory was left behind.
  log = tmp_path / 'last_attempt.log'
  _finish(_start(workdir, cache, log), log)

  # The interrupted saves left nothing behind, and no checkpoint had to be set aside.
  assert not _temporary(workdir)
  assert not os.path.exists(workdir / 'checkpoints_unreadable'), killed

  step, state, records, results, predictions = _read(workdir)
  ref_step, ref_state, ref_records, ref_results, ref_predictions = _read(reference)
  assert step == ref_step == STEPS
  leaves, ref_leaves = (ocp.tree.to_flat_dict(s) for s in (state, ref_state))
  assert leaves.keys() == ref_leaves.keys()
  for key, value in ref_leaves.items():
    assert leaves[key].dtype == value.dtype, key
    assert leaves[key].shape == value.shape, key
    assert np.asarray(leaves[key]).tobytes() == np.asarray(value).tobytes(), key  # Bitwise.
  logged = [r['step'] for r in records if 'train/loss' in r]
  evaluated = [r['step'] for r in records if 'eval/exact_match' in r]
  assert logged == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY)), killed
  assert evaluated == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY)) + [STEPS] * (
    STEPS % EVAL_EVERY != 0
  )
  assert records == ref_records
  assert results == ref_results
  assert predictions == ref_predictions


def test_metrics_file_drops_a_torn_last_line_and_steps_after_the_start(tmp_path):
  writer = metrics_lib.JsonlWriter(str(tmp_path))
  for step in (3, 6, 9):
    writer.write(step, {'train/loss': 1.0 / step})
  with open(writer.path, 'a') as f:
    f.write('{"step": 12, "train/lo')  # Killed in the middle of a write.
  assert [r['step'] for r in writer.read()] == [3, 6, 9]
  writer.truncate_after(6)  # The run restarts from the checkpoint of step 6.
  with open(writer.path) as f:
    assert [json.loads(line)['step'] for line in f] == [3, 6]
  writer.truncate_after(0)  # No checkpoint was written: everything is from a lost attempt.
  assert writer.read() == []


def test_tensorboard_events_mirror_the_jsonl_and_hide_the_steps_a_resumed_run_rewrites(tmp_path):
  first = metrics_lib.MetricWriter(str(tmp_path))
  first.start(0)
  for step in (3, 6, 9):
    first.write(step, {'train/loss': 1.0 / step, 'eval/exact_match': step / 10})
  first.close()  # Killed after step 9; the latest checkpoint is step 6.
  resumed = metrics_lib.MetricWriter(str(tmp_path))
  resumed.start(6)
  for step in (9, 12):
    resumed.write(step, {'train/loss': 2.0 / step, 'eval/exact_match': step / 20})
  resumed.write_text(12, 'eval/samples', "    ok 'a' -> 'b' (target 'b')")
  resumed.close()
  expected = jsonl_scalars(resumed.jsonl.read())
  assert expected['train/loss'] == [(3, 1 / 3), (6, 1 / 6), (9, 2 / 9), (12, 2 / 12)]
  got = tensorboard_scalars(tmp_path)
  assert got.keys() == expected.keys()
  for tag, values in expected.items():  # Event files hold float32.
    assert [s for s, _ in got[tag]] == [s for s, _ in values], tag
    np.testing.assert_allclose([v for _, v in got[tag]], [v for _, v in values], rtol=1e-6)
  # Disabled (every process but the first of a multi-host run): nothing written.
  quiet = metrics_lib.MetricWriter(str(tmp_path / 'quiet'), enabled=False)
  quiet.start(0)
  quiet.write(1, {'a': 1.0})
  quiet.close()
  assert not os.path.exists(tmp_path / 'quiet')


def test_metrics_file_with_a_malformed_complete_line_is_an_error_naming_it(tmp_path):
  writer = metrics_lib.JsonlWriter(str(tmp_path))
  writer.write(1, {'a': 1.0})
  with open(writer.path, 'a') as f:
    f.write('garbage\n')
  writer.write(2, {'a': 2.0})
  with pytest.raises(ValueError, match=r'metrics\.jsonl:2: not a JSON record'):
    writer.truncate_after(1)
