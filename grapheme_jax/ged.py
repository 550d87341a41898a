"""Lower and upper bounds on the graph edit distance (GED) of node-labelled directed graphs.

Exact GED is NP-hard, so monitors report a bracket ``lower <= GED <= upper`` (numpy + scipy only).
Graphs are single ``jraph.GraphsTuple`` s with integer node labels ``graph.nodes`` [n] and directed
unlabelled edges ``senders -> receivers`` (``graph.edges`` features are ignored; parallel edges
are merged). Edit costs are given by :class:`GedCosts`: substituting a node costs ``node_sub``
only when the labels differ, and edge substitution is free because edges carry no labels.

* Upper bound: the bipartite approximation of Riesen & Bunke (2009), "Approximate graph edit
  distance computation by means of bipartite graph matching": one linear sum assignment (LSA) over
  an ``(n + m) x (n + m)`` matrix of node costs plus optimal local edge costs, followed by the exact
  cost of the complete edit path induced by the resulting node mapping. Any node mapping induces a
  valid edit path, so its cost is a true upper bound; we take the minimum over a few candidate
  mappings (both directions and the index-order mapping; for text graphs also the Levenshtein
  alignment).
* Lower bound: the max of a label-multiset + edge-count bound and the BRANCH bound of Blumenthal &
  Gamper (2018), "Improved lower bounds for graph edit distance", IEEE TKDE 30(3), which is the
  optimum of the same LSA with every local edge cost halved.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jraph
import numpy as np
from scipy.optimize import linear_sum_assignment

from grapheme_jax import edits as edits_lib
from grapheme_jax import graphs as graphs_lib

_COST_KEYS = ('node_sub', 'node_ins', 'node_del', 'edge_ins', 'edge_del')


@dataclasses.dataclass(frozen=True)
class GedCosts:
  """Edit costs; node substitution costs ``node_sub`` only between different labels.

  Attributes:
    node_sub: cost of relabelling a node (0 when the labels are equal).
    node_ins: cost of inserting a node.
    node_del: cost of deleting a node.
    edge_ins: cost of inserting an edge.
    edge_del: cost of deleting an edge.
  """

  node_sub: float = 1.0
  node_ins: float = 1.0
  node_del: float = 1.0
  edge_ins: float = 0.5
  edge_del: float = 0.5

  def __post_init__(self):
    for key in _COST_KEYS:
      value = getattr(self, key)
      if not np.isfinite(value) or value < 0:
        raise ValueError(f'GedCosts.{key}={value!r} must be finite and >= 0.')

  @classmethod
  def from_config(cls, section: Mapping[str, Any]) -> GedCosts:
    """Reads the five costs from a ConfigDict (``config.metrics.ged_costs`` or its parent)."""
    if 'ged_costs' in section:
      section = section['ged_costs']
    return cls(**{key: float(section[key]) for key in _COST_KEYS})

  def swapped(self) -> GedCosts:
    """Costs of the reverse direction: deleting in one direction is inserting in the other."""
    return dataclasses.replace(
      self,
      node_ins=self.node_del,
      node_del=self.node_ins,
      edge_ins=self.edge_del,
      edge_del=self.edge_ins,
    )


class _Graph(NamedTuple):
  """Dense view of a single graph: labels [n], adjacency [n + 1, n + 1] bool, degrees [n]."""

  labels: np.ndarray
  # One extra all-False row/column so that unmapped nodes (index -1) hit no edge.
  adj: np.ndarray
  out_deg: np.ndarray
  in_deg: np.ndarray

  @property
  def num_edges(self) -> int:
    return int(self.out_deg.sum())


def _as_graph(graph: jraph.GraphsTuple) -> _Graph:
  """Converts a single GraphsTuple to a dense `_Graph`, merging parallel edges."""
  labels = np.asarray(graph.nodes)
  if labels.ndim != 1:
    raise ValueError(f'GED expects integer node labels of shape [n], got {labels.shape}.')
  n = labels.shape[0]
  adj = np.zeros((n + 1, n + 1), bool)
  adj[np.asarray(graph.senders, np.int64), np.asarray(graph.receivers, np.int64)] = True
  return _Graph(labels, adj, adj[:n, :n].sum(1), adj[:n, :n].sum(0))


def _edge_diff_cost(d1: np.ndarray, d2: np.ndarray, costs: GedCosts) -> np.ndarray:
  """Cheapest matching of d1[i] unlabelled edges to d2[j] ones: the excess is deleted or added."""
  diff = d1[:, None] - d2[None, :]
  return np.where(diff > 0, diff * costs.edge_del, -diff * costs.edge_ins)


def _assignment_matrix(g1: _Graph, g2: _Graph, costs: GedCosts, edge_scale: float) -> np.ndarray:
  """The Riesen-Bunke ``(n + m) x (n + m)`` matrix; local edge costs are scaled by `edge_scale`.

  `edge_scale` is 1 for the upper bound and 1/2 for the BRANCH lower bound (each edge is seen from
  both of its endpoints, so halving charges every edge edit exactly once in total).
  """
  n, m = len(g1.labels), len(g2.labels)
  local = _edge_diff_cost(g1.out_deg, g2.out_deg, costs) + _edge_diff_cost(
    g1.in_deg, g2.in_deg, costs
  )
  sub = np.where(g1.labels[:, None] != g2.labels[None, :], costs.node_sub, 0.0)
  sub = sub + edge_scale * local
  dele = costs.node_del + edge_scale * costs.edge_del * (g1.out_deg + g1.in_deg)
  ins = costs.node_ins + edge_scale * costs.edge_ins * (g2.out_deg + g2.in_deg)
  # Larger than any complete assignment that avoids it, so the solver never picks it, while
  # staying finite (scipy rejects infeasible matrices).
  big = 1.0 + dele.sum() + ins.sum()
  matrix = np.zeros((n + m, n + m))
  matrix[:n, :m] = sub
  matrix[:n, m:] = big
  matrix[n:, :m] = big
  matrix[np.arange(n), m + np.arange(n)] = dele
  matrix[n + np.arange(m), np.arange(m)] = ins
  return matrix


def _solve(matrix: np.ndarray, n: int, m: int) -> tuple[float, np.ndarray]:
  """LSA optimum value and the node mapping it encodes ([n], target index or -1 for deletion)."""
  rows, cols = linear_sum_assignment(matrix)
  mapping = np.full((n,), -1, np.int64)
  real = (rows < n) & (cols < m)
  mapping[rows[real]] = cols[real]
  return float(matrix[rows, cols].sum()), mapping


def _induced_cost(g1: _Graph, g2: _Graph, mapping: np.ndarray, costs: GedCosts) -> float:
  """Exact cost of the complete edit path induced by a node mapping from g1 to g2.

  Shared by every upper bound in this module.

  Args:
    g1: source graph.
    g2: target graph.
    mapping: [n] int, the g2 node each g1 node becomes, or -1 for deletion; injective on the
      mapped nodes. g2 nodes not hit are inserted.
    costs: edit costs.

  Returns:
    Node costs of the mapping, plus ``edge_del`` for every g1 edge whose image is not a g2 edge
    and ``edge_ins`` for every g2 edge not covered by an image.
  """
  n, m = len(g1.labels), len(g2.labels)
  mapped = mapping >= 0
  num_mapped = int(mapped.sum())
  relabelled = int((g1.labels[mapped] != g2.labels[mapping[mapped]]).sum())
  node_cost = (
    relabelled * costs.node_sub
    + (n - num_mapped) * costs.node_del
    + (m - num_mapped) * costs.node_ins
  )
  # Index -1 selects g2's padding row/column, which holds no edge.
  image = g2.adj[np.ix_(mapping, mapping)]
  kept = int((g1.adj[:n, :n] & image).sum())
  edge_cost = (g1.num_edges - kept) * costs.edge_del + (g2.num_edges - kept) * costs.edge_ins
  return float(node_cost + edge_cost)


def _label_count_bound(g1: _Graph, g2: _Graph, costs: GedCosts) -> float:
  """Lower bound from label multisets and edge counts alone.

  A path that maps k node pairs, q of them with equal labels (q <= min(k, common)), costs
  ``(k - q) * sub + (n - k) * del + (m - k) * ins`` on nodes. For k <= common it decreases in k, and
  for k >= common it is linear in k, so the minimum is at k = common or k = min(n, m). Edges are
  unlabelled, so at least |e1 - e2| of them are deleted or inserted.
  """
  n, m = len(g1.labels), len(g2.labels)
  labels1, counts1 = np.unique(g1.labels, return_counts=True)
  labels2, counts2 = np.unique(g2.labels, return_counts=True)
  _, idx1, idx2 = np.intersect1d(labels1, labels2, assume_unique=True, return_indices=True)
  common = int(np.minimum(counts1[idx1], counts2[idx2]).sum())
  extra = min(n, m) - common
  node = (n - common) * costs.node_del + (m - common) * costs.node_ins
  node += extra * min(0.0, costs.node_sub - costs.node_del - costs.node_ins)
  e1, e2 = g1.num_edges, g2.num_edges
  edge = (e1 - e2) * costs.edge_del if e1 > e2 else (e2 - e1) * costs.edge_ins
  return float(node + edge)


def _bounds(
  g1: _Graph,
  g2: _Graph,
  costs: GedCosts,
  forward_mappings: Sequence[np.ndarray] = (),
  backward_mappings: Sequence[np.ndarray] = (),
) -> tuple[float, float]:
  """(lower, upper) for dense graphs, given extra g1 -> g2 and g2 -> g1 upper-bound candidates."""
  n, m = len(g1.labels), len(g2.labels)
  # BRANCH lower bound (Blumenthal & Gamper 2018): halved local edge costs make the LSA optimum a
  # lower bound on the cost of every node mapping, hence on GED.
  branch, _ = _solve(_assignment_matrix(g1, g2, costs, 0.5), n, m)
  lower = max(_label_count_bound(g1, g2, costs), branch)
  _, forward = _solve(_assignment_matrix(g1, g2, costs, 1.0), n, m)
  # Solving the reverse problem too makes the result symmetric: LSA ties may otherwise pick
  # mappings of different induced cost in the two directions.
  swapped = costs.swapped()
  _, backward = _solve(_assignment_matrix(g2, g1, swapped, 1.0), m, n)
  # The index-order mapping costs 0 on identical graphs, where LSA ties between automorphic nodes
  # could otherwise give a positive upper bound.
  k = min(n, m)
  identity = np.concatenate([np.arange(k), np.full((n - k,), -1)]).astype(np.int64)
  upper = min(_induced_cost(g1, g2, p, costs) for p in [forward, identity, *forward_mappings])
  # A g2 -> g1 path under swapped costs, reversed, is a g1 -> g2 path of the same cost.
  for p in [backward, *backward_mappings]:
    upper = min(upper, _induced_cost(g2, g1, p, swapped))
  # Guard against rounding in the LSA sums for non-dyadic costs; both stay valid bounds.
  return min(lower, upper), upper


def ged_bounds(
  g1: jraph.GraphsTuple, g2: jraph.GraphsTuple, costs: GedCosts | None = None
) -> tuple[float, float]:
  """Lower and upper bounds on the edit distance from `g1` to `g2`.

  Both are 0 on identical graphs, and swapping the graphs gives the same bounds when the costs
  are symmetric (``node_ins == node_del`` and ``edge_ins == edge_del``).

  Args:
    g1: single source graph with integer node labels [n].
    g2: single target graph with integer node labels [m].
    costs: edit costs; defaults to `GedCosts()`.

  Returns:
    ``(lower, upper)``: lower is the max of the label-count and BRANCH bounds, upper the cheapest
    edit path induced by the bipartite (Riesen-Bunke) assignments.
  """
  costs = costs or GedCosts()
  return _bounds(_as_graph(g1), _as_graph(g2), costs)


def induced_cost(
  g1: jraph.GraphsTuple, g2: jraph.GraphsTuple, mapping: np.ndarray, costs: GedCosts | None = None
) -> float:
  """Cost of the edit path induced by `mapping` ([n], g2 node or -1); an upper bound on GED."""
  mapping = np.asarray(mapping, np.int64)
  return _induced_cost(_as_graph(g1), _as_graph(g2), mapping, costs or GedCosts())


def alignment_mapping(edits: edits_lib.Edits) -> np.ndarray:
  """Node mapping source i -> target j (-1 for deleted) encoded by Levenshtein edit labels."""
  mapping = np.full((len(edits.ops),), -1, np.int64)
  j = len(edits.insertions[0])
  for i, op in enumerate(edits.ops):
    if op != edits_lib.DELETE:
      mapping[i] = j
      j += 1
    j += len(edits.insertions[i + 1])
  return mapping


def _text_bounds(
  a: str,
  b: str,
  skip_window: int,
  costs: GedCosts,
  edits: edits_lib.Edits,
  reverse: edits_lib.Edits,
) -> tuple[float, float]:
  """Bounds for text graphs; `edits` align `a` to `b` and `reverse` align `b` to `a`."""
  g1 = _as_graph(graphs_lib.text_to_graph(a, skip_window))
  g2 = _as_graph(graphs_lib.text_to_graph(b, skip_window))
  # Both alignment directions: their tie-breaking differs, and using both keeps the bounds
  # symmetric.
  return _bounds(g1, g2, costs, [alignment_mapping(edits)], [alignment_mapping(reverse)])


def ged_bounds_texts(
  a: str, b: str, skip_window: int, costs: GedCosts | None = None
) -> tuple[float, float]:
  """GED bounds between the text graphs of `a` and `b` (see `graphs.text_to_graph`).

  The upper bound is the minimum of the bipartite upper bound of `ged_bounds` and the cost of the
  edit paths induced by the Levenshtein alignments (`edits.levenshtein_edits`) of `a` to `b` and of
  `b` to `a`, which are usually much tighter on text; the lower bound is that of `ged_bounds`.

  Args:
    a: source text.
    b: target text.
    skip_window: edge window of the text graphs.
    costs: edit costs; defaults to `GedCosts()`.

  Returns:
    ``(lower, upper)``.
  """
  return tuple(ged_bounds_batch([(a, b)], skip_window, costs)[0].tolist())


def ged_bounds_batch(
  pairs: Sequence[tuple[str, str]], skip_window: int, costs: GedCosts | None = None
) -> np.ndarray:
  """`ged_bounds_texts` for many (source, target) pairs; the alignments run in one batched call.

  Returns:
    [N, 2] float64 array of ``(lower, upper)`` per pair.
  """
  costs = costs or GedCosts()
  n = len(pairs)
  all_edits = edits_lib.levenshtein_edits_batch(list(pairs) + [(b, a) for a, b in pairs])
  out = np.zeros((n, 2))
  for row, (a, b) in enumerate(pairs):
    out[row] = _text_bounds(a, b, skip_window, costs, all_edits[row], all_edits[n + row])
  return out
