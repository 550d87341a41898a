"""The predicted graph as a differentiable object, and text graphs in the same representation.

The model's heads define a distribution over output texts (``models.py``): every source node ``s``
survives (KEEP or MODIFY) or is deleted, independently; insertion slot ``s`` holds ``c_s``
characters, where position ``k`` is used iff none of positions ``0..k`` predicted the end marker.
Decoding takes the argmax of each of these factors (``edits.predictions_to_edits``).

A :class:`SoftGraph` lays out every *candidate* output node in output order -- for each group
``s = 0..L``: insertion positions ``(s, 0..K-1)``, then source node ``s`` (for ``s = L``, which
has no source node, a padding node of mass 0), so ``N = (L + 1) (K + 1)`` -- with

* ``mass``: the probability that the candidate exists;
* ``keep_prob``/``keep_code``/``char_probs``: its character distribution *given* it exists (a
  kept source node has its own code point, which may be outside the vocabulary);
* ``rank``: the expected number of nodes before it given it exists (in a text graph, its number
  of ancestors: a structural invariant, not an array index);
* ``adjacency[i, j]``: the probability of the edge ``i -> j`` given both exist, by the rules of
  ``graphs.text_to_graph`` (an edge iff fewer than ``w = skip_window`` surviving nodes lie between);
* ``cliques[i, j]`` (``i <= j``): the expected number of ``(w + 1)``-cliques (windows of ``w + 1``
  consecutive nodes) that contain both nodes given both exist, divided by ``w + 1``; the diagonal
  is each node's own clique count;
* ``joint[i, j]``: the probability that both exist (``mass[i]`` on the diagonal), so that
  ``joint * adjacency`` is the expected adjacency.

These expectations are exact under the model's factorised distribution: given that both ``i`` and
``j`` exist, the counts of survivors before ``i``, between them and after ``j`` are independent
(existence of ``(s, k)`` forces positions ``(s, <k)`` and leaves the rest of the slot a fresh
chain), so each is a count distribution truncated at ``w`` computed by convolutions along the
groups. With hard outputs (masses 0 or 1) the surviving candidates form exactly
``text_to_graph(decoded text)`` (tested).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from grapheme_jax import edits


class SoftGraph(NamedTuple):
  """Node and pair quantities of a batch of (soft) text graphs; see the module docstring."""

  mass: jax.Array  # [B, N]
  keep_prob: jax.Array  # [B, N]
  keep_code: jax.Array  # [B, N] int, -1 where none.
  char_probs: jax.Array  # [B, N, V] over the vocabulary (sums to 1 - keep_prob).
  rank: jax.Array  # [B, N]
  adjacency: jax.Array  # [B, N, N]
  cliques: jax.Array  # [B, N, N]
  joint: jax.Array  # [B, N, N]


def clique_counts(before, distance, after, window: int):
  """Windows of ``window + 1`` consecutive nodes containing two nodes ``distance`` apart.

  ``before`` is the number of nodes before the first, ``after`` after the second (both may be
  truncated at ``window``); 0 where ``distance > window``. Works on numpy and jax arrays.
  """
  xp = jnp if isinstance(before + distance + after, jax.Array) else np
  slack = window - distance
  count = xp.minimum(before, slack) - xp.maximum(0, slack - after) + 1
  return xp.where(slack >= 0, xp.maximum(count, 0), 0)


def _clique_table(window: int) -> np.ndarray:
  """F[a, d, b] = clique_counts(a, d, b) / (window + 1) for a, b in 0..window, d in 0..window."""
  a, d, b = np.meshgrid(*(np.arange(window + 1),) * 3, indexing='ij')
  return clique_counts(a, d, b, window) / (window + 1)


@functools.partial(jax.jit, static_argnames='window')
def text_graphs(codes: jax.Array, length: jax.Array, window: int) -> SoftGraph:
  """Hard text graphs ([B, M] code points, [B] lengths) in the ``SoftGraph`` representation."""
  m = codes.shape[1]
  pos = jnp.arange(m)
  real = pos[None, :] < length[:, None]
  diff = pos[None, :] - pos[:, None]  # [i, j] -> j - i.
  both = real[:, :, None] & real[:, None, :]
  adjacency = both & (diff > 0) & (diff <= window)
  before = jnp.minimum(pos, window)[None, :, None]
  after = jnp.minimum(length[:, None, None] - 1 - pos[None, None, :], window)
  cliques = clique_counts(before, diff[None], after, window) / (window + 1)
  cliques = jnp.where(both & (diff >= 0), cliques, 0.0)
  mass = real.astype(jnp.float32)
  return SoftGraph(
    mass=mass,
    keep_prob=mass,
    keep_code=jnp.where(real, codes, -1),
    char_probs=jnp.zeros(codes.shape + (0,), jnp.float32),
    rank=jnp.where(real, pos, 0).astype(jnp.float32),
    adjacency=adjacency.astype(jnp.float32),
    cliques=cliques.astype(jnp.float32),
    joint=both.astype(jnp.float32),
  )


# --- Count distributions truncated at w, stored as their first w entries ("sub-distributions":
# P(count = c) for c < w; the remainder is P(count >= w)). Convolution keeps that form exactly.


def _conv(p: jax.Array, q: jax.Array) -> jax.Array:
  w = p.shape[-1]
  return jnp.stack([sum(p[..., x] * q[..., c - x] for x in range(c + 1)) for c in range(w)], -1)


def _full(p: jax.Array) -> jax.Array:
  """Appends the ``>= w`` bucket."""
  return jnp.concatenate([p, 1.0 - p.sum(-1, keepdims=True)], -1)


def _delta(values, window: int) -> jax.Array:
  """Sub-distributions of deterministic counts (all-zero where the count is >= window)."""
  return (np.asarray(values)[..., None] == np.arange(window)).astype(np.float32)


def _between_groups(group: jax.Array) -> jax.Array:
  """D[b, s, t] = distribution of the count in groups s+1..t-1, for s < t, from [B, G, w] groups.

  A scan over the offset t - s, vectorised over s.
  """
  b, g, w = group.shape
  padded = jnp.concatenate([group, jnp.zeros((b, g, w), group.dtype)], axis=1)
  first = jnp.broadcast_to(jnp.asarray(_delta(0, w), group.dtype), (b, g, w))

  def step(prev, offset):  # prev[s] = groups s+1 .. s+offset-1; extend by group s+offset.
    nxt = _conv(prev, jax.lax.dynamic_slice_in_dim(padded, offset, g, axis=1))
    return nxt, prev

  _, by_offset = jax.lax.scan(step, first, jnp.arange(1, g))  # [G-1, B, G, w]: offsets 1..G-1.
  s, t = np.meshgrid(np.arange(g), np.arange(g), indexing='ij')
  out = by_offset[np.clip(t - s - 1, 0, g - 2), :, s]  # [G, G, B, w]
  return jnp.where(jnp.asarray(t > s)[..., None, None], out, 0.0).transpose(2, 0, 1, 3)


class _NodeFactors(NamedTuple):
  """The source nodes' factors of the output distribution, [B, L] (``[B, L, V]`` for chars)."""

  real: jax.Array  # Inside the source.
  mass: jax.Array  # P(survives): KEEP or MODIFY.
  gone: jax.Array  # P(DELETE); 1 on padding.
  keep: jax.Array  # P(KEEP | survives).
  chars: jax.Array  # P(MODIFY to v | survives).


def _node_factors(op: jax.Array, char: jax.Array, source_len: jax.Array) -> _NodeFactors:
  """Per source node: survival and its character distribution from the op and char heads."""
  real = jnp.arange(op.shape[1])[None, :] < source_len[:, None]
  op_p = jax.nn.softmax(op, -1)
  # KEEP vs MODIFY given it survives.
  survive = jax.nn.softmax(op[..., jnp.array([edits.KEEP, edits.MODIFY])], -1)
  return _NodeFactors(
    real=real,
    mass=jnp.where(real, op_p[..., edits.KEEP] + op_p[..., edits.MODIFY], 0.0),
    gone=jnp.where(real, op_p[..., edits.DELETE], 1.0),
    keep=survive[..., 0],
    chars=survive[..., 1:] * jax.nn.softmax(char, -1),
  )


class _SlotFactors(NamedTuple):
  """The insertion slots' factors, ``[B, L + 1, ...]``; counts truncated at ``w`` (see above)."""

  mass: jax.Array  # [., K] P(position k exists) = prod_{j <= k} cont_j.
  chars: jax.Array  # [., K, V] its character distribution given it exists.
  count: jax.Array  # [., w] P(the slot holds c characters), c < w.
  tail: jax.Array  # [., K, w] P(c more characters after position k | k exists), c < w.


def _slot_factors(ins: jax.Array, source_len: jax.Array, window: int) -> _SlotFactors:
  """Per insertion slot: which positions exist, their characters, and the count distributions."""
  bsz, slots, k_max, _ = ins.shape
  vocab, w = ins.shape[-1] - 1, window
  real = jnp.arange(slots)[None, :] <= source_len[:, None]
  ins_p = jax.nn.softmax(ins, -1)
  cont = jnp.where(real[..., None], 1.0 - ins_p[..., vocab], 0.0)  # P(position k is no end).
  end = jnp.where(real[..., None], ins_p[..., vocab], 1.0)
  mass = jnp.cumprod(cont, -1)
  # Per-position products of continuations: run[r][., k] = prod_{j=k+1}^{k+r} cont_j.
  pad = max(w + 1, 1)
  cont_p = jnp.concatenate([cont, jnp.zeros((bsz, slots, pad), cont.dtype)], -1)
  end_p = jnp.concatenate([end, jnp.ones((bsz, slots, pad), end.dtype)], -1)
  # Slot count distribution: P(c = k) = mass(k-1) * end(k), mass(-1) = 1.
  prev_mass = jnp.concatenate([jnp.ones_like(mass[..., :1]), mass], -1)
  prev_mass = jnp.concatenate([prev_mass, jnp.zeros((bsz, slots, pad), cont.dtype)], -1)
  count = prev_mass[..., :w] * end_p[..., :w]
  # Rest of the slot after position k, given k exists: P(R = r) = run_r(k) * end(k + r + 1).
  run, tail = jnp.ones_like(cont), []
  for r in range(w):
    tail.append(run * end_p[..., r + 1 : r + 1 + k_max])
    run = run * cont_p[..., r + 1 : r + 1 + k_max]
  return _SlotFactors(mass, jax.nn.softmax(ins[..., :vocab], -1), count, jnp.stack(tail, -1))


def _pair_counts(nodes: _NodeFactors, slots: _SlotFactors, window: int):
  """Count distributions around every candidate and between every ordered pair of candidates.

  Returns ``(pre, suf, mid)``: ``pre``/``suf`` [B, N, w + 1] the number of nodes before/after a
  candidate given it exists (the last entry is ``>= w``); ``mid`` [B, N, N, w] the number strictly
  between ``i`` and a later ``j`` given both exist (zero where ``j`` is not after ``i``).
  """
  bsz, g, k_max, w = *slots.mass.shape, window
  # Group L has no source node: a padding node of mass 0 keeps the groups uniform.
  node_full = jnp.concatenate([nodes.mass, jnp.zeros((bsz, 1))], 1)
  gone = jnp.concatenate([nodes.gone, jnp.ones((bsz, 1))], 1)
  bern = jnp.stack([gone, node_full] + [jnp.zeros_like(gone)] * (w - 1), -1)[..., :w]
  group = _conv(slots.count, bern)  # [B, L+1, w]
  # Groups with virtual empty ones at both ends, so prefix/suffix are "between" distributions.
  empty = jnp.broadcast_to(jnp.asarray(_delta(0, w)), (bsz, 1, w))
  between = _between_groups(jnp.concatenate([empty, group, empty], 1))  # [B, G+2, G+2, w]
  prefix = between[:, 0, 1 : g + 1]  # [B, G, w]: groups before s.
  suffix = between[:, 1 : g + 1, g + 1]  # [B, G, w]: groups after s.
  groups_between = between[:, 1 : g + 1, 1 : g + 1]  # [B, G, G, w]

  # Candidate layout: [B, G, K + 1] -> [B, N]. Static group index and in-group position.
  kk = np.arange(k_max + 1)
  is_ins = kk < k_max
  head = jnp.concatenate(  # Count of earlier nodes of the same group, given the candidate exists.
    [
      jnp.broadcast_to(jnp.asarray(_delta(kk[:k_max], w)), (bsz, g, k_max, w)),
      slots.count[:, :, None],
    ],
    2,
  )
  tail_in_slot = jnp.concatenate([slots.tail, jnp.zeros((bsz, g, 1, w))], 2)
  tail = jnp.where(  # Later nodes of the same group, given the candidate exists.
    jnp.asarray(is_ins)[:, None], _conv(tail_in_slot, bern[:, :, None]), jnp.asarray(_delta(0, w))
  )
  n = g * (k_max + 1)
  flat = lambda x: x.reshape((bsz, n) + x.shape[3:])  # noqa: E731
  gid = np.repeat(np.arange(g), k_max + 1)
  pos = np.tile(kk, g)
  # mid[i, j] = tail_i * between(group_i, group_j) * head_j (convolutions). Convolving the tail
  # in the [B, G, K + 1, G, w] layout first, then broadcasting over j's position in its group,
  # never gathers the [B, N, N, w] tensor from group pairs (whose backward is a scatter-add).
  mid = _conv(tail[:, :, :, None], groups_between[:, :, None])  # [B, G, K+1, G, w]
  mid = _conv(mid[:, :, :, :, None], head[:, None, None]).reshape(bsz, n, n, w)
  head, tail, tail_in_slot = flat(head), flat(tail), flat(tail_in_slot)

  pre = _full(_conv(jnp.repeat(prefix, k_max + 1, axis=1), head))  # [B, N, w+1]
  suf = _full(_conv(tail, jnp.repeat(suffix, k_max + 1, axis=1)))
  # Pairs within one group: forced positions in between (two insertions), or the slot's tail.
  same = gid[:, None] == gid[None, :]
  ins_i, ins_j = np.tile(is_ins, g)[:, None], np.tile(is_ins, g)[None, :]
  det = _delta(pos[None, :] - pos[:, None] - 1, w)  # [N, N, w]
  within = jnp.where(
    jnp.asarray(ins_i & ins_j)[..., None], jnp.asarray(det), tail_in_slot[:, :, None]
  )
  order = pos[None, :] > pos[:, None]
  mid = jnp.where(jnp.asarray(same)[..., None], within, mid)
  forward = np.where(same, order, gid[None, :] > gid[:, None])
  mid = jnp.where(jnp.asarray(forward)[..., None], mid, 0.0)  # [B, N, N, w]
  return pre, suf, mid


def _joint_existence(mass: jax.Array, k_max: int) -> jax.Array:
  """[B, N, N] P(i and j exist): independent across groups and for a group's source node; two
  insertion positions of one slot exist together iff the later one does."""
  n = mass.shape[1]
  index = np.arange(n)
  gid, pos = index // (k_max + 1), index % (k_max + 1)
  nested = (gid[:, None] == gid[None, :]) & (pos[:, None] < k_max) & (pos[None, :] < k_max)
  later = np.maximum(index[:, None], index[None, :])
  joint = jnp.where(nested, mass[:, later], mass[:, :, None] * mass[:, None, :])
  return jnp.where(np.eye(n, dtype=bool), mass[:, :, None], joint)


def _cliques(pre: jax.Array, suf: jax.Array, mid: jax.Array, window: int) -> jax.Array:
  """cliques[i, j] = sum_{a, c, d} pre[i, a] mid[i, j, c] suf[j, d] F[a, c + 1, d], by matmuls."""
  w, n = window, pre.shape[1]
  table = jnp.asarray(_clique_table(w))
  left = jnp.einsum('bia,acd->bicd', pre, table[:, 1:])
  cliques = sum(mid[..., c] * jnp.matmul(left[:, :, c], jnp.swapaxes(suf, 1, 2)) for c in range(w))
  own = jnp.sum(jnp.matmul(pre, table[:, 0]) * suf, -1)
  return cliques + jnp.eye(n) * own[:, :, None]


@functools.partial(jax.jit, static_argnames='window')
def predicted_graphs(
  outputs: dict[str, jax.Array],
  source_codes: jax.Array,
  source_len: jax.Array,
  window: int,
) -> SoftGraph:
  """The soft graph of the model's outputs (see the module docstring).

  Three stages: the factors of the output distribution (:func:`_node_factors`,
  :func:`_slot_factors`), the count distributions around and between candidates
  (:func:`_pair_counts`), and from those the edges and cliques (:func:`_cliques`).

  Args:
    outputs: the model's ``op_logits`` [B, L, 3], ``char_logits`` [B, L, V] and ``ins_logits``
      [B, L + 1, K, V + 1].
    source_codes: [B, L] input code points (anything on padding).
    source_len: [B] input lengths; nodes and slots beyond them have mass 0.
    window: the text graphs' ``skip_window``.
  """
  nodes = _node_factors(outputs['op_logits'], outputs['char_logits'], source_len)
  slots = _slot_factors(outputs['ins_logits'], source_len, window)
  pre, suf, mid = _pair_counts(nodes, slots, window)
  bsz, g, k_max = slots.mass.shape
  kk = np.arange(k_max + 1)
  flat = lambda x: x.reshape((bsz, g * (k_max + 1)) + x.shape[3:])  # noqa: E731

  node_full = jnp.concatenate([nodes.mass, jnp.zeros((bsz, 1))], 1)
  mass = flat(jnp.concatenate([slots.mass, node_full[..., None]], -1))
  group_count = slots.mass.sum(-1) + node_full  # Expected nodes per group.
  before_groups = jnp.cumsum(group_count, -1) - group_count
  in_group = jnp.concatenate(
    [
      jnp.broadcast_to(jnp.asarray(kk[:k_max], jnp.float32), (bsz, g, k_max)),
      slots.mass.sum(-1)[..., None],
    ],
    -1,
  )
  rank = flat(before_groups[..., None] + in_group)
  codes = jnp.concatenate([source_codes, jnp.full((bsz, 1), -1, source_codes.dtype)], 1)
  keep = jnp.concatenate([jnp.where(nodes.real, nodes.keep, 0.0), jnp.zeros((bsz, 1))], 1)
  vocab = nodes.chars.shape[-1]
  chars = jnp.concatenate(
    [slots.chars, jnp.concatenate([nodes.chars, jnp.zeros((bsz, 1, vocab))], 1)[:, :, None]], 2
  )
  return SoftGraph(
    mass=mass,
    keep_prob=flat(jnp.concatenate([jnp.zeros((bsz, g, k_max)), keep[..., None]], -1)),
    keep_code=flat(
      jnp.concatenate([jnp.full((bsz, g, k_max), -1, codes.dtype), codes[..., None]], -1)
    ),
    char_probs=flat(chars),
    rank=rank,
    adjacency=mid.sum(-1),
    cliques=_cliques(pre, suf, mid, window),
    joint=_joint_existence(mass, k_max),
  )
