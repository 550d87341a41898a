"""How tight and how fast the GED bounds of grapheme_jax.ged are.

python -m experiments.ged_report

Compares `ged_bounds` / `ged_bounds_texts` with exact GED (networkx's exhaustive search) on seeded
random pairs of small text graphs and random digraphs under the default costs, then times
`ged_bounds_batch` on 64 pairs of 64-character texts.
"""

from __future__ import annotations

import statistics
import time

import jraph
import networkx as nx
import numpy as np

from grapheme_jax import ged
from grapheme_jax.graphs import text_to_graph

_NUM_PAIRS = 600
_MAX_NODES = 6
_SKIP_WINDOW = 2


def digraph(labels: np.ndarray, senders: np.ndarray, receivers: np.ndarray) -> jraph.GraphsTuple:
  """A single-graph ``GraphsTuple`` with integer node labels and unlabelled directed edges."""
  n, e = len(labels), len(senders)
  return jraph.GraphsTuple(
    nodes=np.asarray(labels, np.int32),
    edges=np.zeros((e,), np.int32),
    senders=np.asarray(senders, np.int32),
    receivers=np.asarray(receivers, np.int32),
    n_node=np.array([n], np.int32),
    n_edge=np.array([e], np.int32),
    globals=None,
  )


def random_digraph(rng: np.random.Generator, n: int) -> jraph.GraphsTuple:
  """Random simple digraph (no self-loops, no parallel edges) with labels in {0, 1, 2}."""
  adj = rng.random((n, n)) < rng.uniform(0.1, 0.5)
  np.fill_diagonal(adj, False)
  senders, receivers = np.nonzero(adj)
  return digraph(rng.integers(0, 3, size=n), senders, receivers)


def to_nx(graph: jraph.GraphsTuple) -> nx.DiGraph:
  g = nx.DiGraph()
  g.add_nodes_from((i, {'label': v}) for i, v in enumerate(np.asarray(graph.nodes).tolist()))
  g.add_edges_from(zip(np.asarray(graph.senders).tolist(), np.asarray(graph.receivers).tolist()))
  return g


def exact_ged(g1: jraph.GraphsTuple, g2: jraph.GraphsTuple, costs: ged.GedCosts) -> float:
  """Exact GED by networkx's exhaustive search (no timeout), with the same costs.

  Exact only when ``node_sub <= node_ins + node_del`` (see BUILD_NOTES.md).
  """
  return nx.graph_edit_distance(
    to_nx(g1),
    to_nx(g2),
    node_subst_cost=lambda a, b: 0.0 if a['label'] == b['label'] else costs.node_sub,
    node_del_cost=lambda a: costs.node_del,
    node_ins_cost=lambda a: costs.node_ins,
    edge_subst_cost=lambda a, b: 0.0,
    edge_del_cost=lambda a: costs.edge_del,
    edge_ins_cost=lambda a: costs.edge_ins,
  )


def tightness(rng: np.random.Generator, costs: ged.GedCosts) -> np.ndarray:
  """[pairs, 3] of (lower, upper, exact); half text pairs (with the alignment), half digraphs."""
  rows = []
  for k in range(_NUM_PAIRS):
    n, m = rng.integers(0, _MAX_NODES + 1, size=2)
    if k % 2:
      g1, g2 = random_digraph(rng, n), random_digraph(rng, m)
      bounds = ged.ged_bounds(g1, g2, costs)
    else:
      a, b = (''.join(rng.choice(list('abc'), size=s)) for s in (n, m))
      g1, g2 = text_to_graph(a, _SKIP_WINDOW), text_to_graph(b, _SKIP_WINDOW)
      bounds = ged.ged_bounds_texts(a, b, _SKIP_WINDOW, costs)
    rows.append((*bounds, exact_ged(g1, g2, costs)))
  return np.array(rows)


def batch_ms_per_pair(rng: np.random.Generator, costs: ged.GedCosts, repeats: int = 7) -> float:
  """Median wall time per pair of `ged_bounds_batch` on 64 pairs of 64-character texts."""
  alphabet = list('abcdefghij ')
  pairs = [
    (''.join(rng.choice(alphabet, size=64)), ''.join(rng.choice(alphabet, size=64)))
    for _ in range(64)
  ]
  ged.ged_bounds_batch(pairs, _SKIP_WINDOW, costs)  # Compiles the Levenshtein DP.
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    ged.ged_bounds_batch(pairs, _SKIP_WINDOW, costs)
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times) / len(pairs)


def main() -> None:
  rng = np.random.default_rng(0)
  costs = ged.GedCosts()
  lower, upper, exact = tightness(rng, costs).T
  bracket = (lower <= exact + 1e-9) & (exact <= upper + 1e-9)
  print(f'costs: {costs}')
  print(f'random pairs (<= {_MAX_NODES} nodes, half text graphs w={_SKIP_WINDOW}): {len(exact)}')
  print(f'bracket rate: {100 * bracket.mean():.1f}%')
  print(f'upper == exact: {100 * np.isclose(upper, exact).mean():.1f}%')
  print(f'lower == exact: {100 * np.isclose(lower, exact).mean():.1f}%')
  print(f'mean gap (upper - lower): {np.mean(upper - lower):.4f}')
  print(f'mean upper - exact: {np.mean(upper - exact):.4f}  (mean exact: {np.mean(exact):.4f})')
  ms = batch_ms_per_pair(rng, costs)
  print(f'ged_bounds_batch, 64 pairs of 64-node text graphs: {ms:.3f} ms/pair (median of 7)')


if __name__ == '__main__':
  main()
