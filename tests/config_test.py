"""Tests for config validation and the command line."""

import importlib.util
import json
import os
import subprocess

import ml_collections
import pytest
from conftest import ROOT, cli_command, config_flags, tiny_config

from grapheme_jax import config_lib


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
    ('optimizer.warmup_steps', 6000, 'warmup_steps'),
    ('metrics.wl_iterations', -1, 'wl_iterations'),
    ('metrics.ged_costs.edge_ins', -0.5, 'edge_ins'),
    ('loss.alpha', -1.0, 'loss.alpha'),
    ('loss.beta', -0.1, 'loss.beta'),
    ('loss.gamma', -2.0, 'loss.gamma'),
    ('loss.temperature', 0.0, 'loss.temperature'),
    ('loss.sinkhorn_iterations', 0, 'loss.sinkhorn_iterations'),
    ('loss.fgw_iterations', 0, 'loss.fgw_iterations'),
    ('loss.hybrid_lambda', 1.5, 'loss.hybrid_lambda'),
    ('loss.node_cost', 'l2', 'loss.node_cost'),
    ('loss.hybrid_lambda', -0.1, 'loss.hybrid_lambda'),
    ('loss.temperature', float('nan'), 'loss.temperature'),
    ('loss.alpha', float('inf'), 'loss.alpha'),
    ('loss.sinkhorn_iterations', 2.5, 'loss.sinkhorn_iterations'),
    ('batch_size', True, 'batch_size'),
    ('model.attention', 1, 'model.attention'),
    ('data.bucket_lengths', (16, 64), 'data.bucket_lengths'),
    ('data.bucket_lengths', (0,), 'data.bucket_lengths'),
    ('data.name', 'jsonl', 'data.train_path is required'),
    ('data.levels', (8,), r'data.levels=\(8,\) must be .*distinct levels in 1..7'),
    ('data.levels', (2, 2), 'data.levels'),
    ('seed', -1, 'seed'),
    ('optimizer.b2', 1.0, 'optimizer.b2'),
    ('loss.insert_cost', -1.0, 'loss.insert_cost'),
    ('loss.insert_cost', 0.0, r'loss.insert_cost=0.0 must be .*> 0'),
    ('loss.hybrid_schedule', 'step', 'loss.hybrid_schedule'),
    ('loss.hybrid_lambda_start', 2.0, 'loss.hybrid_lambda_start'),
    ('loss.hybrid_schedule_steps', 0, 'loss.hybrid_schedule_steps'),
    ('loss.ce_warmup_steps', -5, 'loss.ce_warmup_steps'),
    ('loss.alignment_temperature', 0.0, 'loss.alignment_temperature'),
    ('loss.alignment_temperature', 1.5, 'loss.alignment_temperature'),
    ('loss.alignment_prior_kind', 'diag', 'loss.alignment_prior_kind'),
  ],
)
def test_bad_values_are_one_line_errors(key, value, message):
  with pytest.raises(ValueError, match=message) as info:
    config_lib.validate(_with(key, value))
  assert '\n' not in str(info.value)


@pytest.mark.parametrize(
  'overrides, message',
  [
    ({'loss.ce_warmup_steps': 100}, r'ce_warmup_steps=100 applies to loss.mode="structural" only'),
    (
      {'loss.mode': 'structural', 'loss.ce_warmup_steps': 6000},
      r'ce_warmup_steps=6000 must be < num_train_steps=6000',
    ),
    ({'loss.mode': 'structural', 'loss.hybrid_schedule': 'linear'}, r'applies to .*"hybrid" only'),
  ],
)
def test_schedule_keys_that_would_be_ignored_are_errors(overrides, message):
  config = config_lib.base_config()
  for key, value in overrides.items():
    section, name = key.split('.')
    config[section][name] = value
  with pytest.raises(ValueError, match=message) as info:
    config_lib.validate(config)
  assert '\n' not in str(info.value)


def _with(key, value):
  """base_config() with ``key`` set to ``value`` as a config file could: any type goes."""
  fields = config_lib.base_config().to_dict()
  *sections, name = key.split('.')
  section = fields
  for part in sections:
    section = section[part]
  section[name] = value
  return ml_collections.ConfigDict(fields)


# Values that break some rule of every key: each key must reject at least one of them.
CANDIDATES = (None, 'nope', 2.5, -1, 0, float('nan'), float('inf'), True, (), (0,))


@pytest.mark.parametrize('key', config_lib.leaf_keys(config_lib.base_config()))
def test_every_key_has_a_rule_that_is_enforced(key):
  assert key in config_lib.RULES
  config_lib.validate(_with(key, config_lib._get(config_lib.base_config(), key)))
  rejected = []
  for value in CANDIDATES:
    try:
      config_lib.validate(_with(key, value))
    except ValueError as e:
      assert str(e).startswith(f'Invalid config: {key}='), e
      rejected.append(value)
  assert rejected, f'{key} accepts every one of {CANDIDATES}'


def test_keys_a_config_file_adds_or_drops_are_errors():
  config = config_lib.base_config()
  with config.unlocked():
    config.loss.alpah = 1.0  # A typo in a config file would otherwise be silently ignored.
  with pytest.raises(ValueError, match="unknown key 'loss.alpah'"):
    config_lib.validate(config)
  fields = config_lib.base_config().to_dict()
  del fields['loss']['gamma']
  with pytest.raises(ValueError, match="missing key 'loss.gamma'"):
    config_lib.validate(ml_collections.ConfigDict(fields))
  assert set(config_lib.RULES) == set(config_lib.leaf_keys(config_lib.base_config()))


@pytest.mark.parametrize('name', ['cross_entropy', 'structural', 'hybrid'])
def test_config_files_validate_and_set_their_mode(name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, 'configs', f'{name}.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config_lib.validate(config)
  assert config.loss.mode == name
  weights = (1.0, 0.5, 2.0) if name == 'cross_entropy' else (1.0, 0.0, 0.0)  # Node term alone.
  assert (config.loss.alpha, config.loss.beta, config.loss.gamma) == weights
  assert (config.loss.temperature, config.loss.sinkhorn_iterations) == (0.1, 20)
  assert config.loss.hybrid_lambda == 0.5


def _cli(*args):
  argv, env = cli_command(*args)
  return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
def test_cli_unknown_key_is_one_line(tmp_path):
  proc = _cli('--config=configs/cross_entropy.py', f'--workdir={tmp_path}', '--config.loss.alpah=1')
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines() == [
    "error: unknown config key 'alpah' in --config.loss.alpah=1; see the config file for the "
    'valid keys.'
  ]


@pytest.mark.slow
def test_cli_bad_value_is_one_line(tmp_path):
  proc = _cli(
    '--config=configs/cross_entropy.py', f'--workdir={tmp_path}', '--config.data.name=nope'
  )
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines()[-1].startswith('error: Invalid config: data.name=')
  assert 'Traceback' not in proc.stderr


@pytest.mark.slow
def test_cli_trains_on_jsonl_files(tmp_path):
  pairs = [
    {'input': 'abc', 'target': 'abd'},
    {'input': 'é\u0000', 'target': ''},
    {'input': 'x\ud800', 'target': '\ud800y'},  # A lone surrogate, as JSON can carry it.
  ]
  for name in ('train', 'eval'):
    with open(tmp_path / f'{name}.jsonl', 'w', encoding='utf-8') as f:
      f.writelines(json.dumps(p) + '\n' for p in pairs)
  workdir = tmp_path / 'run'
  config = tiny_config()
  config.num_train_steps, config.batch_size, config.log_every_steps = 3, 2, 1
  config.eval_every_steps, config.checkpoint_every_steps = 3, 3
  config.model.hidden_dim, config.model.embed_dim, config.model.num_layers = 16, 8, 1
  config.optimizer.warmup_steps, config.data.max_length, config.data.bucket_lengths = 1, 8, ()
  config.data.name = 'jsonl'
  config.data.train_path = f'{tmp_path}/train.jsonl'
  config.data.eval_path = f'{tmp_path}/eval.jsonl'
  proc = _cli(
    '--config=configs/cross_entropy.py',
    f'--workdir={workdir}',
    f'--compilation_cache={tmp_path}/cache',
    *config_flags(config),
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert os.listdir(tmp_path / 'cache')  # Compiled steps persist for the next start.
  with open(workdir / 'results.json') as f:
    assert json.load(f)['step'] == 3
  with open(workdir / 'vocab.json', encoding='utf-8') as f:
    assert json.load(f) == ['a', 'b', 'd', 'y', '\ud800']
  with open(workdir / 'predictions.jsonl', encoding='utf-8') as f:
    assert [json.loads(line)['target'] for line in f] == [p['target'] for p in pairs]
