"""A thin wrapper around orbax's ``CheckpointManager`` for train states."""

from __future__ import annotations

import hashlib
import os
import shutil
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils


class CheckpointError(RuntimeError):
  """No checkpoint of the workdir can be read back."""


class CheckpointWriteError(OSError):
  """A checkpoint could not be written; the message carries orbax's or tensorstore's error."""


def _write_error(error: Exception, what: str) -> OSError:
  """An ``OSError`` as is (it names errno and file); anything else as a ``CheckpointWriteError``.

  tensorstore reports a failed array write (a full disk included) as a ``ValueError``, orbax its
  own failures in several types: the caller should not need to know them all.
  """
  if isinstance(error, OSError):
    return error
  return CheckpointWriteError(
    f'{what}: {type(error).__name__}: {" ".join(str(error).split())[:400]}'
  )


class CorruptCheckpointError(CheckpointError):
  """A checkpoint read back, but its arrays do not hash to the digest saved with them."""


# Item names inside each step directory. Checkpoints written before digests existed hold the
# state alone, under orbax's default item name.
_STATE, _DIGEST, _LEGACY = 'state', 'digest', 'default'


def state_digest(tree: Any) -> str:
  """SHA-256 over every leaf's path, dtype, shape and bytes (fully replicated or local arrays).

  orbax stores arrays without checksums: a flipped bit in a data file restores silently as a
  different number. The digest saved with each checkpoint turns that into a detected corruption.
  """
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
      if not leaf.is_fully_replicated:
        raise ValueError(f'cannot digest {jax.tree_util.keystr(path)}: sharded across hosts')
      leaf = leaf.addressable_data(0)
    array = np.ascontiguousarray(np.asarray(leaf))
    digest.update(f'{jax.tree_util.keystr(path)}|{array.dtype.str}|{array.shape}|'.encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


class Checkpointer:
  """Saves and restores pytrees under ``workdir/checkpoints``, keeping the last ``max_to_keep``."""

  def __init__(self, workdir: str, max_to_keep: int = 3):
    directory = os.path.abspath(os.path.join(workdir, 'checkpoints'))
    self._directory = directory
    self._unreadable = os.path.abspath(os.path.join(workdir, 'checkpoints_unreadable'))
    self._manager = ocp.CheckpointManager(
      directory,
      options=ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep,
        create=True,
        # A save interrupted by a kill leaves a temporary directory; orbax never reads it as a
        # checkpoint, and removes it here.
        cleanup_tmp_directories=True,
      ),
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any) -> None:
    """Starts an asynchronous save of ``state`` at ``step`` (no-op if that step exists).

    Waits for the previous save first; a failure of either raises an ``OSError``.
    """
    try:
      if step not in self._manager.all_steps():
        items = {
          _STATE: ocp.args.StandardSave(state),
          _DIGEST: ocp.args.JsonSave({'sha256': state_digest(state)}),
        }
        self._manager.save(step, args=ocp.args.Composite(**items))
    except Exception as e:  # noqa: BLE001 - see _write_error.
      raise _write_error(e, f'Saving the checkpoint of step {step} failed') from e

  def restore(self, state: Any, step: int | None = None) -> Any:
    """Restores into the structure, shapes and shardings of ``state`` (abstract is fine).

    The restored arrays must hash to the digest saved with them (``state_digest``). Without
    ``step``: the latest checkpoint that reads back intact. One that does not (truncated or
    corrupted files) is reported, moved to ``workdir/checkpoints_unreadable/STEP`` (kept for
    inspection, and out of the way of a new save at that step) and the previous one is tried.
    Raises ``CheckpointError`` if none can be read.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    if step is not None:
      return self._restore(step, abstract)
    failures = []
    for candidate in sorted(self._manager.all_steps(), reverse=True):
      try:
        return self._restore(candidate, abstract)
      except Exception as e:  # noqa: BLE001 - orbax and tensorstore raise many types here.
        moved = os.path.join(self._unreadable, str(candidate))
        logging.warning(
          'Checkpoint of step %d cannot be read (%s: %s); moved to %s, trying the previous one.',
          candidate,
          type(e).__name__,
          ' '.join(str(e).split())[:300],
          moved,
        )
        if jax.process_index() == 0:  # Hosts share the directory: one of them moves it.
          os.makedirs(self._unreadable, exist_ok=True)
          shutil.move(os.path.join(self._directory, str(candidate)), moved)
        if jax.process_count() > 1:
          multihost_utils.sync_global_devices(f'moved unreadable checkpoint {candidate}')
        self._manager.reload()
        failures.append(candidate)
    raise CheckpointError(
      f'No checkpoint in {self._directory} can be read (tried steps {failures}); they were moved '
      f'to {self._unreadable}. Start in a new workdir, or move them back to retry.'
    )

  def _restore(self, step: int, abstract: Any) -> Any:
    if os.path.isdir(os.path.join(self._directory, str(step), _LEGACY)):
      logging.warning('Checkpoint of step %d predates digests: restored unverified.', step)
      with ocp.StandardCheckpointer() as legacy:
        return legacy.restore(os.path.join(self._directory, str(step), _LEGACY), abstract)
    items = {_STATE: ocp.args.StandardRestore(abstract), _DIGEST: ocp.args.JsonRestore()}
    restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    saved = (restored[_DIGEST] or {}).get('sha256')
    if saved != state_digest(restored[_STATE]):
      raise CorruptCheckpointError(
        f'the arrays of step {step} do not match the digest saved with them (saved {saved})'
      )
    return restored[_STATE]

  def close(self) -> None:
    """Waits for pending saves (a failed one raises an ``OSError``), then releases the manager."""
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # noqa: BLE001 - see _write_error.
      raise _write_error(e, 'Finishing a checkpoint save failed') from e
    self._manager.close()
