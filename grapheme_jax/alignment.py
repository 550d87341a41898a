"""The exact likelihood of a target text under the model's output distribution (all alignments).

The model's heads define a distribution over output texts (``soft_graph``'s module docstring):
for each group ``s = 0..L`` in output order, insertion slot ``s`` emits ``c`` characters (position
``k`` exists iff none of positions ``0..k`` predicted the end marker, so ``c`` in ``0..K``), then
source node ``s`` emits one character (KEEP: its own; MODIFY: a vocabulary character) or none
(DELETE). Every candidate lies at a known place in output order, so the probability of a target
``y`` sums over the *monotone* alignments of candidates to ``y``'s characters -- the way CTC and
AXE marginalise over alignments -- and a forward recursion over the groups computes it exactly:

    F_s[m] = P(groups 0..s-1 emit exactly y[:m])
    slot s:  F'[m] = sum_c F_s[m - c] P(c_s = c) prod_{k < c} q_{s,k}(y[m - c + k])
    node s:  F_{s+1}[m] = F'[m] P(DELETE_s) + F'[m - 1] P(survives_s) p_s(y[m - 1])

in the log domain, one ``lax.scan`` step per group, vectorised over the batch and ``m``: O(L K M)
work and O(L M) memory per example, no [N, M] cost matrix and no [N, N] pair tensor. Its gradient
(reverse-mode through the scan) is the forward-backward algorithm's. No edit labels are used: the
loss learns the alignment the cross-entropy is handed by the edit DP, among all alignments.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from grapheme_jax import edits

# Stands for log 0: finite, so that gradients through logaddexp stay finite (exp(-1e9) is 0).
_NEG = -1e9


def _shift(x: jax.Array, by: int) -> jax.Array:
  """x[..., m - by] along the last axis, _NEG where m < by."""
  if by == 0:
    return x
  return jnp.pad(x[..., :-by], [(0, 0)] * (x.ndim - 1) + [(by, 0)], constant_values=_NEG)


@jax.jit
def target_log_likelihood(
  outputs: dict[str, jax.Array],
  source_codes: jax.Array,
  source_len: jax.Array,
  target_codes: jax.Array,
  target_ids: jax.Array,
  target_len: jax.Array,
  temperature=1.0,
  prior=0.0,
) -> jax.Array:
  """[B] log P(target text | model outputs), summed over every alignment.

  With ``prior`` rho > 0 each alignment is weighted by ``exp(-rho * displacement)``: a character
  that source node ``s`` writes at target position ``m`` adds ``|s - m|``, one that position ``k``
  of slot ``s`` writes adds ``|s + k - m| + 1`` -- the diagonal alignment prior of monotonic
  attention (guided attention, RAD-TTS's beta-binomial prior), with one unit more per insertion.
  The target written left-aligned over the input costs 0 (plus one per character beyond the
  input's length); rho = 0 is the exact likelihood, and rho > 0 lower-bounds it. It breaks the
  symmetry between alignments that are equally likely under an untrained model. Without the extra
  unit, slot ``s`` ties with node ``s`` and the likelihood let the model delete every node and
  write the answer from slot 0's insertions (level 2: every held-out prediction; BUILD_NOTES.md).

  With ``temperature`` tau < 1 the sum over alignments becomes the smoothed maximum
  ``tau * log sum_a exp(log P(a) / tau)`` (the same recursion in the tau-log semiring): tau = 1 is
  the exact likelihood; as tau -> 0 it tends to the log-probability of the single most probable
  alignment that writes the target (Viterbi; hard EM), whose gradient trains that alignment alone.

  Args:
    outputs: the model's ``op_logits`` [B, L, 3], ``char_logits`` [B, L, V] and ``ins_logits``
      [B, L + 1, K, V + 1] (class V: end of insertion).
    source_codes: [B, L] input code points; source_len: [B] input lengths.
    target_codes: [B, M] target code points (a KEEP emits a target character iff the codes are
      equal); target_ids: [B, M] their vocabulary ids, ``edits.IGNORE`` outside the vocabulary
      (such a character can only come from a KEEP); target_len: [B] target lengths (<= M).
    temperature: tau in (0, 1], see above.
    prior: rho >= 0, see above. Both may be traced.
  """
  tau = jnp.asarray(temperature, jnp.float32)
  rho = jnp.asarray(prior, jnp.float32)

  def add(x: jax.Array, y: jax.Array) -> jax.Array:
    """log(e^x + e^y) in the tau-log semiring: tau * log(e^(x / tau) + e^(y / tau))."""
    return tau * jnp.logaddexp(x / tau, y / tau)

  op, char, ins = outputs['op_logits'], outputs['char_logits'], outputs['ins_logits']
  bsz, length = op.shape[:2]
  k_max, vocab = ins.shape[2], ins.shape[3] - 1
  m_max = target_codes.shape[1]
  pos = jnp.arange(m_max)
  real_node = jnp.arange(length)[None, :] < source_len[:, None]  # [B, L]
  real_slot = jnp.arange(length + 1)[None, :] <= source_len[:, None]  # [B, L + 1]
  in_vocab = target_ids >= 0
  ids = jnp.maximum(target_ids, 0)

  one_hot = jax.nn.one_hot(ids, vocab, dtype=op.dtype)  # [B, M, V]

  def emit(log_probs: jax.Array) -> jax.Array:
    """[B, X, V] log-probabilities -> [B, X, M] at the target's characters (_NEG outside V).

    A product with one-hot rows (exact at HIGHEST precision): on CPU a gather
    (``take_along_axis``) and its scatter-add gradient took 6x as long at 64 characters.
    """
    picked = jnp.einsum('bxv,bmv->bxm', log_probs, one_hot, precision=jax.lax.Precision.HIGHEST)
    return jnp.where(in_vocab[:, None], picked, _NEG)

  # Slots: log P(c = k) for k = 0..K and the characters' log q at every target position.
  ins_lp = jax.nn.log_softmax(ins, -1)
  log_end = ins_lp[..., vocab]  # [B, L + 1, K]
  log_cont = jax.nn.logsumexp(ins_lp[..., :vocab], -1)
  run = jnp.concatenate([jnp.zeros_like(log_cont[..., :1]), jnp.cumsum(log_cont, -1)], -1)
  log_count = run + jnp.pad(log_end, ((0, 0), (0, 0), (0, 1)))  # [B, L + 1, K + 1]; c = K: no end.
  none = jnp.where(jnp.arange(k_max + 1) == 0, 0.0, _NEG)
  log_count = jnp.where(real_slot[..., None], log_count, none)
  ins_chars = jax.nn.log_softmax(ins[..., :vocab], -1)  # Given the position exists.
  slot_emit = emit(ins_chars.reshape(bsz, -1, vocab)).reshape(bsz, length + 1, k_max, m_max)
  at = jnp.arange(length + 1)[:, None, None] + jnp.arange(k_max)[None, :, None]  # s + k.
  slot_emit = slot_emit - rho * (jnp.abs(at - pos) + 1)  # An insertion costs one more.

  # Nodes: log P(DELETE), and log P(node s writes target character m) by KEEP or by MODIFY.
  op_lp = jax.nn.log_softmax(op, -1)
  log_gone = jnp.where(real_node, op_lp[..., edits.DELETE], 0.0)
  same = source_codes[:, :, None] == target_codes[:, None, :]  # [B, L, M]
  kept = jnp.where(same, op_lp[..., edits.KEEP, None], _NEG)
  modified = op_lp[..., edits.MODIFY, None] + emit(jax.nn.log_softmax(char, -1))
  node_emit = add(kept, modified) - rho * jnp.abs(jnp.arange(length)[:, None] - pos)
  node_emit = jnp.where(real_node[..., None], node_emit, _NEG)  # [B, L, M]
  # Group L has no source node: it always "deletes".
  log_gone = jnp.pad(log_gone, ((0, 0), (0, 1)))
  node_emit = jnp.pad(node_emit, ((0, 0), (0, 1), (0, 0)), constant_values=_NEG)

  # How each slot writes c characters ending just before target position m, for every slot at
  # once (none of it depends on the recursion): ways[s, c, m] = log P(c_s = c)
  # + sum_{k < c} log q_{s,k}(y[m - c + k]). The scan below then does a few ops per group.
  chars = jnp.pad(slot_emit, ((0, 0), (0, 0), (0, 0), (1, 0)), constant_values=_NEG)
  runs = jnp.zeros((bsz, length + 1, m_max + 1))
  ways = [runs + log_count[..., :1]]
  for c in range(1, k_max + 1):
    runs = _shift(runs, 1) + chars[:, :, c - 1]  # [B, L + 1, M + 1]
    ways.append(runs + log_count[..., c : c + 1])
  ways = jnp.stack(ways, 2)  # [B, L + 1, K + 1, M + 1]

  def group(forward, xs):
    way, gone, node = xs  # [B, K + 1, M + 1], [B], [B, M]
    # before[c, m] = forward[m - c], _NEG where m < c: K + 1 static slices, O(K M) per group (a
    # product with 0/1 shift matrices costs O(K M^2), and made the loss O(L^3)).
    before = jnp.stack([_shift(forward, c) for c in range(k_max + 1)], 1)  # [B, K + 1, M + 1]
    out = tau * jax.nn.logsumexp((before + way) / tau, axis=1)
    emitted = _shift(out, 1) + jnp.pad(node, ((0, 0), (1, 0)), constant_values=_NEG)
    return add(out + gone[:, None], emitted), None

  start = jnp.where(jnp.arange(m_max + 1) == 0, 0.0, _NEG) * jnp.ones((bsz, 1))
  xs = (ways, log_gone, node_emit)
  final, _ = jax.lax.scan(group, start, jax.tree.map(lambda x: jnp.moveaxis(x, 1, 0), xs))
  return jnp.take_along_axis(final, target_len[:, None], 1)[:, 0]
