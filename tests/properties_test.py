"""Property tests (hypothesis) over arbitrary Unicode: graphs, batches, edit labels, decoding, data.

Every law below holds for any Python string, including the ones string code usually gets wrong:
the empty string, NUL and other control characters, combining marks (also at the start of a string
and stacked), emoji ZWJ / flag / skin-tone / keycap / tag sequences, lone surrogates (as JSON's
``"\\ud800"`` escapes produce them, and a high and a low half as two separate code points),
U+2028/U+2029, a BOM inside the text, noncharacters and U+10FFFF, and strings longer than the
padding budget. Each function either reproduces its input exactly or raises a ``ValueError`` that
names the offending example; nothing may be truncated or altered silently.

The edit DP is jit-compiled per shape, so those tests pad every draw to one fixed shape
(``_ROWS`` pairs of width ``_WIDTH``) and compile once. Every test is derandomized (the same
examples on every run); the whole file takes about 20 s on 2 CPU cores.
"""

import json
import re

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from rapidfuzz.distance import Levenshtein

from grapheme_jax import data, edits, graphs, input_pipeline
from grapheme_jax.edits import DELETE, KEEP, MODIFY

# One fixed DP shape: _ROWS pairs, both sides padded to _WIDTH code points. 40 > 32 puts targets on
# two 32-bit words of the bit-parallel DP, so carries between words are exercised too.
_WIDTH = 40
_ROWS = 8


def _settings(max_examples: int):
  """Deterministic settings: the same examples on every run (and in CI), no example database."""
  return settings(
    max_examples=max_examples,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
  )


# ------------------------------------------------------------------------------------------------
# Strategies.


def _from_json(literal: str) -> str:
  """A string as json.loads decodes ``literal``: this is how lone surrogates enter real data."""
  return json.loads(f'"{literal}"')


_LONE_SURROGATES = (
  _from_json('\\ud800'),
  _from_json('\\udfff'),
  _from_json('\\udbff'),
  _from_json('x\\udc00y'),
  _from_json('\\udc00\\ud800'),  # Low then high: two lone halves, JSON keeps them apart.
)
assert all(len(s) in (1, 2, 3) for s in _LONE_SURROGATES)

SPECIAL_TEXTS = (
  '',
  '\x00',
  '\x00\x00',
  'a\x00',
  '\t\n\r\x0b\x0c\x1b\x7f\x85',
  '\r\n',
  'e\u0301',  # e + combining acute.
  'e\u0301\u0302\u0323\u0308',  # Stacked combining marks.
  '\u0301x',  # A combining mark with nothing to combine with.
  '\U0001f469\u200d\U0001f469\u200d\U0001f467',  # Family: ZWJ sequence.
  '\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466',
  '\U0001f1fa\U0001f1f8',  # Flag: two regional indicators.
  '\U0001f1fa\U0001f1f8\U0001f1e9\U0001f1ea',
  '\U0001f44d\U0001f3fd',  # Skin-tone modifier.
  '1\ufe0f\u20e3',  # Keycap.
  '\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f',  # Tag sequence.
  '\u2028',
  '\u2029',
  'a\u2028b\u2029c',
  '\ufeff',
  'x\ufeffy',
  '\U0010ffff',
  '\uffff\ufffe',
  '\ue000\U000f0000',  # Private use.
  '\ud83d\ude00',  # High and low half as two code points (not the one code point U+1F600).
  '\u202e\u05e9\u05dc\u05d5\u05dd',  # Right-to-left override and Hebrew.
  '"\\',
  'ab',
  *_LONE_SURROGATES,
)

# Single code points that break string code, for dense mixtures of hard cases.
_HARD_CHARS = tuple(sorted({c for text in SPECIAL_TEXTS for c in text} | set('ab \x01\x1f')))

# Every code point, surrogates (category Cs) included.
ANY_CHAR = st.characters(codec=None, exclude_categories=())
SURROGATE = st.characters(categories=['Cs'])
HARD_CHAR = st.one_of(st.sampled_from(_HARD_CHARS), SURROGATE, ANY_CHAR)


def texts(max_size: int | None = None) -> st.SearchStrategy[str]:
  """Strings mixing every code point with the hard cases; unbounded ones may exceed any budget."""
  pieces = st.one_of(st.sampled_from(SPECIAL_TEXTS), st.text(HARD_CHAR, max_size=3))
  options = [
    st.sampled_from(SPECIAL_TEXTS),
    st.text(ANY_CHAR, max_size=max_size or 2 * _WIDTH),
    st.text(HARD_CHAR, max_size=max_size or 2 * _WIDTH),
    st.text(st.sampled_from('ab'), max_size=max_size or 2 * _WIDTH),  # Ties everywhere.
    st.lists(pieces, max_size=12).map(''.join),
  ]
  if max_size is None:  # Longer than every padding budget used here.
    options.append(st.text(HARD_CHAR, min_size=_WIDTH + 1, max_size=3 * _WIDTH))
    return st.one_of(options)
  # Cutting the drawn string keeps the generator within the budget; nothing under test is cut.
  return st.one_of(options).map(lambda text: text[:max_size])


@st.composite
def text_pairs(draw, max_size: int | None = None) -> tuple[str, str]:
  """(source, target): independent, identical, or the target an edited copy of the source."""
  source = draw(texts(max_size))
  kind = draw(st.sampled_from(('edited', 'independent', 'same')))
  if kind == 'same':
    return source, source
  if kind == 'independent':
    return source, draw(texts(max_size))
  start = draw(st.integers(0, len(source)))
  stop = draw(st.integers(start, len(source)))
  target = source[:start] + draw(texts(max_size)) + source[stop:]
  return source, target if max_size is None else target[:max_size]


def vocabularies() -> st.SearchStrategy[list[str]]:
  """Extra vocabulary characters (any code points, surrogates included), at least one."""
  return st.lists(HARD_CHAR, min_size=1, max_size=12)


def _vocab(pairs, extra: list[str]) -> np.ndarray:
  """The training path's vocabulary (sorted target code points) plus ``extra`` characters.

  The extra characters stand for the rest of a training set, whose vocabulary is a superset of the
  targets at hand; they also keep it non-empty (see `test_empty_vocabulary`).
  """
  codes = set(data.vocabulary(pairs)) | {ord(c) for c in extra}
  return np.asarray(sorted(codes), np.int32)


def _code_points(text: str) -> list[int]:
  """Code points as a list: rapidfuzz then compares integers, whatever the string holds."""
  return [ord(c) for c in text]


def _levenshtein(source: str, target: str) -> int:
  """The oracle: rapidfuzz's Levenshtein distance over code points."""
  return Levenshtein.distance(_code_points(source), _code_points(target))


def _first(indices) -> int | None:
  return next(iter(indices), None)


# ------------------------------------------------------------------------------------------------
# 1. text_to_graph / graph_to_text.


@_settings(300)
@given(text=texts(), window=st.integers(1, 5))
def test_text_graph_round_trip_is_exact(text, window):
  graph = graphs.text_to_graph(text, skip_window=window)
  assert graphs.graph_to_text(graph) == text
  assert graph.nodes.dtype == np.int32
  assert graph.nodes.tolist() == _code_points(text)  # Node features are exactly the code points.
  assert graph.n_node.tolist() == [len(text)]
  assert graph.n_edge.tolist() == [graphs.num_edges(len(text), window)] == [len(graph.senders)]
  # Exactly the edges i -> i + d with feature d, for d in 1..window.
  edges = list(zip(graph.senders.tolist(), graph.receivers.tolist(), graph.edges.tolist()))
  expected = [(i, i + d, d) for d in range(1, window + 1) for i in range(len(text) - d)]
  assert sorted(edges) == sorted(expected)


# ------------------------------------------------------------------------------------------------
# 2. Encoding and batching.


def _assert_names_text(error: pytest.ExceptionInfo, index: int, text: str) -> None:
  """The error names the offending example: its index and (the start of) its text."""
  message = str(error.value)
  assert re.search(rf'\btext {index} has {len(text)} characters\b', message), message
  assert repr(text[:40]) in message, message


@_settings(200)
@given(batch=st.lists(texts(), max_size=6), max_length=st.integers(0, _WIDTH))
def test_encode_decode_is_exact_or_names_the_overlong_text(batch, max_length):
  overlong = _first(i for i, text in enumerate(batch) if len(text) > max_length)
  if overlong is not None:
    with pytest.raises(ValueError) as error:
      graphs.encode(batch, max_length)
    _assert_names_text(error, overlong, batch[overlong])
    return
  codes, lengths = graphs.encode(batch, max_length)
  assert codes.shape == (len(batch), max_length)
  assert lengths.tolist() == [len(text) for text in batch]
  assert graphs.decode(codes, lengths) == batch
  for row, text in zip(codes, batch):
    assert row.tolist() == _code_points(text) + [0] * (max_length - len(text))


_BUDGET = graphs.Budget(batch_size=4, max_length=16, skip_window=2)


@_settings(150)
@given(batch=st.lists(texts(), max_size=_BUDGET.batch_size + 1))
def test_batches_hold_each_text_exactly_or_name_the_overlong_one(batch):
  budget = _BUDGET
  overlong = _first(i for i, text in enumerate(batch) if len(text) > budget.max_length)
  if len(batch) > budget.batch_size:
    with pytest.raises(ValueError, match=f'{len(batch)} texts do not fit a batch of 4'):
      graphs.batch_dense(batch, budget)
    return
  if overlong is not None:
    for build in (graphs.batch_graphs, graphs.batch_dense):
      with pytest.raises(ValueError) as error:
        build(batch, budget)
      _assert_names_text(error, overlong, batch[overlong])
    return
  dense = graphs.batch_dense(batch, budget)
  assert dense.nodes.shape == (budget.batch_size, budget.max_length)
  assert dense.senders.shape == (budget.batch_size, budget.max_edges)
  for i, text in enumerate(batch + [''] * (budget.batch_size - len(batch))):
    n, single = len(text), graphs.text_to_graph(text, budget.skip_window)
    e = int(single.n_edge[0])
    assert dense.n_node[i] == n and dense.n_edge[i] == e
    assert ''.join(map(chr, dense.nodes[i, :n].tolist())) == text
    assert not dense.nodes[i, n:].any()
    for name in ('edges', 'senders', 'receivers'):
      assert getattr(dense, name)[i, :e].tolist() == getattr(single, name).tolist()
      assert not getattr(dense, name)[i, e:].any()


@_settings(100)
@given(batch=st.lists(texts(max_size=12), min_size=1, max_size=4), max_nodes=st.integers(0, 12))
def test_dense_layout_never_truncates(batch, max_nodes):
  jraph_batch = graphs.batch_graphs(batch, graphs.Budget(4, 12, 2))
  max_edges = graphs.num_edges(max_nodes, 2)
  if max(len(text) for text in batch) > max_nodes:
    with pytest.raises(ValueError, match=f'the dense layout holds {max_nodes} and {max_edges}'):
      graphs.to_dense(jraph_batch, 4, max_nodes, max_edges)
    return
  dense = graphs.to_dense(jraph_batch, 4, max_nodes, max_edges)
  assert graphs.decode(dense.nodes, dense.n_node)[: len(batch)] == batch


# ------------------------------------------------------------------------------------------------
# 3. The edit DP at one fixed shape.


def _pad_pairs(pairs) -> tuple[np.ndarray, ...]:
  """(source, source_len, target, target_len) of ``pairs`` padded to [_ROWS, _WIDTH]."""
  rows = list(pairs) + [('', '')] * (_ROWS - len(pairs))
  source, source_len = graphs.encode([s for s, _ in rows], _WIDTH)
  target, target_len = graphs.encode([t for _, t in rows], _WIDTH)
  return source, source_len, target, target_len


def _edits_from_labels(source: str, target: str, labels: edits.EditLabels, b: int) -> edits.Edits:
  """Checks the layout of row ``b`` of ``labels`` and turns it into host ``Edits`` (no package
  helper involved: target characters go to their slot, aligned ones must match their source)."""
  n, m = len(source), len(target)
  ops, chars = labels.ops[b].tolist(), labels.chars[b].tolist()
  slot, aligned_to = labels.target_slot[b].tolist(), labels.target_source[b].tolist()
  assert ops[n:] == [-1] * (_WIDTH - n) and chars[n:] == [-1] * (_WIDTH - n)
  assert slot[m:] == [-2] * (_WIDTH - m) and aligned_to[m:] == [-1] * (_WIDTH - m)
  for i, (op, char) in enumerate(zip(ops[:n], chars[:n])):
    assert op in (KEEP, DELETE, MODIFY), (i, op)
    if op == KEEP:
      assert char == ord(source[i]), i
    elif op == MODIFY:
      assert char != ord(source[i]) and 0 <= char <= graphs.MAX_CODE_POINT, i
    else:
      assert char == -1, i
  insertions = [''] * (n + 1)
  aligned = []
  for j in range(m):
    if slot[j] == -1:  # Produced by source node aligned_to[j].
      i = aligned_to[j]
      assert 0 <= i < n and ops[i] != DELETE and chars[i] == ord(target[j]), (j, i)
      aligned.append(i)
    else:
      assert 0 <= slot[j] <= n and aligned_to[j] == -1, j
      insertions[slot[j]] += target[j]
  # Every kept or modified source node produces exactly one target character, in order.
  assert aligned == [i for i in range(n) if ops[i] != DELETE]
  return edits.Edits(tuple(ops[:n]), tuple(chars[:n]), tuple(insertions))


_LABEL_FNS = {'levenshtein': edits.edit_labels, 'positional': edits.positional_labels}


@pytest.mark.parametrize('alignment', ['levenshtein', 'positional'])
@_settings(100)
@given(pairs=st.lists(text_pairs(max_size=_WIDTH), min_size=1, max_size=_ROWS))
def test_edit_labels_apply_to_the_target_at_the_oracle_distance(alignment, pairs):
  labels = jax.device_get(_LABEL_FNS[alignment](*_pad_pairs(pairs)))
  for b, (source, target) in enumerate(pairs):
    script = _edits_from_labels(source, target, labels, b)
    assert edits.apply_edits(source, script) == target, (source, target)
    assert labels.distance[b] == script.num_edits, (source, target)
    if alignment == 'levenshtein':
      assert labels.distance[b] == _levenshtein(source, target), (source, target)
    else:  # A valid script, not necessarily a shortest one; left-aligned over the source.
      assert labels.distance[b] >= _levenshtein(source, target), (source, target)
      assert [c for c in labels.chars[b, : len(source)].tolist() if c >= 0] == _code_points(
        target[: len(source)]
      )
  assert labels.distance[len(pairs) :].tolist() == [0] * (_ROWS - len(pairs))  # Empty rows.


# ------------------------------------------------------------------------------------------------
# 4. Decoding predictions.


def _reference_decode(source: str, ops, char_ids, ins_ids, vocab) -> str:
  """Slot 0, node 0, slot 1, ...; a slot stops at the end marker ``len(vocab)``."""
  out = []
  for i in range(len(source) + 1):
    for c in ins_ids[i].tolist():
      if c == len(vocab):
        break
      out.append(chr(vocab[c]))
    if i < len(source):
      if ops[i] == KEEP:
        out.append(source[i])
      elif ops[i] == MODIFY:
        out.append(chr(vocab[char_ids[i]]))
  return ''.join(out)


@_settings(200)
@given(
  source=texts(max_size=_WIDTH),
  extra=vocabularies(),
  max_insertions=st.integers(1, 4),
  data_=st.data(),
)
def test_decoding_any_prediction_uses_only_source_and_vocabulary(
  source, extra, max_insertions, data_
):
  # Shapes and value ranges of predict_step's argmaxes for a budget of _WIDTH nodes; positions
  # past the source hold garbage as they do in a real batch.
  vocab = _vocab([], extra)
  ops = data_.draw(hnp.arrays(np.int32, _WIDTH, elements=st.integers(0, edits.NUM_OPS - 1)))
  char_ids = data_.draw(hnp.arrays(np.int32, _WIDTH, elements=st.integers(0, len(vocab) - 1)))
  ins_ids = data_.draw(
    hnp.arrays(np.int32, (_WIDTH + 1, max_insertions), elements=st.integers(0, len(vocab)))
  )
  script = edits.predictions_to_edits(source, ops, char_ids, ins_ids, vocab)
  decoded = edits.apply_edits(source, script)
  assert decoded == _reference_decode(source, ops, char_ids, ins_ids, vocab)
  assert set(decoded) <= set(source) | {chr(c) for c in vocab.tolist()}
  n = len(source)
  assert len(decoded) == int(np.sum(ops[:n] != DELETE)) + sum(map(len, script.insertions))


def _make_examples(pairs, vocab, alignment='levenshtein', max_insertions=_WIDTH):
  """The training path's labelling at the fixed shape (one budget of _WIDTH, chunks of _ROWS)."""
  return input_pipeline.make_examples(
    pairs, vocab, (_WIDTH,), max_insertions, 'test', alignment=alignment, chunk=_ROWS
  )


@pytest.mark.parametrize('alignment', ['levenshtein', 'positional'])
@_settings(100)
@given(
  pairs=st.lists(text_pairs(max_size=_WIDTH), min_size=1, max_size=_ROWS), extra=vocabularies()
)
def test_gold_labels_decode_to_the_target(alignment, pairs, extra):
  pairs = [data.Pair(s, t) for s, t in pairs]
  vocab = _vocab(pairs, extra)
  examples = _make_examples(pairs, vocab, alignment)
  assert examples.pairs == tuple(pairs)
  for i, pair in enumerate(pairs):
    n, m = len(pair.input), len(pair.target)
    assert (examples.source_len[i], examples.target_len[i]) == (n, m)
    assert examples.source_codes[i, :n].tolist() == _code_points(pair.input)
    assert examples.target_codes[i, :m].tolist() == _code_points(pair.target)
    script = edits.predictions_to_edits(
      pair.input, examples.ops[i], examples.char_ids[i], examples.ins_ids[i], vocab
    )
    assert edits.apply_edits(pair.input, script) == pair.target, pair
    if alignment == 'levenshtein':
      assert script.num_edits == _levenshtein(pair.input, pair.target), pair


@_settings(100)
@given(
  pairs=st.lists(text_pairs(max_size=_WIDTH), min_size=1, max_size=_ROWS), extra=vocabularies()
)
def test_too_many_insertions_is_an_error_naming_the_example(pairs, extra):
  # Raises iff a slot of the Levenshtein labels receives more than 2 characters, naming the first
  # such pair and the count of its first over-full slot.
  labels = jax.device_get(edits.edit_labels(*_pad_pairs(pairs)))
  over_full = [
    [
      len(chars)
      for chars in _edits_from_labels(source, target, labels, b).insertions
      if len(chars) > 2
    ]
    for b, (source, target) in enumerate(pairs)
  ]
  pairs = [data.Pair(s, t) for s, t in pairs]
  vocab = _vocab(pairs, extra)
  first = _first(i for i, counts in enumerate(over_full) if counts)
  if first is None:
    assert len(_make_examples(pairs, vocab, max_insertions=2)) == len(pairs)
    return
  with pytest.raises(ValueError) as error:
    _make_examples(pairs, vocab, max_insertions=2)
  # The name may carry the pair's origin (FILE:LINE) where it has one.
  message = str(error.value)
  assert re.match(rf'test example {first}\b.* needs {over_full[first][0]} characters', message)


@_settings(100)
@given(pairs=st.lists(text_pairs(), min_size=1, max_size=_ROWS), extra=vocabularies())
def test_make_examples_never_truncates(pairs, extra):
  # Inputs are encoded first, so the first over-long input is named, else the first target.
  pairs = [data.Pair(s, t) for s, t in pairs]
  overlong = [
    (i, text)
    for field in ('input', 'target')
    for i, text in enumerate(getattr(p, field) for p in pairs)
    if len(text) > _WIDTH
  ]
  if not overlong:
    assert len(_make_examples(pairs, _vocab(pairs, extra))) == len(pairs)
    return
  with pytest.raises(ValueError) as error:
    _make_examples(pairs, _vocab(pairs, extra))
  _assert_names_text(error, *overlong[0])


@_settings(10)
@given(sources=st.lists(texts(max_size=_WIDTH), min_size=1, max_size=_ROWS))
def test_empty_vocabulary_is_a_clear_error(sources):
  # Every target is empty (a "delete everything" data set): there is no character to write.
  pairs = [data.Pair(s, '') for s in sources]
  vocab = np.asarray(data.vocabulary(pairs), np.int32)
  assert vocab.size == 0
  with pytest.raises(ValueError, match='output vocabulary is empty'):
    _make_examples(pairs, vocab)


# ------------------------------------------------------------------------------------------------
# 5. JSONL.


def _high_then_low(text: str) -> bool:
  """True if a high surrogate directly precedes a low one: JSON writes that exactly like the one
  astral code point they encode (both ``"\\ud83d\\ude00"``), so no file format can tell them apart
  and json.loads returns the code point. Such strings cannot be carried by JSON at all."""
  return any(
    '\ud800' <= a <= '\udbff' and '\udc00' <= b <= '\udfff' for a, b in zip(text, text[1:])
  )


def _has_surrogate(text: str) -> bool:
  return any('\ud800' <= c <= '\udfff' for c in text)


@pytest.fixture(scope='module')
def jsonl_path(tmp_path_factory):
  """One file, rewritten by every example (a function-scoped tmp_path is not reset between them)."""
  return str(tmp_path_factory.mktemp('jsonl') / 'pairs.jsonl')


def _load(path: str, content: bytes) -> list[data.Pair]:
  with open(path, 'wb') as f:
    f.write(content)
  return data.load_jsonl(path)


_JSON_TEXT = texts().filter(lambda text: not _high_then_low(text))


@_settings(200)
@given(
  pairs=st.lists(st.tuples(_JSON_TEXT, _JSON_TEXT), max_size=5),
  ascii_only=st.booleans(),
  newline=st.sampled_from(('\n', '\r\n')),
  final_newline=st.booleans(),
  bom=st.booleans(),
)
def test_jsonl_round_trip_is_exact(jsonl_path, pairs, ascii_only, newline, final_newline, bom):
  if not ascii_only:  # UTF-8 cannot hold a lone surrogate: only ASCII escapes carry them.
    pairs = [(s, t) for s, t in pairs if not _has_surrogate(s + t)]
  lines = [json.dumps({'input': s, 'target': t}, ensure_ascii=ascii_only) for s, t in pairs]
  content = ('\ufeff' if bom else '') + newline.join(lines) + (newline if final_newline else '')
  if not pairs:  # An empty file, or a lone (BOM and) newline: an error naming the file.
    with pytest.raises(
      ValueError, match=f'^{re.escape(jsonl_path)}:( file contains no pairs|1: blank)'
    ):
      _load(jsonl_path, content.encode('utf-8'))
    return
  loaded = _load(jsonl_path, content.encode('utf-8'))
  assert [(p.input, p.target) for p in loaded] == pairs


@_settings(100)
@given(
  pairs=st.lists(st.tuples(texts(), texts()), min_size=1, max_size=5),
  where=st.tuples(st.integers(0, 4), st.booleans(), st.integers(0, 3 * _WIDTH)),
  surrogate=SURROGATE,
)
def test_jsonl_with_raw_surrogates_is_an_error_naming_the_line(jsonl_path, pairs, where, surrogate):
  # Raw surrogates (written with 'surrogatepass') are not UTF-8: the loader names the first line
  # holding one instead of dropping or replacing them. One surrogate is planted in pair `row`.
  row, in_target, position = where
  row = min(row, len(pairs) - 1)
  text = pairs[row][in_target]
  text = text[:position] + surrogate + text[position:]
  pairs[row] = (pairs[row][0], text) if in_target else (text, pairs[row][1])
  bad = _first(i for i, (s, t) in enumerate(pairs) if _has_surrogate(s + t))
  lines = [json.dumps({'input': s, 'target': t}, ensure_ascii=False) for s, t in pairs]
  content = '\n'.join(lines).encode('utf-8', 'surrogatepass')
  with pytest.raises(ValueError) as error:
    _load(jsonl_path, content)
  assert str(error.value).startswith(f'{jsonl_path}:{bad + 1}: invalid UTF-8')


# ------------------------------------------------------------------------------------------------
# 6. Over-long examples in the training path.


@_settings(200)
@given(
  pairs=st.lists(text_pairs(), max_size=8),
  max_length=st.integers(0, 2 * _WIDTH),
  skip=st.booleans(),
  split=st.sampled_from(('train', 'eval')),
)
def test_filter_overlong_raises_naming_the_example_or_drops_exactly_those(
  pairs, max_length, skip, split
):
  pairs = [data.Pair(s, t) for s, t in pairs]

  def fits(pair):
    return len(pair.input) <= max_length and len(pair.target) <= max_length

  first = _first(i for i, pair in enumerate(pairs) if not fits(pair))
  if first is not None and not skip:
    with pytest.raises(ValueError) as error:
      input_pipeline.filter_overlong(pairs, max_length, skip=False, split=split)
    message = str(error.value)
    assert re.match(
      rf'{split} example {first}\b.* does not fit data.max_length={max_length}\b', message
    )
    assert f'input has {len(pairs[first].input)} characters' in message
    assert repr(pairs[first].input[:60]) in message and repr(pairs[first].target[:60]) in message
    return
  kept = input_pipeline.filter_overlong(pairs, max_length, skip=skip, split=split)
  assert kept == [pair for pair in pairs if fits(pair)]  # Same pairs, same order, unchanged.
