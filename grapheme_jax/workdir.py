"""A workdir belongs to one run: a lock against a second process, no rerun under another config.

:class:`RunLock` is held for the life of a run (training, and the sweep runner on its directory).
A second process on the same workdir (the same command started twice, a scheduler restarting a job
whose first copy still runs, two sweeps on one directory) stops at once with one line naming the
holder, instead of both runs interleaving their metrics and deleting each other's checkpoints. A
lock left by a killed process is recognised as stale, reported and taken over, so the rerun that
resumes is never blocked.

:func:`check_same_run` compares the config a workdir's run was started with (its ``config.json``)
with the new one before anything is written. The keys of :data:`MAY_DIFFER` (how long to train, how
often to log, evaluate and save, the devices) may change on resume; any other difference is an
error naming the keys, unless the caller asks to start over, which moves the old run to
``WORKDIR/previous_runs/TIME/``: a run is never overwritten or deleted by another.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jax
import ml_collections
from absl import logging
from jax.experimental import multihost_utils

try:
  import fcntl
except ImportError:  # Windows: no flock; staleness is then judged from the holder's pid and host.
  fcntl = None

LOCK_NAME = '.lock'
PREVIOUS_RUNS = 'previous_runs'
# What train.train_and_evaluate writes: a workdir holding any of these holds a run.
RUN_FILES = (
  'config.json',
  'vocab.json',
  'metrics.jsonl',
  'results.json',
  'predictions.jsonl',
  'checkpoints',
  'checkpoints_unreadable',
)
EVENTS_PREFIX = 'events.out.tfevents.'  # TensorBoard event files (metrics.MetricWriter).
# Config keys that may change when a run is resumed: they decide how long it trains, how often it
# reports and saves, and on which devices, not what it computes (a run's metrics do not depend on
# the device count, parallel.py). num_train_steps also sets the length of the cosine learning-rate
# decay, so an extended run's remaining steps follow the longer schedule; it is allowed because
# extending a run is what resuming is for.
MAY_DIFFER = (
  'num_train_steps',
  'log_every_steps',
  'eval_every_steps',
  'checkpoint_every_steps',
  'num_eval_samples',
  'num_devices',
  'distributed.*',
)
# The holder rewrites the lock file's modification time this often. Where the holder is on another
# host, the lock is stale once this old: flock cannot be trusted across hosts on every shared file
# system, and a dead host releases nothing.
HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 300.0
# A new lock file holds its owner within microseconds of being created; one still empty (or torn)
# after this long was left by a process killed in between.
_UNREADABLE_STALE_SECONDS = 10.0
_ATTEMPTS = 50
_HOST = socket.gethostname()
_ABSENT = '(absent)'


class WorkdirConflict(RuntimeError):
  """The workdir belongs to another run: reported in one line by the CLI and the sweep."""


class WorkdirLocked(WorkdirConflict):
  """Another live process holds the workdir's lock."""


class OtherRunError(WorkdirConflict):
  """The workdir holds a run of another config (or data) than the one asked for."""


def _way_out(workdir: str) -> str:
  return (
    f'Use a new --workdir, or --restart to move that run to '
    f'{os.path.join(workdir, PREVIOUS_RUNS, "TIME")} and start over.'
  )


# --- The lock. ---


def _try_flock(fd: int) -> bool | None:
  """Takes an exclusive flock without waiting: True, False if another holds it, None if the file
  system (or the platform) does not do flock."""
  if fcntl is None:
    return None
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return True
  except BlockingIOError:
    return False
  except OSError:  # ENOLCK, EOPNOTSUPP, EINVAL: some network and FUSE file systems.
    return None


def _same_file(fd: int, path: str) -> bool:
  """Whether ``path`` still names the file open as ``fd`` (it may have been removed or replaced)."""
  try:
    named = os.stat(path)
  except FileNotFoundError:
    return False
  own = os.fstat(fd)
  return (named.st_dev, named.st_ino) == (own.st_dev, own.st_ino)


def _read_holder(fd: int) -> dict | None:
  """The holder recorded in an open lock file; None while it is being written, or if torn."""
  try:
    holder = json.loads(os.pread(fd, 1 << 16, 0))
  except ValueError:
    return None
  return holder if isinstance(holder, dict) else None


def _pid_alive(pid: Any) -> bool:
  if not isinstance(pid, int) or pid <= 0 or os.name == 'nt':  # Windows' kill(pid, 0) kills.
    return True
  try:
    os.kill(pid, 0)  # Signal 0: only asks whether the process exists.
  except ProcessLookupError:
    return False
  except OSError:  # PermissionError: it exists, under another user.
    return True
  return True


def describe(holder: Mapping | None) -> str:
  """'pid 12 on host h, started 2025-01-01T10:00:00+00:00' for a lock file's holder."""
  if not holder:
    return 'an unknown process (the lock file is empty or unreadable)'
  return f'pid {holder.get("pid")} on host {holder.get("host")}, started {holder.get("start_time")}'


def _stale_reason(holder: dict | None, flocked: bool | None, age: float) -> str | None:
  """Why a lock whose flock is not held by anyone (or unknown) is stale; None if it may be live.

  ``flocked``: True if we could flock it (the kernel releases a flock when its process dies, so on
  the same host nobody holds it), None if flock is unavailable. ``age``: seconds since its holder's
  last heartbeat.
  """
  if holder is None:
    return 'its lock file is empty or unreadable: its process was killed while writing it'
  if holder.get('host') == _HOST:
    if flocked or not _pid_alive(holder.get('pid')):
      return f'{describe(holder)} is no longer running'
    return None
  if age > STALE_SECONDS:
    return f'{describe(holder)} has not refreshed it for {age:.0f} s'
  return None


class RunLock:
  """An exclusive lock on ``directory`` for the life of a run: ``directory/.lock``.

  The lock file is created atomically (``O_EXCL``) and records its holder (pid, host, start time,
  command); the holder also keeps an ``flock`` on it, which the kernel drops when the process dies,
  and refreshes its modification time every ``heartbeat`` seconds from a daemon thread. A lock
  file that exists is stale, and is taken over with a warning, when

  * its holder is on this host and no process holds its flock (or, where flock is unavailable,
    the holder's pid is not running);
  * its holder is on another host (a shared file system) and has not refreshed it for
    ``STALE_SECONDS``: flock does not cross hosts on every file system, and a dead host releases
    nothing;
  * it is empty or unreadable and older than a few seconds (killed while writing it).

  Otherwise :meth:`acquire` raises :class:`WorkdirLocked` naming the holder. Taking over removes
  the stale file while holding its flock, then creates a new one with ``O_EXCL``: of several
  processes taking over at once exactly one wins (see ``_remove``).
  With ``enabled=False`` (every process of a multi-host run but the first) it does nothing.
  """

  def __init__(self, directory: str, enabled: bool = True, heartbeat: float = HEARTBEAT_SECONDS):
    self.directory = directory
    self.path = os.path.join(directory, LOCK_NAME)
    self.enabled = enabled
    self._heartbeat = heartbeat
    self._fd: int | None = None
    self._stop = threading.Event()
    self._thread: threading.Thread | None = None

  def __enter__(self) -> RunLock:
    self.acquire()
    return self

  def __exit__(self, *exc_info) -> None:
    self.release()

  def acquire(self) -> None:
    """Takes the lock, taking over a stale one; raises ``WorkdirLocked`` if a live run holds it."""
    if not self.enabled or self._fd is not None:
      return
    for _ in range(_ATTEMPTS):
      try:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
      except FileExistsError:
        # Returns once that file is gone or changing hands (after closing it): try again.
        time.sleep(self._clear_existing())
        continue
      self._hold(fd)
      return
    raise WorkdirLocked(
      f'Could not take the lock {self.path}: it kept changing hands (other processes starting '
      'in this workdir at the same moment?). Try again.'
    )

  def _hold(self, fd: int) -> None:
    # Another process judging this new file may hold its flock for a moment: wait it out.
    for _ in range(200):
      if _try_flock(fd) is not False:
        break
      time.sleep(0.005)
    holder = {
      'pid': os.getpid(),
      'host': _HOST,
      'start_time': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
      'command': shlex.join(sys.orig_argv),
    }
    os.write(fd, json.dumps(holder).encode())
    os.fsync(fd)
    self._fd = fd
    self._stop.clear()
    self._thread = threading.Thread(target=self._beat, name=f'heartbeat {self.path}', daemon=True)
    self._thread.start()

  def _beat(self) -> None:
    while not self._stop.wait(self._heartbeat):
      try:
        os.utime(self._fd if os.utime in os.supports_fd else self.path)
      except OSError as e:  # A full or read-only disk: the run itself will report it.
        logging.warning('Cannot refresh the lock %s: %s', self.path, e)

  def _clear_existing(self) -> float:
    """Deals with an existing lock file: raises ``WorkdirLocked`` while a live process holds it;
    otherwise returns (after removing it if stale) how long to wait before trying again."""
    try:
      fd = os.open(self.path, os.O_RDWR)
    except FileNotFoundError:
      return 0.0
    try:
      flocked = _try_flock(fd)
      if not _same_file(fd, self.path):
        return 0.0  # Released, or taken over, since we opened it.
      holder = _read_holder(fd)
      age = time.time() - os.fstat(fd).st_mtime
      if holder is None and age < _UNREADABLE_STALE_SECONDS:
        return 0.01  # Just created: its process is writing it (and needs the flock we took).
      reason = None if flocked is False else _stale_reason(holder, flocked, age)
      if reason is None:
        if flocked is False:  # Perhaps held by a process taking a stale lock over right now.
          time.sleep(0.05)
          if not _same_file(fd, self.path):
            return 0.0
          holder = _read_holder(fd) or holder
        raise WorkdirLocked(self._in_use_message(holder))
      logging.warning('Taking over the stale lock %s: %s.', self.path, reason)
      return self._remove(fd, flocked)
    finally:
      os.close(fd)  # Drops our flock on the old file, if we took it.

  def _remove(self, fd: int, flocked: bool | None) -> float:
    """Removes the stale lock file open as ``fd``; returns how long to wait before trying again.

    With its flock held, nobody else can be removing or replacing it. Without flock, the takers
    take turns through a guard file created with ``O_EXCL``: the one holding it removes the lock
    file only if that is still the file judged stale (another may have replaced it already).
    """
    if flocked:
      os.unlink(self.path)
      return 0.0
    guard = self.path + '.takeover'
    try:
      guard_fd = os.open(guard, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
      with contextlib.suppress(FileNotFoundError):
        if time.time() - os.stat(guard).st_mtime > _UNREADABLE_STALE_SECONDS:
          os.unlink(guard)  # Left by a process killed while taking over (for microseconds).
      return 0.01
    try:
      if _same_file(fd, self.path):
        os.unlink(self.path)
    finally:
      os.close(guard_fd)
      os.unlink(guard)
    return 0.0

  def _in_use_message(self, holder: dict | None) -> str:
    message = (
      f'{self.directory} is in use by another run: {describe(holder)} (lock file {self.path}). '
      'Wait for it to end, or use another --workdir.'
    )
    if holder and holder.get('host') != _HOST:
      message += (
        f' If that host is down, the lock is taken over once its holder has not refreshed it '
        f'for {STALE_SECONDS / 60:.0f} minutes.'
      )
    return message

  def release(self) -> None:
    """Removes the lock file (if it is still ours) and drops the flock."""
    if self._fd is None:
      return
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
    try:
      if _same_file(self._fd, self.path):
        os.unlink(self.path)
    except OSError as e:  # Left behind, it is stale: the next run takes it over.
      logging.warning('Cannot remove the lock %s: %s', self.path, e)
    finally:
      os.close(self._fd)
      self._fd = None


# --- Is a rerun the same run? ---


def flatten(tree: Mapping, prefix: str = '') -> dict[str, Any]:
  """``{'loss.alpha': 1.0, ...}`` from a nested config dict; lists become tuples."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = tuple(value) if isinstance(value, list) else value
  return flat


def _may_differ(key: str) -> bool:
  return any(key == k or (k.endswith('.*') and key.startswith(k[:-1])) for k in MAY_DIFFER)


def compare_configs(
  old: Mapping, new: Mapping
) -> tuple[list[tuple[str, Any, Any]], list[tuple[str, Any, Any]]]:
  """The keys whose values differ, as ``(key, old, new)``: (those that change the run, those in
  ``MAY_DIFFER``). A key missing on one side has the value ``'(absent)'`` there."""
  old_flat, new_flat = flatten(old), flatten(new)
  changes, allowed = [], []
  for key in dict.fromkeys([*old_flat, *new_flat]):
    before, after = old_flat.get(key, _ABSENT), new_flat.get(key, _ABSENT)
    if before != after:
      (allowed if _may_differ(key) else changes).append((key, before, after))
  return changes, allowed


def format_changes(changes: Sequence[tuple[str, Any, Any]], limit: int = 10) -> str:
  """``model.hidden_dim: 32 → 64, loss.mode: 'cross_entropy' → 'structural'``."""
  text = ', '.join(f'{key}: {_value(old)} → {_value(new)}' for key, old, new in changes[:limit])
  return text + (f' and {len(changes) - limit} more' if len(changes) > limit else '')


def _value(value: Any) -> str:
  return value if value is _ABSENT else repr(value)


def held_run_files(workdir: str) -> list[str]:
  """The entries of ``RUN_FILES`` (and their temporary files) and the TensorBoard event files
  present in ``workdir``."""
  try:
    names = set(os.listdir(workdir))
  except FileNotFoundError:
    return []
  return [
    n
    for n in sorted(names)
    if n in RUN_FILES or n.removesuffix('.tmp') in RUN_FILES or n.startswith(EVENTS_PREFIX)
  ]


def check_same_run(
  workdir: str, config: ml_collections.ConfigDict, restart: bool = False
) -> list[tuple[str, Any, Any]]:
  """Checks that ``config`` continues the run that ``workdir`` holds, if it holds one.

  Returns the differences in ``MAY_DIFFER`` keys. Raises :class:`OtherRunError` naming every other
  differing key (old → new), or if the workdir holds run files but no readable ``config.json``
  (the run's config is unknown). With ``restart``, the run there is moved aside instead
  (:func:`start_over`) and nothing is compared. Writes nothing otherwise.
  """
  held = held_run_files(workdir)
  if restart:
    start_over(workdir, held)
    return []
  if not held:
    return []
  path = os.path.join(workdir, 'config.json')
  try:
    with open(path, encoding='utf-8') as f:
      saved = json.load(f)
  except FileNotFoundError:
    raise OtherRunError(
      f'{workdir} holds files of a run ({", ".join(held)}) but no config.json, so its config is '
      f'unknown. {_way_out(workdir)}'
    ) from None
  except (OSError, ValueError) as e:
    raise OtherRunError(f'{path} cannot be read ({e}). {_way_out(workdir)}') from e
  changes, allowed = compare_configs(
    saved if isinstance(saved, dict) else {}, json.loads(config.to_json_best_effort())
  )
  if changes:
    raise OtherRunError(
      f'{workdir} holds a run of another config: {format_changes(changes)}. {_way_out(workdir)}'
    )
  return allowed


def check_vocabulary(workdir: str, vocab: Sequence[str]) -> None:
  """Raises :class:`OtherRunError` if ``workdir`` holds a run trained on another vocabulary.

  The config can be the same while the data differ (a ``data.train_path`` file edited between
  runs); the checkpoints would then not fit the model and would be set aside as unreadable.
  """
  path = os.path.join(workdir, 'vocab.json')
  try:
    with open(path, encoding='utf-8') as f:
      saved = json.load(f)
  except FileNotFoundError:
    return
  except (OSError, ValueError) as e:
    raise OtherRunError(f'{path} cannot be read ({e}). {_way_out(workdir)}') from e
  if saved != list(vocab):
    added, gone = sorted(set(vocab) - set(saved)), sorted(set(saved) - set(vocab))
    raise OtherRunError(
      f'{workdir} holds a run trained on other data: its vocabulary ({len(saved)} characters) '
      f"differs from this data's ({len(vocab)}; new {''.join(added)!r}, gone "
      f'{"".join(gone)!r}). {_way_out(workdir)}'
    )


def move_aside(workdir: str, names: Sequence[str]) -> str:
  """Moves the entries ``names`` of ``workdir`` to a new ``workdir/previous_runs/TIME/``."""
  base = os.path.join(workdir, PREVIOUS_RUNS, time.strftime('%Y%m%d-%H%M%S'))
  destination, n = base, 0
  while True:
    try:
      os.makedirs(destination)
      break
    except FileExistsError:
      n += 1
      destination = f'{base}-{n}'
  for name in names:
    os.rename(os.path.join(workdir, name), os.path.join(destination, name))
  logging.warning(
    'Starting over: moved the previous run (%s) to %s.', ', '.join(names), destination
  )
  return destination


def start_over(workdir: str, names: Sequence[str]) -> None:
  """Moves ``names`` aside (the first process does; the others of a multi-host run wait)."""
  if names and jax.process_index() == 0:
    move_aside(workdir, names)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f'start over in {workdir}')


@contextlib.contextmanager
def claim(workdir: str, config: ml_collections.ConfigDict, restart: bool = False) -> Iterator[None]:
  """Holds ``workdir``'s lock (first process only) while the caller runs ``config`` there.

  Inside the lock, before anything is written: a run of another config there is an error, or with
  ``restart`` moved to ``previous_runs`` (:func:`check_same_run`).
  """
  with RunLock(workdir, enabled=jax.process_index() == 0):
    allowed = check_same_run(workdir, config, restart)
    if allowed:
      logging.info('Continuing the run in %s with %s.', workdir, format_changes(allowed))
    yield
