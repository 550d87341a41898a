"""A thin wrapper around orbax's ``CheckpointManager`` for train states."""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves and restores pytrees under ``workdir/checkpoints``, keeping the last ``max_to_keep``."""

  def __init__(self, workdir: str, max_to_keep: int = 3):
    directory = os.path.abspath(os.path.join(workdir, 'checkpoints'))
    self._manager = ocp.CheckpointManager(
      directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any) -> None:
    """Starts an asynchronous save of ``state`` at ``step`` (no-op if that step exists)."""
    if step not in self._manager.all_steps():
      self._manager.save(step, args=ocp.args.StandardSave(state))

  def restore(self, state: Any, step: int | None = None) -> Any:
    """Restores into the structure, shapes and shardings of ``state`` (abstract is fine)."""
    step = self.latest_step() if step is None else step
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def close(self) -> None:
    """Waits for pending saves, then releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()
