"""Laws of the losses: the structural loss (losses.structural and friends) and the mode mix."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import labelled_examples, tiny_config
from scipy.optimize import linear_sum_assignment

from grapheme_jax import alignment, config_lib, graphs, input_pipeline, losses, soft_graph

DEFAULTS = {k: config_lib.base_config().loss[k] for k in config_lib.STRUCTURAL_KEYS}
# Traced weights of losses.structural for tests that call it directly.
WEIGHTS = {
  'alpha': 1.0,
  'beta': 0.5,
  'gamma': 2.0,
  'insert_cost': 3.0,
  'alignment_temperature': 1.0,
  'alignment_prior': 0.0,
}
IGNORE = losses.IGNORE
# The node pricings under test: the two of matching='transport', and matching='assignment'.
VARIANTS = ['mismatch', 'likelihood', 'assignment']


def _variant(name):
  if name == 'assignment':
    return {'node_cost': 'likelihood', 'matching': 'assignment'}
  return {'node_cost': name}


def _hard(texts, length=16, window=2):
  codes, lengths = graphs.encode(texts, length)
  return soft_graph.text_graphs(jnp.asarray(codes), jnp.asarray(lengths), window)


def _costs(pred, target, target_ids=None, **overrides):
  settings = {**DEFAULTS, **overrides}
  if target_ids is None:
    target_ids = jnp.full(target.mass.shape, IGNORE)
  return losses.structural_costs(pred, target, target_ids, **settings)


def _random_texts(rng, count, max_length=16):
  alphabets = ['ab', '0123456789+-*() ', 'héllo wörld', '日本語テキスト', 'xyz\u0301\U0001f600']
  texts = []
  for _ in range(count):
    alphabet = alphabets[rng.integers(len(alphabets))]
    texts.append(''.join(rng.choice(list(alphabet), rng.integers(0, max_length + 1))))
  return texts


def _total(costs, lengths, alpha=1.0, beta=0.5, gamma=2.0):
  total = alpha * costs['node'] + beta * costs['edge'] + gamma * costs['clique']
  return np.asarray(total) / np.maximum(np.asarray(lengths), 1)


@pytest.mark.parametrize('node_cost', VARIANTS)
def test_identical_graphs_cost_nothing_at_the_defaults(node_cost):
  assert losses.structural_loss_texts('Hello', 'Hello', **_variant(node_cost))['total'] <= 1e-3
  texts = _random_texts(np.random.default_rng(0), 200)
  texts[:3] = ['', 'abababababababab', '(+ 11 11)']
  graphs_ = _hard(texts)
  totals = _total(_costs(graphs_, graphs_, **_variant(node_cost)), [len(t) for t in texts])
  assert np.all(totals <= 1e-3), (totals.max(), texts[int(totals.argmax())])


@pytest.mark.parametrize('node_cost', VARIANTS)
def test_closer_texts_cost_less_and_costs_are_non_negative(node_cost):
  near = losses.structural_loss_texts('hello', 'hallo', **_variant(node_cost))
  far = losses.structural_loss_texts('hello', 'world', **_variant(node_cost))
  assert near['total'] < far['total']
  assert set(near) == {'node', 'edge', 'clique', 'total'}
  rng = np.random.default_rng(1)
  for _ in range(3):
    pred, target, ids = _random_soft_problem(rng)
    for temperature in (1.0, 0.1, 1e-3):
      costs = _costs(pred, target, ids, temperature=temperature, **_variant(node_cost))
      for key in ('node', 'edge', 'clique'):
        assert np.all(np.asarray(costs[key]) >= 0), key


def test_empty_texts():
  assert losses.structural_loss_texts('', '')['total'] == 0.0
  # Three insertions, three missing edges, and the one missing triangle.
  out = losses.structural_loss_texts('', 'abc', node_cost='mismatch')
  np.testing.assert_allclose([out['node'], out['edge']], [1.0, 1.0], atol=1e-4)
  with pytest.raises(TypeError, match='Unknown setting'):
    losses.structural_loss_texts('a', 'b', alpah=1.0)


def _random_soft_problem(rng, b=2, length=4, k=2, v=3, dtype=np.float32):
  outputs = {
    'op_logits': rng.normal(size=(b, length, 3)).astype(dtype),
    'char_logits': rng.normal(size=(b, length, v)).astype(dtype),
    'ins_logits': (rng.normal(size=(b, length + 1, k, v + 1)) + np.r_[np.zeros(v), 1.0]).astype(
      dtype
    ),
  }
  sources = ['abca', 'ba'][:b]
  targets = ['abc', 'cab'][:b]
  s_codes, s_len = graphs.encode(sources, length)
  t_codes, t_len = graphs.encode(targets, length)
  pred = soft_graph.predicted_graphs(outputs, jnp.asarray(s_codes), jnp.asarray(s_len), 2)
  target = soft_graph.text_graphs(jnp.asarray(t_codes), jnp.asarray(t_len), 2)
  ids = jnp.asarray(np.where(t_codes >= 0, t_codes - ord('a'), IGNORE))  # vocab = 'abc'.
  return pred, target, ids


def _permute(graph, perm):
  p = jnp.asarray(perm)
  return soft_graph.SoftGraph(
    mass=graph.mass[:, p],
    keep_prob=graph.keep_prob[:, p],
    keep_code=graph.keep_code[:, p],
    char_probs=graph.char_probs[:, p],
    rank=graph.rank[:, p],
    adjacency=graph.adjacency[:, p][:, :, p],
    cliques=graph.cliques[:, p][:, :, p],
    joint=graph.joint[:, p][:, :, p],
  )


@pytest.mark.parametrize('node_cost', VARIANTS)
def test_invariant_to_the_order_of_nodes_within_a_graph(node_cost):
  rng = np.random.default_rng(2)
  pred, target, ids = _random_soft_problem(rng)
  base = _costs(pred, target, ids, **_variant(node_cost))
  pred_perm = rng.permutation(pred.mass.shape[1])
  target_perm = rng.permutation(target.mass.shape[1])
  moved = _costs(
    _permute(pred, pred_perm),
    _permute(target, target_perm),
    ids[:, target_perm],
    **_variant(node_cost),
  )
  for key in ('node', 'edge', 'clique'):
    np.testing.assert_allclose(moved[key], base[key], rtol=1e-4, atol=1e-6)


def _augmented_assignment(pred: str, target: str) -> float:
  """Riesen-Bunke's (n + m) x (n + m) assignment with unit node costs, solved exactly."""
  n, m = len(pred), len(target)
  big = 1e6
  cost = np.zeros((n + m, n + m))
  cost[:n, :m] = np.array([[float(a != b) for b in target] for a in pred]).reshape(n, m)
  cost[:n, m:] = np.where(np.eye(n), 1.0, big)
  cost[n:, :m] = np.where(np.eye(m), 1.0, big)
  rows, cols = linear_sum_assignment(cost)
  return float(cost[rows, cols].sum())


def test_node_term_tends_to_the_optimal_assignment_as_temperature_vanishes():
  rng = np.random.default_rng(3)
  preds = _random_texts(rng, 24, 10)
  targets = _random_texts(rng, 24, 10)
  exact = np.array([_augmented_assignment(p, t) for p, t in zip(preds, targets)])
  errors = []
  for temperature in (0.1, 0.03, 0.01):
    costs = _costs(
      _hard(preds),
      _hard(targets),
      node_cost='mismatch',
      beta=0.0,
      gamma=0.0,
      temperature=temperature,
      sinkhorn_iterations=3000,
    )
    errors.append(np.abs(np.asarray(costs['node']) - exact).max())
  # The entropic bias shrinks with the temperature down to float32 rounding of the sums.
  assert errors[2] < 2e-3, errors
  assert errors[0] + 1e-3 >= errors[1] >= errors[2] - 1e-3, errors


def _loss_fn(outputs, batch, weights, spec):
  return losses.structural(outputs, batch, weights, spec)[0]


def _batch(sources, targets, length, vocab='abc'):
  s_codes, s_len = graphs.encode(sources, length)
  t_codes, t_len = graphs.encode(targets, length)
  lookup = {ord(c): i for i, c in enumerate(vocab)}
  ids = np.vectorize(lambda c: lookup.get(int(c), IGNORE))(t_codes)
  return {
    'source_codes': jnp.asarray(s_codes),
    'source_len': jnp.asarray(s_len),
    'target_codes': jnp.asarray(t_codes),
    'target_len': jnp.asarray(t_len),
    'target_ids': jnp.asarray(ids),
    'weights': jnp.asarray([1.0] * len(sources)),
  }


def _random_outputs(rng, batch_size=2, length=3, k=2, v=3):
  return {
    'op_logits': jnp.asarray(rng.normal(size=(batch_size, length, 3))),
    'char_logits': jnp.asarray(rng.normal(size=(batch_size, length, v))),
    'ins_logits': jnp.asarray(rng.normal(size=(batch_size, length + 1, k, v + 1))),
  }


def _assert_gradient_matches_finite_differences(f, grad, outputs, rng, directions=6, h=1e-5):
  """Directional derivatives of ``grad`` equal central differences of ``f`` (float64)."""
  for _ in range(directions):
    direction = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape)), outputs)
    plus = jax.tree.map(lambda x, d: x + h * d, outputs, direction)
    minus = jax.tree.map(lambda x, d: x - h * d, outputs, direction)
    fd = (f(plus) - f(minus)) / (2 * h)
    analytic = sum(
      jnp.sum(g * d) for g, d in zip(jax.tree.leaves(grad), jax.tree.leaves(direction))
    )
    np.testing.assert_allclose(analytic, fd, rtol=1e-4)


@pytest.mark.parametrize('node_cost', [*VARIANTS, 'alignment'])
def test_gradients_equal_central_finite_differences_in_float64(node_cost):
  rng = np.random.default_rng(4)
  with jax.enable_x64(True):
    batch = _batch(['ab', 'cab'], ['abc', 'b'], 3)
    outputs = _random_outputs(rng)
    weights = {**WEIGHTS, 'temperature': 0.3}
    spec = losses.StructuralSpec(2, sinkhorn_iterations=10, fgw_iterations=2, **_variant(node_cost))
    f = jax.jit(lambda o: _loss_fn(o, batch, weights, spec))
    assert f(outputs).dtype == jnp.float64
    _assert_gradient_matches_finite_differences(f, jax.grad(f)(outputs), outputs, rng)


@pytest.mark.parametrize('matching', config_lib.MATCHINGS)
def test_a_fixed_plan_gives_the_gradient_of_the_costs_at_that_plan(monkeypatch, matching):
  """differentiate_plan=False: same value; gradient = finite differences with the plan frozen."""
  rng = np.random.default_rng(6)
  with jax.enable_x64(True):
    batch = _batch(['ab', 'cab'], ['abc', 'b'], 3)
    outputs = _random_outputs(rng)
    settings = {**DEFAULTS, 'temperature': 0.3, 'sinkhorn_iterations': 10, 'matching': matching}
    settings['node_cost'] = 'likelihood'

    def total(o, fn, **extra):
      pred = soft_graph.predicted_graphs(o, batch['source_codes'], batch['source_len'], 2)
      target = soft_graph.text_graphs(batch['target_codes'], batch['target_len'], 2)
      costs = fn(pred, target, batch['target_ids'], **{**settings, **extra})
      return jnp.sum(costs['node'] + 0.5 * costs['edge'] + 2.0 * costs['clique']), costs['plan']

    fixed = functools.partial(total, fn=losses.structural_costs, differentiate_plan=False)
    (value, plan), grad = jax.value_and_grad(fixed, has_aux=True)(outputs)
    unrolled, _ = total(outputs, losses.structural_costs)
    np.testing.assert_allclose(value, unrolled, rtol=1e-12)
    # The same costs with Sinkhorn replaced by the constant plan found at `outputs`.
    monkeypatch.setattr(losses.sinkhorn_lib, 'sinkhorn', lambda *a, **kw: plan)
    frozen = lambda o: total(o, losses.structural_costs.__wrapped__)[0]  # noqa: E731 (no jit cache)
    _assert_gradient_matches_finite_differences(frozen, grad, outputs, rng, directions=4)


def test_a_fixed_plan_changes_only_the_edge_and_clique_gradients_of_the_alignment_loss():
  """With the alignment node term, holding the plan fixed keeps every value and the node term's
  gradient, and changes the edge and clique terms' gradients to those at the frozen plan."""
  rng = np.random.default_rng(9)
  with jax.enable_x64(True):
    batch = _batch(['ab', 'cab'], ['abc', 'b'], 3)
    outputs = _random_outputs(rng)
    weights = {**WEIGHTS, 'temperature': 0.3}

    def parts(o, differentiate_plan, **zeroed):
      spec = losses.StructuralSpec(
        2, 10, 2, node_cost='alignment', differentiate_plan=differentiate_plan
      )
      return losses.structural(o, batch, {**weights, **zeroed}, spec)

    for term, zeroed in (('node', {'beta': 0.0, 'gamma': 0.0}), ('all', {})):
      (fixed, fixed_parts), fixed_grad = jax.value_and_grad(parts, has_aux=True)(
        outputs, False, **zeroed
      )
      (free, free_parts), free_grad = jax.value_and_grad(parts, has_aux=True)(
        outputs, True, **zeroed
      )
      np.testing.assert_allclose(fixed, free, rtol=1e-12)
      for key in ('node_cost', 'edge_cost', 'clique_cost'):
        np.testing.assert_allclose(fixed_parts[key], free_parts[key], rtol=1e-12)
      gap = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(
        jax.tree.leaves(fixed_grad), jax.tree.leaves(free_grad)))  # fmt: skip
      if term == 'node':  # No plan in the loss: nothing to hold fixed.
        assert gap == 0.0
      else:  # The plan moves with the outputs, and that part of the gradient is gone.
        assert gap > 1e-3


@pytest.mark.parametrize(
  'node_cost,differentiate_plan',
  [
    ('mismatch', True),
    ('likelihood', True),
    ('likelihood', False),
    ('assignment', False),
    ('alignment', True),
    ('alignment', False),
  ],
)
def test_gradients_are_finite_with_padding_in_float32_at_temperature_1e3(
  node_cost, differentiate_plan
):
  rng = np.random.default_rng(5)
  length, k, v = 8, 3, 3
  batch = _batch(['abcab', '', 'c', 'aaaaaaaa'], ['ba', 'abc', '', 'aaaa'], length)
  batch['weights'] = jnp.asarray([1.0, 1.0, 1.0, 0.0])  # An empty batch slot too.
  outputs = {
    'op_logits': jnp.asarray(5 * rng.normal(size=(4, length, 3)), jnp.float32),
    'char_logits': jnp.asarray(5 * rng.normal(size=(4, length, v)), jnp.float32),
    'ins_logits': jnp.asarray(5 * rng.normal(size=(4, length + 1, k, v + 1)), jnp.float32),
  }
  weights = {**WEIGHTS, 'temperature': 1e-3}
  spec = losses.StructuralSpec(**_variant(node_cost), differentiate_plan=differentiate_plan)
  loss, grad = jax.value_and_grad(_loss_fn)(outputs, batch, weights, spec)
  assert np.isfinite(float(loss))
  for g in jax.tree.leaves(grad):
    assert np.all(np.isfinite(np.asarray(g)))
  # Nothing flows into padding: nodes past the source length, or the weight-0 example.
  np.testing.assert_array_equal(grad['op_logits'][0, 5:], 0.0)
  np.testing.assert_array_equal(grad['op_logits'][3], 0.0)


def test_alignment_node_term_is_the_targets_negative_log_likelihood_per_target_node():
  """node_cost='alignment': the node term is -log P(target); edge and clique keep their plan."""
  rng = np.random.default_rng(8)
  batch = _batch(['ab', 'cab', 'a'], ['abc', 'b', 'ca'], 4)
  batch['weights'] = jnp.asarray([1.0, 1.0, 0.0])
  outputs = _random_outputs(rng, batch_size=3, length=4)
  weights = {**WEIGHTS, 'temperature': 0.3}
  _, aligned = losses.structural(
    outputs, batch, weights, losses.StructuralSpec(node_cost='alignment')
  )
  _, mismatch = losses.structural(
    outputs, batch, weights, losses.StructuralSpec(node_cost='mismatch')
  )
  log_p = alignment.target_log_likelihood(
    outputs,
    *(batch[k] for k in ('source_codes', 'source_len', 'target_codes', 'target_ids')),
    batch['target_len'],
  )
  np.testing.assert_allclose(aligned['node_cost'], -(log_p[0] + log_p[1]) / 4, rtol=1e-5)
  for part in ('edge_cost', 'clique_cost'):
    np.testing.assert_allclose(aligned[part], mismatch[part], rtol=1e-6)
  # Hard texts carry no output distribution: their nodes are priced by GED's unit costs.
  assert losses.structural_loss_texts('ab', 'abc', node_cost='alignment') == (
    losses.structural_loss_texts('ab', 'abc', node_cost='mismatch')
  )


def test_with_beta_and_gamma_0_the_plan_is_skipped_and_nothing_else_changes():
  """The alignment node term alone: same loss and gradient as with the plan, edge/clique 0."""
  rng = np.random.default_rng(9)
  batch = _batch(['ab', 'cab'], ['abc', 'b'], 4)
  outputs = _random_outputs(rng, length=4)
  spec = losses.StructuralSpec(node_cost='alignment')
  weights = {'alpha': 1.5, 'beta': 0.0, 'gamma': 0.0, 'temperature': 0.3, 'insert_cost': 3.0}
  weights.update(alignment_temperature=0.5, alignment_prior=0.5)

  @functools.partial(jax.jit, static_argnums=2)  # One compilation per spec, reused.
  def loss_and_grad(outputs, weights, spec):
    f = lambda o: losses.structural(o, batch, weights, spec)  # noqa: E731
    return jax.value_and_grad(f, has_aux=True)(outputs)

  (loss, parts), grad = loss_and_grad(outputs, weights, spec)
  assert parts['edge_cost'] == parts['clique_cost'] == 0.0
  np.testing.assert_allclose(loss, 1.5 * parts['node_cost'], rtol=1e-6)
  # With the plan computed (beta > 0), the node term and its gradient are the same.
  tiny = {**weights, 'beta': 1e-30}
  (loss_plan, with_plan), grad_plan = loss_and_grad(outputs, tiny, spec)
  assert with_plan['edge_cost'] > 0.0
  np.testing.assert_allclose(parts['node_cost'], with_plan['node_cost'], rtol=1e-6)
  for g, h in zip(jax.tree.leaves(grad), jax.tree.leaves(grad_plan)):
    np.testing.assert_allclose(g, h, rtol=1e-5, atol=1e-7)
  # A step compiled without the plan (config.loss.plan='auto' with beta = gamma = 0): the same
  # loss and gradient; a non-zero beta or gamma there is NaN, never a silently missing term.
  without = spec._replace(plan=False)
  (loss_np, parts_np), grad_np = loss_and_grad(outputs, weights, without)
  np.testing.assert_allclose(loss_np, loss, rtol=1e-6)
  assert parts_np['edge_cost'] == parts_np['clique_cost'] == 0.0
  for g, h in zip(jax.tree.leaves(grad), jax.tree.leaves(grad_np)):
    np.testing.assert_allclose(g, h, rtol=1e-6, atol=1e-8)
  assert np.isnan(loss_and_grad(outputs, tiny, without)[0][0])
  # The plan outside the run-time branch (config.loss.plan='auto' with beta or gamma > 0): the
  # same loss, parts and gradient as under the branch.
  (loss_d, parts_d), grad_d = loss_and_grad(outputs, tiny, spec._replace(plan_branch=False))
  np.testing.assert_allclose(loss_d, loss_plan, rtol=1e-6)
  np.testing.assert_allclose(parts_d['edge_cost'], with_plan['edge_cost'], rtol=1e-6)
  np.testing.assert_allclose(parts_d['node_cost'], with_plan['node_cost'], rtol=1e-6)
  for g, h in zip(jax.tree.leaves(grad_plan), jax.tree.leaves(grad_d)):
    np.testing.assert_allclose(g, h, rtol=1e-5, atol=1e-7)
  config = config_lib.base_config()
  config.loss.beta = config.loss.gamma = 0.0
  assert not losses.loss_spec(config).structural.plan
  config.loss.plan = 'always'
  spec_always = losses.loss_spec(config).structural
  assert spec_always.plan and spec_always.plan_branch
  config.loss.plan, config.loss.gamma = 'auto', 2.0
  spec_auto = losses.loss_spec(config).structural
  assert spec_auto.plan and not spec_auto.plan_branch


def test_a_plan_over_fewer_insertion_positions_is_exact_where_the_rest_has_no_mass():
  """loss.plan_insertions = P: where every slot surely ends by position P, the same loss and
  gradient as the plan over all K positions; with mass beyond P, a different (smaller) graph."""
  rng = np.random.default_rng(17)
  batch = _batch(['ab', 'cab'], ['abc', 'b'], 4)
  outputs = _random_outputs(rng, length=4, k=4)
  ended = outputs['ins_logits'].at[:, :, 2, -1].set(60.0)  # The end marker at position 2.
  ended_outputs = {**outputs, 'ins_logits': ended}
  spec = losses.StructuralSpec(node_cost='alignment')  # Edge and clique terms from the plan.
  weights = {'alpha': 1.0, 'beta': 0.5, 'gamma': 2.0, 'temperature': 0.3, 'insert_cost': 3.0}
  weights.update(alignment_temperature=1.0, alignment_prior=0.5)

  @functools.partial(jax.jit, static_argnums=1)  # One compilation per P, reused.
  def loss_and_grad(outputs, plan_insertions):
    def f(o):
      return losses.structural(o, batch, weights, spec._replace(plan_insertions=plan_insertions))

    return jax.value_and_grad(f, has_aux=True)(outputs)

  (loss, parts), grad = loss_and_grad(ended_outputs, 2)
  (loss_all, parts_all), grad_all = loss_and_grad(ended_outputs, 0)
  np.testing.assert_allclose(loss, loss_all, rtol=1e-5)
  for key in ('node_cost', 'edge_cost', 'clique_cost'):
    np.testing.assert_allclose(parts[key], parts_all[key], rtol=1e-5, atol=1e-7)
  for g, h in zip(jax.tree.leaves(grad), jax.tree.leaves(grad_all)):
    np.testing.assert_allclose(g, h, rtol=1e-4, atol=1e-6)
  (_, parts_all), _ = loss_and_grad(outputs, 0)
  (_, parts), _ = loss_and_grad(outputs, 2)
  assert parts['edge_cost'] != parts_all['edge_cost']
  # P = K is the whole graph; P beyond K is a config error before anything compiles.
  np.testing.assert_allclose(loss_and_grad(outputs, 4)[0][0], loss_and_grad(outputs, 0)[0][0])
  config = config_lib.base_config()
  config.loss.plan_insertions = 2
  assert losses.loss_spec(config).structural.plan_insertions == 2
  config.loss.plan_insertions = config.model.max_insertions + 1
  with pytest.raises(ValueError, match='loss.plan_insertions=9 must be <= model.max_insertions=8'):
    config_lib.validate(config)


@pytest.fixture(scope='module')
def labelled_batch():
  """A labelled batch of the shared pairs and random model outputs of its shapes (K = 8)."""
  vocab, ex = labelled_examples()
  budget = graphs.Budget(8, 8, 2)
  batch = input_pipeline.make_batch(ex, np.flatnonzero(ex.bucket == 0), budget)
  batch = {k: jnp.asarray(v) for k, v in batch.items() if k != 'graphs'}
  rng = np.random.default_rng(0)
  outputs = _random_outputs(rng, batch_size=8, length=8, k=8, v=len(vocab))
  return outputs, batch


def test_each_mode_is_its_documented_mix_of_the_two_losses(labelled_batch):
  outputs, batch = labelled_batch
  config = tiny_config()
  config.loss.hybrid_lambda = 0.3
  weights = losses.loss_weights(config)
  values = {}
  for mode in config_lib.LOSS_MODES:
    config.loss.mode = mode
    values[mode], parts = losses.compute_loss(outputs, batch, losses.loss_spec(config), weights)
    assert parts['cross_entropy'] == losses.cross_entropy(outputs, batch)[0]
  ce, structural = values['cross_entropy'], values['structural']
  assert float(structural) == float(parts['structural'])
  np.testing.assert_allclose(values['hybrid'], 0.3 * structural + 0.7 * ce, rtol=1e-6)
  expected = (
    parts['node_cost'] * config.loss.alpha
    + parts['edge_cost'] * config.loss.beta
    + parts['clique_cost'] * config.loss.gamma
  )
  np.testing.assert_allclose(structural, expected, rtol=1e-6)
  config.loss.mode = 'nope'
  with pytest.raises(ValueError, match="Unknown loss mode 'nope'"):
    losses.compute_loss(outputs, batch, losses.loss_spec(config), weights)


def test_structural_loss_texts_total_is_the_weighted_sum_of_its_terms():
  out = losses.structural_loss_texts('hello', 'help', alpha=0.7, beta=0.2, gamma=1.5)
  assert out['total'] == pytest.approx(0.7 * out['node'] + 0.2 * out['edge'] + 1.5 * out['clique'])
  assert min(out['node'], out['edge'], out['clique']) > 0


def _share(mode, step, schedule='constant', **loss):
  config = tiny_config()
  config.loss.mode, config.loss.hybrid_schedule = mode, schedule
  config.loss.update(loss)
  weights = losses.loss_weights(config)
  return float(losses.structural_share(losses.loss_spec(config), weights, jnp.asarray(step)))


def test_structural_share_follows_the_mode_and_the_schedule():
  assert _share('cross_entropy', 5) == 0.0
  assert [_share('structural', s, ce_warmup_steps=10) for s in (0, 9, 10, 500)] == [0, 0, 1, 1]
  assert _share('structural', 0) == 1.0
  assert _share('hybrid', 0, hybrid_lambda=0.3) == pytest.approx(0.3)
  ramp = dict(hybrid_lambda_start=0.2, hybrid_lambda=1.0, hybrid_schedule_steps=100)
  linear = [_share('hybrid', s, 'linear', **ramp) for s in (0, 25, 50, 100, 400)]
  np.testing.assert_allclose(linear, [0.2, 0.4, 0.6, 1.0, 1.0], rtol=1e-6)
  cosine = [_share('hybrid', s, 'cosine', **ramp) for s in (0, 25, 50, 100, 400)]
  half = 0.2 + 0.8 * 0.5 * (1 - np.cos(np.pi / 4))
  np.testing.assert_allclose(cosine, [0.2, half, 0.6, 1.0, 1.0], rtol=1e-6)


def test_ce_warm_start_trains_on_the_cross_entropy_then_the_structural_loss(labelled_batch):
  outputs, batch = labelled_batch
  config = tiny_config()
  config.loss.mode, config.loss.ce_warmup_steps = 'structural', 10
  spec, weights = losses.loss_spec(config), losses.loss_weights(config)
  before, parts = losses.compute_loss(outputs, batch, spec, weights, jnp.asarray(9))
  after, _ = losses.compute_loss(outputs, batch, spec, weights, jnp.asarray(10))
  assert float(before) == float(parts['cross_entropy']) and float(parts['structural_share']) == 0
  assert float(after) == float(parts['structural'])
  grads = jax.grad(lambda o: losses.compute_loss(o, batch, spec, weights, 9)[0])(outputs)
  ce_grads = jax.grad(lambda o: losses.cross_entropy(o, batch)[0])(outputs)
  for key in grads:
    np.testing.assert_array_equal(grads[key], ce_grads[key])


def test_insert_cost_prices_each_unit_of_target_mass_left_to_the_dummy():
  """'ab' -> 'abcd': target nodes that no candidate produces cost insert_cost per unit of mass."""
  pred, target = _hard(['ab']), _hard(['abcd'])
  low = _costs(pred, target, insert_cost=3.0, node_cost='likelihood')
  high = _costs(pred, target, insert_cost=8.0, node_cost='likelihood')
  np.testing.assert_array_equal(low['plan'], high['plan'])  # The matching ignores the price.
  inserted = float(low['plan'][0, -1, :-1].sum())
  assert inserted > 1.5  # 'c' and 'd' (up to Sinkhorn's blur).
  assert float(high['node'][0] - low['node'][0]) == pytest.approx(5.0 * inserted, rel=1e-5)
  for term in ('edge', 'clique'):
    assert float(high[term][0]) == float(low[term][0])


def test_the_alignment_prior_kind_reaches_the_node_term(labelled_batch):
  outputs, batch = labelled_batch
  config = tiny_config()
  config.loss.mode, config.loss.beta, config.loss.gamma = 'structural', 0.0, 0.0
  weights = losses.loss_weights(config)
  nodes = {}
  for kind in config_lib.PRIOR_KINDS:
    config.loss.alignment_prior_kind = kind
    spec = losses.loss_spec(config)
    assert spec.structural.alignment_prior_kind == kind
    nodes[kind] = losses.compute_loss(outputs, batch, spec, weights)[1]['node_cost']
    log_p = alignment.target_log_likelihood(
      outputs,
      *(batch[k] for k in ('source_codes', 'source_len', 'target_codes', 'target_ids')),
      batch['target_len'],
      weights['alignment_temperature'],
      weights['alignment_prior'],
      band=spec.structural.alignment_band,
      prior_kind=kind,
    )
    count = jnp.sum(batch['weights'] * jnp.maximum(batch['target_len'], 1))
    np.testing.assert_allclose(nodes[kind], -jnp.sum(batch['weights'] * log_p) / count, rtol=1e-6)
  assert nodes['diagonal'] != nodes['edits']
