"""Weisfeiler-Lehman graph similarity and kernel for evaluating predicted text graphs.

Both measures run colour refinement (1-WL) on two labelled directed graphs at once. Colours are
shared by the two graphs: at every iteration the signatures of both graphs go through one
dictionary that numbers them in order of first appearance. That is a perfect compression, so two
nodes get the same colour exactly when their signatures are equal (no ``hash()`` collisions), and
colour histograms of the two graphs can be compared directly.

* :func:`wl_similarity` is the metric of the original system: per-iteration weighted Jaccard
  (min/max) overlap of colour histograms, refining over in- AND out-neighbourhoods so that edge
  direction (reading order of the text) matters.
* :func:`wl_kernel` is the standard normalised WL subtree kernel of Shervashidze et al. (2011),
  using out-neighbourhoods only, which is exactly what ``grakel.kernels.WeisfeilerLehman`` computes
  on a directed graph (see its docstring for the correspondence).

Everything is pure Python/numpy: graphs here are small (one node per character) and a dictionary
relabelling is faster than any array formulation at that size.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Hashable, Sequence

import jraph
import numpy as np

from grapheme_jax import graphs as graphs_lib

# A parsed graph: node labels, in-neighbour lists and out-neighbour lists (node indices).
_Parsed = tuple[list[Hashable], list[list[int]], list[list[int]]]


def _check_iterations(iterations: int) -> None:
  if not isinstance(iterations, (int, np.integer)) or iterations < 0:
    raise ValueError(f'iterations must be an integer >= 0, got {iterations!r}.')


def _num_nodes(graph: jraph.GraphsTuple) -> int:
  n_node = np.asarray(graph.n_node)
  if n_node.shape != (1,):
    raise ValueError(f'expected a single graph (n_node of shape [1]), got n_node={n_node!r}.')
  return int(n_node[0])


def _parse(graph: jraph.GraphsTuple) -> _Parsed:
  """Extracts node labels and adjacency lists from a single ``GraphsTuple``.

  Edges are kept with their multiplicity; edge features are ignored. Vector node features are
  accepted and compared as whole rows.
  """
  n = _num_nodes(graph)
  nodes = np.asarray(graph.nodes)[:n]
  labels = nodes.tolist() if nodes.ndim == 1 else [tuple(row) for row in nodes.tolist()]
  senders = np.asarray(graph.senders).tolist()
  receivers = np.asarray(graph.receivers).tolist()
  ins: list[list[int]] = [[] for _ in range(n)]
  outs: list[list[int]] = [[] for _ in range(n)]
  for s, r in zip(senders, receivers):
    if not (0 <= s < n and 0 <= r < n):
      raise ValueError(f'edge {s} -> {r} refers to a node outside 0..{n - 1}.')
    outs[s].append(r)
    ins[r].append(s)
  return labels, ins, outs


def _refine_once(
  colours: list[Hashable],
  ins: list[list[int]],
  outs: list[list[int]],
  use_in: bool,
  table: dict[tuple, int],
) -> list[int]:
  """One WL step; ``table`` is shared by all graphs of the comparison so colours are comparable."""
  new_colours = []
  for v, colour in enumerate(colours):
    out_sig = tuple(sorted([colours[u] for u in outs[v]]))
    if use_in:
      # In- and out-multisets stay separate: merging them would make 'ab' and 'ba' look alike.
      signature = (colour, tuple(sorted([colours[u] for u in ins[v]])), out_sig)
    else:
      signature = (colour, out_sig)
    new_colours.append(table.setdefault(signature, len(table)))
  return new_colours


def _colour_histograms(
  graphs: Sequence[jraph.GraphsTuple], iterations: int, use_in: bool
) -> list[list[collections.Counter]]:
  """Colour histograms ``result[t][i]`` of graph ``i`` after ``t`` refinement steps, t = 0..h.

  Args:
    graphs: single graphs refined jointly (shared colour dictionary per iteration).
    iterations: number ``h`` of refinement steps; ``h + 1`` histograms per graph are returned.
    use_in: refine over (in-multiset, out-multiset) if True, over the out-multiset only if False.
  """
  _check_iterations(iterations)
  parsed = [_parse(g) for g in graphs]
  # Iteration 0 uses the raw node labels: every graph shares the same label space already.
  colours = [labels for labels, _, _ in parsed]
  histograms = [[collections.Counter(c) for c in colours]]
  for _ in range(iterations):
    table: dict[tuple, int] = {}
    colours = [
      _refine_once(c, ins, outs, use_in, table) for c, (_, ins, outs) in zip(colours, parsed)
    ]
    histograms.append([collections.Counter(c) for c in colours])
  return histograms


def _empty_case(g1: jraph.GraphsTuple, g2: jraph.GraphsTuple) -> float | None:
  """1.0 if both graphs are empty, 0.0 if exactly one is, None if neither is."""
  empty1, empty2 = _num_nodes(g1) == 0, _num_nodes(g2) == 0
  if empty1 or empty2:
    return float(empty1 and empty2)
  return None


def wl_similarity(g1: jraph.GraphsTuple, g2: jraph.GraphsTuple, iterations: int = 3) -> float:
  """Weighted WL histogram overlap of two directed labelled graphs (the original system's metric).

  A node's colour at step ``t + 1`` is the shared-dictionary index of the triple (its colour, sorted
  multiset of its in-neighbours' colours, sorted multiset of its out-neighbours' colours), so edge
  direction matters. With histograms ``h1``, ``h2`` of the colours at step ``t``::

    s_t = sum_c min(h1(c), h2(c)) / sum_c max(h1(c), h2(c))
    result = sum_t w_t s_t / sum_t w_t,   w_t = 1 / (1 + t),   t = 0..iterations.

  Args:
    g1: a single graph with hashable (integer) node labels in ``nodes``.
    g2: another single graph, same label space.
    iterations: number of refinement steps ``h``; 0 compares label histograms only.

  Returns:
    A value in [0, 1]; 1.0 for isomorphic graphs (and for two empty graphs), 0.0 if exactly one
    graph is empty.

  Raises:
    ValueError: if ``iterations < 0`` or an input is not a single graph.
  """
  _check_iterations(iterations)
  empty = _empty_case(g1, g2)
  if empty is not None:
    return empty
  total, weights = 0.0, 0.0
  for t, (h1, h2) in enumerate(_colour_histograms([g1, g2], iterations, use_in=True)):
    # Colours missing from one histogram contribute min = 0 and max = the other count.
    shared = sum(min(count, h2[c]) for c, count in h1.items())
    union = sum(h1.values()) + sum(h2.values()) - shared
    weight = 1.0 / (1 + t)
    total += weight * shared / union
    weights += weight
  return total / weights


def wl_kernel(g1: jraph.GraphsTuple, g2: jraph.GraphsTuple, iterations: int = 3) -> float:
  """Normalised Weisfeiler-Lehman subtree kernel (Shervashidze et al., 2011).

  ``k(a, b) = sum_{t=0..h} <phi_t(a), phi_t(b)>`` where ``phi_t`` is the colour-count histogram
  after ``t`` refinement steps (colours shared by the two graphs), and the result is
  ``k(g1, g2) / sqrt(k(g1, g1) k(g2, g2))``.

  The neighbourhood is the OUT-neighbourhood: a node's next colour is the shared-dictionary index
  of (its colour, sorted multiset of the colours of the receivers of its outgoing edges). This is
  what grakel does on a directed graph: it refines over ``edge_dictionary[v]``, and an adjacency
  matrix ``A`` with ``A[s, r] = 1`` per edge ``s -> r`` gives ``edge_dictionary[s] = {r: 1, ...}``.
  ``iterations = h`` matches ``grakel.kernels.WeisfeilerLehman(n_iter=h, normalize=True,
  base_graph_kernel=VertexHistogram)``, which also sums the ``h + 1`` histograms t = 0..h (grakel
  requires ``n_iter >= 1``; ``iterations = 0`` here is the normalised vertex-label histogram
  kernel). Edges count with multiplicity here, whereas grakel's adjacency collapses parallel edges;
  the two agree on simple graphs (text graphs are simple).

  Args:
    g1: a single graph with hashable (integer) node labels in ``nodes``.
    g2: another single graph, same label space.
    iterations: number of refinement steps ``h``.

  Returns:
    A value in [0, 1]: 1.0 for isomorphic graphs and, by convention, for two empty graphs (grakel
    would give 0/0 -> 0); 0.0 if exactly one graph is empty.

  Raises:
    ValueError: if ``iterations < 0`` or an input is not a single graph.
  """
  _check_iterations(iterations)
  empty = _empty_case(g1, g2)
  if empty is not None:
    return empty
  k11 = k22 = k12 = 0
  for h1, h2 in _colour_histograms([g1, g2], iterations, use_in=False):
    k11 += sum(count * count for count in h1.values())
    k22 += sum(count * count for count in h2.values())
    k12 += sum(count * h2[c] for c, count in h1.items())
  # Integer sums until here, so the kernel is exactly symmetric.
  return k12 / math.sqrt(k11 * k22)


def wl_similarity_texts(
  predictions: Sequence[str],
  targets: Sequence[str],
  skip_window: int,
  iterations: int = 3,
) -> list[float]:
  """:func:`wl_similarity` of the text graphs of each (prediction, target) pair.

  Args:
    predictions: predicted strings.
    targets: reference strings, as many as ``predictions``.
    skip_window: edge window passed to :func:`grapheme_jax.graphs.text_to_graph`.
    iterations: number of WL refinement steps.

  Returns:
    One similarity in [0, 1] per pair.

  Raises:
    ValueError: if the two sequences differ in length or ``iterations < 0``.
  """
  if len(predictions) != len(targets):
    raise ValueError(f'got {len(predictions)} predictions but {len(targets)} targets.')
  _check_iterations(iterations)
  return [
    wl_similarity(
      graphs_lib.text_to_graph(p, skip_window), graphs_lib.text_to_graph(t, skip_window), iterations
    )
    for p, t in zip(predictions, targets)
  ]
