"""Tests for the Weisfeiler-Lehman similarity and kernel, with grakel as an oracle."""

import warnings

import jraph
import numpy as np
import pytest
from grakel.kernels import VertexHistogram, WeisfeilerLehman

from grapheme_jax import graphs, wl


def _graph(labels, edges) -> jraph.GraphsTuple:
  """A single graph with integer node ``labels`` and directed ``edges`` [(sender, receiver)]."""
  edges = np.asarray(edges, np.int32).reshape(-1, 2)
  return jraph.GraphsTuple(
    nodes=np.asarray(labels, np.int32),
    edges=None,
    senders=edges[:, 0],
    receivers=edges[:, 1],
    n_node=np.array([len(labels)], np.int32),
    n_edge=np.array([len(edges)], np.int32),
    globals=None,
  )


def _random_graph(rng: np.random.Generator, max_nodes: int = 8) -> jraph.GraphsTuple:
  """A random simple digraph (self-loops allowed) with labels from a 3-letter alphabet."""
  n = int(rng.integers(1, max_nodes + 1))
  adjacency = rng.random((n, n)) < 0.3
  np.fill_diagonal(adjacency, rng.random(n) < 0.1)
  return _graph(rng.integers(0, 3, n), np.argwhere(adjacency))


def _random_text(rng: np.random.Generator, max_length: int = 10) -> str:
  return ''.join(rng.choice(list('abc'), int(rng.integers(1, max_length + 1))))


def _permute(graph: jraph.GraphsTuple, rng: np.random.Generator) -> jraph.GraphsTuple:
  """The same graph with node ``i`` renamed ``perm[i]``."""
  n = int(graph.n_node[0])
  perm = rng.permutation(n)
  nodes = np.empty_like(graph.nodes)
  nodes[perm] = graph.nodes
  return graph._replace(nodes=nodes, senders=perm[graph.senders], receivers=perm[graph.receivers])


def _grakel_kernel(g1: jraph.GraphsTuple, g2: jraph.GraphsTuple, iterations: int) -> float:
  """grakel's normalised WL subtree kernel of two non-empty graphs.

  The adjacency-matrix input keeps every node, isolated or sink, because grakel builds its edge
  dictionary as ``{i: {} for i in range(n)}`` before adding the edges ``A[i, j] > 0`` (an
  edge-dictionary input would only know nodes that appear in some edge).
  """
  inputs = []
  for g in (g1, g2):
    n = int(g.n_node[0])
    adjacency = np.zeros((n, n))
    adjacency[g.senders, g.receivers] = 1.0
    inputs.append((adjacency, dict(enumerate(np.asarray(g.nodes).tolist()))))
  kernel = WeisfeilerLehman(n_iter=iterations, base_graph_kernel=VertexHistogram, normalize=True)
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    return float(kernel.fit_transform(inputs)[0, 1])


def _text_graph(text: str, window: int = 1) -> jraph.GraphsTuple:
  return graphs.text_to_graph(text, skip_window=window)


@pytest.mark.parametrize('fn', [wl.wl_similarity, wl.wl_kernel])
@pytest.mark.parametrize('text', ['a', 'ab', 'hello world', 'aaaa'])
def test_identical_graphs_score_one(fn, text):
  assert fn(_text_graph(text, 2), _text_graph(text, 2)) == pytest.approx(1.0)


@pytest.mark.parametrize('fn', [wl.wl_similarity, wl.wl_kernel])
def test_empty_graphs(fn):
  assert fn(_text_graph(''), _text_graph('')) == 1.0
  assert fn(_text_graph(''), _text_graph('ab')) == 0.0
  assert fn(_text_graph('ab'), _text_graph('')) == 0.0


def test_hand_computed_similarity():
  # 'ab' vs 'ac', chain edges, h = 1.
  # t = 0: histograms {a:1, b:1} vs {a:1, c:1}: min-sum 1, max-sum 3 -> s_0 = 1/3.
  # t = 1: signatures (a, [], [b]), (b, [a], []) vs (a, [], [c]), (c, [a], []): all different,
  #        s_1 = 0 / 4 = 0.  Result = (1 * 1/3 + 1/2 * 0) / (1 + 1/2) = 2/9.
  assert wl.wl_similarity(_text_graph('ab'), _text_graph('ac'), 1) == pytest.approx(2 / 9)
  # 'abc' vs 'abd': s_0 = 2/4; at t = 1 only (a, [], [b]) is shared: s_1 = 1/5.
  # Result = (1/2 + 1/2 * 1/5) / (3/2) = 0.4.
  assert wl.wl_similarity(_text_graph('abc'), _text_graph('abd'), 1) == pytest.approx(0.4)
  # iterations = 0 is the label-histogram overlap alone.
  assert wl.wl_similarity(_text_graph('abc'), _text_graph('abd'), 0) == pytest.approx(0.5)


def test_direction_matters():
  ab, ba = _text_graph('ab'), _text_graph('ba')
  # Same labels, so t = 0 agrees; at t = 1 every signature differs: (1 + 1/2 * 0) / (3/2).
  assert wl.wl_similarity(ab, ba, 0) == 1.0
  assert wl.wl_similarity(ab, ba, 1) == pytest.approx(2 / 3)
  # Out-neighbourhoods: (a, [b]), (b, []) vs (b, [a]), (a, []): k12 = 2 + 0, k11 = k22 = 2 + 2.
  assert wl.wl_kernel(ab, ba, 1) == pytest.approx(0.5)


def test_permutation_invariance():
  rng = np.random.default_rng(0)
  for _ in range(30):
    g1, g2 = _random_graph(rng), _random_graph(rng)
    for fn in (wl.wl_similarity, wl.wl_kernel):
      assert fn(_permute(g1, rng), _permute(g2, rng)) == pytest.approx(fn(g1, g2), abs=1e-12)
      assert fn(g1, _permute(g1, rng)) == pytest.approx(1.0)


def test_symmetric_and_in_range():
  rng = np.random.default_rng(1)
  for _ in range(50):
    g1, g2 = _random_graph(rng), _random_graph(rng)
    for fn in (wl.wl_similarity, wl.wl_kernel):
      value = fn(g1, g2, 2)
      assert 0.0 <= value <= 1.0
      assert fn(g2, g1, 2) == pytest.approx(value, abs=1e-12)


def test_matches_grakel_on_random_digraphs():
  rng = np.random.default_rng(2)
  for k in range(80):
    g1, g2 = _random_graph(rng), _random_graph(rng)
    iterations = 1 + k % 4
    assert wl.wl_kernel(g1, g2, iterations) == pytest.approx(
      _grakel_kernel(g1, g2, iterations), abs=1e-6
    )


def test_matches_grakel_on_text_graphs():
  rng = np.random.default_rng(3)
  for k in range(40):
    window = 1 + k % 3
    g1 = _text_graph(_random_text(rng), window)
    g2 = _text_graph(_random_text(rng), window)
    assert wl.wl_kernel(g1, g2, 3) == pytest.approx(_grakel_kernel(g1, g2, 3), abs=1e-6)


def test_isolated_nodes_match_grakel():
  # Node 2 has no edge at all and node 1 is a sink: both must still count in every histogram.
  g1 = _graph([0, 1, 1], [(0, 1)])
  g2 = _graph([0, 1, 1, 1], [(0, 1), (3, 1)])
  assert wl.wl_kernel(g1, g2, 2) == pytest.approx(_grakel_kernel(g1, g2, 2), abs=1e-6)


def test_similarity_texts():
  predictions, targets = ['ab', 'abc', '', 'hello'], ['ac', 'abd', '', 'hello']
  values = wl.wl_similarity_texts(predictions, targets, skip_window=1, iterations=1)
  assert values == pytest.approx([2 / 9, 0.4, 1.0, 1.0])
  with pytest.raises(ValueError):
    wl.wl_similarity_texts(['a'], [], skip_window=1)


@pytest.mark.parametrize('fn', [wl.wl_similarity, wl.wl_kernel])
def test_invalid_arguments(fn):
  with pytest.raises(ValueError):
    fn(_text_graph('a'), _text_graph('a'), -1)
  batch = jraph.batch([_text_graph('a'), _text_graph('b')])
  with pytest.raises(ValueError):
    fn(batch, _text_graph('a'))
