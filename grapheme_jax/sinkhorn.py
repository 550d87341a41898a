"""Log-domain entropic optimal transport (Sinkhorn) for batches of masked cost matrices.

``sinkhorn(cost, a, b, temperature=eps, iterations=T)`` returns the plan ``P`` that minimises
``<P, C> - eps * H(P)`` subject to ``P 1 = a`` and ``P^T 1 = b``, i.e. ``P_ij = exp((f_i + g_j -
C_ij) / eps)`` with dual potentials ``f, g`` found by ``T`` alternating updates (Cuturi 2013, in the
log domain of Schmitzer 2019 / Peyre & Cuturi 2019, sec. 4.4)::

  f_i = eps * log a_i - eps * logsumexp_j((g_j - C_ij) / eps)
  g_j = eps * log b_j - eps * logsumexp_i((f_i - C_ij) / eps)

After the last (column) update the column marginals are exact; the rows converge linearly.

Padding: rows with ``a_i == 0`` and columns with ``b_j == 0`` are padding. Their entries of the
scaled cost ``C / eps`` are replaced once by a large *finite* penalty (never ``+inf``, whose
gradients are ``NaN``), so every log-sum-exp gives them weight exactly 0 without masking the
[batch, n, m] tensor again in each iteration; their potentials are held at 0 and their plan entries
are exactly 0. So padding does not change the plan of the real entries, and the gradient with
respect to padded costs or marginals is exactly 0 -- also for a problem that is all padding (a
padded batch slot), and in float32 down to temperature 1e-3. (ott-jax documents NaN gradients for
zero-weight points; this implementation has none.)

Gradients are taken by differentiating through the iterations, in reverse mode only (``jax.jvp``
is not supported): the exact gradient of the computed plan, which the structural loss's
finite-difference tests rely on. Implicit differentiation is not implemented: with 20 iterations
the backward pass is cheap. Each log-sum-exp has a custom VJP that keeps the shifted exponentials
of its forward pass (so the backward pass computes none) and does its reduction as a batched
matrix-vector product. Up to ``_MAX_UNROLLED`` iterations are unrolled, since a loop copies those
residuals into stacked buffers; more run as a loop, which compiles much faster.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

# The scaled cost of padded entries: exp(potential - _PENALTY) is exactly 0, and it is finite.
_PENALTY = 1e30
# Iteration counts up to this are unrolled (faster); larger ones run as a loop (faster to compile).
_MAX_UNROLLED = 32


def _safe_log(x: jax.Array, keep: jax.Array) -> jax.Array:
  return jnp.where(keep, jnp.log(jnp.where(keep, x, 1.0)), 0.0)


def _lse_forward(p: jax.Array, s: jax.Array, axis: int):
  """``log(sum_k exp(p_k - s_k))`` along ``axis`` (1 or 2) of ``s`` [batch, n, m], with the VJP's
  residuals; ``p`` [batch, n or m] runs along that axis."""
  x = jnp.expand_dims(p, 3 - axis) - s
  x_max = jnp.max(x, axis=axis, keepdims=True)
  shifted = jnp.exp(x - x_max)  # The largest term of each sum is exactly 1.
  total = jnp.sum(shifted, axis=axis)
  return jnp.log(total) + jnp.squeeze(x_max, axis), (shifted, total)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _lse(p: jax.Array, s: jax.Array, axis: int) -> jax.Array:
  return _lse_forward(p, s, axis)[0]


def _lse_backward(axis: int, residuals, g: jax.Array):
  shifted, total = residuals
  weight = g / total  # The softmax is shifted / total.
  spec = 'bij,bi->bj' if axis == 2 else 'bij,bj->bi'
  g_p = jnp.einsum(spec, shifted, weight, precision=jax.lax.Precision.HIGHEST)
  return g_p, -shifted * jnp.expand_dims(weight, axis)


_lse.defvjp(_lse_forward, _lse_backward)


@functools.partial(jax.jit, static_argnames='iterations')
def sinkhorn(
  cost: jax.Array,
  a: jax.Array,
  b: jax.Array,
  *,
  temperature: float | jax.Array,
  iterations: int,
) -> jax.Array:
  """Entropic OT plans of a batch of problems.

  Args:
    cost: [batch, n, m] costs (any finite values on padding; they are ignored).
    a: [batch, n] row marginals, >= 0; 0 marks a padded row.
    b: [batch, m] column marginals, >= 0; 0 marks a padded column. ``a`` and ``b`` of one problem
      should have equal sums (balanced transport).
    temperature: the entropic regularisation ``eps`` > 0 (a traced value: changing it does not
      recompile).
    iterations: the number of (row, column) update pairs, >= 1 (static).

  Returns:
    [batch, n, m] plans; exactly 0 on padded rows and columns.
  """
  if iterations < 1:
    raise ValueError(f'iterations={iterations} must be >= 1.')
  row, col = a > 0, b > 0
  valid = row[:, :, None] & col[:, None, :]
  log_a, log_b = _safe_log(a, row), _safe_log(b, col)
  # Padded costs are zeroed before the division so that neither they nor their gradients overflow.
  scaled = jnp.where(valid, jnp.where(valid, cost, 0.0) / temperature, _PENALTY)
  # Potentials in units of eps: u = f / eps, v = g / eps.

  def update(_, uv):
    _, v = uv
    u = jnp.where(row, log_a - _lse(v, scaled, 2), 0.0)
    v = jnp.where(col, log_b - _lse(u, scaled, 1), 0.0)
    return u, v

  zeros = jnp.zeros_like(log_a), jnp.zeros_like(log_b)
  u, v = jax.lax.fori_loop(0, iterations, update, zeros, unroll=iterations <= _MAX_UNROLLED)
  return jnp.where(valid, jnp.exp(u[:, :, None] + v[:, None, :] - scaled), 0.0)
