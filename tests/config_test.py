"""Tests for config validation and the command line."""

import os
import subprocess
import sys

import pytest

from grapheme_jax import config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize(
  'key, value, message',
  [
    ('loss.mode', 'nope', 'loss.mode'),
    ('data.name', 'nope', 'data.name'),
    ('data.alignment', 'nope', 'data.alignment'),
    ('batch_size', 0, 'batch_size'),
    ('data.max_length', 0, 'data.max_length'),
    ('model.skip_window', 0, 'model.skip_window'),
    ('model.num_heads', 3, 'num_heads'),
    ('model.max_insertions', 0, 'max_insertions'),
    ('optimizer.learning_rate', -1.0, 'learning_rate'),
  ],
)
def test_bad_values_are_one_line_errors(key, value, message):
  config = config_lib.base_config()
  section, _, name = key.rpartition('.')
  (config[section] if section else config)[name] = value
  with pytest.raises(ValueError, match=message) as info:
    config_lib.validate(config)
  assert '\n' not in str(info.value)


def test_configs_validate():
  config_lib.validate(config_lib.base_config())


def _cli(*args):
  return subprocess.run(
    [sys.executable, '-m', 'grapheme_jax.main', *args],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )


def test_cli_unknown_key_is_one_line(tmp_path):
  proc = _cli('--config=configs/cross_entropy.py', f'--workdir={tmp_path}', '--config.loss.alpah=1')
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines() == [
    "error: unknown config key 'alpah' in --config.loss.alpah=1; see the config file for the "
    'valid keys.'
  ]


def test_cli_bad_value_is_one_line(tmp_path):
  proc = _cli(
    '--config=configs/cross_entropy.py', f'--workdir={tmp_path}', '--config.data.name=nope'
  )
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines()[-1].startswith('error: Invalid config: data.name=')
  assert 'Traceback' not in proc.stderr
