"""A workdir belongs to one run: the lock, the stale-lock takeover, and the config check on rerun.

Unit tests drive ``workdir.RunLock`` and the config comparison directly; the slow tests run the
training CLI in subprocesses as a user would: the same command twice at once, ``kill -9`` then the
same command, reruns with another config, and ``--restart``.
"""

import hashlib
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT, cli_command, tiny_config

from experiments import sweep
from grapheme_jax import config_lib
from grapheme_jax import workdir as workdir_lib

HOST = socket.gethostname()


def _dead_pid() -> int:
  """The pid of a process that has exited (and been reaped)."""
  proc = subprocess.Popen([sys.executable, '-c', 'pass'])
  proc.wait()
  return proc.pid


def _plant_lock(directory, holder, age: float = 0.0) -> str:
  """Puts a lock file of ``holder`` (a new file, as a process taking the lock creates), last
  refreshed ``age`` seconds ago."""
  path = os.path.join(directory, workdir_lib.LOCK_NAME)
  with open(path + '.planted', 'w') as f:
    f.write(json.dumps(holder) if isinstance(holder, dict) else holder)
  os.utime(path + '.planted', (time.time() - age, time.time() - age))
  os.replace(path + '.planted', path)
  return path


@pytest.fixture(params=['flock', 'no flock'])
def flock_mode(request, monkeypatch):
  """Runs a test with flock, and as on a file system without it (pid, host and heartbeat only)."""
  if request.param == 'no flock':
    monkeypatch.setattr(workdir_lib, '_try_flock', lambda fd: None)
  return request.param


def test_a_held_lock_refuses_a_second_taker_naming_the_holder(tmp_path):
  lock = workdir_lib.RunLock(str(tmp_path))
  with lock:
    with open(lock.path) as f:
      holder = json.load(f)
    assert holder['pid'] == os.getpid() and holder['host'] == HOST
    assert holder['start_time'] and holder['command'] == shlex.join(sys.orig_argv)
    # Another RunLock is another open file: flock refuses it as it would another process.
    message = rf'{tmp_path} is in use by another run: pid {os.getpid()} on host {HOST}, started '
    with pytest.raises(workdir_lib.WorkdirLocked, match=message):
      workdir_lib.RunLock(str(tmp_path)).acquire()
    workdir_lib.RunLock(str(tmp_path), enabled=False).acquire()  # Other hosts of a multi-host run.
  assert not os.path.exists(lock.path)  # Released: the next run finds no lock at all.
  with workdir_lib.RunLock(str(tmp_path)):
    pass


def test_a_lock_left_by_a_dead_process_is_reported_and_taken_over(tmp_path, caplog, flock_mode):
  dead = _dead_pid()
  path = _plant_lock(tmp_path, {'pid': dead, 'host': HOST, 'start_time': 'T0'})
  with caplog.at_level(logging.WARNING), workdir_lib.RunLock(str(tmp_path)):
    with open(path) as f:
      assert json.load(f)['pid'] == os.getpid()
  message = f'Taking over the stale lock {path}: pid {dead} on host {HOST}, started T0 is no longer'
  assert message in caplog.text


def test_without_flock_a_live_pid_on_this_host_holds_the_lock(tmp_path, monkeypatch):
  monkeypatch.setattr(workdir_lib, '_try_flock', lambda fd: None)
  _plant_lock(tmp_path, {'pid': os.getppid(), 'host': HOST, 'start_time': 'T0'})
  with pytest.raises(workdir_lib.WorkdirLocked, match=f'pid {os.getppid()} on host {HOST}'):
    workdir_lib.RunLock(str(tmp_path)).acquire()


def test_a_lock_from_another_host_is_stale_only_once_its_heartbeat_stopped(tmp_path, caplog):
  # flock would be free here (nobody on this host holds it), but it cannot be trusted across hosts.
  holder = {'pid': 1, 'host': 'elsewhere', 'start_time': 'T0'}
  path = _plant_lock(tmp_path, holder, age=workdir_lib.STALE_SECONDS - 60)
  with pytest.raises(workdir_lib.WorkdirLocked, match='pid 1 on host elsewhere.*If that host is'):
    workdir_lib.RunLock(str(tmp_path)).acquire()
  _plant_lock(tmp_path, holder, age=workdir_lib.STALE_SECONDS + 60)
  with caplog.at_level(logging.WARNING), workdir_lib.RunLock(str(tmp_path)):
    pass
  assert 'pid 1 on host elsewhere, started T0 has not refreshed it for 36' in caplog.text
  assert not os.path.exists(path)


def test_an_empty_lock_file_is_being_written_when_new_and_stale_when_old(tmp_path, caplog):
  _plant_lock(tmp_path, '', age=60)  # Killed between creating the file and writing it.
  with caplog.at_level(logging.WARNING), workdir_lib.RunLock(str(tmp_path)):
    pass
  assert 'empty or unreadable' in caplog.text


def test_of_many_takers_of_one_stale_lock_exactly_one_wins(tmp_path, flock_mode):
  dead = _dead_pid()
  for _ in range(5):
    _plant_lock(tmp_path, {'pid': dead, 'host': HOST, 'start_time': 'T0'})
    locks = [workdir_lib.RunLock(str(tmp_path)) for _ in range(8)]
    start, outcomes = threading.Barrier(len(locks)), []

    def take(lock, start=start, outcomes=outcomes):
      start.wait()
      try:
        lock.acquire()
        outcomes.append('won')
      except workdir_lib.WorkdirLocked:
        outcomes.append('refused')

    threads = [threading.Thread(target=take, args=(lock,)) for lock in locks]
    for thread in threads:
      thread.start()
    for thread in threads:
      thread.join()
    assert sorted(outcomes) == ['refused'] * 7 + ['won']
    for lock in locks:
      lock.release()
    assert not os.path.exists(tmp_path / workdir_lib.LOCK_NAME)


def test_the_holder_refreshes_its_lock_and_release_leaves_a_successor_s_lock(tmp_path):
  lock = workdir_lib.RunLock(str(tmp_path), heartbeat=0.02)
  lock.acquire()
  os.utime(lock.path, (0, 0))
  time.sleep(0.3)
  assert time.time() - os.path.getmtime(lock.path) < 5  # The heartbeat rewrote it.
  # Taken over while this process was frozen past the staleness limit: not ours to remove.
  _plant_lock(tmp_path, {'pid': 1, 'host': 'elsewhere', 'start_time': 'T1'})
  lock.release()
  assert os.path.exists(lock.path)


def test_config_comparison_ignores_only_the_keys_a_resumed_run_may_change():
  old = json.loads(config_lib.base_config().to_json_best_effort())
  config = config_lib.base_config()
  config.num_train_steps *= 2
  config.eval_every_steps = config.log_every_steps = config.checkpoint_every_steps = 7
  config.num_eval_samples = 0
  config.num_devices = 1
  config.distributed.process_id = 3
  new = json.loads(config.to_json_best_effort())
  changes, allowed = workdir_lib.compare_configs(old, new)
  assert changes == []
  assert [key for key, _, _ in allowed] == [
    'num_train_steps',
    'log_every_steps',
    'eval_every_steps',
    'checkpoint_every_steps',
    'num_eval_samples',
    'num_devices',
    'distributed.process_id',
  ]
  config.model.hidden_dim, config.loss.mode, config.data.levels = 256, 'structural', (1,)
  new = json.loads(config.to_json_best_effort())
  new['loss']['added'] = 1
  changes, _ = workdir_lib.compare_configs(old, new)
  assert workdir_lib.format_changes(changes) == (
    'data.levels: (1, 2, 3, 4, 5, 6, 7) → (1,), model.hidden_dim: 128 → 256, '
    "loss.mode: 'cross_entropy' → 'structural', loss.added: (absent) → 1"
  )


def test_a_workdir_with_run_files_but_no_config_is_refused_and_restart_moves_them(tmp_path):
  (tmp_path / 'checkpoints' / '10').mkdir(parents=True)
  (tmp_path / 'metrics.jsonl').write_text('{"step": 10}\n')
  (tmp_path / 'notes.txt').write_text('mine')  # Not a run file: never moved.
  with pytest.raises(workdir_lib.OtherRunError, match=r'\(checkpoints, metrics.jsonl\) but no co'):
    workdir_lib.check_same_run(str(tmp_path), tiny_config())
  assert workdir_lib.check_same_run(str(tmp_path), tiny_config(), restart=True) == []
  (moved,) = os.listdir(tmp_path / 'previous_runs')
  assert sorted(os.listdir(tmp_path / 'previous_runs' / moved)) == ['checkpoints', 'metrics.jsonl']
  assert sorted(os.listdir(tmp_path)) == ['notes.txt', 'previous_runs']
  assert workdir_lib.check_same_run(str(tmp_path), tiny_config()) == []  # Nothing held now.


def test_the_same_config_on_other_data_is_refused(tmp_path):
  (tmp_path / 'vocab.json').write_text(json.dumps(['a', 'b']))
  workdir_lib.check_vocabulary(str(tmp_path), ['a', 'b'])
  with pytest.raises(workdir_lib.OtherRunError, match="trained on other data.*new 'c', gone 'b'"):
    workdir_lib.check_vocabulary(str(tmp_path), ['a', 'c'])


class _Stop(Exception):
  pass


def test_a_second_sweep_on_a_running_sweep_s_directory_is_refused(tmp_path):
  base = tiny_config()
  points = [{'loss.alpha': 1.0}, {'loss.alpha': 2.0}]
  running, finish, errors = threading.Event(), threading.Event(), []

  def first_log(message):  # The first sweep pauses at its first point, holding the lock.
    running.set()
    finish.wait(60)
    raise _Stop(message)

  def first():
    try:
      sweep.run_sweep(base, points, str(tmp_path), log=first_log)
    except _Stop as e:
      errors.append(e)

  thread = threading.Thread(target=first)
  thread.start()
  try:
    assert running.wait(60)
    with pytest.raises(workdir_lib.WorkdirLocked, match=f'pid {os.getpid()} on host {HOST}'):
      sweep.run_sweep(base, points, str(tmp_path), log=lambda m: None)
    # The CLI says so in one line (the lock is held by this process, which is alive).
    result = subprocess.run(
      [sys.executable, '-m', 'experiments.sweep', '--config=configs/structural.py',
       f'--workdir={tmp_path}'],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
  finally:
    finish.set()
    thread.join()
  assert 'running' in str(errors[0])  # The first sweep was stopped by the test, not refused.
  assert result.returncode != 0
  errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1 and f'is in use by another run: pid {os.getpid()} on host' in errors[0]
  assert 'Traceback' not in result.stderr
  assert not os.path.exists(tmp_path / workdir_lib.LOCK_NAME)


# --- The training CLI, as a user runs it. ---

STEPS = 20


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
  """One compilation cache for this module's CLI runs: only the first compiles."""
  return tmp_path_factory.mktemp('cache')


def _argv(workdir, cache, *overrides):
  argv, env = cli_command(
    '--config=configs/cross_entropy.py',
    f'--workdir={workdir}',
    f'--compilation_cache={cache}',
    '--config.data.name=kindergarten',
    f'--config.num_train_steps={STEPS}',
    '--config.log_every_steps=5',
    '--config.eval_every_steps=10',
    '--config.checkpoint_every_steps=10',
    '--config.batch_size=4',
    '--config.model.hidden_dim=16',
    '--config.model.embed_dim=8',
    '--config.model.num_layers=1',
    '--config.model.num_heads=2',
    '--config.model.codepoint_buckets=64',
    '--config.optimizer.warmup_steps=5',
    '--config.data.bucket_lengths=()',
    *overrides,
  )
  return argv, env


def _start(workdir, cache, *overrides):
  """Starts the CLI with its stderr in a file (a pipe nobody reads could fill and block)."""
  argv, env = _argv(workdir, cache, *overrides)
  log = open(f'{workdir}.{time.monotonic_ns()}.log', 'w+')
  proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
  proc.log = log
  return proc


def _stderr(proc) -> str:
  proc.log.seek(0)
  return proc.log.read()


def _run(workdir, cache, *overrides):
  argv, env = _argv(workdir, cache, *overrides)
  return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _error_lines(stderr: str) -> list[str]:
  return [line for line in stderr.splitlines() if line.startswith('error:')]


def _check_metrics(workdir, steps):
  """Each kind of record once per step, in order: what two runs in one workdir break."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    records = [json.loads(line) for line in f]
  trained = [r['step'] for r in records if 'train/loss' in r]
  evaluated = [r['step'] for r in records if 'eval/exact_match' in r]
  assert trained == list(range(5, steps + 1, 5))
  assert evaluated == list(range(10, steps + 1, 10))
  assert [r['step'] for r in records] == sorted(r['step'] for r in records)


def _hashes(directory) -> dict[str, str]:
  """SHA-256 of every file under ``directory`` (directories as ``dir``), by relative path."""
  found = {}
  for root, dirs, files in os.walk(directory):
    for name in dirs:
      found[os.path.relpath(os.path.join(root, name), directory)] = 'dir'
    for name in files:
      with open(os.path.join(root, name), 'rb') as f:
        found[os.path.relpath(os.path.join(root, name), directory)] = hashlib.sha256(
          f.read()
        ).hexdigest()
  return found


@pytest.mark.slow
def test_the_same_command_twice_at_once_one_trains_the_other_stops_at_once(tmp_path, cache):
  workdir = tmp_path / 'run'
  procs = [_start(workdir, cache, f'--config.num_train_steps={2 * STEPS}') for _ in range(2)]
  started, ended = time.monotonic(), {}
  while len(ended) < 2 and time.monotonic() - started < 600:
    for proc in procs:
      if proc.pid not in ended and proc.poll() is not None:
        ended[proc.pid] = time.monotonic() - started
    time.sleep(0.01)
  codes = sorted(proc.wait(timeout=60) for proc in procs)
  assert codes[0] == 0 and codes[1] != 0, [_stderr(p)[-3000:] for p in procs]
  winner, loser = sorted(procs, key=lambda p: p.returncode)
  assert ended[loser.pid] < ended[winner.pid]  # Stopped while the other one trained.
  assert ended[loser.pid] < 60, ended
  errors = _error_lines(_stderr(loser))
  assert len(errors) == 1, _stderr(loser)
  assert f'in use by another run: pid {winner.pid} on host {HOST}, started ' in errors[0]
  assert 'Traceback' not in _stderr(loser)
  _check_metrics(workdir, 2 * STEPS)
  assert not os.path.exists(workdir / workdir_lib.LOCK_NAME)
  for proc in procs:  # jax's note that there is no TPU here is not shown.
    assert 'Unable to initialize backend' not in _stderr(proc)


@pytest.mark.slow
def test_after_kill_9_the_same_command_takes_the_stale_lock_over_and_resumes(tmp_path, cache):
  workdir = tmp_path / 'run'
  steps = 2 * STEPS
  proc = _start(workdir, cache, f'--config.num_train_steps={steps}')
  checkpoint = workdir / 'checkpoints' / '10'
  deadline = time.monotonic() + 600
  while not checkpoint.is_dir() and proc.poll() is None and time.monotonic() < deadline:
    time.sleep(0.001)
  assert proc.poll() is None, 'finished before it could be killed: ' + _stderr(proc)[-2000:]
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  with open(workdir / workdir_lib.LOCK_NAME) as f:
    assert json.load(f)['pid'] == proc.pid  # Left behind by the killed run.
  result = _run(workdir, cache, f'--config.num_train_steps={steps}')
  assert result.returncode == 0, result.stderr[-3000:]
  lock = workdir / workdir_lib.LOCK_NAME
  assert f'Taking over the stale lock {lock}: pid {proc.pid} on host {HOST}, started ' in (
    result.stderr
  )
  assert 'is no longer running' in result.stderr
  assert 'Resumed from the checkpoint of step' in result.stderr
  assert json.loads((workdir / 'results.json').read_text())['step'] == steps
  _check_metrics(workdir, steps)
  assert not os.path.exists(workdir / workdir_lib.LOCK_NAME)


@pytest.mark.slow
def test_a_rerun_with_another_config_changes_nothing_more_steps_resume_restart_starts_over(
  tmp_path, cache
):
  workdir = tmp_path / 'run'
  first = _run(workdir, cache)
  assert first.returncode == 0, first.stderr[-3000:]
  before = _hashes(workdir)
  for override, change in [
    ('--config.model.hidden_dim=24', 'model.hidden_dim: 16 → 24'),
    ('--config.loss.mode=structural', "loss.mode: 'cross_entropy' → 'structural'"),
    ('--config.data.levels=(1,)', 'data.levels: (1, 2, 3, 4, 5, 6, 7) → (1,)'),
  ]:
    result = _run(workdir, cache, override)
    assert result.returncode != 0
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr[-3000:]
    assert errors[0] == (
      f'error: {workdir} holds a run of another config: {change}. Use a new --workdir, or '
      f'--restart to move that run to {workdir}/previous_runs/TIME and start over.'
    )
    assert 'Traceback' not in result.stderr
    assert _hashes(workdir) == before, override  # Byte for byte: nothing written, nothing moved.

  # Training longer is the same run: it resumes.
  longer = _run(workdir, cache, f'--config.num_train_steps={STEPS + 10}')
  assert longer.returncode == 0, longer.stderr[-3000:]
  assert 'Resumed from the checkpoint of step 20.' in longer.stderr
  assert f'with num_train_steps: {STEPS} → {STEPS + 10}' in longer.stderr
  _check_metrics(workdir, STEPS + 10)

  # --restart moves the old run aside, whole, and starts from step 0.
  before = _hashes(workdir)
  restarted = _run(workdir, cache, '--config.model.hidden_dim=24', '--restart')
  assert restarted.returncode == 0, restarted.stderr[-3000:]
  assert 'Starting over: moved the previous run' in restarted.stderr
  assert 'Resumed' not in restarted.stderr
  (moved,) = os.listdir(workdir / 'previous_runs')
  assert _hashes(workdir / 'previous_runs' / moved) == before
  assert json.loads((workdir / 'config.json').read_text())['model']['hidden_dim'] == 24
  _check_metrics(workdir, STEPS)
