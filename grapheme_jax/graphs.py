"""Text <-> graph conversion and fixed-budget batching (numpy only, no jax).

A string becomes a directed graph with one node per Unicode code point (see BUILD_NOTES.md for why
code points and not grapheme clusters). Node ``i`` carries ``ord(text[i])``; there is an edge
``i -> i + d`` for every distance ``d`` in ``1..skip_window`` (``d == 1``: sequential edge,
``d >= 2``: skip edge), whose feature is ``d``. With window ``w`` every ``w + 1`` consecutive
characters form a clique (ignoring direction), which gives structural losses something real to
match.

Batches follow jraph's convention: ``batch_size`` real graph slots followed by one padding graph
that owns every padding node and edge, so that shapes are fixed by a :class:`Budget` and the train
step compiles once per budget. Slots not filled by an example hold empty graphs; which slots are
real is carried by an explicit mask rather than inferred from node counts, because the empty string
is a legitimate input.

The network and the train step take the same batch in a per-graph layout, :class:`DenseGraphs`
(:func:`to_dense`): every array is ``[graphs, ...]`` with each graph's nodes and edges in its own
row and local node indices. A jraph batch's node axis concatenates graphs of data-dependent sizes,
so it cannot be split across devices at graph boundaries; the dense layout shards on its leading
axis like every other batch array (data parallelism, ``parallel.make_mesh``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import jraph
import numpy as np

MAX_CODE_POINT = 0x10FFFF


def num_edges(length: int, skip_window: int) -> int:
  """Number of edges of the text graph of a string of ``length`` characters."""
  return sum(max(0, length - d) for d in range(1, skip_window + 1))


def _check_window(skip_window: int) -> None:
  if not isinstance(skip_window, (int, np.integer)) or skip_window < 1:
    raise ValueError(f'skip_window must be an integer >= 1, got {skip_window!r}.')


def text_to_graph(text: str, skip_window: int = 2) -> jraph.GraphsTuple:
  """Encodes ``text`` as a single-graph ``GraphsTuple`` of numpy arrays.

  Args:
    text: any Python string (empty, emoji sequences, combining marks, NUL, lone surrogates...).
    skip_window: largest edge distance ``w``; 1 gives a plain chain.

  Returns:
    A graph with ``nodes`` = int32 code points [n], ``edges`` = int32 distances [e],
    ``senders``/``receivers`` [e], ``n_node`` = [n], ``n_edge`` = [e], ``globals`` = None.
  """
  if not isinstance(text, str):
    raise TypeError(f'text_to_graph expects a str, got {type(text).__name__}.')
  _check_window(skip_window)
  n = len(text)
  nodes = np.fromiter((ord(c) for c in text), dtype=np.int32, count=n)
  senders, receivers, dists = [], [], []
  for d in range(1, skip_window + 1):
    s = np.arange(max(0, n - d), dtype=np.int32)
    senders.append(s)
    receivers.append(s + d)
    dists.append(np.full_like(s, d))
  senders, receivers, dists = (np.concatenate(a) for a in (senders, receivers, dists))
  return jraph.GraphsTuple(
    nodes=nodes,
    edges=dists,
    senders=senders,
    receivers=receivers,
    n_node=np.array([n], np.int32),
    n_edge=np.array([len(senders)], np.int32),
    globals=None,
  )


def graph_to_text(graph: jraph.GraphsTuple) -> str:
  """Inverse of :func:`text_to_graph`: the string spelled by the nodes of a single graph."""
  if len(np.asarray(graph.n_node)) != 1:
    raise ValueError(f'graph_to_text expects a single graph, got {len(graph.n_node)} graphs.')
  codes = np.asarray(graph.nodes)[: int(graph.n_node[0])]
  if codes.size and (codes.min() < 0 or codes.max() > MAX_CODE_POINT):
    raise ValueError('graph nodes hold values that are not Unicode code points.')
  return ''.join(map(chr, codes.tolist()))


def encode(texts: Sequence[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
  """Dense code points [len(texts), max_length] (zero padded) and lengths; never truncates."""
  codes = np.zeros((len(texts), max_length), np.int32)
  lengths = np.zeros((len(texts),), np.int32)
  for i, text in enumerate(texts):
    if len(text) > max_length:
      raise ValueError(
        f'text {i} has {len(text)} characters, more than max_length={max_length}: {text[:40]!r}...'
      )
    codes[i, : len(text)] = [ord(c) for c in text]
    lengths[i] = len(text)
  return codes, lengths


def decode(codes: np.ndarray, lengths: np.ndarray) -> list[str]:
  """Inverse of :func:`encode`."""
  return [''.join(map(chr, row[:n].tolist())) for row, n in zip(codes, lengths)]


@dataclasses.dataclass(frozen=True)
class Budget:
  """Fixed padding budget of a batch: ``batch_size`` graphs of at most ``max_length`` nodes."""

  batch_size: int
  max_length: int
  skip_window: int

  @property
  def max_edges(self) -> int:
    """Edges of one graph of ``max_length`` nodes: the dense layout's edge slots per graph."""
    return num_edges(self.max_length, self.skip_window)

  @property
  def n_node(self) -> int:
    # +1: jraph's padding graph needs at least one node of its own.
    return self.batch_size * self.max_length + 1

  @property
  def n_edge(self) -> int:
    return self.batch_size * num_edges(self.max_length, self.skip_window) + 1

  @property
  def n_graph(self) -> int:
    return self.batch_size + 1


def batch_graphs(texts: Sequence[str], budget: Budget) -> jraph.GraphsTuple:
  """Batches up to ``budget.batch_size`` texts into one padded ``GraphsTuple``.

  Graph ``i < len(texts)`` is ``texts[i]``; further slots up to ``batch_size`` are empty graphs and
  the last graph holds all padding. Raises ``ValueError`` if a text exceeds the budget.
  """
  if len(texts) > budget.batch_size:
    raise ValueError(f'{len(texts)} texts do not fit a batch of {budget.batch_size}.')
  for i, text in enumerate(texts):
    if len(text) > budget.max_length:
      raise ValueError(
        f'text {i} has {len(text)} characters, more than the budget '
        f'max_length={budget.max_length}: {text[:40]!r}'
      )
  texts = list(texts) + [''] * (budget.batch_size - len(texts))
  graphs = jraph.batch_np([text_to_graph(t, budget.skip_window) for t in texts])
  return jraph.pad_with_graphs(graphs, budget.n_node, budget.n_edge, budget.n_graph)


class DenseGraphs(NamedTuple):
  """A batch of graphs in a per-graph layout (a pytree: it goes through ``jax.jit`` as is).

  Attributes:
    nodes: [graphs, max_nodes] int32 node features (code points); 0 beyond ``n_node``.
    n_node: [graphs] int32 real nodes per graph (0 for an empty or unused slot).
    edges: [graphs, max_edges] int32 edge features (distances); 0 beyond ``n_edge``.
    senders: [graphs, max_edges] int32 local index of each edge's sender within its graph.
    receivers: [graphs, max_edges] int32 local index of each edge's receiver.
    n_edge: [graphs] int32 real edges per graph.
  """

  nodes: np.ndarray
  n_node: np.ndarray
  edges: np.ndarray
  senders: np.ndarray
  receivers: np.ndarray
  n_edge: np.ndarray


def to_dense(graphs: jraph.GraphsTuple, num_graphs: int, max_nodes: int, max_edges: int):
  """The first ``num_graphs`` graphs of a jraph batch in the per-graph layout (numpy).

  Later graphs (jraph's padding graph) are dropped. Raises ``ValueError`` if a graph has more than
  ``max_nodes`` nodes or ``max_edges`` edges; nothing is truncated.
  """
  n_node = np.asarray(graphs.n_node[:num_graphs], np.int32)
  n_edge = np.asarray(graphs.n_edge[:num_graphs], np.int32)
  if len(n_node) != num_graphs:
    raise ValueError(f'The batch has {len(n_node)} graphs, fewer than {num_graphs}.')
  if n_node.max(initial=0) > max_nodes or n_edge.max(initial=0) > max_edges:
    raise ValueError(
      f'A graph has {n_node.max()} nodes and {n_edge.max()} edges; the dense layout holds '
      f'{max_nodes} and {max_edges}.'
    )

  def rows(counts):  # Graph index and slot within the graph of each real item.
    graph = np.repeat(np.arange(num_graphs), counts)
    return graph, np.arange(len(graph)) - (np.cumsum(counts) - counts)[graph]

  node_graph, node_slot = rows(n_node)
  edge_graph, edge_slot = rows(n_edge)
  node_offset = (np.cumsum(n_node) - n_node)[edge_graph]

  def per_graph(values, width, graph, slot, offset=0):  # Real items into their rows.
    out = np.zeros((num_graphs, width), np.int32)
    out[graph, slot] = np.asarray(values)[: len(graph)] - offset
    return out

  edge_rows = (max_edges, edge_graph, edge_slot)
  return DenseGraphs(
    nodes=per_graph(graphs.nodes, max_nodes, node_graph, node_slot),
    n_node=n_node,
    edges=per_graph(graphs.edges, *edge_rows),
    senders=per_graph(graphs.senders, *edge_rows, node_offset),
    receivers=per_graph(graphs.receivers, *edge_rows, node_offset),
    n_edge=n_edge,
  )


def batch_dense(texts: Sequence[str], budget: Budget) -> DenseGraphs:
  """:func:`batch_graphs` in the per-graph layout: ``[budget.batch_size, ...]`` arrays."""
  return to_dense(
    batch_graphs(texts, budget), budget.batch_size, budget.max_length, budget.max_edges
  )
