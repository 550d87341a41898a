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
work and memory per example, no [N, M] cost matrix and no [N, N] pair tensor; with a band of W
target positions around the diagonal (``loss.alignment_band``), O(L K W). Its gradient
(reverse-mode through the scan) is the forward-backward algorithm's. No edit labels are used: the
loss learns the alignment the cross-entropy is handed by the edit DP, among all alignments.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from grapheme_jax import config_lib, edits

# Stands for log 0: finite, so that gradients through logaddexp stay finite (exp(-1e9) is 0).
_NEG = -1e9


def _shift(x: jax.Array, by: int) -> jax.Array:
  """x[..., m - by] along the last axis, _NEG where m < by (all of it when by >= the width)."""
  if by == 0:
    return x
  if by >= x.shape[-1]:  # K insertions can outnumber the target positions (a short bucket).
    return jnp.full_like(x, _NEG)
  return jnp.pad(x[..., :-by], [(0, 0)] * (x.ndim - 1) + [(by, 0)], constant_values=_NEG)


def band_centre(source_len: jax.Array, target_len: jax.Array, length: int) -> jax.Array:
  """[B, length + 2] int: the band's centre before group s = 0..length + 1.

  The left-aligned diagonal: min(s, target length) up to the last source node, then the target's
  length (the last slot writes what the target has beyond the input). It is where the diagonal
  prior's cheapest alignment stands, and it moves by at most one per group except at the last slot.
  """
  s = jnp.arange(length + 2)[None, :]
  target, source = target_len[:, None], source_len[:, None]
  return jnp.where(s <= source, jnp.minimum(s, target), target).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=('band', 'prior_kind'))
def target_log_likelihood(
  outputs: dict[str, jax.Array],
  source_codes: jax.Array,
  source_len: jax.Array,
  target_codes: jax.Array,
  target_ids: jax.Array,
  target_len: jax.Array,
  temperature=1.0,
  prior=0.0,
  band: int = 0,
  prior_kind: str = 'edits',
) -> jax.Array:
  """[B] log P(target text | model outputs), summed over every alignment.

  With ``prior`` rho > 0 each alignment is weighted by ``exp(-rho * units)``; rho = 0 is the exact
  likelihood, and rho > 0 lower-bounds it. It breaks the symmetry between alignments that are
  equally likely under an untrained model. ``prior_kind`` says what a unit is:

  * ``'diagonal'``: a character that source node ``s`` writes at target position ``m`` adds
    ``|s - m|``, one that position ``k`` of slot ``s`` writes adds ``|s + k - m| + 1`` -- the
    diagonal prior of monotonic attention (guided attention, RAD-TTS's beta-binomial prior), with
    one unit more per insertion. Every character written after an insertion or a deletion pays
    for the shift, so it favours the target written left-aligned over the input, in place.
  * ``'edits'``: one unit per inserted character and per deleted source node that has target
    characters still to write after it (a deletion after the whole target is written is free):
    an edit count in which a shift costs once, where it happens. The left-aligned layout still
    costs 0 when the target is no longer than the input, and an insertion-or-deletion alignment
    (Levenshtein's) costs what its edits do, not their distance to the end.

  Both price an insertion: without that, slot ``s`` ties with node ``s`` and the likelihood let
  the model delete every node and write the answer from slot 0's insertions (level 2: every
  held-out prediction; BUILD_NOTES.md).

  With ``temperature`` tau < 1 the sum over alignments becomes the smoothed maximum
  ``tau * log sum_a exp(log P(a) / tau)`` (the same recursion in the tau-log semiring): tau = 1 is
  the exact likelihood; as tau -> 0 it tends to the log-probability of the single most probable
  alignment that writes the target (Viterbi; hard EM), whose gradient trains that alignment alone.

  With ``band`` W > 0 the recursion keeps, at every group boundary, only the target positions
  within W of :func:`band_centre` (the left-aligned diagonal): the sum runs over the alignments
  that stay in that band, a lower bound of the full sum that equals it when W covers every
  alignment, in O(L K W) work and memory instead of O(L K M). Where the band would not be
  narrower than the target axis (2 W >= M), the full sum is computed instead. An alignment leaves
  the band only after about W more insertions than deletions (or the reverse, counting only
  deletions with target still to write), so under either prior its weight is at most about
  exp(-rho W). Every example needs ``target_len - source_len <= W`` (the last slot's insertions
  must fit); otherwise its result is about -1e9 (:func:`check_band` tests a dataset before
  training).

  Args:
    outputs: the model's ``op_logits`` [B, L, 3], ``char_logits`` [B, L, V] and ``ins_logits``
      [B, L + 1, K, V + 1] (class V: end of insertion).
    source_codes: [B, L] input code points; source_len: [B] input lengths.
    target_codes: [B, M] target code points (a KEEP emits a target character iff the codes are
      equal); target_ids: [B, M] their vocabulary ids, ``edits.IGNORE`` outside the vocabulary
      (such a character can only come from a KEEP); target_len: [B] target lengths (<= M).
    temperature: tau in (0, 1], see above.
    prior: rho >= 0, see above. Both may be traced.
    band: W >= 0, static; 0 keeps every target position (the exact sum).
    prior_kind: one of ``config_lib.PRIOR_KINDS``, static; the config's default, ``'edits'``.
  """
  if band < 0:
    raise ValueError(f'band must be >= 0, got {band}.')
  if prior_kind not in config_lib.PRIOR_KINDS:
    raise ValueError(f'prior_kind must be one of {config_lib.PRIOR_KINDS}, got {prior_kind!r}.')
  diagonal = prior_kind == 'diagonal'
  if 2 * band >= target_codes.shape[1]:
    band = 0  # No narrower than the full axis: the full sum costs less.
  tau = jnp.asarray(temperature, jnp.float32)
  rho = jnp.asarray(prior, jnp.float32)

  def add(x: jax.Array, y: jax.Array) -> jax.Array:
    """log(e^x + e^y) in the tau-log semiring: tau * log(e^(x / tau) + e^(y / tau))."""
    return tau * jnp.logaddexp(x / tau, y / tau)

  op, char, ins = outputs['op_logits'], outputs['char_logits'], outputs['ins_logits']
  bsz, length = op.shape[:2]
  k_max, vocab = ins.shape[2], ins.shape[3] - 1
  m_max = target_codes.shape[1]
  real_node = jnp.arange(length)[None, :] < source_len[:, None]  # [B, L]
  real_slot = jnp.arange(length + 1)[None, :] <= source_len[:, None]  # [B, L + 1]

  # Slots: log P(c = k) for k = 0..K, and log q of each position's character given it exists.
  ins_lp = jax.nn.log_softmax(ins, -1)
  log_end = ins_lp[..., vocab]  # [B, L + 1, K]
  log_cont = jax.nn.logsumexp(ins_lp[..., :vocab], -1)
  run = jnp.concatenate([jnp.zeros_like(log_cont[..., :1]), jnp.cumsum(log_cont, -1)], -1)
  log_count = run + jnp.pad(log_end, ((0, 0), (0, 0), (0, 1)))  # [B, L + 1, K + 1]; c = K: no end.
  none = jnp.where(jnp.arange(k_max + 1) == 0, 0.0, _NEG)
  log_count = jnp.where(real_slot[..., None], log_count, none)
  ins_chars = jax.nn.log_softmax(ins[..., :vocab], -1)  # [B, L + 1, K, V]
  # Nodes: log P(DELETE), log P(KEEP) and log P(MODIFY to each character).
  op_lp = jax.nn.log_softmax(op, -1)
  log_gone = jnp.where(real_node, op_lp[..., edits.DELETE], 0.0)
  log_gone = jnp.pad(log_gone, ((0, 0), (0, 1)))  # Group L has no source node: it always deletes.
  modify = op_lp[..., edits.MODIFY, None] + jax.nn.log_softmax(char, -1)  # [B, L, V]

  # The recursion runs over an axis x of target positions: x in group s's vector stands for "y[:m]
  # written" with m = x (band 0) or m = centre(s) + x - W (band W), and what is written on
  # entering x is the character y[m - 1] (none at m = 0). ``written`` holds m - 1, per group
  # [B, L + 1, X] with a band and once per example [B, 1, X] without one.
  if band:
    centre = band_centre(source_len, target_len, length)  # [B, L + 2]
    written = centre[:, :-1, None] + jnp.arange(2 * band + 1) - band - 1
    moves = centre[:, 1:] - centre[:, :-1]  # [B, L + 1]: how far the band moves after group s.
    groups = 's'
  else:
    written = jnp.broadcast_to(jnp.arange(m_max + 1) - 1, (bsz, 1, m_max + 1))
    moves = jnp.zeros((bsz, length + 1), jnp.int32)
    groups = ''
  valid = (written >= 0) & (written < m_max)
  at = jnp.clip(written, 0, m_max - 1).reshape(bsz, -1)
  codes = jnp.take_along_axis(target_codes, at, 1).reshape(written.shape)
  ids = jnp.take_along_axis(target_ids, at, 1).reshape(written.shape)
  in_vocab = valid & (ids >= 0)
  one_hot = jax.nn.one_hot(jnp.maximum(ids, 0), vocab, dtype=op.dtype)  # [B, L + 1 or 1, X, V]
  if not band:
    one_hot = one_hot[:, 0]

  def emit(log_probs: jax.Array, axes: str) -> jax.Array:
    """[B, L + 1, *axes, V] log-probabilities -> [B, L + 1, *axes, X] at the written characters.

    A product with one-hot rows (exact at HIGHEST precision): on CPU a gather
    (``take_along_axis``) and its scatter-add gradient took 6x as long at 64 characters.
    """
    pattern = f'bs{axes}v,b{groups}xv->bs{axes}x'
    picked = jnp.einsum(pattern, log_probs, one_hot, precision=jax.lax.Precision.HIGHEST)
    mask = in_vocab[:, :, None] if axes else in_vocab
    return jnp.where(mask, picked, _NEG)

  # Position k of slot s writes y[m - 1]: displacement |s + k - (m - 1)| + 1 (diagonal), 1 (edits).
  slot_emit = emit(ins_chars, 'k') - rho
  node_codes = jnp.pad(source_codes, ((0, 0), (0, 1)), constant_values=-1)[..., None]
  keep = jnp.pad(op_lp[..., edits.KEEP], ((0, 0), (0, 1)))[..., None]  # Group L: no node.
  kept = jnp.where(valid & (node_codes == codes), keep, _NEG)
  modified = emit(jnp.pad(modify, ((0, 0), (0, 1), (0, 0))), '')
  node_emit = add(kept, modified)  # Node s writes y[m - 1] by KEEP (the same code) or MODIFY.
  real = jnp.pad(real_node, ((0, 0), (0, 1)))[..., None]
  if diagonal:  # Node s writing y[m - 1]: displacement |s - (m - 1)|.
    slot_pos = jnp.arange(length + 1)[:, None, None] + jnp.arange(k_max)[None, :, None]
    slot_emit = slot_emit - rho * jnp.abs(slot_pos - written[:, :, None])
    node_emit = node_emit - rho * jnp.abs(jnp.arange(length + 1)[:, None] - written)
    gone = log_gone[..., None]  # [B, L + 1, 1]
  else:  # Node s deleted with y[:m] written, m < target length: one unit.
    pending = real & (written + 1 < target_len[:, None, None])
    gone = log_gone[..., None] - rho * pending  # [B, L + 1, X]
  node_emit = jnp.where(real, node_emit, _NEG)  # [B, L + 1, X]

  # How each slot writes c characters ending at x, for every slot at once (none of it depends on
  # the recursion): ways[s, c, x] = log P(c_s = c) + sum_{k < c} log q_{s,k}(y[m - c + k]). The
  # scan below then does a few ops per group.
  runs = jnp.zeros(slot_emit.shape[:2] + slot_emit.shape[3:])
  ways = [runs + log_count[..., :1]]
  for c in range(1, k_max + 1):
    runs = _shift(runs, 1) + slot_emit[:, :, c - 1]  # [B, L + 1, X]
    ways.append(runs + log_count[..., c : c + 1])
  ways = jnp.stack(ways, 2)  # [B, L + 1, K + 1, X]
  width = ways.shape[-1]

  def group(forward, xs):
    way, gone, node, move = xs  # [B, K + 1, X], [B, 1 or X], [B, X], [B]
    # before[c, x] = forward[x - c], _NEG where x < c: K + 1 static slices, O(K X) per group (a
    # product with 0/1 shift matrices costs O(K X^2), and made the loss O(L^3)).
    before = jnp.stack([_shift(forward, c) for c in range(k_max + 1)], 1)  # [B, K + 1, X]
    out = tau * jax.nn.logsumexp((before + way) / tau, axis=1)
    forward = add(out + gone, _shift(out, 1) + node)
    if band:  # Recentre: x' = x - move, _NEG beyond the band.
      x = jnp.arange(width)[None, :] + move[:, None]
      forward = jnp.where(
        x < width, jnp.take_along_axis(forward, jnp.minimum(x, width - 1), 1), _NEG
      )
    return forward, None

  start = jnp.where(jnp.arange(width) == band, 0.0, _NEG) * jnp.ones((bsz, 1))  # y[:0] written.
  xs = (ways, gone, node_emit, moves)
  final, _ = jax.lax.scan(group, start, jax.tree.map(lambda x: jnp.moveaxis(x, 1, 0), xs))
  end = target_len - centre[:, -1] + band if band else target_len
  inside = (end >= 0) & (end < width)
  value = jnp.take_along_axis(final, jnp.clip(end, 0, width - 1)[:, None], 1)[:, 0]
  return jnp.where(inside, value, _NEG)


def check_band(source_len, target_len, band: int, width, names=None) -> None:
  """Raises ValueError if a target outgrows its input by more than ``band`` characters.

  In a batch of target width M > 2 ``band`` (``width``: M per example, or one for all) the banded
  recursion must reach ``target_len`` from the band's centre at the last slot, so
  ``target_len - source_len <= band``; narrower batches and ``band`` 0 compute the full sum and
  have no limit. ``names(i)``: how the error names example i.
  """
  growth = np.asarray(target_len) - np.asarray(source_len)
  growth = np.where(2 * band < np.asarray(width), growth, 0) if band else np.zeros_like(growth)
  if growth.size and growth.max() > band:
    worst = int(np.argmax(growth))
    name = names(worst) if names else f'example {worst}'
    raise ValueError(
      f'{name}: its target is {growth[worst]} characters longer than its input, more than '
      f'loss.alignment_band={band} lets the alignment likelihood reach. Set '
      f'--config.loss.alignment_band to at least {growth.max()}, or 0 for the full sum.'
    )
