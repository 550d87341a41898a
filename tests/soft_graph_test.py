"""The predicted soft graph: exact on hard outputs, exact expectations on soft ones."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grapheme_jax import edits, graphs, soft_graph

VOCAB = np.array(sorted(map(ord, 'abcxyz')), np.int32)


def _one_hot_logits(index, n):
  return np.where(np.arange(n) == index[..., None], 0.0, -1e9).astype(np.float32)


@pytest.mark.parametrize('window', [1, 2, 3])
def test_text_graphs_match_text_to_graph(window):
  texts = ['', 'a', 'ab', 'hello', 'x' * 9]
  codes, lengths = graphs.encode(texts, 10)
  hard = soft_graph.text_graphs(jnp.asarray(codes), jnp.asarray(lengths), window)
  for b, text in enumerate(texts):
    g = graphs.text_to_graph(text, window)
    adjacency = np.zeros((10, 10))
    adjacency[g.senders, g.receivers] = 1
    np.testing.assert_array_equal(hard.adjacency[b], adjacency)
    n = len(text)
    # Clique counts by brute force over the windows of window + 1 consecutive nodes.
    counts = np.zeros((10, 10))
    for start in range(n - window):
      members = range(start, start + window + 1)
      for i in members:
        for j in members:
          counts[i, j] += i <= j
    np.testing.assert_allclose(hard.cliques[b], counts / (window + 1), atol=1e-6)


@pytest.mark.parametrize('window', [1, 2, 3])
def test_hard_outputs_give_exactly_the_decoded_text_graph(window):
  rng = np.random.default_rng(window)
  v, k, length, b = len(VOCAB), 3, 6, 8
  for _ in range(20):
    sources = [''.join(rng.choice(list('abcq'), rng.integers(0, length + 1))) for _ in range(b)]
    codes, lengths = graphs.encode(sources, length)
    ops = rng.integers(0, 3, (b, length))
    chars = rng.integers(0, v, (b, length))
    ins = np.where(rng.random((b, length + 1, k)) < 0.5, v, rng.integers(0, v, (b, length + 1, k)))
    outputs = {
      'op_logits': _one_hot_logits(ops, 3),
      'char_logits': _one_hot_logits(chars, v),
      'ins_logits': _one_hot_logits(ins, v + 1),
    }
    soft = soft_graph.predicted_graphs(outputs, jnp.asarray(codes), jnp.asarray(lengths), window)
    soft = jax.tree.map(np.asarray, soft)
    for i, source in enumerate(sources):
      pred = edits.predictions_to_edits(source, ops[i], chars[i], ins[i], VOCAB)
      text = edits.apply_edits(source, pred)
      assert set(np.unique(soft.mass[i])) <= {0.0, 1.0}
      alive = soft.mass[i] == 1
      n = len(text)
      assert alive.sum() == n
      chars_i = np.where(
        soft.keep_prob[i][alive] == 1,
        soft.keep_code[i][alive],
        VOCAB[soft.char_probs[i][alive].argmax(-1)],
      )
      assert ''.join(map(chr, chars_i)) == text
      t_codes, t_len = graphs.encode([text], max(n, 1))
      hard = soft_graph.text_graphs(jnp.asarray(t_codes), jnp.asarray(t_len), window)
      np.testing.assert_array_equal(soft.adjacency[i][alive][:, alive], hard.adjacency[0][:n, :n])
      np.testing.assert_allclose(soft.cliques[i][alive][:, alive], hard.cliques[0][:n, :n])
      np.testing.assert_array_equal(soft.rank[i][alive], np.arange(n))


def _sample_texts(probs, rng, samples):
  """Draws output node lists from the factorised distribution (numpy, like the decoder)."""
  op_p, ins_p = probs
  length, (slots, k, v1) = op_p.shape[0], ins_p.shape
  survive = rng.random((samples, length)) < op_p[:, 0] + op_p[:, 2]
  draws = (rng.random((samples, slots, k, 1)) > np.cumsum(ins_p, -1)).sum(-1)  # Categorical.
  is_end = draws == v1 - 1
  count = np.where(is_end.any(-1), is_end.argmax(-1), k)
  alive = np.zeros((samples, slots, k + 1), bool)
  alive[..., :k] = np.arange(k) < count[..., None]
  alive[:, :length, k] = survive
  return alive.reshape(samples, -1)


def test_soft_graph_is_the_exact_expectation_under_sampling():
  """Mass, conditional adjacency and clique counts equal Monte-Carlo estimates."""
  rng = np.random.default_rng(0)
  window, length, k, v = 2, 3, 2, 2
  outputs = {
    'op_logits': rng.normal(size=(1, length, 3)).astype(np.float32),
    'char_logits': rng.normal(size=(1, length, v)).astype(np.float32),
    'ins_logits': (rng.normal(size=(1, length + 1, k, v + 1)) + [0, 0, 0.5]).astype(np.float32),
  }
  codes, lengths = graphs.encode(['abc'], length)
  soft = soft_graph.predicted_graphs(outputs, jnp.asarray(codes), jnp.asarray(lengths), window)
  soft = jax.tree.map(lambda x: np.asarray(x[0], np.float64), soft)
  probs = (
    np.asarray(jax.nn.softmax(outputs['op_logits'][0], -1), np.float64),
    np.asarray(jax.nn.softmax(outputs['ins_logits'][0], -1), np.float64),
  )
  alive = _sample_texts(probs, rng, 200_000)
  np.testing.assert_allclose(alive.mean(0), soft.mass, atol=5e-3)
  rank = np.cumsum(alive, 1) - alive  # Survivors before each candidate.
  total = alive.sum(1, keepdims=True)
  n = alive.shape[1]
  for i in range(n):
    for j in range(i, n):
      both = alive[:, i] & alive[:, j]
      if both.mean() < 0.05:
        continue
      ri, rj, tot = rank[both, i], rank[both, j], total[both, 0]
      d = rj - ri
      edge = (d > 0) & (d <= window)
      windows = soft_graph.clique_counts(
        np.minimum(ri, window), d, np.minimum(tot - 1 - rj, window), window
      )
      np.testing.assert_allclose(soft.cliques[i, j], windows.mean() / (window + 1), atol=0.02)
      if i < j:
        np.testing.assert_allclose(soft.adjacency[i, j], edge.mean(), atol=0.02)
    if alive[:, i].mean() > 0.05:
      np.testing.assert_allclose(soft.rank[i], rank[alive[:, i], i].mean(), atol=0.03)
