"""Tests for grapheme_jax.edits: exact cases, rapidfuzz agreement, padding and tie-breaking."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rapidfuzz.distance import Levenshtein

from grapheme_jax import edits as E
from grapheme_jax.edits import DELETE, KEEP, MODIFY

# Alphabets mixing scripts and code points that often break string code: ZWJ emoji sequences,
# combining marks, RTL, control chars incl. NUL, lone surrogates.
_ALPHABETS = (
  'abc',
  'ab ',
  ''.join(chr(c) for c in range(32, 127)),
  '\U0001f468\U0001f469\U0001f467\u200d\ufe0f\U0001f3fd\u2764',
  'e\u0301\u0308a\u0327o\u0303',
  '\u05e9\u05dc\u05d5\u05dd\u0645\u0631\u062d\u0628\u0627\u200f',
  '\x00\x01\x1b\n\t\x7f',
  '\ud800\udfffa\udbff',
)


def _random_text(rng: np.random.Generator, alphabet: str, length: int) -> str:
  return ''.join(alphabet[k] for k in rng.integers(0, len(alphabet), size=length))


def _mutate(rng: np.random.Generator, text: str, alphabet: str) -> str:
  """Applies a few random edits so that source and target share long runs."""
  chars = list(text)
  for _ in range(rng.integers(0, 5)):
    pos = int(rng.integers(0, len(chars) + 1))
    kind = rng.integers(0, 3)
    if kind == 0 or not chars:
      chars.insert(pos, _random_text(rng, alphabet, 1))
    elif kind == 1:
      del chars[min(pos, len(chars) - 1)]
    else:
      chars[min(pos, len(chars) - 1)] = _random_text(rng, alphabet, 1)
  return ''.join(chars)[:20]


def _random_pairs(seed: int, count: int, max_len: int = 20) -> list[tuple[str, str]]:
  rng = np.random.default_rng(seed)
  pairs = [('', ''), ('', 'a'), ('a', '')]
  while len(pairs) < count:
    alphabet = _ALPHABETS[rng.integers(0, len(_ALPHABETS))]
    if rng.random() < 0.3:  # Mixed scripts within one pair.
      alphabet = ''.join(_ALPHABETS)
    source = _random_text(rng, alphabet, int(rng.integers(0, max_len + 1)))
    if rng.random() < 0.5:
      target = _mutate(rng, source, alphabet)
    else:
      target = _random_text(rng, alphabet, int(rng.integers(0, max_len + 1)))
    pairs.append((source, target))
  return pairs


# ---------------------------------------------------------------------------------------------
# Reference implementation: the original full-matrix DP and step-by-step backtrace, kept verbatim
# as an oracle for the bit-parallel `E.edit_labels` (same arguments and results).


def _reference_dp_matrix(source, target):
  """Full Levenshtein matrix D [L+1, M+1]; row i is a cummin over the insertion recurrence."""
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


_NONE, _DEL, _DIAG, _INS = 0, 1, 2, 3


def _reference_backtrace(d, source, target, n, m):
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


def _reference_single(source, source_len, target, target_len) -> E.EditLabels:
  big_l, big_m = source.shape[0], target.shape[0]
  d = _reference_dp_matrix(source, target)
  moves, ii, jj = _reference_backtrace(d, source, target, source_len, target_len)
  is_diag = moves == _DIAG
  src_idx = jnp.where((moves == _DEL) | is_diag, ii - 1, big_l)
  tgt_idx = jnp.where(is_diag | (moves == _INS), jj - 1, big_m)
  t_char = target[jnp.clip(jj - 1, 0, big_m - 1)]
  s_char = source[jnp.clip(ii - 1, 0, big_l - 1)]
  op = jnp.where(is_diag, jnp.where(s_char == t_char, KEEP, MODIFY), DELETE)

  def fill(size, v):
    return jnp.full((size,), v, jnp.int32)

  return E.EditLabels(
    ops=fill(big_l, -1).at[src_idx].set(op, mode='drop'),
    chars=fill(big_l, -1).at[src_idx].set(jnp.where(is_diag, t_char, -1), mode='drop'),
    target_slot=fill(big_m, -2).at[tgt_idx].set(jnp.where(is_diag, -1, ii), mode='drop'),
    target_source=fill(big_m, -1).at[tgt_idx].set(jnp.where(is_diag, ii - 1, -1), mode='drop'),
    distance=d[source_len, target_len],
  )


@jax.jit
def _reference_edit_labels(source, source_len, target, target_len) -> E.EditLabels:
  return jax.vmap(_reference_single)(source, source_len, target, target_len)


@functools.cache
def _pairs_10k() -> list[tuple[str, str]]:
  return _random_pairs(seed=0, count=10_000)


def _reference_edits(source: str, target: str) -> tuple[int, E.Edits]:
  """Plain-Python DP + backtrace with the documented tie-break (DELETE, diagonal, INSERT)."""
  n, m = len(source), len(target)
  d = [[i + j if i == 0 or j == 0 else 0 for j in range(m + 1)] for i in range(n + 1)]
  for i in range(1, n + 1):
    for j in range(1, m + 1):
      d[i][j] = min(
        d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (source[i - 1] != target[j - 1])
      )
  ops, chars, ins = [None] * n, [None] * n, [''] * (n + 1)
  i, j = n, m
  while i or j:
    if i and d[i - 1][j] + 1 == d[i][j]:
      ops[i - 1], chars[i - 1] = DELETE, -1
      i -= 1
    elif i and j and d[i - 1][j - 1] + (source[i - 1] != target[j - 1]) == d[i][j]:
      ops[i - 1] = KEEP if source[i - 1] == target[j - 1] else MODIFY
      chars[i - 1] = ord(target[j - 1])
      i, j = i - 1, j - 1
    else:
      ins[i] = target[j - 1] + ins[i]
      j -= 1
  return d[n][m], E.Edits(tuple(ops), tuple(chars), tuple(ins))


# ---------------------------------------------------------------------------------------------
# Hand-made exact cases.


def test_constants():
  assert (KEEP, DELETE, MODIFY, E.NUM_OPS) == (0, 1, 2, 3)
  assert E.OP_NAMES == ('keep', 'delete', 'modify')


def test_empty_to_empty():
  assert E.levenshtein_edits('', '') == E.Edits((), (), ('',))


def test_empty_source_inserts_everything_in_slot_zero():
  edits = E.levenshtein_edits('', 'abc')
  assert edits == E.Edits((), (), ('abc',))
  assert edits.num_edits == 3


def test_empty_target_deletes_everything():
  edits = E.levenshtein_edits('abc', '')
  assert edits == E.Edits((DELETE,) * 3, (-1,) * 3, ('',) * 4)


def test_kitten_sitting():
  edits = E.levenshtein_edits('kitten', 'sitting')
  assert edits.num_edits == 3
  assert edits.ops == (MODIFY, KEEP, KEEP, KEEP, MODIFY, KEEP)
  assert edits.chars == tuple(map(ord, 'sittin'))
  assert edits.insertions == ('',) * 6 + ('g',)


def test_lisp_expression_to_result():
  # No shared characters: 2 MODIFYs + 6 DELETEs. Walking back from (8, 2), DELETE is
  # cost-consistent while i > 2, so the modified nodes are the first two.
  edits = E.levenshtein_edits('(+ 16 9)', '25')
  assert edits.ops == (MODIFY, MODIFY) + (DELETE,) * 6
  assert edits.chars == (ord('2'), ord('5')) + (-1,) * 6
  assert edits.insertions == ('',) * 9
  assert E.apply_edits('(+ 16 9)', edits) == '25'


def test_insertion_before_first_char():
  edits = E.levenshtein_edits('bc', 'abc')
  assert edits == E.Edits((KEEP, KEEP), (ord('b'), ord('c')), ('a', '', ''))


def test_several_chars_in_one_slot():
  edits = E.levenshtein_edits('abc', 'aXYZbc')
  assert edits == E.Edits((KEEP,) * 3, tuple(map(ord, 'abc')), ('', 'XYZ', '', ''))


def test_tie_break_decides_the_answer():
  # 'aa' -> 'a': walking back, DELETE of the last 'a' is consistent first, so the first is kept.
  assert E.levenshtein_edits('aa', 'a').ops == (KEEP, DELETE)
  # 'a' -> 'aa': the diagonal is preferred over INSERT at (1, 2), so the insertion goes first.
  assert E.levenshtein_edits('a', 'aa').insertions == ('a', '')
  # 'ab' -> 'ba': DELETE 'b' at (2, 2) is consistent (D[1][2] = 2), then 'a' is kept and 'b'
  # inserted before it.
  assert E.levenshtein_edits('ab', 'ba') == E.Edits((KEEP, DELETE), (ord('a'), -1), ('b', '', ''))


def test_code_points_not_graphemes():
  family = '\U0001f468\u200d\U0001f469\u200d\U0001f467'
  edits = E.levenshtein_edits(family, '\U0001f468\u200d\U0001f469')
  assert edits.ops == (KEEP, KEEP, KEEP, DELETE, DELETE)
  surrogate = E.levenshtein_edits('a\ud800\x00', '\x00\ud800')
  assert E.apply_edits('a\ud800\x00', surrogate) == '\x00\ud800'


def test_apply_edits_validates_lengths():
  edits = E.levenshtein_edits('abc', 'abd')
  with pytest.raises(ValueError, match='source of length 2'):
    E.apply_edits('ab', edits)
  with pytest.raises(ValueError, match='insertion slots'):
    E.apply_edits('abc', E.Edits(edits.ops, edits.chars, ('',)))
  with pytest.raises(ValueError, match='Invalid op'):
    E.apply_edits('a', E.Edits((7,), (97,), ('', '')))


# ---------------------------------------------------------------------------------------------
# Randomised checks.


def test_matches_rapidfuzz_and_reconstructs_10k_pairs():
  pairs = _pairs_10k()
  results = E.levenshtein_edits_batch(pairs)
  assert len(results) == len(pairs)
  for (source, target), edits in zip(pairs, results):
    # Code-point lists: rapidfuzz compares hashables, robust to lone surrogates.
    expected = Levenshtein.distance([ord(c) for c in source], [ord(c) for c in target])
    assert edits.num_edits == expected, (source, target, edits)
    assert E.apply_edits(source, edits) == target, (source, target, edits)


def test_batched_distance_and_alignment_are_valid():
  pairs = _pairs_10k()[:2000]
  src, src_len = E._pad_codes([s for s, _ in pairs], 32, len(pairs))
  tgt, tgt_len = E._pad_codes([t for _, t in pairs], 32, len(pairs))
  labels = E.edit_labels(src, src_len, tgt, tgt_len)
  labels = labels._replace(**{k: np.asarray(v) for k, v in labels._asdict().items()})
  for b, (source, target) in enumerate(pairs):
    n, m = len(source), len(target)
    assert labels.distance[b] == Levenshtein.distance(
      list(map(ord, source)), list(map(ord, target))
    )
    ops, chars = labels.ops[b], labels.chars[b]
    slot, src_of = labels.target_slot[b], labels.target_source[b]
    assert np.all(ops[n:] == -1) and np.all(chars[n:] == -1) and np.all(slot[m:] == -2)
    aligned = np.flatnonzero(slot[:m] == -1)
    np.testing.assert_array_equal(src_of[:m] >= 0, slot[:m] == -1)
    # Aligned pairs are strictly increasing in both indices and match the op labels.
    assert np.all(np.diff(src_of[aligned]) > 0)
    np.testing.assert_array_equal(np.sort(src_of[aligned]), np.flatnonzero(ops[:n] != DELETE))
    np.testing.assert_array_equal(chars[src_of[aligned]], tgt[b, aligned])
    # Insertion slots sit between the neighbouring aligned source indices.
    prev_src = np.maximum.accumulate(np.where(slot[:m] == -1, src_of[:m], -1))
    inserted = slot[:m] >= 0
    np.testing.assert_array_equal(slot[:m][inserted], prev_src[inserted] + 1)


def test_tie_breaking_matches_reference_backtrace():
  # A binary alphabet makes ties the norm, so this pins the documented move order.
  rng = np.random.default_rng(1)
  pairs = [
    (
      _random_text(rng, 'ab', int(rng.integers(0, 9))),
      _random_text(rng, 'ab', int(rng.integers(0, 9))),
    )
    for _ in range(500)
  ]
  for (source, target), edits in zip(pairs, E.levenshtein_edits_batch(pairs)):
    distance, expected = _reference_edits(source, target)
    assert edits == expected, (source, target)
    assert edits.num_edits == distance


def _random_code_batch(
  rng: np.random.Generator, count: int, width_l: int, width_m: int
) -> tuple[np.ndarray, ...]:
  """Random padded code-point batches (source, source_len, target, target_len).

  Alphabets have 2, 3, 20 or 4096 code points drawn from [0, 0x10FFFF] (tiny ones make ties the
  norm); half of the targets are mutated copies of their source, so that long runs are shared,
  and lengths are biased towards 0 and the full width. Padding holds random garbage.
  """
  source = rng.integers(-5, 0x110000, size=(count, width_l), dtype=np.int32)
  target = rng.integers(-5, 0x110000, size=(count, width_m), dtype=np.int32)
  source_len = np.zeros(count, np.int32)
  target_len = np.zeros(count, np.int32)

  def length(width: int) -> int:
    return int(rng.choice([0, width, int(rng.integers(0, width + 1))], p=[0.05, 0.15, 0.8]))

  for b in range(count):
    alphabet = rng.integers(0, 0x110000, size=(2, 3, 20, 4096)[b % 4])
    text = list(rng.choice(alphabet, length(width_l)))
    if rng.random() < 0.5:
      other = list(text)
      for _ in range(int(rng.integers(0, 6))):
        pos = int(rng.integers(0, len(other) + 1))
        kind = rng.integers(0, 3)
        if kind == 0 or not other:
          other.insert(pos, rng.choice(alphabet))
        elif kind == 1:
          del other[min(pos, len(other) - 1)]
        else:
          other[min(pos, len(other) - 1)] = rng.choice(alphabet)
      other = other[:width_m]
    else:
      other = list(rng.choice(alphabet, length(width_m)))
    source[b, : len(text)], source_len[b] = text, len(text)
    target[b, : len(other)], target_len[b] = other, len(other)
  return source, source_len, target, target_len


@pytest.mark.parametrize(
  'width_l, width_m',
  [
    (1, 1),
    (1, 40),
    (40, 1),
    (31, 33),
    (32, 32),
    (33, 31),
    (63, 65),
    (64, 64),
    (65, 100),
    (100, 130),
    (130, 64),
  ],
)
def test_matches_reference_implementation(width_l, width_m):
  # Covers word boundaries of the bit-parallel DP (31, 32, 33, 63, 64, 65 and several words),
  # L != M, empty and full-width strings, garbage padding and tie-heavy small alphabets.
  rng = np.random.default_rng(width_l * 1000 + width_m)
  batch = _random_code_batch(rng, 384, width_l, width_m)
  expected = _reference_edit_labels(*batch)
  actual = E.edit_labels(*batch)
  for name, want, got in zip(expected._fields, expected, actual):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=name)


def test_zero_width_batches():
  def labels(width_l, width_m, source_len, target_len):
    source = np.full((2, width_l), 7, np.int32)
    target = np.full((2, width_m), 7, np.int32)
    out = E.edit_labels(source, np.array(source_len), target, np.array(target_len))
    return [np.asarray(x).tolist() for x in out]

  # No source: every target character goes into slot 0.
  assert labels(0, 3, [0, 0], [2, 0]) == [
    [[], []],
    [[], []],
    [[0, 0, -2], [-2, -2, -2]],
    [[-1, -1, -1], [-1, -1, -1]],
    [2, 0],
  ]
  # No target: every source character is deleted.
  assert labels(3, 0, [2, 3], [0, 0]) == [
    [[DELETE, DELETE, -1], [DELETE] * 3],
    [[-1] * 3, [-1] * 3],
    [[], []],
    [[], []],
    [2, 3],
  ]
  assert labels(0, 0, [0, 0], [0, 0]) == [[[], []]] * 4 + [[0, 0]]


def test_garbage_padding_does_not_matter():
  rng = np.random.default_rng(2)
  pairs = _random_pairs(seed=3, count=256, max_len=12)
  src, src_len = E._pad_codes([s for s, _ in pairs], 16, len(pairs))
  tgt, tgt_len = E._pad_codes([t for _, t in pairs], 16, len(pairs))
  clean = E.edit_labels(src, src_len, tgt, tgt_len)
  pad_src = np.arange(16)[None] >= src_len[:, None]
  pad_tgt = np.arange(16)[None] >= tgt_len[:, None]

  def garbage(x):
    return rng.integers(-5, 0x110000, size=x.shape, dtype=np.int32)

  dirty = E.edit_labels(
    np.where(pad_src, garbage(src), src), src_len, np.where(pad_tgt, garbage(tgt), tgt), tgt_len
  )
  for name, a, b in zip(clean._fields, clean, dirty):
    np.testing.assert_array_equal(a, b, err_msg=name)


def test_insertion_targets():
  pairs = [('abc', 'xaYZbc'), ('', 'pqrs'), ('abc', 'abc')]
  src, src_len = E._pad_codes([s for s, _ in pairs], 4, 3)
  tgt, tgt_len = E._pad_codes([t for _, t in pairs], 8, 3)
  labels = E.edit_labels(src, src_len, tgt, tgt_len)
  ins_chars, ins_count = E.insertion_targets(
    tgt, tgt_len, labels.target_slot, num_slots=5, max_insertions=2, pad_char=-1
  )
  np.testing.assert_array_equal(ins_count, [[1, 2, 0, 0, 0], [4, 0, 0, 0, 0], [0] * 5])
  pad = [-1, -1]
  np.testing.assert_array_equal(
    ins_chars,
    [
      [[ord('x'), -1], [ord('Y'), ord('Z')], pad, pad, pad],
      [[ord('p'), ord('q')], pad, pad, pad, pad],  # Count 4 > K = 2: first two kept.
      [pad] * 5,
    ],
  )


def test_positional_labels_ignore_accidental_matches():
  src, src_len = E._pad_codes(['(- 3 11)', 'ab', ''], 8, 3)
  tgt, tgt_len = E._pad_codes(['-8', 'abcd', 'xy'], 8, 3)
  labels = E.positional_labels(src, src_len, tgt, tgt_len)
  assert labels.ops[0].tolist() == [MODIFY, MODIFY] + [DELETE] * 6
  assert labels.chars[0, :2].tolist() == [ord('-'), ord('8')]
  assert labels.ops[1, :2].tolist() == [KEEP, KEEP]
  assert labels.target_slot[1, :4].tolist() == [-1, -1, 2, 2]  # Appended after the last node.
  assert labels.target_slot[2, :2].tolist() == [0, 0]
  assert labels.distance.tolist() == [8, 2, 2]
  # The Levenshtein labels of the first pair keep the operator's '-' instead.
  assert E.edit_labels(src, src_len, tgt, tgt_len).ops[0, 1] == KEEP
