"""Tests for grapheme_jax.data: curriculum correctness, splits, JSONL loading and dispatch.

Answers are checked against an independent evaluator written here (not the generator's code):
exact rational evaluation for numeric levels, finite differences for derivatives and integrals.
"""

import decimal
import fractions
import json
import logging
import math
import re

import ml_collections
import pytest

from grapheme_jax import data, input_pipeline

Fraction = fractions.Fraction
ALL_LEVELS = tuple(range(1, 8))


# ------------------------------------------------------------------------------------------------
# A tiny prefix-expression reader and evaluator, independent of the generator.


def parse(text):
  """Parses one S-expression into nested lists of ints and symbol strings."""
  tokens = re.findall(r'\(|\)|[^\s()]+', text)
  position = 0

  def read():
    nonlocal position
    token = tokens[position]
    position += 1
    if token == '(':
      items = []
      while tokens[position] != ')':
        items.append(read())
      position += 1
      return items
    if token == ')':
      raise ValueError(f'unexpected ) in {text!r}')
    return int(token) if re.fullmatch(r'-?\d+', token) else token

  tree = read()
  if position != len(tokens):
    raise ValueError(f'trailing tokens in {text!r}')
  return tree


def unparse(tree):
  """Writes a tree back with single spaces, to check that texts are canonically spaced."""
  if isinstance(tree, list):
    return '(' + ' '.join(unparse(t) for t in tree) + ')'
  return str(tree)


def evaluate(tree, env, exact=True):
  """Evaluates a tree; exact mode uses Fractions and rejects transcendental values."""
  if isinstance(tree, int):
    return Fraction(tree) if exact else float(tree)
  if isinstance(tree, str):
    return env[tree]
  head, *args = tree
  if head == 'let':
    bindings, body = args
    inner = dict(env)
    for name, value in bindings:
      inner[name] = evaluate(value, env, exact)
    return evaluate(body, inner, exact)
  values = [evaluate(arg, env, exact) for arg in args]
  return _call(head, values, exact)


def _call(head, values, exact):
  """Applies one operator or function."""
  if head == '-' and len(values) == 1:
    return -values[0]
  binary = {
    '+': lambda a, b: a + b,
    '-': lambda a, b: a - b,
    '*': lambda a, b: a * b,
    '/': lambda a, b: a / b,
  }
  if head in binary:
    assert len(values) == 2, (head, values)
    return binary[head](*values)
  (value,) = values[:1] if head != '^' else values[1:]
  if head == '^':
    assert value == int(value) and value > 0
    return values[0] ** int(value)
  if head == 'abs':
    return abs(value)
  if head == 'sqrt' and exact:
    root = math.isqrt(int(value))
    assert value == root * root, value
    return Fraction(root)
  if head == 'exp' and exact:
    assert value == 0, 'exp is only exact at 0'
    return Fraction(1)
  functions = {'sqrt': math.sqrt, 'exp': math.exp, 'sin': math.sin, 'cos': math.cos}
  assert not exact, f'{head} is not exact'
  return functions[head](value)


def reference_format(value):
  """Independent formatting: Decimal half-up rounding to 2 places, zeros stripped, no -0."""
  with decimal.localcontext() as context:
    context.prec = 60
    number = decimal.Decimal(value.numerator) / decimal.Decimal(value.denominator)
    rounded = number.quantize(decimal.Decimal('0.01'), rounding=decimal.ROUND_HALF_UP)
  text = f'{rounded:f}'
  if '.' in text:
    text = text.rstrip('0').rstrip('.')
  return '0' if text == '-0' else text


def check_numeric_answer(pair, exact):
  """The target is the canonical decimal of the exact value."""
  assert re.fullmatch(r'-?(0|[1-9]\d*)(\.\d?[1-9])?', pair.target), pair
  assert pair.target != '-0', pair
  assert pair.target == reference_format(exact), (pair, exact)
  assert abs(Fraction(pair.target) - exact) <= Fraction(1, 200), (pair, exact)
  if exact.denominator == 1:
    assert Fraction(pair.target) == exact, pair


def check_canonical(pair):
  """Both sides parse and are spaced canonically."""
  for text in (pair.input, pair.target):
    assert unparse(parse(text)) == text, pair


# Points away from 0 and from each other; negative x exercises odd powers.
SAMPLE_XS = (-0.6, 0.3, 0.7, 1.1)
STEP = 1e-5


def _function_of_x(tree):
  return lambda x: evaluate(tree, {'x': x}, exact=False)


def _central_difference(f, x):
  return (f(x + STEP) - f(x - STEP)) / (2 * STEP)


# ------------------------------------------------------------------------------------------------
# Problem counts and correctness.

EXPECTED_COUNTS = {1: 1200, 2: 31900, 3: 4920, 4: 2380, 5: 295, 6: 141, 7: 3249}


@pytest.mark.parametrize('level', ALL_LEVELS)
def test_level_counts_sorted_and_unique(level):
  problems = data.math_problems(level)
  assert len(problems) == EXPECTED_COUNTS[level]
  inputs = [pair.input for pair in problems]
  assert inputs == sorted(inputs)
  assert len(set(inputs)) == len(inputs)


def test_level1_is_the_full_grid():
  expected = {f'({op} {a} {b})' for op in '+-*' for a in range(1, 21) for b in range(1, 21)}
  assert {pair.input for pair in data.math_problems(1)} == expected


def test_inputs_differ_across_levels():
  inputs = [pair.input for level in ALL_LEVELS for pair in data.math_problems(level)]
  assert len(set(inputs)) == len(inputs)


def test_math_problems_returns_a_fresh_list():
  problems = data.math_problems(1)
  problems.clear()
  assert len(data.math_problems(1)) == 1200


@pytest.mark.parametrize('level', [1, 2, 3, 4])
def test_numeric_answers_are_correct(level):
  for pair in data.math_problems(level):
    check_canonical(pair)
    if pair.input == '(exp 1)':
      assert pair.target == 'e'
      continue
    check_numeric_answer(pair, evaluate(parse(pair.input), {}))


def _positive_literals(tree):
  if isinstance(tree, list):
    return all(_positive_literals(t) for t in tree)
  return not isinstance(tree, int) or tree > 0


def test_level7_solutions_satisfy_the_equation():
  for pair in data.math_problems(7):
    check_canonical(pair)
    solve, (equals, lhs, rhs), variable = parse(pair.input)
    assert (solve, equals, variable) == ('solve', '=', 'x')
    assert re.fullmatch(r'-?[1-9]\d*|0', pair.target), pair
    x = Fraction(int(pair.target))
    assert evaluate(lhs, {'x': x}) == evaluate(rhs, {}), pair
    # Negative offsets are written with '-', never as a negative literal inside the sum.
    assert _positive_literals(lhs), pair
    assert -9 <= x <= 9


def test_level5_derivatives_match_finite_differences():
  for pair in data.math_problems(5):
    check_canonical(pair)
    head, body = parse(pair.input)
    assert head == 'd/dx'
    f, derivative = _function_of_x(body), _function_of_x(parse(pair.target))
    for x in SAMPLE_XS:
      assert math.isclose(derivative(x), _central_difference(f, x), rel_tol=1e-6, abs_tol=1e-6), (
        pair,
        x,
      )


def test_level6_integrals_differentiate_back():
  for pair in data.math_problems(6):
    check_canonical(pair)
    head, body = parse(pair.input)
    assert head == 'int'
    f, antiderivative = _function_of_x(body), _function_of_x(parse(pair.target))
    for x in SAMPLE_XS:
      assert math.isclose(
        _central_difference(antiderivative, x), f(x), rel_tol=1e-6, abs_tol=1e-6
      ), (pair, x)


@pytest.mark.parametrize(
  'text, answer',
  [
    ('(+ 16 9)', '25'),
    ('(- 3 11)', '-8'),
    ('(* 4 5)', '20'),
    ('(* (+ 3 4) 5)', '35'),
    ('(- 9 (* 2 3))', '3'),
    ('(/ (+ 3 4) 2)', '3.5'),
    ('(/ (* 2 5) 5)', '2'),
    ('(/ 1 (+ 1 2))', '0.33'),
    ('(/ (- 1 2) 3)', '-0.33'),
    ('(* (/ 1 3) 3)', '1'),
    ('(let ((x 3)) (* x 4))', '12'),
    ('(let ((x 3) (y 5)) (+ x y))', '8'),
    ('(let ((z 7)) (/ z 2))', '3.5'),
    ('(sqrt 49)', '7'),
    ('(abs -5)', '5'),
    ('(exp 0)', '1'),
    ('(exp 1)', 'e'),
    ('(+ (sqrt 16) 3)', '7'),
    ('(- 2 (abs -7))', '-5'),
    ('(d/dx (^ x 3))', '(* 3 (^ x 2))'),
    ('(d/dx (^ x 2))', '(* 2 x)'),
    ('(d/dx (^ x 1))', '1'),
    ('(d/dx (+ (* 3 x) 2))', '3'),
    ('(d/dx (sin x))', '(cos x)'),
    ('(d/dx (cos x))', '(- (sin x))'),
    ('(d/dx (exp x))', '(exp x)'),
    ('(d/dx (* 4 (sin x)))', '(* 4 (cos x))'),
    ('(d/dx (* 4 (cos x)))', '(- (* 4 (sin x)))'),
    ('(d/dx (sin (* 3 x)))', '(* 3 (cos (* 3 x)))'),
    ('(int (^ x 2))', '(/ (^ x 3) 3)'),
    ('(int (* 2 x))', '(^ x 2)'),
    ('(int (cos x))', '(sin x)'),
    ('(int (sin x))', '(- (cos x))'),
    ('(int (exp x))', '(exp x)'),
    ('(int 5)', '(* 5 x)'),
    ('(int 1)', 'x'),
    ('(int (* 3 x))', '(/ (* 3 (^ x 2)) 2)'),
    ('(int (* 6 (^ x 2)))', '(* 2 (^ x 3))'),
    ('(int (exp (* 2 x)))', '(/ (exp (* 2 x)) 2)'),
    ('(solve (= (+ (* 3 x) 2) 11) x)', '3'),
    ('(solve (= (- (* 3 x) 4) -13) x)', '-3'),
    ('(solve (= x -9) x)', '-9'),
  ],
)
def test_examples_from_the_brief(text, answer):
  targets = {pair.input: pair.target for level in ALL_LEVELS for pair in data.math_problems(level)}
  assert targets[text] == answer


@pytest.mark.parametrize(
  'value, expected',
  [
    (Fraction(7, 2), '3.5'),
    (Fraction(10, 5), '2'),
    (Fraction(1, 3), '0.33'),
    (Fraction(-1, 3), '-0.33'),
    (Fraction(2, 3), '0.67'),
    (Fraction(-2, 3), '-0.67'),
    (Fraction(1, 8), '0.13'),
    (Fraction(-1, 8), '-0.13'),
    (Fraction(1, 300), '0'),
    (Fraction(-1, 300), '0'),
    (Fraction(1, 20), '0.05'),
    (Fraction(1, 10), '0.1'),
    (Fraction(101, 100), '1.01'),
    (Fraction(199, 200), '1'),
    (Fraction(-199, 200), '-1'),
    (Fraction(0), '0'),
    (-5, '-5'),
    (12, '12'),
  ],
)
def test_format_number(value, expected):
  assert data.format_number(value) == expected
  assert reference_format(Fraction(value)) == expected  # Keeps the test oracle honest.


# ------------------------------------------------------------------------------------------------
# Curriculum splits.


def _inputs(pairs):
  return [pair.input for pair in pairs]


def test_split_is_deterministic_and_seed_dependent():
  first = data.math_curriculum(ALL_LEVELS, seed=0)
  assert first == data.math_curriculum(ALL_LEVELS, seed=0)
  other = data.math_curriculum(ALL_LEVELS, seed=1)
  assert _inputs(first[1]) != _inputs(other[1])
  assert set(_inputs(first[1])) != set(_inputs(other[1]))


def test_level_split_does_not_depend_on_other_levels():
  alone = data.math_curriculum([5], seed=3)
  _, mixed_eval = data.math_curriculum([1, 5], seed=3)
  assert [p for p in mixed_eval if p.input.startswith('(d/dx')] == alone[1]


@pytest.mark.parametrize(
  'levels', [(level,) for level in ALL_LEVELS] + [ALL_LEVELS, (2, 5), (7, 1, 4)]
)
@pytest.mark.parametrize('seed', [0, 11])
def test_eval_inputs_never_in_train(levels, seed):
  train, evaluation = data.math_curriculum(levels, seed=seed)
  assert not set(_inputs(train)) & set(_inputs(evaluation))
  all_problems = [p for level in levels for p in data.math_problems(level)]
  assert sorted(_inputs(train + evaluation)) == sorted(_inputs(all_problems))
  expected_eval = sum(round(0.2 * len(data.math_problems(level))) for level in levels)
  assert len(evaluation) == expected_eval


def test_levels_are_concatenated_in_order():
  train, evaluation = data.math_curriculum([7, 1], seed=0, max_per_level=10)
  assert all(p.input.startswith('(solve') for p in train[:8])
  assert not any(p.input.startswith('(solve') for p in train[8:])
  assert len(train) == 16 and len(evaluation) == 4


def test_max_per_level_and_small_levels():
  train, evaluation = data.math_curriculum([1, 2], seed=0, eval_fraction=0.01, max_per_level=20)
  assert (len(train), len(evaluation)) == (38, 2)  # round(0.2) == 0, but at least one per level.
  train, evaluation = data.math_curriculum([1], seed=0, max_per_level=1)
  assert (len(train), len(evaluation)) == (1, 0)
  train, evaluation = data.math_curriculum([1], seed=0, eval_fraction=0.99, max_per_level=2)
  assert (len(train), len(evaluation)) == (1, 1)  # Training never ends up empty.


@pytest.mark.parametrize(
  'kwargs, message',
  [
    (dict(levels=[]), 'non-empty'),
    (dict(levels=[0]), r'level 0.*1\.\.7'),
    (dict(levels=[8]), r'level 8.*1\.\.7'),
    (dict(levels=[1.0]), r'1\.\.7'),
    (dict(levels=[1, 1]), 'distinct'),
    (dict(levels=[1], eval_fraction=0.0), 'eval_fraction'),
    (dict(levels=[1], eval_fraction=1.0), 'eval_fraction'),
    (dict(levels=[1], max_per_level=0), 'max_per_level'),
    (dict(levels=[1], seed=-1), 'seed'),
  ],
)
def test_math_curriculum_errors(kwargs, message):
  kwargs = {'seed': 0, **kwargs}
  with pytest.raises(ValueError, match=message):
    data.math_curriculum(**kwargs)


@pytest.mark.parametrize('level', [0, 8, -1])
def test_math_problems_unknown_level(level):
  with pytest.raises(ValueError, match=rf'level {level}.*1\.\.7'):
    data.math_problems(level)


# ------------------------------------------------------------------------------------------------
# Kindergarten, vocabulary, describe.


def test_kindergarten():
  pairs = data.kindergarten()
  assert len(pairs) == 10 and tuple(pairs) == data.KINDERGARTEN
  assert len(set(_inputs(pairs))) == 10
  assert data.Pair('How many legs cat have?', 'Cat have 4 legs') in pairs


def test_pair_rejects_non_strings():
  with pytest.raises(TypeError):
    data.Pair(1, 'a')


def test_vocabulary_comes_from_targets_only():
  pairs = [data.Pair('zzz', 'ba'), data.Pair('q', '\U0001f600a')]
  assert data.vocabulary(pairs) == (ord('a'), ord('b'), 0x1F600)
  assert data.vocabulary([]) == ()
  train, _ = data.math_curriculum([1], seed=0)
  assert data.vocabulary(train) == tuple(sorted(map(ord, '-0123456789')))


def test_describe():
  assert data.describe([]) == '0 pairs'
  summary = data.describe([data.Pair('abc', 'd'), data.Pair('a', 'de')])
  assert summary == '2 pairs, max input length 3, max target length 2'


# ------------------------------------------------------------------------------------------------
# JSONL.


def _write(tmp_path, content, name='pairs.jsonl'):
  path = tmp_path / name
  path.write_bytes(content if isinstance(content, bytes) else content.encode('utf-8'))
  return str(path)


def test_jsonl_round_trip_preserves_content(tmp_path):
  pairs = [
    data.Pair('lone \ud800 surrogate', 'low \udfff too'),
    data.Pair('emoji \U0001f600 \U0001f469\u200d\U0001f4bb', '\u00e9 e\u0301'),
    data.Pair('nul \u0000 inside', '\u0000'),
    data.Pair('line\u2028separator \x85 and \u2029', '\ufeffbom inside'),
    data.Pair('', ' '),
  ]
  lines = [
    json.dumps({'input': pairs[0].input, 'target': pairs[0].target}),  # ASCII escapes only.
    json.dumps({'input': pairs[1].input, 'target': pairs[1].target, 'id': 7}, ensure_ascii=False),
    json.dumps({'target': pairs[2].target, 'input': pairs[2].input, 'meta': {'a': [1]}}),
    json.dumps({'input': pairs[3].input, 'target': pairs[3].target}, ensure_ascii=False),
    json.dumps({'input': pairs[4].input, 'target': pairs[4].target}),
  ]
  assert '\\ud800' in lines[0] and '\u2028' in lines[3]  # Raw U+2028 must not split a line.
  content = '\n'.join(lines)
  assert data.load_jsonl(_write(tmp_path, content + '\n')) == pairs
  assert data.load_jsonl(_write(tmp_path, content)) == pairs  # No final newline.
  assert data.load_jsonl(_write(tmp_path, '\r\n'.join(lines) + '\r\n')) == pairs


def test_jsonl_strips_a_leading_bom_only(tmp_path):
  line = json.dumps({'input': '\ufeffx', 'target': 'y'}, ensure_ascii=False)
  path = _write(tmp_path, '\ufeff' + line + '\n')
  assert data.load_jsonl(path) == [data.Pair('\ufeffx', 'y')]


GOOD = '{"input": "a", "target": "b"}'


@pytest.mark.parametrize(
  'content, problem',
  [
    (GOOD + '\n{"input": "a"\n', 'invalid JSON'),
    (GOOD + '\n["a", "b"]\n', 'expected a JSON object, got list'),
    (GOOD + '\n"text"\n', 'expected a JSON object, got str'),
    (GOOD + '\n{"input": "a"}\n', "missing field 'target'"),
    (GOOD + '\n{"target": "b"}\n', "missing field 'input'"),
    (GOOD + '\n{"input": 1, "target": "b"}\n', "field 'input' must be a string"),
    (GOOD + '\n{"input": "a", "target": null}\n', "field 'target' must be a string"),
    (GOOD + '\n\n' + GOOD + '\n', 'blank line'),
    (GOOD + '\n  \t\n' + GOOD, 'blank line'),
    (GOOD + '\n\n', 'blank line'),
    (GOOD + '\n{"input": "a", "target": "b", "input": "c"}\n', 'duplicate key'),
    ((GOOD + '\n{"input": "\xff", "target": "b"}\n').encode('latin-1'), 'invalid UTF-8'),
    (GOOD.encode() + b'\n{"input": "\xed\xa0\x80", "target": "b"}\n', 'invalid UTF-8'),
  ],
)
def test_jsonl_errors_name_file_and_line(tmp_path, content, problem):
  path = _write(tmp_path, content)
  with pytest.raises(ValueError, match=re.escape(f'{path}:2: {problem}')):
    data.load_jsonl(path)


def test_jsonl_error_on_first_line(tmp_path):
  path = _write(tmp_path, '\ufeff[1]\n')
  with pytest.raises(ValueError, match=re.escape(f'{path}:1: expected a JSON object')):
    data.load_jsonl(path)
  path = _write(tmp_path, '\n')
  with pytest.raises(ValueError, match=re.escape(f'{path}:1: blank line')):
    data.load_jsonl(path)


@pytest.mark.parametrize('content', ['', '\ufeff'])
def test_jsonl_empty_file(tmp_path, content):
  path = _write(tmp_path, content)
  with pytest.raises(ValueError, match=re.escape(path) + '.*no pairs'):
    data.load_jsonl(path)


# ------------------------------------------------------------------------------------------------
# get_datasets.


def _config(**overrides):
  fields = dict(
    name='math', levels=(1, 3), eval_fraction=0.2, max_per_level=None, train_path='', eval_path=''
  )
  fields.update(overrides)
  return ml_collections.ConfigDict(fields)


def test_get_datasets_math():
  assert data.get_datasets(_config(), seed=4) == data.math_curriculum((1, 3), seed=4)
  train, evaluation = data.get_datasets(_config(max_per_level=50, eval_fraction=0.1), seed=4)
  assert (len(train), len(evaluation)) == (90, 10)


def test_get_datasets_kindergarten_trains_and_evaluates_on_the_same_pairs():
  train, evaluation = data.get_datasets(_config(name='kindergarten'), seed=0)
  assert train == evaluation == list(data.KINDERGARTEN)


def test_get_datasets_jsonl(tmp_path):
  train_path = _write(tmp_path, GOOD + '\n', 'train.jsonl')
  eval_path = _write(tmp_path, '{"input": "c", "target": "d"}\n', 'eval.jsonl')
  config = _config(name='jsonl', train_path=train_path, eval_path=eval_path)
  assert data.get_datasets(config, seed=0) == ([data.Pair('a', 'b')], [data.Pair('c', 'd')])
  with pytest.raises(ValueError, match='eval_path is required'):
    data.get_datasets(_config(name='jsonl', train_path=train_path), seed=0)
  with pytest.raises(ValueError, match='train_path is required'):
    data.get_datasets(_config(name='jsonl', eval_path=eval_path), seed=0)


@pytest.mark.parametrize(
  'overrides, message',
  [
    (dict(name='wiki'), "unknown data.name 'wiki'.*math, kindergarten, jsonl"),
    (dict(levels=()), 'non-empty'),
    (dict(levels=(1, 9)), r'level 9.*1\.\.7'),
    (dict(max_per_level=0), 'max_per_level'),
  ],
)
def test_get_datasets_errors(overrides, message):
  with pytest.raises(ValueError, match=message):
    data.get_datasets(_config(**overrides), seed=0)


def test_jsonl_pathological_json_still_names_the_line(tmp_path):
  huge_int = GOOD + '\n{"input": "a", "target": "b", "n": ' + '9' * 5000 + '}\n'
  deep = GOOD + '\n{"input": "a", "target": "b", "n": ' + '[' * 100000 + ']' * 100000 + '}\n'
  for name, content in (('int.jsonl', huge_int), ('deep.jsonl', deep)):
    path = _write(tmp_path, content, name)
    with pytest.raises(ValueError, match=re.escape(f'{path}:2: invalid JSON')):
      data.load_jsonl(path)


def test_get_datasets_accepts_a_typed_none_field_reference():
  # The experiment config declares max_per_level as FieldReference(None, field_type=int).
  config = _config(max_per_level=ml_collections.FieldReference(None, field_type=int))
  assert data.get_datasets(config, seed=0) == data.math_curriculum((1, 3), seed=0)
  config.max_per_level = 5
  train, evaluation = data.get_datasets(config, seed=0)
  assert (len(train), len(evaluation)) == (8, 2)


def test_jsonl_pairs_remember_file_and_line(tmp_path):
  path = _write(tmp_path, '\ufeff' + GOOD + '\n' + '{"input": "c", "target": "d"}\n')
  assert [p.origin for p in data.load_jsonl(path)] == [f'{path}:1', f'{path}:2']
  assert data.Pair('a', 'b', origin='x:1') == data.Pair('a', 'b')  # Not part of the identity.


def test_jsonl_malformed_lines_are_skipped_by_config_and_counted(tmp_path, caplog):
  lines = [
    GOOD,
    '{"input": "a"',
    '',
    '{"input": 1, "target": "b"}',
    '[]',
    '{"input": "c", "target": ""}',
  ]
  path = _write(tmp_path, '\n'.join(lines) + '\n')
  with pytest.raises(ValueError, match=re.escape(f'{path}:2: invalid JSON')):
    data.get_datasets(_config(name='jsonl', train_path=path, eval_path=path), seed=0)
  config = _config(name='jsonl', train_path=path, eval_path=path, skip_malformed=True)
  with caplog.at_level(logging.WARNING):
    pairs, _ = data.get_datasets(config, seed=0)
  assert pairs == [data.Pair('a', 'b'), data.Pair('c', '')]
  assert [p.origin for p in pairs] == [f'{path}:1', f'{path}:6']
  assert f'Skipped 4 malformed line(s) of 6 in {path}' in caplog.text
  assert f'{path}:2: invalid JSON' in caplog.text
  bad = _write(tmp_path, '[]\n{}\n', 'bad.jsonl')
  with pytest.raises(ValueError, match=re.escape(f'{bad}: file contains no pairs (2 malformed')):
    data.load_jsonl(bad, skip_malformed=True)


def test_jsonl_huge_line_loads_exactly_and_is_named_by_the_length_check(tmp_path):
  huge = 'x' * 2_000_000
  path = _write(tmp_path, GOOD + '\n' + json.dumps({'input': huge, 'target': 'y'}) + '\n')
  pairs = data.load_jsonl(path)
  assert pairs[1].input == huge
  with pytest.raises(ValueError, match=re.escape(f'train example 1 ({path}:2) does not fit')):
    input_pipeline.filter_overlong(pairs, 32, skip=False, split='train')
  assert input_pipeline.filter_overlong(pairs, 32, skip=True, split='train') == pairs[:1]
