"""Log-domain Sinkhorn: agreement with ott-jax, POT and the first implementation, padding
invariance, finite gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest
from ott.geometry import geometry
from ott.problems.linear import linear_problem
from ott.solvers.linear import sinkhorn as ott_sinkhorn

from grapheme_jax import sinkhorn as sinkhorn_lib
from grapheme_jax.sinkhorn import sinkhorn

# The first implementation (masking with a -1e30 sentinel inside jax.nn.logsumexp, autodiff through
# a lax.fori_loop): a reference for the faster one, whose plans and gradients must agree with it.
_EXCLUDED = -1e30


def _reference_sinkhorn(cost, a, b, temperature, iterations):
  def masked_lse(x, valid, axis):
    return jax.nn.logsumexp(jnp.where(valid, x, _EXCLUDED), axis=axis)

  def safe_log(x, keep):
    return jnp.where(keep, jnp.log(jnp.where(keep, x, 1.0)), 0.0)

  row, col = a > 0, b > 0
  valid = row[:, :, None] & col[:, None, :]
  log_a, log_b = safe_log(a, row), safe_log(b, col)
  scaled = jnp.where(valid, cost, 0.0) / temperature

  def update(_, uv):
    _, v = uv
    u = jnp.where(row, log_a - masked_lse(v[:, None, :] - scaled, valid, axis=2), 0.0)
    v = jnp.where(col, log_b - masked_lse(u[:, :, None] - scaled, valid, axis=1), 0.0)
    return u, v

  zeros = jnp.zeros_like(log_a), jnp.zeros_like(log_b)
  u, v = jax.lax.fori_loop(0, iterations, update, zeros)
  log_plan = u[:, :, None] + v[:, None, :] - scaled
  return jnp.where(valid, jnp.exp(jnp.where(valid, log_plan, _EXCLUDED)), 0.0)


def _problem(rng, n, m):
  cost = rng.uniform(0, 2, (n, m))
  a = rng.uniform(0.2, 1.0, n)
  b = rng.uniform(0.2, 1.0, m)
  return cost, a, b * a.sum() / b.sum()


def _pad(cost, a, b, n, m, rng):
  """Embeds a problem into [n, m] with garbage costs on the padding."""
  c = rng.uniform(-5, 50, (n, m))
  c[: cost.shape[0], : cost.shape[1]] = cost
  return c, np.pad(a, (0, n - len(a))), np.pad(b, (0, m - len(b)))


@pytest.mark.parametrize('temperature', [0.1, 0.03])
def test_converged_plan_matches_ott_and_pot(temperature):
  rng = np.random.default_rng(0)
  for n, m in [(6, 5), (3, 8), (7, 7)]:
    cost, a, b = _problem(rng, n, m)
    ours = sinkhorn(
      jnp.asarray(cost[None], jnp.float32),
      jnp.asarray(a[None], jnp.float32),
      jnp.asarray(b[None], jnp.float32),
      temperature=temperature,
      iterations=3000,
    )[0]
    pot = ot.bregman.sinkhorn_log(a, b, cost, temperature, numItermax=100_000, stopThr=1e-13)
    geom = geometry.Geometry(cost_matrix=jnp.asarray(cost, jnp.float32), epsilon=temperature)
    solver = ott_sinkhorn.Sinkhorn(lse_mode=True, max_iterations=20_000, threshold=1e-7)
    ott_plan = solver(linear_problem.LinearProblem(geom, jnp.asarray(a), jnp.asarray(b))).matrix
    np.testing.assert_allclose(ours, pot, atol=1e-4)
    np.testing.assert_allclose(ours, ott_plan, atol=1e-4)


def test_marginals_and_the_entropic_optimum():
  rng = np.random.default_rng(1)
  cost, a, b = _problem(rng, 5, 4)
  plan = np.asarray(sinkhorn(cost[None], a[None], b[None], temperature=0.1, iterations=2000)[0])
  np.testing.assert_allclose(plan.sum(1), a, atol=1e-5)
  np.testing.assert_allclose(plan.sum(0), b, atol=1e-5)
  # First-order optimality: log P_ij + C_ij / eps = u_i + v_j is a rank-2 (sum) structure.
  z = np.log(plan) + cost / 0.1
  np.testing.assert_allclose(z - z[:, :1] - z[:1, :] + z[0, 0], 0, atol=1e-3)


def test_padding_does_not_change_the_plan_and_gets_zero_plan():
  rng = np.random.default_rng(2)
  problems = [_problem(rng, n, m) for n, m in [(4, 3), (6, 6), (1, 2)]]
  padded = [_pad(*p, 8, 7, rng) for p in problems]
  stack = [jnp.asarray(np.stack(x), jnp.float32) for x in zip(*padded)]
  plans = sinkhorn(*stack, temperature=0.05, iterations=20)
  for (cost, a, b), plan in zip(problems, plans):
    alone = sinkhorn(
      jnp.asarray(cost[None], jnp.float32),
      jnp.asarray(a[None], jnp.float32),
      jnp.asarray(b[None], jnp.float32),
      temperature=0.05,
      iterations=20,
    )[0]
    n, m = cost.shape
    np.testing.assert_allclose(plan[:n, :m], alone, rtol=1e-5, atol=1e-7)
    assert np.all(np.asarray(plan)[n:] == 0) and np.all(np.asarray(plan)[:, m:] == 0)


def test_gradients_are_finite_and_zero_on_padding_in_float32_at_low_temperature():
  rng = np.random.default_rng(3)
  problems = [_problem(rng, n, m) for n, m in [(5, 4), (2, 6)]]
  padded = [_pad(*p, 8, 8, rng) for p in problems]
  cost, a, b = [jnp.asarray(np.stack(x), jnp.float32) for x in zip(*padded)]
  # A third problem that is all padding (an empty batch slot).
  cost = jnp.concatenate([cost, cost[:1]])
  a = jnp.concatenate([a, jnp.zeros_like(a[:1])])
  b = jnp.concatenate([b, jnp.zeros_like(b[:1])])

  def objective(cost, a, b):
    plan = sinkhorn(cost, a, b, temperature=1e-3, iterations=20)
    return jnp.sum(plan * cost) + jnp.sum(plan**2)

  grads = jax.grad(objective, argnums=(0, 1, 2))(cost, a, b)
  for g in grads:
    assert np.all(np.isfinite(np.asarray(g)))
  g_cost, g_a, g_b = map(np.asarray, grads)
  for i, (c, _, _) in enumerate(problems):
    n, m = c.shape
    assert np.all(g_cost[i, n:] == 0) and np.all(g_cost[i, :, m:] == 0)
    assert np.all(g_a[i, n:] == 0) and np.all(g_b[i, m:] == 0)
    assert np.any(g_cost[i, :n, :m] != 0)
  assert np.all(g_cost[2] == 0) and np.all(g_a[2] == 0) and np.all(g_b[2] == 0)


def test_gradient_matches_finite_differences_in_float64():
  rng = np.random.default_rng(4)
  cost, a, b = _problem(rng, 4, 3)
  target = rng.normal(size=(4, 3))
  with jax.enable_x64(True):
    cost, a, b, target = map(jnp.asarray, (cost[None], a[None], b[None], target[None]))

    def f(cost, a, b):
      return jnp.sum(sinkhorn(cost, a, b, temperature=0.2, iterations=15) * target)

    grads = jax.grad(f, argnums=(0, 1, 2))(cost, a, b)
    for arg, grad in enumerate(grads):
      args = [cost, a, b]
      direction = jnp.asarray(rng.normal(size=args[arg].shape))
      h = 1e-6
      plus = list(args)
      plus[arg] = args[arg] + h * direction
      minus = list(args)
      minus[arg] = args[arg] - h * direction
      fd = (f(*plus) - f(*minus)) / (2 * h)
      np.testing.assert_allclose(jnp.sum(grad * direction), fd, rtol=1e-6)


def _reference_plans_and_gradients(temperature, iterations, dtype):
  """Plans and gradients (cost, a, b, temperature) of both implementations on a padded batch."""
  rng = np.random.default_rng(7)
  problems = [_problem(rng, n, m) for n, m in [(5, 4), (2, 7), (8, 8), (1, 1), (6, 3)]]
  padded = [_pad(*p, 8, 8, rng) for p in problems]
  cost, a, b = [jnp.asarray(np.stack(x), dtype) for x in zip(*padded)]
  # A problem that is all padding (an empty batch slot).
  cost = jnp.concatenate([cost, cost[:1]])
  a = jnp.concatenate([a, jnp.zeros_like(a[:1])])
  b = jnp.concatenate([b, jnp.zeros_like(b[:1])])
  target = jnp.asarray(rng.normal(size=cost.shape), dtype)
  results = []
  for fn in (sinkhorn, _reference_sinkhorn):

    def f(cost, a, b, temperature, fn=fn):
      plan = fn(cost, a, b, temperature=temperature, iterations=iterations)
      return jnp.sum(plan * target), plan

    grad_fn = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2, 3), has_aux=True))
    (_, plan), grads = grad_fn(cost, a, b, jnp.asarray(temperature, dtype))
    results.append((np.asarray(plan), [np.asarray(g) for g in grads]))
  return np.asarray(a), np.asarray(b), results


# 20 iterations are unrolled; one past the limit runs as a rolled loop.
@pytest.mark.parametrize('iterations', [20, sinkhorn_lib._MAX_UNROLLED + 1])
@pytest.mark.parametrize('temperature', [0.1, 1e-3])
def test_plans_and_gradients_equal_the_reference_implementation(temperature, iterations):
  # float64: the same maths, so the same numbers up to rounding.
  with jax.enable_x64(True):
    _, _, [(plan, grads), (ref_plan, ref_grads)] = _reference_plans_and_gradients(
      temperature, iterations, jnp.float64
    )
  np.testing.assert_allclose(plan, ref_plan, rtol=1e-10, atol=1e-14)
  for g, ref in zip(grads, ref_grads):
    np.testing.assert_allclose(g, ref, rtol=1e-10, atol=1e-10 * np.max(np.abs(ref)))
  # float32: agreement to float32 rounding (the temperature gradient sums terms of size 1 /
  # temperature that cancel, so both implementations are only that accurate), exact zeros on
  # padding, everything finite.
  a, b, [(plan, grads), (ref_plan, ref_grads)] = _reference_plans_and_gradients(
    temperature, iterations, jnp.float32
  )
  np.testing.assert_allclose(plan, ref_plan, rtol=1e-5, atol=1e-7)
  for g, ref in zip(grads, ref_grads):
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, ref, rtol=1e-4, atol=1e-3 * np.max(np.abs(ref)))
  g_cost, g_a, g_b, _ = grads
  padding = (a == 0)[:, :, None] | (b == 0)[:, None, :]
  assert np.all(plan[padding] == 0) and np.all(g_cost[padding] == 0)
  assert np.all(g_a[a == 0] == 0) and np.all(g_b[b == 0] == 0)


def test_rejects_zero_iterations():
  with pytest.raises(ValueError, match='iterations'):
    sinkhorn(
      jnp.zeros((1, 2, 2)), jnp.ones((1, 2)), jnp.ones((1, 2)), temperature=0.1, iterations=0
    )
