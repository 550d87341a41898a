"""Laws of the exact alignment likelihood: brute-force enumeration of the model's output texts."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grapheme_jax import alignment, edits

VOCAB = 'ab'  # Vocabulary ids 0, 1; 'c' is outside it (only a KEEP can emit it).


def _softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _text_paths(outputs, source, k_max, band=0, prior_kind='diagonal'):
  """{text: [(probability, prior units) of each way to write it]}, enumerating every choice.

  The units of the ``'diagonal'`` prior: the sum over written characters of |s - m| (node s) or
  |s + k - m| + 1 (position k of slot s: an insertion costs one more), m the character's place in
  the text. Of the ``'edits'`` prior: the inserted characters plus the deleted nodes with some of
  the text still to write after them. With ``band`` W > 0, only the ways whose length written so
  far stays within W of the band's centre (``alignment.band_centre`` for the way's own text)
  before group s, after its slot and after its node.
  """
  op = _softmax(np.asarray(outputs['op_logits'][0], np.float64))
  char = _softmax(np.asarray(outputs['char_logits'][0], np.float64))
  ins = _softmax(np.asarray(outputs['ins_logits'][0], np.float64))
  vocab = len(VOCAB)
  node_choices = []  # Per source node: [(text, p)].
  for i, ch in enumerate(source):
    options = [('', op[i, edits.DELETE], None), (ch, op[i, edits.KEEP], ((i, 0),))]
    options += [(VOCAB[v], op[i, edits.MODIFY] * char[i, v], ((i, 0),)) for v in range(vocab)]
    node_choices.append(options)
  slot_choices = []  # Per slot: [(text, p)] over counts and characters.
  for s in range(len(source) + 1):
    options = []
    for c in range(k_max + 1):
      for chars in itertools.product(range(vocab), repeat=c):
        p = np.prod([ins[s, k, chars[k]] for k in range(c)])
        if c < k_max:
          p *= ins[s, c, vocab]
        options.append((''.join(VOCAB[v] for v in chars), p, tuple((s + k, 1) for k in range(c))))
    slot_choices.append(options)
  order = []  # Output order: slot 0, node 0, slot 1, ..., node L - 1, slot L.
  for s in range(len(source) + 1):
    order.append(slot_choices[s])
    if s < len(source):
      order.append(node_choices[s])

  def in_band(combo, target_len):
    if not band:
      return True
    centre = lambda s: min(s, target_len) if s <= len(source) else target_len  # noqa: E731
    written = np.cumsum([0] + [len(t) for t, _, _ in combo])  # Before element 0, 1, ...
    for s in range(len(source) + 1):  # Group s: element 2s (slot), 2s + 1 (node, if any).
      ends = written[2 * s : 2 * s + 3]
      if any(abs(m - centre(s)) > band for m in ends):
        return False
    return True

  paths = {}
  for combo in itertools.product(*order):
    text = ''.join(t for t, _, _ in combo)
    if not in_band(combo, len(text)):
      continue
    if prior_kind == 'diagonal':
      diagonal = [d for _, _, ds in combo if ds for d in ds]
      units = sum(abs(d - m) + extra for m, (d, extra) in enumerate(diagonal))
    else:
      written = np.cumsum([0] + [len(t) for t, _, _ in combo])[:-1]  # Before each element.
      inserted = sum(extra for _, _, ds in combo if ds for _, extra in ds)
      units = inserted + sum(ds is None and m < len(text) for (_, _, ds), m in zip(combo, written))
    paths.setdefault(text, []).append((float(np.prod([p for _, p, _ in combo])), units))
  return paths


def _text_distribution(outputs, source, k_max):
  """{text: probability} of every output text: the sum over its ways."""
  return {
    text: sum(p for p, _ in ways) for text, ways in _text_paths(outputs, source, k_max).items()
  }


def _batch(outputs_list, sources, targets, length, k_max):
  """Pads a list of single-example outputs and texts to one batch of width ``length``."""

  def pad(x, axis_len, width):
    widths = [(0, 0)] * x.ndim
    widths[1] = (0, width - axis_len)
    return np.pad(np.asarray(x), widths)

  op = np.concatenate([pad(o['op_logits'], o['op_logits'].shape[1], length) for o in outputs_list])
  char = np.concatenate(
    [pad(o['char_logits'], o['char_logits'].shape[1], length) for o in outputs_list]
  )
  ins = np.concatenate(
    [pad(o['ins_logits'], o['ins_logits'].shape[1], length + 1) for o in outputs_list]
  )

  def codes(t):
    return [ord(c) for c in t] + [-1] * (length - len(t))

  def ids(t):
    return [VOCAB.index(c) if c in VOCAB else edits.IGNORE for c in t] + [-1] * (length - len(t))

  return (
    {
      'op_logits': jnp.asarray(op),
      'char_logits': jnp.asarray(char),
      'ins_logits': jnp.asarray(ins),
    },
    jnp.asarray([codes(s) for s in sources]),
    jnp.asarray([len(s) for s in sources]),
    jnp.asarray([codes(t) for t in targets]),
    jnp.asarray([ids(t) for t in targets]),
    jnp.asarray([len(t) for t in targets]),
  )


def _random_outputs(rng, length, k_max, scale=1.5):
  return {
    'op_logits': rng.normal(size=(1, length, 3)) * scale,
    'char_logits': rng.normal(size=(1, length, len(VOCAB))) * scale,
    'ins_logits': rng.normal(size=(1, length + 1, k_max, len(VOCAB) + 1)) * scale,
  }


@pytest.mark.parametrize('source', ['', 'a', 'ca', 'abc'])
def test_likelihood_equals_brute_force_enumeration(source):
  k_max, width = 2, 8
  rng = np.random.default_rng(len(source))
  outputs = _random_outputs(rng, len(source), k_max)
  dist = _text_distribution(outputs, source, k_max)
  assert sum(dist.values()) == pytest.approx(1.0, abs=1e-9)
  # Every text the model can emit, the most likely first, and a few it cannot.
  targets = sorted(dist, key=dist.get, reverse=True)[:12] + ['cc' * 3, 'ccc'[: len(source) + 1]]
  targets = [t for t in targets if len(t) <= width]
  batch = _batch([outputs] * len(targets), [source] * len(targets), targets, width, k_max)
  log_p = np.asarray(alignment.target_log_likelihood(*batch))
  for text, lp in zip(targets, log_p):
    expected = dist.get(text, 0.0)
    assert np.exp(lp) == pytest.approx(expected, rel=1e-4, abs=1e-12), text


@pytest.mark.parametrize('width,band', [(2, 0), (3, 1)])
def test_more_insertion_positions_than_target_positions(width, band):
  """K = 4 insertion positions against 3 target positions (a bucket shorter than K + 1): exact."""
  k_max, rho = 4, 0.5
  rng = np.random.default_rng(11)
  outputs = _random_outputs(rng, 1, k_max)
  every = _text_paths(outputs, 'a', k_max, band, prior_kind='edits')
  targets = ['', 'a', 'ab', 'ba']
  batch = _batch([outputs] * len(targets), ['a'] * len(targets), targets, width, k_max)
  got = alignment.target_log_likelihood(*batch, prior=rho, band=band)
  for text, value in zip(targets, np.asarray(got)):
    expected = np.logaddexp.reduce([np.log(p) - rho * d for p, d in every[text]])
    assert value == pytest.approx(expected, rel=1e-4, abs=1e-4), text


@pytest.mark.parametrize(
  'tau,rho,kind',
  [
    (1.0, 0.0, 'diagonal'),
    (0.5, 0.0, 'diagonal'),
    (0.05, 0.0, 'diagonal'),
    (1.0, 0.7, 'diagonal'),
    (0.3, 2.0, 'diagonal'),
    (1.0, 0.7, 'edits'),
    (0.3, 2.0, 'edits'),
  ],
)
def test_temperature_and_prior_over_the_ways_to_write_the_target(tau, rho, kind):
  """tau * log sum_ways (p e^(-rho d))^(1 / tau): the likelihood at (1, 0), Viterbi as tau -> 0."""
  k_max, width, source = 2, 8, 'cab'
  rng = np.random.default_rng(11)
  outputs = _random_outputs(rng, len(source), k_max)
  paths = _text_paths(outputs, source, k_max, prior_kind=kind)
  targets = sorted(paths, key=lambda t: -sum(p for p, _ in paths[t]))[:10]
  targets = [t for t in targets if len(t) <= width]
  batch = _batch([outputs] * len(targets), [source] * len(targets), targets, width, k_max)
  got = np.asarray(
    alignment.target_log_likelihood(*batch, temperature=tau, prior=rho, prior_kind=kind)
  )
  for text, value in zip(targets, got):
    log_p = np.asarray([np.log(p) - rho * d for p, d in paths[text]])
    expected = tau * np.logaddexp.reduce(log_p / tau)
    assert value == pytest.approx(expected, rel=1e-4, abs=1e-4), text
    if tau == 0.05:  # Within tau * log(#ways) of the most probable way (Viterbi).
      assert log_p.max() <= value + 1e-4 <= log_p.max() + tau * np.log(len(log_p)) + 2e-4


def test_padding_and_batch_neighbours_change_nothing():
  k_max = 2
  rng = np.random.default_rng(7)
  outs = [_random_outputs(rng, 2, k_max), _random_outputs(rng, 3, k_max)]
  sources, targets = ['ab', 'cab'], ['ba', 'acb']
  narrow = alignment.target_log_likelihood(*_batch(outs, sources, targets, 4, k_max))
  wide = alignment.target_log_likelihood(*_batch(outs, sources, targets, 9, k_max))
  alone = alignment.target_log_likelihood(*_batch(outs[:1], sources[:1], targets[:1], 4, k_max))
  np.testing.assert_allclose(narrow, wide, rtol=1e-5)
  np.testing.assert_allclose(narrow[:1], alone, rtol=1e-5)


def _assert_matches_finite_differences(batch, rng, **kwargs):
  """The float64 gradient of example 0's value against a central difference along a random
  direction."""
  with jax.enable_x64(True):
    as64 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), batch[0])
    f = lambda o: alignment.target_log_likelihood(o, *batch[1:], **kwargs)[0]  # noqa: E731
    grad = jax.grad(f)(as64)
    direction = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape)), as64)
    eps = 1e-6
    plus = f(jax.tree.map(lambda x, d: x + eps * d, as64, direction))
    minus = f(jax.tree.map(lambda x, d: x - eps * d, as64, direction))
    analytic = sum(
      jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(grad), jax.tree.leaves(direction))
    )
    assert float(analytic) == pytest.approx(float((plus - minus) / (2 * eps)), rel=1e-5)


def test_gradient_is_finite_and_matches_finite_differences():
  k_max = 2
  rng = np.random.default_rng(3)
  outputs = _random_outputs(rng, 3, k_max)
  batch = _batch([outputs], ['cab'], ['aacb'], 6, k_max)
  _assert_matches_finite_differences(batch, rng)
  grad32 = jax.grad(lambda o: alignment.target_log_likelihood(o, *batch[1:]).sum())(batch[0])
  assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grad32))


def test_peaked_outputs_give_their_one_text_probability_one():
  """Source 'ca': insert 'b', delete 'c', keep 'a', insert 'a': 'baa' and nothing else."""
  big, k_max = 50.0, 2
  op = np.zeros((1, 2, 3))
  op[0, 0, edits.DELETE] = op[0, 1, edits.KEEP] = big
  ins = np.zeros((1, 3, k_max, len(VOCAB) + 1))
  end = len(VOCAB)
  ins[0, 0, 0, VOCAB.index('b')] = ins[0, 0, 1, end] = big
  ins[0, 1, 0, end] = big
  ins[0, 2, 0, VOCAB.index('a')] = ins[0, 2, 1, end] = big
  outputs = {'op_logits': op, 'char_logits': np.zeros((1, 2, len(VOCAB))), 'ins_logits': ins}
  targets = ['baa', 'ba', 'bcaa', 'aa', '']
  batch = _batch([outputs] * len(targets), ['ca'] * len(targets), targets, 6, k_max)
  p = np.exp(np.asarray(alignment.target_log_likelihood(*batch)))
  assert p[0] > 1 - 1e-6
  np.testing.assert_array_less(p[1:], 1e-6)


@pytest.mark.parametrize(
  'source,band,k_max,kind',
  [
    ('ab', 1, 2, 'diagonal'),
    ('cab', 1, 2, 'diagonal'),
    ('abca', 1, 1, 'diagonal'),
    ('abca', 2, 1, 'diagonal'),
    ('cab', 1, 2, 'edits'),
    ('abca', 1, 1, 'edits'),
  ],
)
def test_banded_likelihood_sums_the_ways_that_stay_in_the_band(source, band, k_max, kind):
  """Brute force: the banded recursion is the sum over exactly the ways inside the band."""
  width, rho = 8, 0.5
  rng = np.random.default_rng(5 + len(source))
  outputs = _random_outputs(rng, len(source), k_max)
  every = _text_paths(outputs, source, k_max, prior_kind=kind)
  targets = [t for t in every if len(t) <= width and len(t) - len(source) <= band]
  targets = sorted(targets, key=lambda t: -sum(p for p, _ in every[t]))[:10]
  batch = _batch([outputs] * len(targets), [source] * len(targets), targets, width, k_max)
  like = functools.partial(alignment.target_log_likelihood, prior=rho, prior_kind=kind)
  got = np.asarray(like(*batch, band=band))
  full = np.asarray(like(*batch))
  inside = _text_paths(outputs, source, k_max, band, prior_kind=kind)
  dropped = 0
  for text, value, exact in zip(targets, got, full):
    kept = inside.get(text, [])
    expected = np.logaddexp.reduce([np.log(p) - rho * d for p, d in kept])
    assert value == pytest.approx(expected, rel=1e-4, abs=1e-4), text
    assert value <= exact + 1e-5  # A lower bound of the full sum.
    dropped += len(kept) < len(every[text])
  assert dropped  # The band did leave ways out.


def test_a_band_covering_every_alignment_gives_the_full_sum_and_its_gradient():
  k_max = 2
  rng = np.random.default_rng(9)
  outs = [_random_outputs(rng, 3, k_max), _random_outputs(rng, 5, k_max)]
  # Width 13 > 2 W: the banded recursion runs, and W = 6 covers texts of 5 characters.
  batch = _batch(outs, ['cab', 'abcab'], ['aacb', 'ba'], 13, k_max)
  f = lambda o, band: alignment.target_log_likelihood(o, *batch[1:], prior=1.0, band=band)  # noqa: E731
  np.testing.assert_allclose(f(batch[0], 6), f(batch[0], 0), rtol=1e-6)
  grads = [jax.grad(lambda o, b=b: f(o, b).sum())(batch[0]) for b in (0, 6)]
  for full, banded in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
    np.testing.assert_allclose(banded, full, rtol=1e-5, atol=1e-6)
  # Padding and batch neighbours change nothing inside the band either.
  narrow = alignment.target_log_likelihood(
    *_batch(outs, ['cab', 'abcab'], ['aacb', 'ba'], 6, k_max), prior=1.0, band=2
  )
  wide = alignment.target_log_likelihood(
    *_batch(outs, ['cab', 'abcab'], ['aacb', 'ba'], 11, k_max), prior=1.0, band=2
  )
  np.testing.assert_allclose(narrow, wide, rtol=1e-5)


@pytest.mark.parametrize('kind', ['diagonal', 'edits'])
def test_banded_gradient_matches_finite_differences(kind):
  rng = np.random.default_rng(4)
  batch = _batch([_random_outputs(rng, 4, 2)], ['cabc'], ['aacb'], 6, 2)
  _assert_matches_finite_differences(batch, rng, prior=0.5, band=1, prior_kind=kind)


def test_check_band_names_the_target_that_outgrows_its_input():
  sources, targets = np.array([5, 3]), np.array([2, 6])
  alignment.check_band(sources, targets - 1, band=2, width=64)  # Growth 2 fits.
  alignment.check_band(sources, targets, band=0, width=64)  # The full sum has no limit.
  alignment.check_band(sources, targets, band=2, width=4)  # 2 W >= 4: the full sum there.
  with pytest.raises(ValueError, match=r'example 1: .* 3 characters longer .* at least 3'):
    alignment.check_band(sources, targets, band=2, width=np.array([4, 5]))
