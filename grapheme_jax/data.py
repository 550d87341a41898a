"""Text-pair datasets: the math curriculum, the kindergarten set and JSONL files.

A dataset is a list of `Pair`s (input string -> target string); the model learns to edit the input
into the target. Three sources exist:

* `math_curriculum`: seven levels of prefix S-expression problems, enumerated exhaustively by
  `math_problems` and split deterministically into train and eval per level.
* `kindergarten`: ten fixed question -> answer pairs, a memorisation smoke test.
* `load_jsonl`: user data, one `{"input": ..., "target": ...}` object per line.

Notation of the math curriculum (every answer is exact or, for division, rounded):

* Operators are ASCII `+ - * /` and `^` (power); every application is parenthesised prefix,
  `(op arg ...)`. A negative number is a literal such as `-8`; negation of an expression is the
  unary form `(- e)`.
* Non-integer numeric answers are the exact rational value rounded half away from zero to two
  decimals, with trailing zeros and a trailing '.' stripped and never `-0` (see `format_number`).
  Intermediate results are exact rationals; only the final answer is rounded.
* `(exp 1)` answers with the symbol `e`.
* Symbolic answers (levels 5 and 6) use a single canonical form per problem so the target is a
  function of the input: constant coefficients come first (`(* 4 (cos x))`), `x^1` is written `x`
  (the one exception is the input `(d/dx (^ x 1))`), a coefficient of 1 is dropped, reduced
  fractions are written `(/ (* p T) q)` or `(/ T q)`, and integrals carry no constant of
  integration.
"""

import dataclasses
import fractions
import functools
import itertools
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence

import ml_collections
import numpy as np
from absl import logging

Fraction = fractions.Fraction

MIN_LEVEL = 1
MAX_LEVEL = 7
DATASET_NAMES = ('math', 'kindergarten', 'jsonl')

_ARITHMETIC_OPS = ('+', '-', '*', '/')
_UTF8_BOM = '\ufeff'


@dataclasses.dataclass(frozen=True)
class Pair:
  """One training example: the model edits `input` into `target`."""

  input: str
  target: str
  # Where the pair came from, 'FILE:LINE' for data files, so that errors can name it; not part of
  # the pair's identity.
  origin: str = dataclasses.field(default='', compare=False, repr=False)

  def __post_init__(self):
    # A non-string would only fail much later, deep inside graph construction.
    if not isinstance(self.input, str) or not isinstance(self.target, str):
      raise TypeError(f'Pair fields must be str, got {self.input!r} -> {self.target!r}')


# ------------------------------------------------------------------------------------------------
# Numeric helpers.


def format_number(value: Fraction | int) -> str:
  """Formats an exact number as an answer string.

  Integers are printed exactly. Other rationals are rounded half away from zero to two decimals,
  then trailing zeros and a trailing '.' are stripped, so 7/2 -> '3.5', 1/3 -> '0.33',
  -1/3 -> '-0.33', 1/8 -> '0.13'. A value that rounds to zero prints as '0', never '-0'.

  Args:
    value: the exact value.

  Returns:
    The canonical decimal string.
  """
  value = Fraction(value)
  if value.denominator == 1:
    return str(value.numerator)
  # Rounding the exact rational avoids binary floating point ties (e.g. 0.125 -> 0.13).
  hundredths = math.floor(abs(value) * 100 + Fraction(1, 2))
  sign = '-' if value < 0 and hundredths else ''
  whole, frac = divmod(hundredths, 100)
  if frac == 0:
    return f'{sign}{whole}'
  return f'{sign}{whole}.{frac:02d}'.rstrip('0')


def _apply(op: str, a: Fraction, b: Fraction) -> Fraction:
  """Applies a binary arithmetic operator exactly."""
  if op == '+':
    return a + b
  if op == '-':
    return a - b
  if op == '*':
    return a * b
  if op == '/':
    return a / b
  raise ValueError(f'unknown operator {op!r}')


def _sexp(*parts: object) -> str:
  """Writes `(p0 p1 ...)`."""
  return '(' + ' '.join(str(p) for p in parts) + ')'


# ------------------------------------------------------------------------------------------------
# Levels 1-4 and 7: numeric answers.


def _level1() -> Iterator[Pair]:
  """a op b with a, b in [1, 20] and op in {+, -, *}: exactly 1200 problems."""
  for op, a, b in itertools.product(('+', '-', '*'), range(1, 21), range(1, 21)):
    yield Pair(_sexp(op, a, b), format_number(_apply(op, Fraction(a), Fraction(b))))


def _level2() -> Iterator[Pair]:
  """Both shapes (a o1 b) o2 c and a o2 (b o1 c), a, b, c in [1, 10], all four operators.

  The mirrored shape doubles the variety and forces the model to read the tree rather than a
  fixed template. Problems that divide by zero (only `(/ a (- b b))`) are skipped.
  """
  for o1, o2 in itertools.product(_ARITHMETIC_OPS, repeat=2):
    for a, b, c in itertools.product(range(1, 11), repeat=3):
      inner = _apply(o1, Fraction(a), Fraction(b))
      yield Pair(_sexp(o2, _sexp(o1, a, b), c), format_number(_apply(o2, inner, Fraction(c))))
      inner = _apply(o1, Fraction(b), Fraction(c))
      if o2 == '/' and inner == 0:
        continue
      yield Pair(_sexp(o2, a, _sexp(o1, b, c)), format_number(_apply(o2, Fraction(a), inner)))


def _let(bindings: Sequence[tuple[str, int]], body: str) -> str:
  """Writes `(let ((v1 n1) (v2 n2)) body)`."""
  return _sexp('let', '(' + ' '.join(_sexp(v, n) for v, n in bindings) + ')', body)


def _level3() -> Iterator[Pair]:
  """let-bound symbols x, y, z with values in [1, 10] inside one arithmetic operation.

  Shapes: one binding used with a constant k in [1, 10] on either side (`(* x 4)`, `(* 4 x)`),
  one binding used twice (`(+ x x)`), and two bindings in alphabetical order used in either order
  (`(- x y)`, `(- y x)`). All four operators; division answers as in `format_number`.
  """
  for var, val, op in itertools.product('xyz', range(1, 11), _ARITHMETIC_OPS):
    v = Fraction(val)
    yield Pair(_let([(var, val)], _sexp(op, var, var)), format_number(_apply(op, v, v)))
    for k in range(1, 11):
      yield Pair(_let([(var, val)], _sexp(op, var, k)), format_number(_apply(op, v, Fraction(k))))
      yield Pair(_let([(var, val)], _sexp(op, k, var)), format_number(_apply(op, Fraction(k), v)))
  for (v1, v2), op in itertools.product(itertools.combinations('xyz', 2), _ARITHMETIC_OPS):
    for n1, n2 in itertools.product(range(1, 11), repeat=2):
      binds = [(v1, n1), (v2, n2)]
      a, b = Fraction(n1), Fraction(n2)
      yield Pair(_let(binds, _sexp(op, v1, v2)), format_number(_apply(op, a, b)))
      yield Pair(_let(binds, _sexp(op, v2, v1)), format_number(_apply(op, b, a)))


def _level4_atoms() -> Iterator[tuple[str, int]]:
  """Integer-valued function applications: sqrt of n^2 (n in [0, 12]), abs of [-12, 12], exp 0."""
  for n in range(13):
    yield _sexp('sqrt', n * n), n
  for k in range(-12, 13):
    yield _sexp('abs', k), abs(k)
  yield _sexp('exp', 0), 1


def _level4() -> Iterator[Pair]:
  """Functions sqrt, abs and exp, alone or as one operand of +, -, * with k in [1, 10].

  `(exp 1)` answers with the symbol `e`; it is not combined with arithmetic because that would
  need a symbolic sum such as `(+ e 3)`.
  """
  yield Pair(_sexp('exp', 1), 'e')
  for atom, value in _level4_atoms():
    yield Pair(atom, str(value))
    for op, k in itertools.product(('+', '-', '*'), range(1, 11)):
      yield Pair(_sexp(op, atom, k), format_number(_apply(op, Fraction(value), Fraction(k))))
      yield Pair(_sexp(op, k, atom), format_number(_apply(op, Fraction(k), Fraction(value))))


def _linear(a: int, b: int) -> str:
  """Writes a*x + b without negative literals inside a sum: `(- (* 3 x) 4)`, `x`, `(+ x 2)`."""
  term = 'x' if a == 1 else _sexp('*', a, 'x')
  if b > 0:
    return _sexp('+', term, b)
  if b < 0:
    return _sexp('-', term, -b)
  return term


def _level7() -> Iterator[Pair]:
  """Solve a*x + b = c for x: a in [1, 9], b in [-9, 9], integer solution x in [-9, 9].

  The left side is written by `_linear`; the right side c = a*x + b is a literal (possibly
  negative). (a, b, x) <-> (a, b, c) is a bijection, so the 3249 inputs are distinct.
  """
  for a, b, x in itertools.product(range(1, 10), range(-9, 10), range(-9, 10)):
    yield Pair(_sexp('solve', _sexp('=', _linear(a, b), a * x + b), 'x'), str(x))


# ------------------------------------------------------------------------------------------------
# Levels 5 and 6: symbolic answers.


def _power(n: int) -> str:
  """Writes x^n, with x^1 written `x`."""
  return 'x' if n == 1 else _sexp('^', 'x', n)


def _scaled(coefficient: Fraction, term: str) -> str:
  """Writes coefficient * term canonically: `T`, `(* p T)`, `(/ T q)` or `(/ (* p T) q)`."""
  p, q = coefficient.numerator, coefficient.denominator
  if p < 0:
    return _sexp('-', _scaled(-coefficient, term))
  numerator = term if p == 1 else _sexp('*', p, term)
  return numerator if q == 1 else _sexp('/', numerator, q)


def _times(c: int, term: str) -> str:
  """Writes c * term in an input, with a coefficient of 1 dropped."""
  return term if c == 1 else _sexp('*', c, term)


# d/dx and integral of f(k x) for f in sin, cos, exp, as (sign, function) of the result; k is
# folded into the coefficient by the callers.
_DERIVATIVES = {'sin': (1, 'cos'), 'cos': (-1, 'sin'), 'exp': (1, 'exp')}
_INTEGRALS = {'sin': (-1, 'cos'), 'cos': (1, 'sin'), 'exp': (1, 'exp')}


def _derivative(expr: str, answer: str) -> Pair:
  """Writes the problem `(d/dx expr)`."""
  return Pair(_sexp('d/dx', expr), answer)


def _integral(expr: str, answer: str) -> Pair:
  """Writes the problem `(int expr)`."""
  return Pair(_sexp('int', expr), answer)


def _level5() -> Iterator[Pair]:
  """Derivatives d/dx: powers, scaled powers, linear functions, sin/cos/exp scaled or of k*x.

  Shapes: `(^ x n)` n in [1, 9] (`(^ x 1)` -> `1` is kept as the explicit n = 1 case next to
  `(d/dx x)`); `(* c (^ x n))` c, n in [2, 9]; a*x + b as written by `_linear`
  with a in [1, 9], b in [-9, 9]; `(f x)` and `(* c (f x))` with c in [2, 9]; `(f (* k x))` with
  k in [2, 9] (chain rule).
  """
  for n in range(1, 10):
    yield _derivative(_sexp('^', 'x', n), _scaled(Fraction(n), _power(n - 1)) if n > 1 else '1')
  for c, n in itertools.product(range(2, 10), range(2, 10)):
    yield _derivative(_sexp('*', c, _sexp('^', 'x', n)), _scaled(Fraction(c * n), _power(n - 1)))
  for a, b in itertools.product(range(1, 10), range(-9, 10)):
    yield _derivative(_linear(a, b), str(a))
  for name, (sign, result) in _DERIVATIVES.items():
    for c in range(1, 10):
      answer = _scaled(Fraction(sign * c), _sexp(result, 'x'))
      yield _derivative(_times(c, _sexp(name, 'x')), answer)
    for k in range(2, 10):
      inner = _sexp('*', k, 'x')
      yield _derivative(_sexp(name, inner), _scaled(Fraction(sign * k), _sexp(result, inner)))


def _level6() -> Iterator[Pair]:
  """Indefinite integrals (no +C): powers, scaled powers, constants, sin/cos/exp scaled or of k*x.

  Shapes: `x` and `(^ x n)` n in [2, 9]; `(* c x)` and `(* c (^ x n))` c in [2, 9]; constants
  k in [1, 9] (`(int 5)` -> `(* 5 x)`); `(f x)` and `(* c (f x))` c in [2, 9]; `(f (* k x))` with
  k in [2, 9], whose integral carries the factor 1/k.
  """
  for c, n in itertools.product(range(1, 10), range(1, 10)):
    yield _integral(_times(c, _power(n)), _scaled(Fraction(c, n + 1), _power(n + 1)))
  for k in range(1, 10):
    yield _integral(str(k), _scaled(Fraction(k), 'x'))
  for name, (sign, result) in _INTEGRALS.items():
    for c in range(1, 10):
      yield _integral(_times(c, _sexp(name, 'x')), _scaled(Fraction(sign * c), _sexp(result, 'x')))
    for k in range(2, 10):
      inner = _sexp('*', k, 'x')
      yield _integral(_sexp(name, inner), _scaled(Fraction(sign, k), _sexp(result, inner)))


_LEVELS: dict[int, Callable[[], Iterator[Pair]]] = {
  1: _level1,
  2: _level2,
  3: _level3,
  4: _level4,
  5: _level5,
  6: _level6,
  7: _level7,
}


# ------------------------------------------------------------------------------------------------
# Math curriculum.


def _check_level(level: object) -> int:
  """Returns `level` as an int, or raises ValueError naming it and the valid range."""
  # bool is an int subclass and 1.0 == 1; both are almost certainly config mistakes.
  if (
    isinstance(level, bool)
    or not isinstance(level, (int, np.integer))
    or not (MIN_LEVEL <= level <= MAX_LEVEL)
  ):
    raise ValueError(f'unknown math level {level!r}; valid levels are {MIN_LEVEL}..{MAX_LEVEL}')
  return int(level)


@functools.cache
def _problems(level: int) -> tuple[Pair, ...]:
  """All problems of a level, sorted by input; cached because level 2 takes ~0.3 s."""
  pairs = sorted(_LEVELS[level](), key=lambda pair: pair.input)
  for previous, pair in zip(pairs, pairs[1:]):
    if previous.input == pair.input:
      raise AssertionError(f'level {level} generates the input {pair.input!r} twice')
  return tuple(pairs)


def math_problems(level: int) -> list[Pair]:
  """Enumerates every problem of a curriculum level.

  Args:
    level: curriculum level in 1..7.

  Returns:
    All distinct problems of the level, sorted by input.

  Raises:
    ValueError: if the level is unknown.
  """
  return list(_problems(_check_level(level)))


def _split_level(
  level: int, seed: int, eval_fraction: float, max_per_level: int | None
) -> tuple[list[Pair], list[Pair]]:
  """Shuffles one level with its own rng stream and splits it into (train, eval)."""
  problems = _problems(level)
  # Seeding per (seed, level) keeps a level's split unchanged when other levels are added.
  order = np.random.default_rng([seed, level]).permutation(len(problems))
  if max_per_level is not None:
    order = order[:max_per_level]
  n = len(order)
  n_eval = min(max(int(round(eval_fraction * n)), 1), n - 1) if n >= 2 else 0
  eval_pairs = [problems[i] for i in order[:n_eval]]
  train_pairs = [problems[i] for i in order[n_eval:]]
  return train_pairs, eval_pairs


def math_curriculum(
  levels: Sequence[int], seed: int, eval_fraction: float = 0.2, max_per_level: int | None = None
) -> tuple[list[Pair], list[Pair]]:
  """Builds deterministic train/eval splits of the math curriculum.

  Each level is shuffled with `np.random.default_rng([seed, level])`, optionally truncated to
  `max_per_level` problems, and its first round(eval_fraction * n) problems (at least 1 when
  n >= 2, at most n - 1) go to eval, the rest to train.

  Args:
    levels: distinct levels in 1..7, in the order they are concatenated.
    seed: non-negative split seed.
    eval_fraction: fraction of each level held out, in (0, 1).
    max_per_level: if not None, a positive cap on the problems used per level.

  Returns:
    (train, eval) concatenated over `levels` in the given order.

  Raises:
    ValueError: on empty or duplicate or unknown levels, or out-of-range arguments.
  """
  levels = [_check_level(level) for level in levels]
  if not levels:
    raise ValueError(f'levels must be non-empty; valid levels are {MIN_LEVEL}..{MAX_LEVEL}')
  if len(set(levels)) != len(levels):
    raise ValueError(f'levels must be distinct, got {levels}')
  if not 0.0 < eval_fraction < 1.0:
    raise ValueError(f'eval_fraction must be in (0, 1), got {eval_fraction}')
  if max_per_level is not None and (isinstance(max_per_level, bool) or max_per_level < 1):
    raise ValueError(f'max_per_level must be None or a positive int, got {max_per_level!r}')
  if seed < 0:
    raise ValueError(f'seed must be non-negative, got {seed}')
  train, evaluation = [], []
  for level in levels:
    level_train, level_eval = _split_level(level, seed, eval_fraction, max_per_level)
    train.extend(level_train)
    evaluation.extend(level_eval)
  _check_disjoint(train, evaluation)
  return train, evaluation


def _check_disjoint(train: Sequence[Pair], evaluation: Sequence[Pair]) -> None:
  """Asserts that inputs are unique across the whole split (hence across levels, too)."""
  inputs = [pair.input for pair in itertools.chain(train, evaluation)]
  if len(set(inputs)) != len(inputs):
    raise AssertionError('an input occurs twice across levels or in both train and eval')


# ------------------------------------------------------------------------------------------------
# Kindergarten.

KINDERGARTEN: tuple[Pair, ...] = (
  Pair('How many legs cat have?', 'Cat have 4 legs'),
  Pair('How many legs bird have?', 'Bird have 2 legs'),
  Pair('How many legs spider have?', 'Spider have 8 legs'),
  Pair('How many eyes fish have?', 'Fish have 2 eyes'),
  Pair('How many wheels bike have?', 'Bike have 2 wheels'),
  Pair('What color sky is?', 'Sky is blue'),
  Pair('What color grass is?', 'Grass is green'),
  Pair('What sound cow make?', 'Cow make moo'),
  Pair('What sound dog make?', 'Dog make woof'),
  Pair('Where fish live?', 'Fish live in water'),
)


def kindergarten() -> list[Pair]:
  """Returns the ten kindergarten question -> answer pairs, in a fixed order."""
  return list(KINDERGARTEN)


# ------------------------------------------------------------------------------------------------
# JSONL files.


class _DuplicateKeyError(ValueError):
  """A JSON object repeats a key."""


def _reject_duplicate_keys(items: list[tuple[str, object]]) -> dict[str, object]:
  """object_pairs_hook: json keeps the last duplicate key silently, which would drop content."""
  result = {}
  for key, value in items:
    if key in result:
      raise _DuplicateKeyError(f'duplicate key {key!r}')
    result[key] = value
  return result


def _parse_line(where: str, raw: bytes) -> Pair:
  """Parses one JSONL line (bytes, without its newline) into a Pair; errors start with ``where``."""
  try:
    line = raw.decode('utf-8')
  except UnicodeDecodeError as e:
    raise ValueError(f'{where}: invalid UTF-8 ({e.reason})') from e
  if not line.strip():
    raise ValueError(f'{where}: blank line')
  try:
    record = json.loads(line, object_pairs_hook=_reject_duplicate_keys)
  except _DuplicateKeyError as e:
    raise ValueError(f'{where}: {e}') from e
  except (ValueError, RecursionError) as e:  # Also int-digit limits and absurd nesting.
    raise ValueError(f'{where}: invalid JSON: {e}') from e
  if not isinstance(record, dict):
    raise ValueError(f'{where}: expected a JSON object, got {type(record).__name__}')
  for field in ('input', 'target'):
    if field not in record:
      raise ValueError(f'{where}: missing field {field!r}')
    if not isinstance(record[field], str):
      raise ValueError(
        f'{where}: field {field!r} must be a string, got {type(record[field]).__name__}'
      )
  return Pair(record['input'], record['target'], origin=where)


def load_jsonl(path: str, skip_malformed: bool = False) -> list[Pair]:
  """Loads pairs from a JSON Lines file.

  Each line is a JSON object with string fields `input` and `target`; other fields are ignored.
  The file is strict UTF-8 with an optional leading BOM and an optional single final newline.
  String content is kept exactly, including NUL and lone surrogates written as JSON escapes
  (`"\\ud800"`). Lines are split on '\\n' only: JSON allows raw U+2028 and similar characters
  inside strings, which `str.splitlines` would wrongly treat as line breaks. Each pair's `origin`
  is `path:line`.

  Args:
    path: file to read.
    skip_malformed: skip malformed lines (logging how many, and the first) instead of raising.

  Returns:
    The pairs in file order.

  Raises:
    ValueError: naming the file and line for invalid UTF-8, blank lines, invalid JSON, duplicate
      keys, non-objects, missing or non-string fields (unless `skip_malformed`); naming the file if
      it holds no pairs.
  """
  with open(path, 'rb') as f:
    lines = f.read().split(b'\n')
  # A BOM is encoding metadata (Windows editors add it), not part of the first input.
  lines[0] = lines[0].removeprefix(_UTF8_BOM.encode('utf-8'))
  if lines[-1] == b'':
    lines.pop()  # The final newline terminates the last line; it does not start a new one.
  pairs, skipped = [], []
  for number, raw in enumerate(lines, start=1):
    try:
      pairs.append(_parse_line(f'{path}:{number}', raw))
    except ValueError as e:
      if not skip_malformed:
        raise
      skipped.append(str(e))
  if skipped:
    logging.warning(
      'Skipped %d malformed line(s) of %d in %s (data.skip_malformed=True); the first: %s',
      len(skipped),
      len(lines),
      path,
      skipped[0][:300],
    )
  if not pairs:
    raise ValueError(
      f'{path}: file contains no pairs'
      + (f' ({len(skipped)} malformed lines skipped)' if skipped else '')
    )
  return pairs


# ------------------------------------------------------------------------------------------------
# Config dispatch and summaries.


def get_datasets(config: ml_collections.ConfigDict, seed: int) -> tuple[list[Pair], list[Pair]]:
  """Builds (train, eval) from the `data` section of the experiment config.

  * 'math': `math_curriculum(levels, seed, eval_fraction, max_per_level)`.
  * 'kindergarten': train and eval are both the same ten pairs. It is a memorisation set, so
    evaluating on the training pairs is the point.
  * 'jsonl': train from `train_path`, eval from `eval_path`. Both are required; we never silently
    evaluate on training data.

  Args:
    config: ConfigDict with `name`, `levels`, `eval_fraction`, `max_per_level`, `train_path`,
      `eval_path`.
    seed: split seed (used by 'math').

  Returns:
    (train, eval) lists of pairs.

  Raises:
    ValueError: on an unknown name or invalid settings.
  """
  name = config.name
  if name == 'math':
    return math_curriculum(tuple(config.levels), seed, config.eval_fraction, config.max_per_level)
  if name == 'kindergarten':
    return kindergarten(), kindergarten()
  if name == 'jsonl':
    if not config.train_path:
      raise ValueError('data.train_path is required for data.name="jsonl"')
    if not config.eval_path:
      raise ValueError(
        'data.eval_path is required for data.name="jsonl" (we do not silently '
        'evaluate on training data)'
      )
    skip = config.get('skip_malformed', False)
    return load_jsonl(config.train_path, skip), load_jsonl(config.eval_path, skip)
  raise ValueError(f'unknown data.name {name!r}; valid names are {", ".join(DATASET_NAMES)}')


def vocabulary(pairs: Iterable[Pair]) -> tuple[int, ...]:
  """Returns the sorted distinct code points of the targets: the model's output alphabet."""
  return tuple(sorted({ord(char) for pair in pairs for char in pair.target}))


def describe(pairs: Sequence[Pair]) -> str:
  """One-line summary for logging: count and maximum input/target lengths in code points."""
  pairs = list(pairs)
  if not pairs:
    return '0 pairs'
  max_input = max(len(pair.input) for pair in pairs)
  max_target = max(len(pair.target) for pair in pairs)
  return f'{len(pairs)} pairs, max input length {max_input}, max target length {max_target}'
