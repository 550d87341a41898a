"""Edit labels from a minimum-cost Levenshtein alignment, computed in JAX.

Text is a sequence of Unicode code points (`[ord(c) for c in s]`); lone surrogates, NUL, emoji
and combining marks are all just code points. For each (source, target) pair we fill the
Levenshtein DP matrix (unit costs for insert, delete and substitute), walk back from
`(source_len, target_len)` and express the alignment as one label per source node plus
insertions:

* each source position `i` gets an op in {KEEP, DELETE, MODIFY} and, for KEEP/MODIFY, the target
  code point it becomes;
* target characters not produced by a source node are inserted in one of `n + 1` slots: slot 0
  is before the first source character, slot `i + 1` is right after source character `i`. A slot
  may hold any number of characters.

Tie-breaking: walking back from `(n, m)`, each step takes the first cost-consistent move in the
order DELETE `(i-1, j)`, diagonal `(i-1, j-1)` (KEEP if the characters are equal, MODIFY
otherwise), INSERT `(i, j-1)`. Preferring deletions while walking back puts kept/modified source
characters as early (left) as possible, aligning the target to the start of the source; preferring
the diagonal over insertions puts insertions as early as possible. Every cost-consistent path has
exactly `D[n][m]` edits, so `#MODIFY + #DELETE + #inserted chars == distance`.

The DP is pure and jit-compiled (`edit_labels`, vmapped over a batch). The host helpers
(`levenshtein_edits`, `levenshtein_edits_batch`) run the same jitted function on inputs padded to
power-of-two buckets so that repeated calls reuse compilations.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from grapheme_jax import graphs

KEEP = 0
DELETE = 1
MODIFY = 2
NUM_OPS = 3
OP_NAMES = ('keep', 'delete', 'modify')

# Backtrace move codes (internal).
_NONE, _DEL, _DIAG, _INS = 0, 1, 2, 3


class EditLabels(NamedTuple):
  """Batched edit labels; `B` pairs, sources padded to `L`, targets padded to `M`.

  Attributes:
    ops: [B, L] int32, KEEP/DELETE/MODIFY per source position; -1 for padding (i >= source_len).
    chars: [B, L] int32, the target code point the source position becomes (the kept char for
      KEEP, the new char for MODIFY); -1 for DELETE and padding.
    target_slot: [B, M] int32, for target j < target_len: -1 if it is produced by a source node
      (KEEP/MODIFY), else the insertion slot in [0, source_len]; -2 for padding (j >= target_len).
    target_source: [B, M] int32, the source index target j is aligned to (KEEP/MODIFY), else -1.
    distance: [B] int32, the Levenshtein distance.
  """

  ops: jax.Array
  chars: jax.Array
  target_slot: jax.Array
  target_source: jax.Array
  distance: jax.Array


def _dp_matrix(source: jax.Array, target: jax.Array) -> jax.Array:
  """Returns the full Levenshtein DP matrix D [L+1, M+1] for one (padded) pair.

  Row i is vectorised over j: with E[0] = i and
  E[k] = min(D[i-1][k] + 1, D[i-1][k-1] + (s_i != t_k)) for k >= 1, the insertion recurrence
  D[i][j] = min_{k <= j} E[k] + (j - k) = j + cummin_k(E[k] - k). Cells for j > target_len or
  i > source_len see padding but are never read by the backtrace, and cells it does read depend
  only on real characters.
  """
  cols = jnp.arange(target.shape[0] + 1, dtype=jnp.int32)

  def row(prev, xs):
    i, s_i = xs
    sub = prev[:-1] + (target != s_i).astype(jnp.int32)
    e = jnp.concatenate([i[None], jnp.minimum(prev[1:] + 1, sub)])
    cur = cols + jax.lax.cummin(e - cols)
    return cur, cur

  rows_idx = jnp.arange(1, source.shape[0] + 1, dtype=jnp.int32)
  _, rows = jax.lax.scan(row, cols, (rows_idx, source))
  return jnp.concatenate([cols[None], rows])


def _backtrace(d, source, target, n, m):
  """Walks back from (n, m) with the documented tie-break; returns (move, i, j) per step."""

  def step(carry, _):
    i, j = carry
    im, jm = jnp.maximum(i - 1, 0), jnp.maximum(j - 1, 0)
    here = d[i, j]
    can_del = (i > 0) & (d[im, j] + 1 == here)
    mismatch = (source[im] != target[jm]).astype(jnp.int32)
    can_diag = (i > 0) & (j > 0) & (d[im, jm] + mismatch == here)
    move = jnp.where(can_del, _DEL, jnp.where(can_diag, _DIAG, _INS))
    move = jnp.where((i == 0) & (j == 0), _NONE, move)
    new_i = i - ((move == _DEL) | (move == _DIAG))
    new_j = j - ((move == _DIAG) | (move == _INS))
    return (new_i, new_j), (move, i, j)

  steps = source.shape[0] + target.shape[0]
  _, (moves, ii, jj) = jax.lax.scan(step, (n, m), None, length=steps)
  return moves, ii, jj


def _edit_labels_single(source, source_len, target, target_len) -> EditLabels:
  """Unbatched `edit_labels`."""
  big_l, big_m = source.shape[0], target.shape[0]
  d = _dp_matrix(source, target)
  moves, ii, jj = _backtrace(d, source, target, source_len, target_len)
  is_diag = moves == _DIAG
  # Each real source/target position is written exactly once; other steps scatter out of
  # bounds (positive index, so no negative wrap-around) and are dropped.
  src_idx = jnp.where((moves == _DEL) | is_diag, ii - 1, big_l)
  tgt_idx = jnp.where(is_diag | (moves == _INS), jj - 1, big_m)
  t_char = target[jnp.clip(jj - 1, 0, big_m - 1)]
  s_char = source[jnp.clip(ii - 1, 0, big_l - 1)]
  op = jnp.where(is_diag, jnp.where(s_char == t_char, KEEP, MODIFY), DELETE)

  def fill(size, v):
    return jnp.full((size,), v, jnp.int32)

  return EditLabels(
    ops=fill(big_l, -1).at[src_idx].set(op, mode='drop'),
    chars=fill(big_l, -1).at[src_idx].set(jnp.where(is_diag, t_char, -1), mode='drop'),
    target_slot=fill(big_m, -2).at[tgt_idx].set(jnp.where(is_diag, -1, ii), mode='drop'),
    target_source=fill(big_m, -1).at[tgt_idx].set(jnp.where(is_diag, ii - 1, -1), mode='drop'),
    distance=d[source_len, target_len],
  )


@jax.jit
def edit_labels(
  source: jax.Array, source_len: jax.Array, target: jax.Array, target_len: jax.Array
) -> EditLabels:
  """Computes Levenshtein edit labels for a batch of padded code-point sequences.

  See the module docstring for the label semantics and the tie-breaking rule. Values beyond
  `source_len` / `target_len` do not affect the result.

  Args:
    source: [B, L] int32 source code points.
    source_len: [B] int32 source lengths, each in [0, L].
    target: [B, M] int32 target code points.
    target_len: [B] int32 target lengths, each in [0, M].

  Returns:
    An `EditLabels` of int32 arrays.
  """
  args = [jnp.asarray(x, jnp.int32) for x in (source, source_len, target, target_len)]
  return jax.vmap(_edit_labels_single)(*args)


def _positional_labels_single(source, source_len, target, target_len) -> EditLabels:
  """Unbatched `positional_labels`."""
  i, j = jnp.arange(source.shape[0]), jnp.arange(target.shape[0])
  t_at_i = target[jnp.clip(i, 0, target.shape[0] - 1)]
  aligned = (i < source_len) & (i < target_len)
  ops = jnp.where(aligned, jnp.where(source == t_at_i, KEEP, MODIFY), DELETE)
  ops = jnp.where(i < source_len, ops, -1)
  real_j = j < target_len
  return EditLabels(
    ops=ops,
    chars=jnp.where(aligned, t_at_i, -1),
    target_slot=jnp.where(real_j, jnp.where(j < source_len, -1, source_len), -2),
    target_source=jnp.where(real_j & (j < source_len), j, -1),
    distance=((ops == MODIFY) | (ops == DELETE)).sum() + jnp.maximum(target_len - source_len, 0),
  )


@jax.jit
def positional_labels(
  source: jax.Array, source_len: jax.Array, target: jax.Array, target_len: jax.Array
) -> EditLabels:
  """Edit labels that write the target left-aligned over the source, ignoring character matches.

  Source node `i < len(target)` becomes `target[i]` (KEEP if already equal, else MODIFY), later
  nodes are deleted and target characters beyond the source's length are inserted after its last
  character (slot `source_len`). Applying them reproduces the target like the Levenshtein labels,
  but `distance` here counts the edits of this script, which may exceed the Levenshtein distance.
  Where the Levenshtein alignment depends on accidental matches (`(- 3 11)` -> `-8` keeps the
  operator's `-`), these labels depend only on the target's characters and positions.
  Same arguments and result layout as `edit_labels`.
  """
  args = [jnp.asarray(x, jnp.int32) for x in (source, source_len, target, target_len)]
  return jax.vmap(_positional_labels_single)(*args)


@functools.partial(jax.jit, static_argnames=('num_slots', 'max_insertions'))
def insertion_targets(
  target: jax.Array,
  target_len: jax.Array,
  target_slot: jax.Array,
  num_slots: int,
  max_insertions: int,
  pad_char: int | jax.Array = -1,
) -> tuple[jax.Array, jax.Array]:
  """Gathers the characters inserted into each slot, in target order.

  Characters inserted into one slot are contiguous in the target (aligned pairs are monotone),
  so a character's rank within its slot is its distance from the slot's first character.

  Args:
    target: [B, M] int32 target code points.
    target_len: [B] int32 target lengths.
    target_slot: [B, M] int32, as in `EditLabels.target_slot`.
    num_slots: number of slots K_s (typically L + 1); larger slot indices are ignored.
    max_insertions: K, the capacity per slot.
    pad_char: value for unused entries of `ins_chars`.

  Returns:
    `(ins_chars [B, num_slots, K], ins_count [B, num_slots])`. `ins_count` is the real count and
    may exceed K (only the first K chars are kept); callers must check it.
  """

  def single(t, t_len, slot):
    j = jnp.arange(t.shape[0], dtype=jnp.int32)
    valid = (j < t_len) & (slot >= 0) & (slot < num_slots)
    slot = jnp.where(valid, slot, num_slots)  # Out of bounds: dropped by the scatters below.
    count = jnp.zeros((num_slots,), jnp.int32).at[slot].add(1, mode='drop')
    start = jnp.full((num_slots,), t.shape[0], jnp.int32).at[slot].min(j, mode='drop')
    rank = j - start[jnp.minimum(slot, num_slots - 1)]
    rank = jnp.where(valid & (rank < max_insertions), rank, max_insertions)
    chars = jnp.full((num_slots, max_insertions), pad_char, jnp.int32)
    return chars.at[slot, rank].set(t, mode='drop'), count

  return jax.vmap(single)(
    jnp.asarray(target, jnp.int32),
    jnp.asarray(target_len, jnp.int32),
    jnp.asarray(target_slot, jnp.int32),
  )


@dataclasses.dataclass(frozen=True)
class Edits:
  """Host-side edit labels for one pair with a source of length n.

  Attributes:
    ops: n ops in {KEEP, DELETE, MODIFY}.
    chars: n code points: the resulting char for KEEP/MODIFY, -1 for DELETE.
    insertions: n + 1 strings; insertions[0] goes before the first source char, insertions[i + 1]
      right after source char i.
  """

  ops: tuple[int, ...]
  chars: tuple[int, ...]
  insertions: tuple[str, ...]

  @property
  def num_edits(self) -> int:
    """MODIFY count + DELETE count + total number of inserted chars."""
    return sum(op != KEEP for op in self.ops) + sum(len(s) for s in self.insertions)


def _bucket(n: int) -> int:
  """Next power of two >= max(n, 1), so that padded shapes (and compilations) are reused."""
  return 1 << max(n - 1, 0).bit_length()


def _pad_codes(texts: Sequence[str], width: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
  """Code points [rows, width] (zero-padded; extra rows are empty texts) and lengths [rows]."""
  return graphs.encode(list(texts) + [''] * (rows - len(texts)), width)


def _run_batch(pairs: Sequence[tuple[str, str]]) -> EditLabels:
  """Runs `edit_labels` on (source, target) pairs padded to one power-of-two bucket.

  The batch size and both lengths are padded to powers of two, bounding recompilations.
  """
  sources, targets = [p[0] for p in pairs], [p[1] for p in pairs]
  rows = _bucket(len(pairs))
  src, src_len = _pad_codes(sources, _bucket(max(map(len, sources))), rows)
  tgt, tgt_len = _pad_codes(targets, _bucket(max(map(len, targets))), rows)
  return jax.device_get(edit_labels(src, src_len, tgt, tgt_len))


def levenshtein_distances(pairs: Sequence[tuple[str, str]]) -> list[int]:
  """Levenshtein distances of (source, target) pairs, by the same jitted DP."""
  if not pairs:
    return []
  return _run_batch(pairs).distance[: len(pairs)].tolist()


def levenshtein_edits_batch(pairs: Sequence[tuple[str, str]]) -> list[Edits]:
  """Edit labels for many (source, target) pairs in one jitted call (see `levenshtein_edits`)."""
  if not pairs:
    return []
  labels = _run_batch(pairs)
  out = []
  for b, (source, target) in enumerate(pairs):
    n = len(source)
    slots = [[] for _ in range(n + 1)]
    for char, slot in zip(target, labels.target_slot[b, : len(target)].tolist()):
      if slot >= 0:
        slots[slot].append(char)
    out.append(
      Edits(
        ops=tuple(labels.ops[b, :n].tolist()),
        chars=tuple(labels.chars[b, :n].tolist()),
        insertions=tuple(''.join(s) for s in slots),
      )
    )
  return out


def levenshtein_edits(source: str, target: str) -> Edits:
  """Edit labels turning `source` into `target` (see the module docstring for tie-breaking)."""
  return levenshtein_edits_batch([(source, target)])[0]


def apply_edits(source: str, edits: Edits) -> str:
  """Applies `edits` to `source`; KEEP copies `source[i]`, MODIFY writes `chr(chars[i])`.

  Raises:
    ValueError: if the edit lengths do not match the source or an op/char is invalid.
  """
  n = len(source)
  if len(edits.ops) != n or len(edits.chars) != n or len(edits.insertions) != n + 1:
    raise ValueError(
      f'Edits do not fit a source of length {n}: got {len(edits.ops)} ops, '
      f'{len(edits.chars)} chars and {len(edits.insertions)} insertion slots '
      f'(expected {n}, {n} and {n + 1}).'
    )
  pieces = [edits.insertions[0]]
  for i, (op, char) in enumerate(zip(edits.ops, edits.chars)):
    if op == KEEP:
      pieces.append(source[i])
    elif op == MODIFY:
      if not 0 <= char <= 0x10FFFF:
        raise ValueError(f'MODIFY at position {i} has invalid code point {char}.')
      pieces.append(chr(char))
    elif op != DELETE:
      raise ValueError(f'Invalid op {op} at position {i}; expected one of {OP_NAMES}.')
    pieces.append(edits.insertions[i + 1])
  return ''.join(pieces)
