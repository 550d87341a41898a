"""Checkpoint integrity: a corrupted checkpoint is detected on restore, never loaded silently."""

import logging
import os

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from grapheme_jax import checkpoints


def _states():
  first = {'w': jnp.arange(2000.0).reshape(40, 50), 'step': jnp.asarray(1, jnp.int32)}
  second = {'w': first['w'] * 3.0 + 1.0, 'step': jnp.asarray(2, jnp.int32)}
  return first, second


def _save(workdir, *states):
  ckpt = checkpoints.Checkpointer(str(workdir))
  for step, state in enumerate(states, start=1):
    ckpt.save(step, state)
  ckpt.close()


def _largest_file(directory):
  files = [os.path.join(root, name) for root, _, names in os.walk(directory) for name in names]
  return max(files, key=os.path.getsize)


def _flip_byte(path, offset=None):
  data = bytearray(open(path, 'rb').read())
  offset = len(data) // 2 if offset is None else offset
  data[offset] ^= 0x10  # One bit.
  with open(path, 'wb') as f:
    f.write(bytes(data))


@pytest.mark.parametrize('target', ['array data', 'digest'])
def test_a_flipped_bit_is_detected_and_the_previous_checkpoint_used(tmp_path, caplog, target):
  first, second = _states()
  _save(tmp_path, first, second)
  step_dir = tmp_path / 'checkpoints' / '2'
  if target == 'array data':  # The bulk of the arrays: orbax itself restores this silently.
    _flip_byte(_largest_file(step_dir / 'state'))
  else:
    (digest_file,) = [p for p in (step_dir / 'digest').rglob('*') if 'sha256' in p.read_text()]
    text = digest_file.read_text()
    i = text.index('"sha256": "') + len('"sha256": "')
    with open(digest_file, 'w') as f:  # A different, still well-formed hex digit.
      f.write(text[:i] + ('0' if text[i] != '0' else '1') + text[i + 1 :])
  ckpt = checkpoints.Checkpointer(str(tmp_path))
  with pytest.raises(checkpoints.CorruptCheckpointError, match='do not match the digest'):
    ckpt.restore(first, step=2)  # A named step is verified too.
  with caplog.at_level(logging.WARNING):
    restored = ckpt.restore(first)
  ckpt.close()
  assert 'Checkpoint of step 2 cannot be read (CorruptCheckpointError' in caplog.text
  assert np.array_equal(restored['w'], first['w']) and int(restored['step']) == 1
  assert os.listdir(tmp_path / 'checkpoints_unreadable') == ['2']


def test_checkpoints_written_before_digests_restore_with_a_warning(tmp_path, caplog):
  first, _ = _states()
  manager = ocp.CheckpointManager(str(tmp_path / 'checkpoints'))
  manager.save(5, args=ocp.args.StandardSave(first))  # The layout of the earlier rounds.
  manager.wait_until_finished()
  manager.close()
  ckpt = checkpoints.Checkpointer(str(tmp_path))
  with caplog.at_level(logging.WARNING):
    restored = ckpt.restore(first)
  ckpt.close()
  assert 'predates digests' in caplog.text
  assert np.array_equal(restored['w'], first['w'])


def test_state_digest_sees_every_bit_dtype_shape_and_name():
  first, _ = _states()
  base = checkpoints.state_digest(first)
  assert checkpoints.state_digest({k: v + 0 for k, v in first.items()}) == base
  bits = np.asarray(first['w']).view(np.uint32).copy()
  bits[17, 3] ^= 1
  variants = [
    {**first, 'w': jnp.asarray(bits.view(np.float32))},
    {**first, 'w': jnp.asarray(np.asarray(first['w']).view(np.int32))},  # Same bytes.
    {**first, 'w': first['w'].reshape(50, 40)},
    {'v': first['w'], 'step': first['step']},
  ]
  assert len({base, *(checkpoints.state_digest(v) for v in variants)}) == 1 + len(variants)
