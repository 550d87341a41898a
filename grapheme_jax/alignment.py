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
) -> jax.Array:
  """[B] log P(target text | model outputs), summed over every alignment.

  Args:
    outputs: the model's ``op_logits`` [B, L, 3], ``char_logits`` [B, L, V] and ``ins_logits``
      [B, L + 1, K, V + 1] (class V: end of insertion).
    source_codes: [B, L] input code points; source_len: [B] input lengths.
    target_codes: [B, M] target code points (a KEEP emits a target character iff the codes are
      equal); target_ids: [B, M] their vocabulary ids, ``edits.IGNORE`` outside the vocabulary
      (such a character can only come from a KEEP); target_len: [B] target lengths (<= M).
  """
  op, char, ins = outputs['op_logits'], outputs['char_logits'], outputs['ins_logits']
  bsz, length = op.shape[:2]
  k_max, vocab = ins.shape[2], ins.shape[3] - 1
  m_max = target_codes.shape[1]
  real_node = jnp.arange(length)[None, :] < source_len[:, None]  # [B, L]
  real_slot = jnp.arange(length + 1)[None, :] <= source_len[:, None]  # [B, L + 1]
  in_vocab = target_ids >= 0
  ids = jnp.maximum(target_ids, 0)

  def emit(log_probs: jax.Array) -> jax.Array:
    """[B, X, V] log-probabilities -> [B, X, M] at the target's characters (_NEG outside V)."""
    picked = jnp.take_along_axis(
      log_probs, jnp.broadcast_to(ids[:, None], log_probs.shape[:2] + (m_max,)), -1
    )
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

  # Nodes: log P(DELETE), log P(survives), log p(target char | survives) per target position.
  op_lp = jax.nn.log_softmax(op, -1)
  log_gone = jnp.where(real_node, op_lp[..., edits.DELETE], 0.0)
  log_survive = jnp.where(
    real_node, jnp.logaddexp(op_lp[..., edits.KEEP], op_lp[..., edits.MODIFY]), _NEG
  )
  same = source_codes[:, :, None] == target_codes[:, None, :]  # [B, L, M]
  given = jax.nn.log_softmax(op[..., jnp.array([edits.KEEP, edits.MODIFY])], -1)  # | survives.
  kept = jnp.where(same, given[..., :1], _NEG)
  modified = given[..., 1:] + emit(jax.nn.log_softmax(char, -1))
  node_emit = jnp.logaddexp(kept, modified)  # [B, L, M]
  # Group L has no source node: it always "deletes".
  log_gone = jnp.pad(log_gone, ((0, 0), (0, 1)))
  log_survive = jnp.pad(log_survive, ((0, 0), (0, 1)), constant_values=_NEG)
  node_emit = jnp.pad(node_emit, ((0, 0), (0, 1), (0, 0)), constant_values=_NEG)

  def group(forward, xs):
    counts, chars, gone, survive, node = xs  # [B, K + 1], [B, K, M], [B], [B], [B, M]
    # runs[c][m] = sum_{k < c} log q_k(y[m - c + k]): c characters ending just before m.
    runs, out = jnp.zeros((bsz, m_max + 1)), forward + counts[:, :1]
    for c in range(1, k_max + 1):
      runs = _shift(runs, 1) + jnp.pad(chars[:, c - 1], ((0, 0), (1, 0)), constant_values=_NEG)
      out = jnp.logaddexp(out, _shift(forward, c) + counts[:, c : c + 1] + runs)
    emitted = (
      _shift(out, 1) + survive[:, None] + jnp.pad(node, ((0, 0), (1, 0)), constant_values=_NEG)
    )
    return jnp.logaddexp(out + gone[:, None], emitted), None

  start = jnp.where(jnp.arange(m_max + 1) == 0, 0.0, _NEG) * jnp.ones((bsz, 1))
  xs = (log_count, slot_emit, log_gone, log_survive, node_emit)
  final, _ = jax.lax.scan(group, start, jax.tree.map(lambda x: jnp.moveaxis(x, 1, 0), xs))
  return jnp.take_along_axis(final, target_len[:, None], 1)[:, 0]
