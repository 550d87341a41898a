"""Laws of the model itself: what a graph's outputs may and may not depend on."""

import jax
import numpy as np
import pytest
from conftest import tiny_config

from grapheme_jax import graphs, models

TEXTS = ['(+ 1 2)', '', 'héllo 😀', 'ab']


@pytest.fixture(scope='module')
def model_and_params():
  config = tiny_config()
  model = models.create_model(config.model, vocab_size=5)
  dummy = graphs.batch_dense(TEXTS, graphs.Budget(4, 8, config.model.skip_window))
  params = model.init(jax.random.key(0), dummy, train=False)['params']
  return model, params, config.model.skip_window


def _apply(model_and_params, texts, batch_size, length, **kwargs):
  model, params, window = model_and_params
  batch = graphs.batch_dense(texts, graphs.Budget(batch_size, length, window))
  return model.apply({'params': params}, batch, **{'train': False, **kwargs}), batch


def test_output_shapes(model_and_params):
  out, _ = _apply(model_and_params, TEXTS, 4, 8)
  config = tiny_config().model
  assert out['op_logits'].shape == (4, 8, 3)
  assert out['char_logits'].shape == (4, 8, 5)
  assert out['ins_logits'].shape == (4, 9, config.max_insertions, 6)


def test_outputs_do_not_depend_on_padding_neighbours_or_batch_order(model_and_params):
  """A graph's outputs on its own nodes and slots are the same in any batch and any budget."""
  alone, _ = _apply(model_and_params, TEXTS[:1], 1, 8)
  crowded, _ = _apply(model_and_params, TEXTS[::-1] + ['zzzzzzzzzzzzzzzz'], 8, 16)
  n = len(TEXTS[0])
  for key in alone:
    positions = n + 1 if key == 'ins_logits' else n
    np.testing.assert_allclose(
      alone[key][0, :positions], crowded[key][3, :positions], atol=2e-5, err_msg=key
    )


def test_garbage_on_padding_nodes_changes_nothing(model_and_params):
  model, params, window = model_and_params
  batch = graphs.batch_dense(TEXTS, graphs.Budget(4, 16, window))
  real = np.arange(16)[None, :] < batch.n_node[:, None]
  noise = np.random.default_rng(0).integers(1, 0x10FFFF, batch.nodes.shape, dtype=np.int32)
  dirty = batch._replace(nodes=np.where(real, batch.nodes, noise))
  clean_out = model.apply({'params': params}, batch, train=False)
  dirty_out = model.apply({'params': params}, dirty, train=False)
  for key in clean_out:
    for b, n in enumerate(batch.n_node):
      positions = n + 1 if key == 'ins_logits' else n
      np.testing.assert_array_equal(
        clean_out[key][b, :positions], dirty_out[key][b, :positions], err_msg=key
      )


def test_dropout_only_in_training_and_keyed_by_the_rng(model_and_params):
  first, _ = _apply(model_and_params, TEXTS, 4, 8)
  again, _ = _apply(model_and_params, TEXTS, 4, 8)
  np.testing.assert_array_equal(first['op_logits'], again['op_logits'])
  rngs = lambda seed: {'dropout': jax.random.key(seed)}  # noqa: E731
  a, _ = _apply(model_and_params, TEXTS, 4, 8, train=True, rngs=rngs(1))
  b, _ = _apply(model_and_params, TEXTS, 4, 8, train=True, rngs=rngs(1))
  c, _ = _apply(model_and_params, TEXTS, 4, 8, train=True, rngs=rngs(2))
  np.testing.assert_array_equal(a['op_logits'], b['op_logits'])
  assert not np.allclose(a['op_logits'], c['op_logits'])
