"""Tests for text <-> graph conversion and batching."""

import itertools

import numpy as np
import pytest

from grapheme_jax import graphs

# Empty, ASCII, emoji with zero-width joiners and skin tone, combining marks, right-to-left text,
# control characters, NUL, a lone surrogate and the largest code point.
STRINGS = [
  '',
  'a',
  'Hello',
  '(+ 16 9)',
  '👩\u200d👩\u200d👧\u200d👦',
  '👍🏽',
  'e\u0301e\u0300',
  'שלום עולם',
  'مرحبا',
  '\x00',
  'a\x00b\n\t\r\x1b',
  '\ud800',
  '\U0010ffff',
  'x' * 100,
]


@pytest.mark.parametrize('text', STRINGS)
@pytest.mark.parametrize('window', [1, 2, 3])
def test_round_trip(text, window):
  graph = graphs.text_to_graph(text, skip_window=window)
  assert graphs.graph_to_text(graph) == text
  assert graph.n_node.tolist() == [len(text)]
  assert graph.n_edge.tolist() == [graphs.num_edges(len(text), window)]


def test_edges_of_a_short_string():
  g = graphs.text_to_graph('abcd', skip_window=2)
  edges = sorted(zip(g.senders.tolist(), g.receivers.tolist(), g.edges.tolist()))
  assert edges == [(0, 1, 1), (0, 2, 2), (1, 2, 1), (1, 3, 2), (2, 3, 1)]
  assert g.nodes.tolist() == [97, 98, 99, 100]


def test_chain_when_window_is_one():
  g = graphs.text_to_graph('abcd', skip_window=1)
  assert list(zip(g.senders.tolist(), g.receivers.tolist())) == [(0, 1), (1, 2), (2, 3)]


@pytest.mark.parametrize('window', [1, 2, 3, 4])
def test_consecutive_characters_form_cliques(window):
  n = 9
  g = graphs.text_to_graph('x' * n, skip_window=window)
  undirected = {frozenset(e) for e in zip(g.senders.tolist(), g.receivers.tolist())}
  for start in range(n - window):
    for i, j in itertools.combinations(range(start, start + window + 1), 2):
      assert frozenset((i, j)) in undirected
  # And nothing further apart than the window is connected.
  assert all(abs(s - r) <= window for s, r in zip(g.senders, g.receivers))


def test_invalid_inputs():
  with pytest.raises(ValueError, match='skip_window'):
    graphs.text_to_graph('ab', skip_window=0)
  with pytest.raises(TypeError, match='str'):
    graphs.text_to_graph(b'ab')


def test_batch_has_fixed_shapes_and_exact_content():
  budget = graphs.Budget(batch_size=4, max_length=6, skip_window=2)
  texts = ['abc', '', 'hello!']
  batch = graphs.batch_graphs(texts, budget)
  assert batch.nodes.shape == (budget.n_node,)
  assert batch.senders.shape == (budget.n_edge,)
  assert batch.n_node.shape == (budget.n_graph,)
  assert batch.n_node.tolist()[:4] == [3, 0, 6, 0]
  assert int(batch.n_node.sum()) == budget.n_node
  offsets = np.concatenate([[0], np.cumsum(batch.n_node)])
  for i, text in enumerate(texts):
    assert ''.join(map(chr, batch.nodes[offsets[i] : offsets[i + 1]])) == text
  # Every real edge stays inside its own graph.
  e_off = np.concatenate([[0], np.cumsum(batch.n_edge)])
  for i in range(budget.batch_size):
    s = batch.senders[e_off[i] : e_off[i + 1]]
    assert np.all((s >= offsets[i]) & (s < offsets[i + 1]))


def test_batch_rejects_overlong_text_instead_of_truncating():
  budget = graphs.Budget(batch_size=2, max_length=4, skip_window=2)
  with pytest.raises(ValueError, match='text 1 has 5 characters'):
    graphs.batch_graphs(['ab', 'abcde'], budget)
  with pytest.raises(ValueError, match='do not fit'):
    graphs.batch_graphs(['a', 'b', 'c'], budget)


def test_encode_decode():
  codes, lengths = graphs.encode(STRINGS[:-1], 16)
  assert graphs.decode(codes, lengths) == STRINGS[:-1]
  with pytest.raises(ValueError, match='more than max_length'):
    graphs.encode(['x' * 17], 16)


def test_dense_layout_holds_each_graph_in_its_own_row():
  budget = graphs.Budget(batch_size=4, max_length=6, skip_window=2)
  texts = ['abc', '', 'hello!']
  dense = graphs.batch_dense(texts, budget)
  assert dense.nodes.shape == (4, 6) and dense.senders.shape == (4, budget.max_edges)
  for i, text in enumerate(texts + ['']):
    single = graphs.text_to_graph(text, budget.skip_window)
    n, e = len(text), int(single.n_edge[0])
    assert dense.n_node[i] == n and dense.n_edge[i] == e
    assert ''.join(map(chr, dense.nodes[i, :n])) == text
    for name in ('edges', 'senders', 'receivers'):  # Local indices, as in the single graph.
      np.testing.assert_array_equal(getattr(dense, name)[i, :e], getattr(single, name))
    assert not dense.nodes[i, n:].any() and not dense.senders[i, e:].any()


def test_dense_layout_rejects_graphs_that_do_not_fit():
  batch = graphs.batch_graphs(['abcd', 'ab'], graphs.Budget(2, 4, 2))
  with pytest.raises(ValueError, match='A graph has 4 nodes and 5 edges; the dense layout holds 3'):
    graphs.to_dense(batch, 2, max_nodes=3, max_edges=5)
