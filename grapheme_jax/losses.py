"""Training losses: cross-entropy on the edit DP's gold labels, the structural loss, and their mix.

:func:`compute_loss` is what the train step calls: the model's outputs and a batch in, the loss of
``config.loss.mode`` and its logged parts out. Its settings come in two parts, built from the config
here: a static :class:`LossSpec` (:func:`loss_spec`; one compiled step per value) and traced weights
(:func:`loss_weights`; a sweep over them reuses one compiled step).

**Cross-entropy** is a masked mean over *positions* of the per-graph dense layout ``[B, 1 + L]``:
position 0 is the insertion slot before the first character, position ``i + 1`` is node ``i``
together with the insertion slot after it. Padding nodes, padding graphs and batch slots with
weight 0 never count.

**The structural loss** compares the predicted soft graph (``soft_graph.predicted_graphs``) with the
target's text graph under a soft node matching, with no edit labels at all. It is a fused
Gromov-Wasserstein objective (Vayer et al. 2019) made unbalanced with one dummy node per side
(Riesen & Bunke's epsilon-nodes, their interchangeable copies merged into one of larger mass):

* rows: the N predicted candidates with mass ``m_i`` plus a dummy of mass ``sum(target nodes)``;
  columns: the M target nodes with mass 1 plus a dummy of mass ``sum_i m_i``. Both sides then
  carry the same total, and a plan ``P`` sends each predicted node to target nodes or to the dummy
  (a deletion) and each target node's missing mass comes from the dummy (an insertion). With
  masses 0 or 1, an optimal transport plan of this problem is an optimal solution of Riesen &
  Bunke's ``(n + m) x (n + m)`` assignment (transport polytopes with integer marginals have integer
  vertices), which the tests check against scipy's ``linear_sum_assignment``.
* the plan's costs ``C_ia = 1 - Pr(char_i = char_a)``, 1 for a deletion or an insertion, 0
  dummy-to-dummy (GED's unit costs); the node term prices the plan either with them,
  ``node(P) = <P, C>`` (``loss.node_cost='mismatch'``), or as the negative log-likelihood of the
  target's nodes under it (``'likelihood'``; see :func:`_node_term`); or the node term leaves the
  plan: ``'alignment'`` (the default) is the exact negative log-likelihood of the target text
  under the model's output distribution, summed over every monotone alignment of the candidates to
  the target's characters (``alignment.py``, a CTC-style forward recursion, O(L K M)), and the
  plan then serves the edge and clique terms;
* ``edge(P) = sum_{ia, jb} P_ia P_jb (A_ij - B_ab)^2`` with directed adjacencies extended by an
  edgeless dummy: on a hard matching it counts every missing and every extra edge once;
* ``clique(P)``: the same form on the clique co-membership matrices (soft counts of the
  ``(w + 1)``-cliques that contain each pair of nodes, and each node on the diagonal);
* ``total = alpha * node + beta * edge + gamma * clique``, summed over the batch and divided by the
  number of target nodes (at least 1 per example).

The plan is entropic FGW by successive linearisation (Peyre et al. 2016): starting from an
order-preserving plan that matches expected ranks (ancestor counts, a graph invariant), each of
``fgw_iterations`` rounds runs log-domain Sinkhorn on the gradient of the total with respect to the
plan. Every step is differentiated (unrolled), so the gradient is that of the computed loss.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from grapheme_jax import alignment, config_lib, edits, soft_graph
from grapheme_jax import sinkhorn as sinkhorn_lib

IGNORE = edits.IGNORE


def _masked_ce(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Softmax cross-entropy, zero where ``labels == IGNORE``."""
  valid = labels != IGNORE
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(valid, labels, 0))
  return jnp.where(valid, ce, 0.0)


def position_mask(batch: dict[str, jax.Array]) -> jax.Array:
  """[B, 1 + L] mask of real positions (slot 0 and one per real node) of real examples."""
  length = batch['ins_ids'].shape[1]
  mask = jnp.arange(length)[None, :] <= batch['source_len'][:, None]
  return mask & (batch['weights'][:, None] > 0)


def cross_entropy(
  outputs: dict[str, jax.Array], batch: dict[str, jax.Array]
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Cross-entropy of the op, MODIFY-character and insertion heads against the gold edits.

  Per position: op CE + char CE (MODIFY nodes only) for the node, plus the CE of every insertion
  character of the slot and of its end marker. Returns the masked mean and its parts.
  """
  mask = position_mask(batch)
  node_mask = mask[:, 1:]
  op_ce = jnp.where(node_mask, _masked_ce(outputs['op_logits'], batch['ops']), 0.0)
  char_labels = jnp.where(batch['ops'] == edits.MODIFY, batch['char_ids'], IGNORE)
  char_ce = jnp.where(node_mask, _masked_ce(outputs['char_logits'], char_labels), 0.0)
  ins_ce = _masked_ce(outputs['ins_logits'], batch['ins_ids']).sum(-1)
  ins_ce = jnp.where(mask, ins_ce, 0.0)
  count = jnp.maximum(mask.sum(), 1)
  parts = {
    'op_ce': op_ce.sum() / count,
    'char_ce': char_ce.sum() / count,
    'insert_ce': ins_ce.sum() / count,
  }
  return parts['op_ce'] + parts['char_ce'] + parts['insert_ce'], parts


def weighted_sum(alpha, beta, gamma, node, edge, clique):
  """``alpha * node + beta * edge + gamma * clique``: the one place the three terms are mixed.

  Used for the loss, for its per-round linearisation (the same mix of the terms' gradients with
  respect to the plan) and for :func:`structural_loss_texts`.
  """
  return alpha * node + beta * edge + gamma * clique


class StructuralSpec(NamedTuple):
  """The static (compile-time) settings of the structural loss; weights are traced values."""

  skip_window: int = 2
  sinkhorn_iterations: int = 20
  fgw_iterations: int = 2
  node_cost: str = 'alignment'
  differentiate_plan: bool = True
  matching: str = 'transport'
  # 'alignment' node cost: whether the step computes the plan (edge and clique terms) at all.
  plan: bool = True
  # With the plan: whether it sits under a run-time branch on the traced beta and gamma, skipped
  # when both are 0 (config.loss.plan='always': one step for a sweep through 0). Under 'auto' the
  # plan is in the step only when the config's weights are non-zero, and the branch would only
  # cost: its rematerialisation runs the plan's forward pass twice (10-25 % of a step).
  plan_branch: bool = True
  # The plan's insertion positions per slot (0: all; config.loss.plan_insertions).
  plan_insertions: int = 0
  # 'alignment' node cost: the likelihood's band around the diagonal (0: every alignment).
  alignment_band: int = 0
  # 'alignment' node cost: what the alignment prior's unit counts (config_lib.PRIOR_KINDS).
  alignment_prior_kind: str = 'edits'


# 'likelihood' node term: probabilities are floored here before the log (at most 13.8 per term).
_LOG_FLOOR = 1e-6


def _augment(x: jax.Array) -> jax.Array:
  """Adds an all-zero dummy row and column to [B, N, N] matrices (the dummy has no edges)."""
  return jnp.pad(x, ((0, 0), (0, 1), (0, 1)))


def node_cost_matrix(
  pred: soft_graph.SoftGraph, target: soft_graph.SoftGraph, target_ids: jax.Array
) -> jax.Array:
  """[B, N + 1, M + 1]: expected character mismatch; 1 to or from a dummy; 0 dummy to dummy.

  ``target_ids`` [B, M] are the target characters' vocabulary ids (``IGNORE`` when outside it: such
  a character can only be matched by a kept source character).
  """
  same_code = pred.keep_code[:, :, None] == target.keep_code[:, None, :]
  agree = pred.keep_prob[:, :, None] * same_code
  if pred.char_probs.shape[-1]:
    ids = jnp.broadcast_to(jnp.maximum(target_ids, 0)[:, None, :], agree.shape)
    from_vocab = jnp.take_along_axis(pred.char_probs, ids, axis=2)
    agree = agree + jnp.where(target_ids[:, None, :] >= 0, from_vocab, 0.0)
  cost = 1.0 - agree
  cost = jnp.pad(cost, ((0, 0), (0, 1), (0, 1)), constant_values=1.0)
  return cost.at[:, -1, -1].set(0.0)


def _transport(x: jax.Array, plan: jax.Array, y: jax.Array) -> jax.Array:
  """X P Y^T as two batched matrix products (never an [N, N, M, M] intermediate)."""
  return jnp.matmul(jnp.matmul(x, plan), jnp.swapaxes(y, 1, 2))


def _quadratic(plan: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
  """sum_{ia, jb} P_ia P_jb (X_ij - Y_ab)^2 per problem, in O(N^2 M + N M^2)."""
  p, q = plan.sum(2), plan.sum(1)
  cross = jnp.sum(plan * _transport(x, plan, y), (1, 2))
  own_x = jnp.sum(p * jnp.matmul(x * x, p[..., None])[..., 0], 1)
  own_y = jnp.sum(q * jnp.matmul(y * y, q[..., None])[..., 0], 1)
  return jnp.maximum(own_x + own_y - 2 * cross, 0.0)  # A sum of squares; rounding can go below 0.


def _quadratic_grad(plan: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
  """The gradient of :func:`_quadratic` with respect to the plan."""
  p, q = plan.sum(2), plan.sum(1)
  x2, y2 = x * x, y * y
  rows = jnp.matmul(x2 + jnp.swapaxes(x2, 1, 2), p[..., None])
  cols = jnp.matmul(y2 + jnp.swapaxes(y2, 1, 2), q[..., None])
  cross = _transport(x, plan, y) + _transport(jnp.swapaxes(x, 1, 2), plan, jnp.swapaxes(y, 1, 2))
  return rows + jnp.swapaxes(cols, 1, 2) - 2 * cross


def _node_term(
  plan: jax.Array, match_cost: jax.Array, mass: jax.Array, kind: str, insert_cost=3.0
) -> jax.Array:
  """The node term of the loss under ``plan`` [B, N + 1, M + 1].

  ``'mismatch'``: ``<P, C>`` with the expected-mismatch costs (GED's, see module docstring).
  ``'likelihood'``: the plan-weighted negative log-likelihood of the target's nodes: a matched
  pair costs ``-log m_i - log p_ia`` (node i exists and has the target character), a deleted node
  ``-log(1 - m_i)`` and an inserted target node ``insert_cost``. Unlike ``1 - p``, whose gradient is
  proportional to ``p``, this keeps pulling characters the model finds improbable, and it prices
  existence in the same currency, so it does not make deletion the cheap way out.
  """
  if kind == 'mismatch':
    return (plan * match_cost).sum((1, 2))
  if kind != 'likelihood':
    raise ValueError(f'Unknown node cost {kind!r}, expected one of {config_lib.NODE_COSTS}.')
  return (plan * likelihood_cost_matrix(match_cost, mass, insert_cost)).sum((1, 2))


def likelihood_cost_matrix(match_cost: jax.Array, mass: jax.Array, insert_cost) -> jax.Array:
  """[B, N + 1, M + 1] negative log-likelihoods of the 'likelihood' node cost (floored).

  ``-log m_i - log p_ia`` for a pair, ``-log(1 - m_i)`` for candidate i to the dummy (it does not
  exist), ``insert_cost`` for the dummy to target a (no candidate produces it), 0 dummy to dummy.
  ``match_cost`` is :func:`node_cost_matrix` (``p_ia = 1 - match_cost``).
  """
  nll = lambda x: -jnp.log(jnp.maximum(x, _LOG_FLOOR))  # noqa: E731
  pairs = nll(1.0 - match_cost[:, :-1, :-1]) + nll(mass)[:, :, None]
  rows = jnp.concatenate([pairs, nll(1.0 - mass)[:, :, None]], 2)
  inserted = jnp.full_like(match_cost[:, -1:, :], insert_cost).at[:, :, -1].set(0.0)
  return jnp.concatenate([rows, inserted], 1)


def _initial_plan(rank: jax.Array, target: soft_graph.SoftGraph, rows: jax.Array) -> jax.Array:
  """Order-preserving start: node i to target a with weight r_i * max(0, 1 - |rank_i - rank_a|).

  ``rank`` [B, N] are the candidates' expected output positions and ``rows`` [B, N] their
  marginals r_i. Exactly the identity matching for two equal hard graphs. Left-over mass goes to
  the dummies.
  """
  near = jnp.maximum(0.0, 1.0 - jnp.abs(rank[:, :, None] - target.rank[:, None, :]))
  core = near * rows[:, :, None] * target.mass[:, None, :]
  deleted = jnp.maximum(rows - core.sum(2), 0.0)
  inserted = jnp.maximum(target.mass - core.sum(1), 0.0)
  plan = jnp.concatenate([core, deleted[:, :, None]], 2)
  bottom = jnp.concatenate([inserted, jnp.zeros_like(inserted[:, :1])], 1)
  return jnp.concatenate([plan, bottom[:, None]], 1)


@functools.partial(
  jax.jit,
  static_argnames=(
    'sinkhorn_iterations',
    'fgw_iterations',
    'node_cost',
    'differentiate_plan',
    'matching',
  ),
)
def structural_costs(
  pred: soft_graph.SoftGraph,
  target: soft_graph.SoftGraph,
  target_ids: jax.Array,
  *,
  alpha,
  beta,
  gamma,
  temperature,
  sinkhorn_iterations: int,
  fgw_iterations: int,
  node_cost: str = 'mismatch',
  differentiate_plan: bool = True,
  insert_cost=3.0,
  matching: str = 'transport',
) -> dict[str, jax.Array]:
  """Per-example node, edge and clique costs [B] (not normalised) and the final plan.

  ``matching='transport'``: candidates are transported with their existence probabilities as
  marginals, the plan is found with the expected-mismatch node costs, and ``node_cost`` chooses
  how the node term prices it (:func:`_node_term`). ``'assignment'`` (DETR, Any2Graph): every
  candidate that can exist is a row of mass 1, matched to a target node or to the dummy "does not
  exist"; existence is priced, not transported; the plan is found with the likelihood costs it is
  priced by (:func:`likelihood_cost_matrix`), and the edge and clique terms compare expected
  adjacencies (``joint * adjacency``), so a candidate that surely does not exist has no edges.
  With ``differentiate_plan=False`` the plan is a constant for differentiation (as a Hungarian
  matching is in DETR-style set losses): the gradient is that of the costs at the chosen
  matching, and no backward pass runs through Sinkhorn. ``node_cost='alignment'`` finds and prices
  the plan as ``'mismatch'`` does; :func:`structural` then replaces the node term by the target's
  likelihood under the model's outputs, which hard graphs alone do not define.
  """
  if fgw_iterations < 1:
    raise ValueError(f'fgw_iterations={fgw_iterations} must be >= 1.')
  if node_cost == 'alignment':  # The node term needs the model's outputs: structural() adds it.
    node_cost = 'mismatch'
  kind = node_cost
  node_cost = node_cost_matrix(pred, target, target_ids)
  adj_t, clq_t = _augment(target.adjacency), _augment(target.cliques)
  if matching == 'transport':
    rows = pred.mass
    match_cost = node_cost
    adj_p, clq_p = _augment(pred.adjacency), _augment(pred.cliques)
  elif matching == 'assignment':
    rows = (pred.mass > 0).astype(pred.mass.dtype)  # Mass exactly 0: it cannot exist.
    match_cost = likelihood_cost_matrix(node_cost, pred.mass, insert_cost)
    adj_p = _augment(pred.joint * pred.adjacency)
    clq_p = _augment(pred.joint * pred.cliques)
  else:
    raise ValueError(f'Unknown matching {matching!r}, expected one of {config_lib.MATCHINGS}.')

  def solve(rank, rows, match_cost, adj_p, clq_p):
    a = jnp.concatenate([rows, target.mass.sum(1, keepdims=True)], 1)
    b = jnp.concatenate([target.mass, rows.sum(1, keepdims=True)], 1)
    plan = _initial_plan(rank, target, rows)
    for _ in range(fgw_iterations):
      cost = weighted_sum(
        alpha,
        beta,
        gamma,
        match_cost,
        _quadratic_grad(plan, adj_p, adj_t),
        _quadratic_grad(plan, clq_p, clq_t),
      )
      plan = sinkhorn_lib.sinkhorn(
        cost, a, b, temperature=temperature, iterations=sinkhorn_iterations
      )
    return plan

  inputs = (pred.rank, rows, match_cost, adj_p, clq_p)
  if not differentiate_plan:  # Solved on constants: no tangent or residual of the solve exists.
    inputs = jax.lax.stop_gradient(inputs)
  plan = solve(*inputs)
  return {
    'node': (plan * match_cost).sum((1, 2))
    if matching == 'assignment'
    else _node_term(plan, node_cost, pred.mass, kind, insert_cost),
    'edge': _quadratic(plan, adj_p, adj_t),
    'clique': _quadratic(plan, clq_p, clq_t),
    'plan': plan,
  }


def structural_graph_costs(
  outputs: dict[str, jax.Array],
  batch: dict[str, jax.Array],
  weights: dict[str, jax.Array],
  spec: StructuralSpec,
) -> tuple[soft_graph.SoftGraph, soft_graph.SoftGraph, dict[str, jax.Array]]:
  """A batch's predicted and target graphs and their :func:`structural_costs` under ``spec``.

  With ``spec.plan_insertions`` P > 0 the predicted graph keeps each slot's first P insertion
  positions: the soft graph of the outputs with every later position ended (absent).
  """
  w = spec.skip_window
  if spec.plan_insertions:
    outputs = {**outputs, 'ins_logits': outputs['ins_logits'][:, :, : spec.plan_insertions]}
  pred = soft_graph.predicted_graphs(outputs, batch['source_codes'], batch['source_len'], w)
  target = soft_graph.text_graphs(batch['target_codes'], batch['target_len'], w)
  costs = structural_costs(
    pred,
    target,
    batch['target_ids'],
    alpha=weights['alpha'],
    beta=weights['beta'],
    gamma=weights['gamma'],
    temperature=weights['temperature'],
    sinkhorn_iterations=spec.sinkhorn_iterations,
    fgw_iterations=spec.fgw_iterations,
    node_cost=spec.node_cost,
    differentiate_plan=spec.differentiate_plan,
    insert_cost=weights['insert_cost'],
    matching=spec.matching,
  )
  return pred, target, costs


def _plan_terms(outputs, batch, weights, spec: StructuralSpec) -> dict[str, jax.Array]:
  """The edge and clique costs [B] beside the alignment node term (see :func:`structural`)."""
  needed = (weights['beta'] != 0) | (weights['gamma'] != 0)
  if not spec.plan:  # Not in the program: a non-zero weight gets NaN, never a missing term.
    missing = jnp.where(needed, jnp.nan, 0.0)
    return {k: jnp.full(batch['target_len'].shape, missing) for k in ('edge', 'clique')}

  def plan_terms(_):
    costs = structural_graph_costs(outputs, batch, weights, spec)[2]
    return {k: costs[k] for k in ('edge', 'clique')}

  if not spec.plan_branch:  # The config's weights put the plan in the step: always computed.
    return plan_terms(None)

  # With both weights 0 the plan is not computed (a runtime branch on the traced weights, so a
  # sweep through 0 does not recompile). Rematerialised: under autodiff both branches of a cond
  # output the union of their residuals, and the untaken branch fills the plan's [B, N, N] ones
  # with zeros (1.5 s of a 64-character step at batch 64, against 0.11 s for the likelihood).
  # Saving only the inputs keeps the skipped branch free; with beta or gamma > 0 the plan's
  # forward pass runs twice. XLA still reserves the branch's buffers (config.loss.plan).
  def no_plan(_):  # Zeros of the plan branch's shapes and dtypes (float64 under x64).
    return jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), jax.eval_shape(plan_terms, None))

  return jax.lax.cond(needed, jax.checkpoint(plan_terms), no_plan, None)


def structural(
  outputs: dict[str, jax.Array],
  batch: dict[str, jax.Array],
  weights: dict[str, jax.Array],
  spec: StructuralSpec,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The structural loss of a batch: alpha * node + beta * edge + gamma * clique per target node.

  ``weights`` holds traced scalars ``alpha``, ``beta``, ``gamma``, ``temperature``,
  ``insert_cost``, ``alignment_temperature`` and ``alignment_prior``. With
  ``spec.node_cost='alignment'`` the node term is the target's negative log-likelihood under
  ``outputs`` (:func:`alignment.target_log_likelihood`), and when ``beta`` and ``gamma`` are both
  0 the Sinkhorn plan is skipped at run time: the edge and clique parts are then logged as 0.
  With ``spec.plan`` False the plan is not in the program at all: ``beta`` and ``gamma`` must then
  be 0, and any other value makes the edge and clique parts NaN (a non-finite loss that stops
  training) rather than a term silently left out.
  """
  if spec.node_cost != 'alignment':
    costs = structural_graph_costs(outputs, batch, weights, spec)[2]
  else:
    costs = _plan_terms(outputs, batch, weights, spec)
    costs['node'] = -alignment.target_log_likelihood(
      outputs,
      batch['source_codes'],
      batch['source_len'],
      batch['target_codes'],
      batch['target_ids'],
      batch['target_len'],
      weights['alignment_temperature'],
      weights['alignment_prior'],
      band=spec.alignment_band,
      prior_kind=spec.alignment_prior_kind,
    )
  example = batch['weights']
  count = jnp.maximum(jnp.sum(example * jnp.maximum(batch['target_len'], 1)), 1.0)
  parts = {f'{k}_cost': jnp.sum(example * costs[k]) / count for k in ('node', 'edge', 'clique')}
  total = weighted_sum(
    weights['alpha'],
    weights['beta'],
    weights['gamma'],
    parts['node_cost'],
    parts['edge_cost'],
    parts['clique_cost'],
  )
  return total, parts


def structural_loss_texts(pred: str, target: str, **overrides) -> dict[str, float]:
  """The structural loss between two texts' hard graphs, through the training loss's code.

  Defaults are the config's (``loss.alpha``, ``beta``, ``gamma``, ``temperature``,
  ``sinkhorn_iterations``, ``fgw_iterations`` and ``model.skip_window``); any of them can be
  overridden by keyword, e.g. ``structural_loss_texts('hello', 'hallo', temperature=0.01)``.
  Returns ``node``, ``edge``, ``clique`` (per target node) and ``total``. Two hard graphs carry no
  output distribution, so ``node_cost='alignment'`` (the likelihood of the target under the model's
  heads) prices their nodes with GED's unit costs (``'mismatch'``) here, as
  :func:`structural_costs` does.
  """
  from grapheme_jax import graphs  # noqa: PLC0415

  config = config_lib.base_config()
  settings = {k: config.loss[k] for k in config_lib.STRUCTURAL_KEYS}
  settings['skip_window'] = config.model.skip_window
  unknown = set(overrides) - set(settings)
  if unknown:
    raise TypeError(f'Unknown setting(s) {sorted(unknown)}; expected some of {sorted(settings)}.')
  settings.update(overrides)
  w = settings['skip_window']
  length = -(-max(len(pred), len(target), 1) // 16) * 16  # Few shapes: few compilations.
  codes, lengths = graphs.encode([pred, target], length)
  hard = soft_graph.text_graphs(jnp.asarray(codes), jnp.asarray(lengths), w)
  pred_graph = jax.tree.map(lambda x: x[:1], hard)
  target_graph = jax.tree.map(lambda x: x[1:], hard)
  costs = structural_costs(
    pred_graph,
    target_graph,
    jnp.full((1, length), IGNORE),
    alpha=settings['alpha'],
    beta=settings['beta'],
    gamma=settings['gamma'],
    temperature=settings['temperature'],
    sinkhorn_iterations=settings['sinkhorn_iterations'],
    fgw_iterations=settings['fgw_iterations'],
    node_cost=settings['node_cost'],
    differentiate_plan=settings['differentiate_plan'],
    insert_cost=settings['insert_cost'],
    matching=settings['matching'],
  )
  out = {k: float(costs[k][0]) / max(len(target), 1) for k in ('node', 'edge', 'clique')}
  out['total'] = weighted_sum(
    settings['alpha'], settings['beta'], settings['gamma'], out['node'], out['edge'], out['clique']
  )
  return out


class LossSpec(NamedTuple):
  """The static part of the loss: one compiled train step per distinct value."""

  mode: str = 'cross_entropy'
  structural: StructuralSpec = StructuralSpec()
  hybrid_schedule: str = 'constant'


def loss_spec(config: ml_collections.ConfigDict) -> LossSpec:
  """The static loss settings of ``config`` (``loss.mode`` and the structural loss's shapes)."""
  return LossSpec(
    config.loss.mode,
    StructuralSpec(
      skip_window=config.model.skip_window,
      sinkhorn_iterations=config.loss.sinkhorn_iterations,
      fgw_iterations=config.loss.fgw_iterations,
      node_cost=config.loss.node_cost,
      differentiate_plan=config.loss.differentiate_plan,
      matching=config.loss.matching,
      plan=config.loss.plan == 'always' or config.loss.beta != 0 or config.loss.gamma != 0,
      plan_branch=config.loss.plan == 'always',
      plan_insertions=config.loss.plan_insertions,
      alignment_band=config.loss.alignment_band,
      alignment_prior_kind=config.loss.alignment_prior_kind,
    ),
    config.loss.hybrid_schedule,
  )


def loss_weights(config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  """The traced loss settings: a sweep over them reuses one compiled step."""
  return {k: jnp.asarray(config.loss[k], jnp.float32) for k in config_lib.TRACED_LOSS_KEYS}


def structural_share(spec: LossSpec, weights: dict[str, jax.Array], step) -> jax.Array:
  """lambda at ``step`` (steps done so far): the structural loss's share of the training loss.

  0 for the cross-entropy. Structural: 0 during the first ``ce_warmup_steps`` (a cross-entropy
  warm start), then 1. Hybrid: ``hybrid_lambda``, or with ``hybrid_schedule`` 'linear'/'cosine' a
  ramp from ``hybrid_lambda_start`` to ``hybrid_lambda`` over ``hybrid_schedule_steps``, then
  ``hybrid_lambda``. ``step`` may be traced: changing the schedule's numbers never recompiles.
  """
  if spec.mode == 'cross_entropy':
    return jnp.zeros((), jnp.float32)
  if spec.mode == 'structural':
    return jnp.where(step < weights['ce_warmup_steps'], 0.0, 1.0).astype(jnp.float32)
  if spec.mode != 'hybrid':
    raise ValueError(f'Unknown loss mode {spec.mode!r}, expected one of {config_lib.LOSS_MODES}.')
  start, end = weights['hybrid_lambda_start'], weights['hybrid_lambda']
  progress = jnp.clip(step / jnp.maximum(weights['hybrid_schedule_steps'], 1.0), 0.0, 1.0)
  if spec.hybrid_schedule == 'constant':
    return end
  if spec.hybrid_schedule == 'linear':
    return start + (end - start) * progress
  if spec.hybrid_schedule == 'cosine':
    return start + (end - start) * 0.5 * (1.0 - jnp.cos(jnp.pi * progress))
  raise ValueError(
    f'Unknown hybrid schedule {spec.hybrid_schedule!r}, expected one of '
    f'{config_lib.HYBRID_SCHEDULES}.'
  )


def compute_loss(
  outputs: dict[str, jax.Array],
  batch: dict[str, jax.Array],
  spec: LossSpec,
  weights: dict[str, jax.Array],
  step=0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The training loss of ``spec.mode`` for the model's ``outputs`` on ``batch``, and its parts.

  The cross-entropy is computed (and logged) in every mode; in structural mode it is a monitor
  (and the loss during a ``ce_warmup_steps`` warm start). ``weights`` are :func:`loss_weights`'
  traced values (the cross-entropy uses none of them); ``step`` (steps done, may be traced) sets
  the mix of :func:`structural_share`, which is logged as ``structural_share``.
  """
  ce, parts = cross_entropy(outputs, batch)
  parts['cross_entropy'] = ce
  share = structural_share(spec, weights, step)
  if spec.mode == 'cross_entropy':
    return ce, parts
  total, struct_parts = structural(outputs, batch, weights, spec.structural)
  parts.update(struct_parts, structural=total, structural_share=share)
  if spec.mode == 'structural':
    return jnp.where(share > 0, total, ce), parts
  return share * total + (1.0 - share) * ce, parts
