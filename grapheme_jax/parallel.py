"""Data parallelism with ``jax.sharding``: a ``data`` mesh axis, batches split, state replicated.

The train step is one ``jax.jit`` program over global arrays; where its inputs live decides how XLA
partitions it (GSPMD). :func:`shard_batch` splits every batch array on its leading (graph) axis
across the mesh and :func:`replicate` copies the train state to every device, so each device runs
the network and the loss on its share of the graphs, the gradient's sums over the batch become
all-reduces, and every device applies the same update. The program is the one a single device
runs: the losses' batch means stay global means, and dropout draws the same bits (jax's
partitionable threefry), so a run's metrics do not depend on the number of devices (tested: 1
device, 8 host devices, 2 processes of 4). No ``pmap``.

Several hosts: with ``config.distributed.initialize`` the CLI calls
:func:`initialize_distributed` first; every host then computes the same global batch (batches are
a pure function of the seed and step) and contributes the rows of its own devices.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = 'data'


def initialize_distributed(config: ml_collections.ConfigDict) -> None:
  """Calls ``jax.distributed.initialize`` if ``config.distributed.initialize`` is set.

  Empty or negative settings are left for jax to detect (TPU pods, SLURM, Open MPI, Kubernetes);
  name the coordinator, the number of processes and this process's id elsewhere. Must run before
  anything else touches jax's devices.
  """
  c = config.distributed
  if not c.initialize:
    return
  jax.distributed.initialize(
    coordinator_address=c.coordinator_address or None,
    num_processes=c.num_processes if c.num_processes > 0 else None,
    process_id=c.process_id if c.process_id >= 0 else None,
  )
  logging.info(
    'Process %d of %d; %d local and %d global devices.',
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
  )


def make_mesh(num_devices: int, batch_size: int) -> Mesh:
  """A 1-D ``'data'`` mesh over the first ``num_devices`` devices (-1: all, over every host).

  Raises ``ValueError`` if there are fewer devices or the batch does not split evenly.
  """
  devices = jax.devices()
  if num_devices == -1:
    num_devices = len(devices)
  if not 1 <= num_devices <= len(devices):
    raise ValueError(
      f'num_devices={num_devices}, but jax sees {len(devices)} {jax.default_backend()} '
      f'device(s). Use -1 for all of them.'
    )
  if batch_size % num_devices:
    raise ValueError(
      f'batch_size={batch_size} does not split evenly over {num_devices} devices; make it a '
      f'multiple of {num_devices} or set num_devices.'
    )
  return Mesh(np.asarray(devices[:num_devices]), (DATA_AXIS,))


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Copies every array of ``tree`` (the same on every host) to every device of ``mesh``."""
  return jax.tree.map(functools.partial(_global_array, sharding=_sharding(mesh)), tree)


def shard_batch(batch: Any, mesh: Mesh) -> Any:
  """Global arrays from a host batch (the same on every host), split on the leading axis."""
  return jax.tree.map(functools.partial(_global_array, sharding=_sharding(mesh, DATA_AXIS)), batch)


def _sharding(mesh: Mesh, *spec: str) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(*spec))


def _global_array(x, sharding: NamedSharding) -> jax.Array:
  """A global array from ``x``; each process supplies the parts on its own devices.

  ``jax.device_put`` can only target devices of this process, so for several hosts the array is
  built from host memory (random keys through their raw key data).
  """
  if jax.process_count() == 1:
    return jax.device_put(x, sharding)
  if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    data = _global_array(jax.random.key_data(x), sharding)
    return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
  host = np.asarray(x)
  return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def to_host(tree: Any) -> Any:
  """numpy copies of global arrays, also where their shards live on other hosts."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)
