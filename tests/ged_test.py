"""Tests for grapheme_jax.ged: hand values, validity against exact networkx GED, symmetry."""

import functools
import itertools

import jraph
import ml_collections
import numpy as np
import pytest

from experiments.ged_report import exact_ged as _exact_ged
from experiments.ged_report import random_digraph as _random_digraph
from grapheme_jax import ged
from grapheme_jax.graphs import text_to_graph

_TOL = 1e-9
# Non-default costs exercise asymmetric branches (ins != del). networkx's search is only exact when
# node_sub <= node_ins + node_del (it returned 8.75 on a pair whose optimal path costs 7.75 with
# node_sub=2.5, node_ins=1, node_del=0.75), so costs beyond that are checked by enumeration.
_COSTS = (
  ged.GedCosts(),
  ged.GedCosts(node_sub=1.5, node_ins=1.0, node_del=0.75, edge_ins=0.25, edge_del=1.5),
  ged.GedCosts(node_sub=0.5, node_ins=2.0, node_del=1.0, edge_ins=1.0, edge_del=0.0),
)
_EXPENSIVE_SUB = ged.GedCosts(
  node_sub=2.5, node_ins=1.0, node_del=0.75, edge_ins=0.25, edge_del=1.5
)


def _random_text(rng: np.random.Generator, n: int) -> str:
  return ''.join(rng.choice(list('abc'), size=n))


def _enumerated_ged(g1: jraph.GraphsTuple, g2: jraph.GraphsTuple, costs: ged.GedCosts) -> float:
  """Exact GED as the cheapest induced path over all node mappings (every path is dominated)."""
  n, m = len(g1.nodes), len(g2.nodes)
  best = np.inf
  for k in range(min(n, m) + 1):
    for sources in itertools.combinations(range(n), k):
      for targets in itertools.permutations(range(m), k):
        mapping = np.full((n,), -1)
        mapping[list(sources)] = targets
        best = min(best, ged.induced_cost(g1, g2, mapping, costs))
  return best


def _sizes(rng: np.random.Generator, count: int) -> list[tuple[int, int]]:
  """Mostly <= 5 nodes per graph (exact GED is exponential), and a few of 7 to 9 nodes."""
  sizes = [tuple(rng.integers(0, 6, size=2)) for _ in range(count - 6)]
  return sizes + [tuple(rng.integers(7, 10, size=2)) for _ in range(6)]


@functools.cache
def _oracle_cases() -> list[tuple[str, object, object, ged.GedCosts, float]]:
  """(kind, g1 or text, g2 or text, costs, exact GED) on 520 seeded random pairs."""
  rng = np.random.default_rng(1234)
  cases = []
  for k, (n, m) in enumerate(_sizes(rng, 260)):
    costs = _COSTS[k % len(_COSTS)]
    g1, g2 = _random_digraph(rng, n), _random_digraph(rng, m)
    cases.append(('graph', g1, g2, costs, _exact_ged(g1, g2, costs)))
  for k, (n, m) in enumerate(_sizes(rng, 260)):
    costs, window = _COSTS[k % len(_COSTS)], int(rng.integers(1, 4))
    a, b = _random_text(rng, n), _random_text(rng, m)
    exact = _exact_ged(text_to_graph(a, window), text_to_graph(b, window), costs)
    cases.append(('text', (a, window), (b, window), costs, exact))
  return cases


def test_hand_values():
  assert ged.ged_bounds(text_to_graph('hello'), text_to_graph('hello')) == (0.0, 0.0)
  assert ged.ged_bounds(text_to_graph(''), text_to_graph('')) == (0.0, 0.0)
  # 3 inserted nodes and 3 inserted edges (0->1, 1->2, 0->2).
  assert ged.ged_bounds(text_to_graph('', 2), text_to_graph('abc', 2)) == (4.5, 4.5)
  assert ged.ged_bounds_texts('', 'abc', 2) == (4.5, 4.5)
  assert ged.ged_bounds(text_to_graph('ab', 2), text_to_graph('ac', 2)) == (1.0, 1.0)
  assert ged.ged_bounds_texts('ab', 'ac', 2) == (1.0, 1.0)


def test_bounds_bracket_exact_ged():
  cases = _oracle_cases()
  assert len(cases) >= 500
  for kind, x, y, costs, exact in cases:
    if kind == 'graph':
      lower, upper = ged.ged_bounds(x, y, costs)
    else:
      (a, window), (b, _) = x, y
      lower, upper = ged.ged_bounds(text_to_graph(a, window), text_to_graph(b, window), costs)
      text_lower, text_upper = ged.ged_bounds_texts(a, b, window, costs)
      assert text_lower <= exact + _TOL <= text_upper + 2 * _TOL, (a, b, window, costs, exact)
      assert text_upper <= upper + _TOL
    assert lower <= exact + _TOL <= upper + 2 * _TOL, (kind, x, y, costs, exact, lower, upper)


def test_bounds_bracket_enumerated_ged_expensive_substitution():
  rng = np.random.default_rng(99)
  for k in range(60):
    n, m = rng.integers(0, 5, size=2)
    if k % 2:
      g1, g2 = _random_digraph(rng, n), _random_digraph(rng, m)
    else:
      g1, g2 = text_to_graph(_random_text(rng, n), 2), text_to_graph(_random_text(rng, m), 2)
    exact = _enumerated_ged(g1, g2, _EXPENSIVE_SUB)
    lower, upper = ged.ged_bounds(g1, g2, _EXPENSIVE_SUB)
    assert lower <= exact + _TOL <= upper + 2 * _TOL, (g1, g2, exact, lower, upper)


def test_networkx_oracle_agrees_with_enumeration():
  rng = np.random.default_rng(5)
  for k in range(20):
    g1, g2 = _random_digraph(rng, 4), _random_digraph(rng, rng.integers(2, 5))
    costs = _COSTS[k % len(_COSTS)]
    assert _exact_ged(g1, g2, costs) == pytest.approx(_enumerated_ged(g1, g2, costs))


def test_batch_matches_single():
  rng = np.random.default_rng(7)
  pairs = [
    (_random_text(rng, rng.integers(0, 12)), _random_text(rng, rng.integers(0, 12)))
    for _ in range(20)
  ]
  batch = ged.ged_bounds_batch(pairs, 2, _COSTS[1])
  assert batch.shape == (20, 2)
  expected = [ged.ged_bounds_texts(a, b, 2, _COSTS[1]) for a, b in pairs]
  np.testing.assert_allclose(batch, expected)
  assert ged.ged_bounds_batch([], 2).shape == (0, 2)


def test_zero_on_identical_and_symmetric():
  rng = np.random.default_rng(3)
  symmetric = ged.GedCosts(node_sub=1.5, node_ins=0.7, node_del=0.7, edge_ins=0.3, edge_del=0.3)
  for _ in range(100):
    g1, g2 = _random_digraph(rng, rng.integers(0, 12)), _random_digraph(rng, rng.integers(0, 12))
    assert ged.ged_bounds(g1, g1, symmetric) == (0.0, 0.0)
    np.testing.assert_allclose(ged.ged_bounds(g1, g2, symmetric), ged.ged_bounds(g2, g1, symmetric))
    a, b = _random_text(rng, rng.integers(0, 20)), _random_text(rng, rng.integers(0, 20))
    assert ged.ged_bounds_texts(a, a, 2, symmetric) == (0.0, 0.0)
    np.testing.assert_allclose(
      ged.ged_bounds_texts(a, b, 3, symmetric), ged.ged_bounds_texts(b, a, 3, symmetric)
    )
    # Asymmetric costs: reversing the graphs is the same as swapping insertion and deletion.
    costs = _COSTS[1]
    np.testing.assert_allclose(
      ged.ged_bounds(g1, g2, costs), ged.ged_bounds(g2, g1, costs.swapped())
    )


def test_induced_cost_of_alignment():
  g1, g2 = text_to_graph('abc', 1), text_to_graph('xbc', 1)
  assert ged.induced_cost(g1, g2, np.array([0, 1, 2])) == 1.0
  # Deleting 'a' and inserting 'x' also drops and re-adds the edge a->b / x->b.
  assert ged.induced_cost(g1, g2, np.array([-1, 1, 2])) == 1.0 + 1.0 + 0.5 + 0.5


def test_costs_validation_and_config():
  with pytest.raises(ValueError, match='node_del'):
    ged.GedCosts(node_del=-1.0)
  with pytest.raises(ValueError, match='edge_ins'):
    ged.GedCosts(edge_ins=float('nan'))
  section = ml_collections.ConfigDict(
    dict(node_sub=2.0, node_ins=3.0, node_del=4.0, edge_ins=0.25, edge_del=0.75)
  )
  expected = ged.GedCosts(2.0, 3.0, 4.0, 0.25, 0.75)
  assert ged.GedCosts.from_config(section) == expected
  assert ged.GedCosts.from_config(ml_collections.ConfigDict({'ged_costs': section})) == expected
