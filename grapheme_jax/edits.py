"""Edit labels from a minimum-cost Levenshtein alignment, computed in JAX.

Text is a sequence of Unicode code points (`[ord(c) for c in s]`); lone surrogates, NUL, emoji
and combining marks are all just code points. For each (source, target) pair we solve the
Levenshtein DP `D[i][j]` (distance between the first i source and first j target characters; unit
costs for insert, delete and substitute), walk back from `(n, m) = (source_len, target_len)` and
express the alignment as one label per source node plus insertions:

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

Algorithm (`edit_labels`, pure and jit-compiled). The DP is bit-parallel over target positions,
W = ceil(M / 32) uint32 words per pair with bit k standing for target position k (column k + 1):

1. Match masks: for each source position, the target positions holding the same code point.
2. DP rows (Myers 1999, in Hyyrö's 2003 form for edit distance): a `lax.scan` over source
   characters keeps row i - 1 as the columns where D grows or shrinks by one from column j - 1 to
   j, and updates it with O(W) word operations (additions and shifts carry from word to word).
   Each row also yields two masks for the walk: the columns where deleting the source character
   is cost-consistent, and those where the walk can leave the row at all.
3. Walk: a reverse `lax.scan` over source rows applies the tie-break one row at a time. Entering
   row i at column j, the walk inserts leftwards down to the highest column <= j that it can leave
   the row from (one count-leading-zeros per word), then deletes or steps diagonally.
4. Labels: source labels follow from the column where the walk leaves each row; for target
   position t, counting the rows left at a column <= t gives its slot or aligned source, and the
   counts are assembled bit-parallel from nested row masks.

Per pair this costs O(L * M) vectorised comparisons for the masks (the bulk of the arithmetic),
O(L * W) word operations for the DP and the walk, O(L * W + M log L) for the target labels, and
O(L * W) words of memory. The batch is the trailing, contiguous axis of every intermediate, so
each word operation is one vector operation over all pairs; `jax.vmap` of a per-pair version puts
the batch in front and runs ~2.5x slower on CPU (transposes and strided reads in every scan
step), hence the explicitly batched code. The host helpers (`levenshtein_edits`,
`levenshtein_edits_batch`) run the same jitted function on inputs padded to power-of-two buckets
so that repeated calls reuse compilations.
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
# In label arrays (the input pipeline's and the losses'): "no label here" (padding, or a character
# outside the vocabulary).
IGNORE = -1

_WORD_BITS = 32
_ALL_BITS = 0xFFFFFFFF


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


# Bit vectors over target positions are lists of W uint32 words of shape [..., B], word 0 least
# significant; bit k (bit k % 32 of word k // 32) stands for target position k, i.e. column
# k + 1 of the DP matrix D[i][j] (source prefix i, target prefix j).


def _num_words(width: int) -> int:
  """Words W holding one bit per target position of a width-`width` target (at least one)."""
  return max(1, -(-width // _WORD_BITS))


def _low_bits(count: jax.Array) -> jax.Array:
  """uint32 words with the lowest `clip(count, 0, 32)` bits set."""
  count = jnp.clip(count, 0, _WORD_BITS)
  below = (jnp.uint32(1) << count.astype(jnp.uint32)) - jnp.uint32(1)
  return jnp.where(count == _WORD_BITS, jnp.uint32(_ALL_BITS), below)


def _add(a: list[jax.Array], b: list[jax.Array]) -> list[jax.Array]:
  """Multi-word `a + b`, carrying from word to word; the carry out of the top word is dropped."""
  out, carry = [], None
  for x, y in zip(a, b):
    total = x + y
    overflow = total < x
    if carry is not None:
      with_carry = total + carry
      overflow = overflow | (with_carry < total)
      total = with_carry
    out.append(total)
    carry = overflow.astype(jnp.uint32)
  return out


def _shift_up(a: list[jax.Array], fill: int) -> list[jax.Array]:
  """Multi-word `a << 1` with `fill` (0 or 1) shifted into bit 0."""
  carried = [jnp.uint32(fill)] + [x >> (_WORD_BITS - 1) for x in a[:-1]]
  return [(x << 1) | c for x, c in zip(a, carried)]


def _or_rows(x: jax.Array) -> jax.Array:
  """Bitwise OR over axis 0, by halving (XLA's CPU reductions are much slower here)."""
  rows = x.shape[0]
  x = jnp.pad(x, ((0, (1 << (rows - 1).bit_length()) - rows), (0, 0)))
  while x.shape[0] > 1:
    x = x[: x.shape[0] // 2] | x[x.shape[0] // 2 :]
  return x[0]


def _unpack_bits(words: list[jax.Array], width: int) -> jax.Array:
  """Bits [B, width] (0/1, uint32) of `width` target positions from W words [B]."""
  spread = jnp.repeat(jnp.stack(words, axis=1), _WORD_BITS, axis=1)[:, :width]
  shifts = jnp.arange(width, dtype=jnp.uint32) % _WORD_BITS
  return (spread >> shifts) & 1


def _match_masks(source: jax.Array, target: jax.Array) -> list[jax.Array]:
  """W words [L, B]: bit k of row i is set iff target[k] == source[i].

  Compares run batch-major ([B, L] against one target column at a time, vectorised along the
  source) and each word is transposed once for the row scans.
  """
  width_m = target.shape[1]
  words = []
  for w in range(_num_words(width_m)):
    word = jnp.zeros(source.shape, jnp.uint32)
    # Highest position first: each shift moves the earlier bits up by one.
    for k in reversed(range(_WORD_BITS * w, min(_WORD_BITS * (w + 1), width_m))):
      word = (word << 1) | (source == target[:, k, None]).astype(jnp.uint32)
    words.append(word.T)
  return words


def _dp_rows(
  match: list[jax.Array], source_len: jax.Array, target_len: jax.Array
) -> tuple[tuple[jax.Array, ...], tuple[jax.Array, ...], jax.Array]:
  """Bit-parallel DP (Myers 1999, as formulated by Hyyrö 2003), one scan step per source row.

  The carry holds row i - 1 as the columns where D[i-1][j] - D[i-1][j-1] is +1 (`pv`) or -1
  (`mv`); row 0 is all +1. From it and the match mask `eq` of s_i, step i derives per column
  `d0` (D[i][j] == D[i-1][j-1]) and `ph`/`mh` (D[i][j] - D[i-1][j] is +1/-1), then row i. The
  carry out of a word's addition and the bit shifted out of a word move into the next word, and
  D[i][0] - D[i-1][0] = +1 is shifted into bit 0. Information only moves towards higher bits, so
  bits below target_len never see the padding, and rows past source_len leave the carry as is.

  Returns:
    `(stop, delete, distance)`. `delete[i]` (W words [L, B]) has the columns where the walk back
    may delete s_i (D[i-1][j] + 1 == D[i][j], i.e. `ph`); `stop[i]` the columns where it leaves
    row i at all: deleting, or the diagonal, which is cost-consistent on a match and otherwise
    iff D[i][j] == D[i-1][j-1] + 1, i.e. not `d0` (the diagonal never decreases and grows by at
    most one). Padding rows have every bit set. `distance` [B] is D[n][m] from the last row.
  """
  num_words = len(match)
  batch = source_len.shape[0]
  rows = jnp.arange(1, match[0].shape[0] + 1, dtype=jnp.int32)
  ones = jnp.uint32(_ALL_BITS)

  def row(carry, xs):
    pv, mv = carry
    i, eq = xs
    x = [e | m for e, m in zip(eq, mv)]
    total = _add([a & p for a, p in zip(x, pv)], pv)
    d0 = [(t ^ p) | a for t, p, a in zip(total, pv, x)]
    ph = [m | ~(d | p) for m, d, p in zip(mv, d0, pv)]
    mh = [p & d for p, d in zip(pv, d0)]
    ph_in, mh_in = _shift_up(ph, 1), _shift_up(mh, 0)
    past_end = i > source_len
    new_pv = tuple(jnp.where(past_end, p, m | ~(d | h)) for p, m, d, h in zip(pv, mh_in, d0, ph_in))
    new_mv = tuple(jnp.where(past_end, m, h & d) for m, h, d in zip(mv, ph_in, d0))
    stop = tuple(jnp.where(past_end, ones, h | e | ~d) for h, e, d in zip(ph, eq, d0))
    delete = tuple(jnp.where(past_end, ones, h) for h in ph)
    return (new_pv, new_mv), (stop, delete)

  init = (
    tuple([jnp.full((batch,), ones)] * num_words),
    tuple([jnp.zeros((batch,), jnp.uint32)] * num_words),
  )
  (pv, mv), (stop, delete) = jax.lax.scan(row, init, (rows, tuple(match)))
  distance = source_len
  for w, (p, m) in enumerate(zip(pv, mv)):
    low = _low_bits(target_len - _WORD_BITS * w)
    distance = distance + jax.lax.population_count(p & low).astype(jnp.int32)
    distance = distance - jax.lax.population_count(m & low).astype(jnp.int32)
  return stop, delete, distance


def _walk_rows(
  stop: tuple[jax.Array, ...], delete: tuple[jax.Array, ...], target_len: jax.Array
) -> jax.Array:
  """The tie-broken walk back from (n, m), one source row per scan step, last row first.

  Entering row i at column j, the walk inserts target characters leftwards down to the highest
  column j' <= j whose `stop` bit is set (column 0 if none: deleting is always consistent there),
  then deletes s_i if the `delete` bit is set or j' = 0, staying in column j', and otherwise steps
  diagonally to j' - 1. This is the documented move order: from any cell it takes DELETE if
  consistent, else the diagonal if consistent, else INSERT. Padding rows delete without moving.

  Returns:
    [L, B] int32 `2 * j' + deleted` per row.
  """

  def row(j, xs):
    stop_i, delete_i = xs
    top = jnp.full(j.shape, -1, jnp.int32)  # Highest stop bit below bit j: column j' - 1.
    top_delete = jnp.zeros(j.shape, jnp.uint32)
    for w, (s, d) in enumerate(zip(stop_i, delete_i)):
      candidates = s & _low_bits(j - _WORD_BITS * w)
      bit = _WORD_BITS - 1 - jax.lax.clz(candidates).astype(jnp.int32)
      found = candidates != 0
      top = jnp.where(found, _WORD_BITS * w + bit, top)
      top_delete = jnp.where(found, d >> jnp.maximum(bit, 0).astype(jnp.uint32), top_delete)
    deleted = (top < 0) | ((top_delete & 1) == 1)
    exit_col = top + 1 - (~deleted).astype(jnp.int32)
    return exit_col, 2 * (top + 1) + deleted.astype(jnp.int32)

  _, code = jax.lax.scan(row, target_len, (tuple(stop), tuple(delete)), reverse=True)
  return code


def _target_labels(
  stop_col: jax.Array, diag: jax.Array, real_row: jax.Array, target_len: jax.Array, width_m: int
) -> tuple[jax.Array, jax.Array]:
  """`target_slot` and `target_source` [B, M] from each row's stop column j' and move.

  The walk leaves row r through column e_r = j' - diag. Along the walk e_r never decreases
  with r, and target t (column t + 1) is produced in row r iff e_r <= t < e_{r+1} (e_{n+1} = m),
  so count(t) = #{r <= n : e_r <= t} is that row: t is inserted into slot count(t), or aligned
  to source count(t) - 1 if row r stepped diagonally onto it (t == j' - 1). Since the masks
  A_r = {t : e_r <= t} are nested, count(t) >= r iff t is in A_r, so bit p of count(t) is set iff
  t is in A_r but not A_{r + 2^p} for some r = 2^p (mod 2^(p+1)): a few word ops per row.
  """
  num_rows = stop_col.shape[0]
  num_words = _num_words(width_m)
  exit_col = stop_col - diag.astype(jnp.int32)
  aligned_col = stop_col - 1
  planes = num_rows.bit_length()
  count_words, aligned_words = [[] for _ in range(planes)], []
  for w in range(num_words):
    # Row r - 1 holds A_r (empty past source_len).
    reached = jnp.where(real_row, ~_low_bits(exit_col - _WORD_BITS * w), jnp.uint32(0))
    for p in range(planes):
      odd = reached[(1 << p) - 1 :: 2 << p]  # r = odd multiples of 2^p.
      even = reached[(2 << p) - 1 :: 2 << p]  # r + 2^p; A_r is empty for r > L.
      even = jnp.pad(even, ((0, odd.shape[0] - even.shape[0]), (0, 0)))
      count_words[p].append(_or_rows(odd & ~even))
    bit = jnp.uint32(1) << (aligned_col % _WORD_BITS).astype(jnp.uint32)
    aligned = diag & (aligned_col // _WORD_BITS == w)
    aligned_words.append(_or_rows(jnp.where(aligned, bit, jnp.uint32(0))))
  count = sum(
    _unpack_bits(words, width_m).astype(jnp.int32) << p for p, words in enumerate(count_words)
  )
  aligned = _unpack_bits(aligned_words, width_m) == 1
  real = jnp.arange(width_m) < target_len[:, None]
  target_slot = jnp.where(real, jnp.where(aligned, -1, count), -2)
  target_source = jnp.where(aligned, count - 1, -1)
  return target_slot, target_source


def _edit_labels_batch(
  source: jax.Array, source_len: jax.Array, target: jax.Array, target_len: jax.Array
) -> EditLabels:
  """`edit_labels` for widths L, M >= 1."""
  width_l, width_m = source.shape[1], target.shape[1]
  stop, delete, distance = _dp_rows(_match_masks(source, target), source_len, target_len)
  code = _walk_rows(stop, delete, target_len)
  stop_col = code >> 1
  real_row = jnp.arange(width_l)[:, None] < source_len
  diag = real_row & ((code & 1) == 0)
  # Rows are [L, B] here, so the gather and the selects run along the batch.
  char = jnp.take_along_axis(target.T, jnp.clip(stop_col - 1, 0, width_m - 1), axis=0)
  ops = jnp.where(diag, jnp.where(source.T == char, KEEP, MODIFY), DELETE)
  target_slot, target_source = _target_labels(stop_col, diag, real_row, target_len, width_m)
  return EditLabels(
    ops=jnp.where(real_row, ops, -1).T,
    chars=jnp.where(diag, char, -1).T,
    target_slot=target_slot,
    target_source=target_source,
    distance=distance,
  )


@jax.jit
def edit_labels(
  source: jax.Array, source_len: jax.Array, target: jax.Array, target_len: jax.Array
) -> EditLabels:
  """Computes Levenshtein edit labels for a batch of padded code-point sequences.

  See the module docstring for the label semantics, the tie-breaking rule and the algorithm.
  Values beyond `source_len` / `target_len` do not affect the result.

  Args:
    source: [B, L] int32 source code points.
    source_len: [B] int32 source lengths, each in [0, L].
    target: [B, M] int32 target code points.
    target_len: [B] int32 target lengths, each in [0, M].

  Returns:
    An `EditLabels` of int32 arrays.
  """
  source, source_len, target, target_len = (
    jnp.asarray(x, jnp.int32) for x in (source, source_len, target, target_len)
  )
  width_l, width_m = source.shape[1], target.shape[1]
  if width_l and width_m:
    return _edit_labels_batch(source, source_len, target, target_len)
  # An empty width gets one padding column, which no length reaches.
  labels = _edit_labels_batch(
    jnp.pad(source, ((0, 0), (0, int(width_l == 0)))),
    source_len,
    jnp.pad(target, ((0, 0), (0, int(width_m == 0)))),
    target_len,
  )
  return labels._replace(
    ops=labels.ops[:, :width_l],
    chars=labels.chars[:, :width_l],
    target_slot=labels.target_slot[:, :width_m],
    target_source=labels.target_source[:, :width_m],
  )


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
      if not 0 <= char <= graphs.MAX_CODE_POINT:
        raise ValueError(f'MODIFY at position {i} has invalid code point {char}.')
      pieces.append(chr(char))
    elif op != DELETE:
      raise ValueError(f'Invalid op {op} at position {i}; expected one of {OP_NAMES}.')
    pieces.append(edits.insertions[i + 1])
  return ''.join(pieces)


def predictions_to_edits(source: str, ops, char_ids, ins_ids, vocab: np.ndarray) -> Edits:
  """Decodes one example's predicted arrays into ``Edits``: the inverse of the label arrays.

  ``ops`` and ``char_ids`` [>= n] are the op and MODIFY-character vocabulary id per source node,
  ``ins_ids`` [>= n + 1, K] the inserted characters' ids per slot, which stop at the first end
  marker ``len(vocab)``; entries beyond the source are ignored.
  """
  n, end = len(source), len(vocab)
  chars = tuple(
    int(vocab[c]) if o == MODIFY else (ord(source[i]) if o == KEEP else -1)
    for i, (o, c) in enumerate(zip(ops[:n], char_ids[:n]))
  )
  insertions = []
  for slot in ins_ids[: n + 1]:
    stop = np.flatnonzero(slot == end)
    insertions.append(''.join(chr(vocab[c]) for c in slot[: stop[0] if len(stop) else len(slot)]))
  return Edits(tuple(int(o) for o in ops[:n]), chars, tuple(insertions))
