"""The configuration schema shared by every file in ``configs/``, and its validation.

Each ``configs/*.py`` starts from :func:`base_config` and changes what makes it that experiment, so
that every key exists in every config and ``--config.x.y=v`` overrides work the same everywhere.
:func:`validate` turns bad values into one-line errors before anything is compiled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import ml_collections

from grapheme_jax import data as data_lib

LOSS_MODES = ('cross_entropy', 'structural', 'hybrid')
# The structural loss's keys in config.loss (see losses.py).
STRUCTURAL_KEYS = (
  'alpha',
  'beta',
  'gamma',
  'temperature',
  'sinkhorn_iterations',
  'fgw_iterations',
  'node_cost',
  'differentiate_plan',
  'insert_cost',
  'matching',
)
# The loss settings passed to the train step as traced values (losses.loss_weights): changing
# them, as a sweep or a notebook loop does, reuses the compiled step.
TRACED_LOSS_KEYS = (
  'alpha',
  'beta',
  'gamma',
  'temperature',
  'insert_cost',
  'alignment_temperature',
  'alignment_prior',
  'hybrid_lambda',
  'hybrid_lambda_start',
  'hybrid_schedule_steps',
  'ce_warmup_steps',
)
HYBRID_SCHEDULES = ('constant', 'linear', 'cosine')
MATCHINGS = ('transport', 'assignment')  # How the structural loss matches nodes (losses.py).
PLANS = ('auto', 'always')  # When the structural step holds the Sinkhorn plan (losses.py).
DATA_NAMES = ('math', 'kindergarten', 'jsonl')
ALIGNMENTS = ('levenshtein', 'positional')
# The structural loss's node term: the alignment likelihood, or a price of the matching (losses.py).
NODE_COSTS = ('mismatch', 'likelihood', 'alignment')
PRIOR_KINDS = ('diagonal', 'edits')  # The alignment prior's unit (alignment.py).


def base_config() -> ml_collections.ConfigDict:
  """All keys with their defaults (reference training defaults where they exist)."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.num_train_steps = 6000
  config.batch_size = 64
  config.log_every_steps = 100
  config.eval_every_steps = 1000
  config.checkpoint_every_steps = 1000
  config.num_eval_samples = 5  # Sample predictions written to the log at each evaluation.
  # Data parallelism (parallel.py): the batch is split over this many devices, the state
  # replicated; -1 = every device jax sees (of every host). batch_size must be a multiple of it.
  config.num_devices = -1
  # Multi-host: call jax.distributed.initialize() first. Empty / -1 = detected by jax (TPU pods,
  # SLURM, Open MPI, Kubernetes); otherwise the coordinator's host:port, process count and id.
  config.distributed = ml_collections.ConfigDict()
  config.distributed.initialize = False
  config.distributed.coordinator_address = ''
  config.distributed.num_processes = -1
  config.distributed.process_id = -1

  config.data = ml_collections.ConfigDict()
  config.data.name = 'math'
  config.data.levels = (1, 2, 3, 4, 5, 6, 7)
  config.data.eval_fraction = 0.2
  config.data.max_per_level = ml_collections.FieldReference(None, field_type=int)
  config.data.train_path = ''
  config.data.eval_path = ''
  # Padding budgets: characters per input or target. Each example goes to the smallest bucket
  # that holds it (one compilation per bucket); max_length is the largest. Longer examples are an
  # error, or skipped (and counted in the log) when skip_overlong is set; never truncated.
  config.data.bucket_lengths = (16,)
  config.data.max_length = 32
  config.data.skip_overlong = False
  # A malformed line of a JSONL file is an error naming file and line, or skipped (and counted in
  # the log) when skip_malformed is set.
  config.data.skip_malformed = False
  # How gold edit labels align the target to the input: 'levenshtein' (a minimum-edit DP
  # alignment) or 'positional' (target written left-aligned over the input; see edits.py).
  config.data.alignment = 'positional'

  config.model = ml_collections.ConfigDict()
  config.model.skip_window = 2
  config.model.embed_dim = 64
  config.model.hidden_dim = 128
  config.model.num_layers = 3
  config.model.num_heads = 4
  config.model.mlp_ratio = 2
  config.model.max_relative_offset = 32  # Attention offsets beyond this share one bias.
  config.model.message_passing = True
  config.model.attention = True
  config.model.dropout_rate = 0.1
  # Code-point embedding E_lo[cp % buckets] + E_hi[cp // buckets]: exact for all of Unicode.
  config.model.codepoint_buckets = 4096
  # Characters one insertion slot can hold (slot 0: before the first character, slot i + 1:
  # after character i). An example whose gold edits need more is an error naming it.
  config.model.max_insertions = 8

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.learning_rate = 1e-3
  config.optimizer.warmup_steps = 200
  config.optimizer.end_learning_rate_factor = 0.01
  config.optimizer.b1 = 0.9
  config.optimizer.b2 = 0.999
  config.optimizer.eps = 1e-8
  config.optimizer.weight_decay = 1.0  # Decoupled (AdamW): 1.0 beat 0.1 on held-out level 1.
  config.optimizer.grad_clip_norm = 1.0

  # Structural monitors computed at every evaluation between predicted and target text graphs.
  config.metrics = ml_collections.ConfigDict()
  config.metrics.wl_iterations = 3
  config.metrics.ged_costs = ml_collections.ConfigDict()
  config.metrics.ged_costs.node_sub = 1.0  # Only when the labels (characters) differ.
  config.metrics.ged_costs.node_ins = 1.0
  config.metrics.ged_costs.node_del = 1.0
  config.metrics.ged_costs.edge_ins = 0.5
  config.metrics.ged_costs.edge_del = 0.5

  config.loss = ml_collections.ConfigDict()
  config.loss.mode = 'cross_entropy'
  # total = alpha * node + beta * edge + gamma * clique (losses.py); hybrid mixes it with the
  # cross-entropy as hybrid_lambda * structural + (1 - hybrid_lambda) * cross_entropy.
  config.loss.alpha = 1.0
  config.loss.beta = 0.5
  config.loss.gamma = 2.0
  config.loss.temperature = 0.1  # Sinkhorn's entropic regularisation epsilon.
  config.loss.sinkhorn_iterations = 20
  # Rounds of FGW linearisation, each a Sinkhorn solve on the gradient at the previous plan.
  config.loss.fgw_iterations = 2
  # The node term: 'alignment', the exact negative log-likelihood of the target text summed over
  # every monotone alignment of the candidates to it (alignment.py; the plan then serves the edge
  # and clique terms); or a price of the plan: 'likelihood' (-log m - log p per matched node,
  # -log(1 - m) per deleted one, insert_cost per inserted one; losses.py; it collapsed to short
  # outputs, BUILD_NOTES.md) or 'mismatch' (1 - p, the expected GED substitution cost, whose
  # gradient vanishes on wrong answers: it did not learn; see README).
  config.loss.node_cost = 'alignment'
  # 'alignment': tau in (0, 1] of the sum over alignments, tau * log sum exp(log P(a) / tau).
  # 1 is the exact likelihood; towards 0, the most probable alignment's alone (Viterbi, hard EM).
  config.loss.alignment_temperature = 1.0
  # 'alignment': rho >= 0 of an alignment prior, each alignment weighted by exp(-rho * units)
  # (alignment.py); 0 is the exact likelihood, which let the model write every answer from the
  # first slot's insertions (level 2: 0.168 held-out exact match; rho = 3: 0.277; BUILD_NOTES.md).
  config.loss.alignment_prior = 3.0
  # 'alignment': what a unit of the prior counts. 'edits': one per inserted character and per
  # deleted node with target still to write after it, so a shift costs once, where it happens;
  # 'diagonal': |input position - target position| per written character (+1 per insertion), so
  # every character after a shift pays for it again (long inputs: 0.781 held-out exact match
  # against 1.000 with 'edits'; README, Results).
  config.loss.alignment_prior_kind = 'edits'
  # 'alignment': W >= 0. The likelihood keeps only the alignments whose written length stays
  # within W characters of the left-aligned diagonal (alignment.py), O(L K W) memory instead of
  # O(L K M); an alignment outside needs about W insertions or deletions, weight <= ~exp(-rho W)
  # under the prior. Used for buckets longer than 2 W only; 0: every alignment (the exact sum).
  # There, a target may outgrow its input by at most W characters (checked when data are loaded).
  config.loss.alignment_band = 16
  # Whether gradients flow through the matching (True: unrolled Sinkhorn) or the plan is held fixed
  # (False), as a Hungarian matching is in DETR-style set losses: the edge and clique terms then
  # pull the predicted graph towards the target's under the matching found, and no backward pass
  # runs through Sinkhorn. With the 'alignment' node term, False learned where True did not (the
  # long-input task, node + edge: 1.000 held-out exact match at 1000 steps against 0.861) and costs
  # less (BUILD_NOTES.md, "Thirteenth session on issue 16"). The plan-priced node costs
  # ('likelihood', 'mismatch') went empty with False on level 2 ("Results history"): use True there.
  config.loss.differentiate_plan = False
  # 'alignment': whether the compiled step holds the Sinkhorn plan of the edge and clique terms.
  # 'auto': only when beta or gamma is non-zero in the config; the node term alone then needs no
  # [B, N, N] buffers (at 256 characters, batch 8: 0.3 GiB instead of 5.2), but a change of beta
  # or gamma through 0 compiles a second step, and a step with the plan computes it unconditionally.
  # 'always': one step for every weight, the plan skipped at run time when both are 0 (what a sweep
  # through 0 wants; its buffers stay reserved, and the branch re-runs the plan's forward pass in
  # the backward one: 10-25 % of a step with the Sinkhorn terms on).
  config.loss.plan = 'auto'
  # The Sinkhorn plan's candidates (edge and clique terms; every term for the 'likelihood' and
  # 'mismatch' node costs): the first P insertion positions of each slot, 0 for all
  # model.max_insertions. The soft graph then describes outputs with at most P insertions per slot
  # (later ones count as absent), N = (L + 1)(P + 1) candidates instead of (L + 1)(K + 1): the
  # [B, N, N] pair tensors shrink by ((K + 1) / (P + 1))^2. The 'alignment' node term always sees
  # every position. Exact where the model puts no mass beyond position P (losses_test).
  config.loss.plan_insertions = 0
  # 'likelihood': the price of a target node that no candidate produces (the plan sends it to the
  # dummy). Too low, and leaving uncertain characters unproduced is cheaper than predicting them.
  config.loss.insert_cost = 3.0
  # 'transport': existence probabilities are the matching's marginals, the plan is found with
  # expected-mismatch costs; 'assignment': each candidate is a unit matched to a target node or
  # to "does not exist", priced by the likelihood costs it is found with (DETR-style).
  config.loss.matching = 'transport'
  # Hybrid: lambda * structural + (1 - lambda) * cross_entropy. 'constant': lambda = hybrid_lambda;
  # 'linear'/'cosine': lambda ramps from hybrid_lambda_start to hybrid_lambda over
  # hybrid_schedule_steps steps, then stays.
  config.loss.hybrid_lambda = 0.5
  config.loss.hybrid_schedule = 'constant'
  config.loss.hybrid_lambda_start = 0.0
  config.loss.hybrid_schedule_steps = 1000
  # Structural mode: train on the cross-entropy alone for this many steps first (a warm start).
  config.loss.ce_warmup_steps = 0
  return config


def _check(cond: bool, message: str) -> None:
  if not cond:
    raise ValueError(f'Invalid config: {message}')


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int_at_least(low: int) -> tuple[Callable[[Any], bool], str]:
  return (lambda v: _is_int(v) and v >= low), f'an integer >= {low}'


def _real(test: Callable[[float], bool], what: str) -> tuple[Callable[[Any], bool], str]:
  return (lambda v: _is_real(v) and test(v)), f'a finite number {what}'


def _one_of(choices: Sequence[str]) -> tuple[Callable[[Any], bool], str]:
  return (lambda v: v in choices), f'one of {tuple(choices)}'


_BOOL = (lambda v: isinstance(v, bool)), 'True or False'
_STR = (lambda v: isinstance(v, str)), 'a string'
_POSITIVE_INT = _int_at_least(1)
_NON_NEGATIVE = _real(lambda v: v >= 0, '>= 0')
_ALL_OR_COUNT = (lambda v: _is_int(v) and (v == -1 or v >= 1)), '-1 or an integer >= 1'

# What each key must hold, checked in this order. Every key of base_config() has a rule
# (config_test checks this), so a new key cannot be added without deciding what is valid.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
  'seed': _int_at_least(0),
  'num_train_steps': _POSITIVE_INT,
  'batch_size': _POSITIVE_INT,
  'log_every_steps': _POSITIVE_INT,
  'eval_every_steps': _POSITIVE_INT,
  'checkpoint_every_steps': _POSITIVE_INT,
  'num_eval_samples': _int_at_least(0),
  'num_devices': _ALL_OR_COUNT,
  'distributed.initialize': _BOOL,
  'distributed.coordinator_address': _STR,
  'distributed.num_processes': _ALL_OR_COUNT,
  'distributed.process_id': _int_at_least(-1),
  'data.name': _one_of(DATA_NAMES),
  'data.levels': (
    lambda v: (
      isinstance(v, (tuple, list))
      and len(v) > 0
      and all(_is_int(x) and data_lib.MIN_LEVEL <= x <= data_lib.MAX_LEVEL for x in v)
      and len(set(v)) == len(v)
    ),
    f'a non-empty sequence of distinct levels in {data_lib.MIN_LEVEL}..{data_lib.MAX_LEVEL}',
  ),
  'data.eval_fraction': _real(lambda v: 0 < v < 1, 'in (0, 1)'),
  'data.max_per_level': ((lambda v: v is None or (_is_int(v) and v >= 1)), 'None or >= 1'),
  'data.train_path': _STR,
  'data.eval_path': _STR,
  'data.bucket_lengths': (
    lambda v: isinstance(v, (tuple, list)) and all(_is_int(x) and x >= 1 for x in v),
    'a sequence of integers >= 1',
  ),
  'data.max_length': _POSITIVE_INT,
  'data.skip_overlong': _BOOL,
  'data.skip_malformed': _BOOL,
  'data.alignment': _one_of(ALIGNMENTS),
  'model.skip_window': _POSITIVE_INT,
  'model.embed_dim': _POSITIVE_INT,
  'model.hidden_dim': _POSITIVE_INT,
  'model.num_layers': _POSITIVE_INT,
  'model.num_heads': _POSITIVE_INT,
  'model.mlp_ratio': _POSITIVE_INT,
  'model.max_relative_offset': _POSITIVE_INT,
  'model.message_passing': _BOOL,
  'model.attention': _BOOL,
  'model.dropout_rate': _real(lambda v: 0 <= v < 1, 'in [0, 1)'),
  'model.codepoint_buckets': _POSITIVE_INT,
  'model.max_insertions': _POSITIVE_INT,
  'optimizer.learning_rate': _real(lambda v: v > 0, '> 0'),
  'optimizer.warmup_steps': _int_at_least(0),
  'optimizer.end_learning_rate_factor': _NON_NEGATIVE,
  'optimizer.b1': _real(lambda v: 0 <= v < 1, 'in [0, 1)'),
  'optimizer.b2': _real(lambda v: 0 <= v < 1, 'in [0, 1)'),
  'optimizer.eps': _real(lambda v: v > 0, '> 0'),
  'optimizer.weight_decay': _NON_NEGATIVE,
  'optimizer.grad_clip_norm': _real(lambda v: v > 0, '> 0'),
  'metrics.wl_iterations': _int_at_least(0),
  'metrics.ged_costs.node_sub': _NON_NEGATIVE,
  'metrics.ged_costs.node_ins': _NON_NEGATIVE,
  'metrics.ged_costs.node_del': _NON_NEGATIVE,
  'metrics.ged_costs.edge_ins': _NON_NEGATIVE,
  'metrics.ged_costs.edge_del': _NON_NEGATIVE,
  'loss.mode': _one_of(LOSS_MODES),
  'loss.alpha': _NON_NEGATIVE,
  'loss.beta': _NON_NEGATIVE,
  'loss.gamma': _NON_NEGATIVE,
  'loss.temperature': _real(lambda v: v > 0, '> 0'),
  'loss.sinkhorn_iterations': _POSITIVE_INT,
  'loss.fgw_iterations': _POSITIVE_INT,
  'loss.node_cost': _one_of(NODE_COSTS),
  'loss.differentiate_plan': _BOOL,
  'loss.insert_cost': _real(lambda v: v > 0, '> 0'),  # Free insertions: a degenerate plan.
  'loss.alignment_temperature': _real(lambda v: 0 < v <= 1, 'in (0, 1]'),
  'loss.alignment_prior': _NON_NEGATIVE,
  'loss.alignment_band': _int_at_least(0),
  'loss.alignment_prior_kind': _one_of(PRIOR_KINDS),
  'loss.matching': _one_of(MATCHINGS),
  'loss.plan': _one_of(PLANS),
  'loss.plan_insertions': _int_at_least(0),
  'loss.hybrid_lambda': _real(lambda v: 0 <= v <= 1, 'in [0, 1]'),
  'loss.hybrid_schedule': _one_of(HYBRID_SCHEDULES),
  'loss.hybrid_lambda_start': _real(lambda v: 0 <= v <= 1, 'in [0, 1]'),
  'loss.hybrid_schedule_steps': _POSITIVE_INT,
  'loss.ce_warmup_steps': _int_at_least(0),
}


def leaf_keys(config: ml_collections.ConfigDict, prefix: str = '') -> list[str]:
  """The dotted names of every value in ``config`` that is not itself a section."""
  keys = []
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      keys.extend(leaf_keys(value, f'{prefix}{key}.'))
    else:
      keys.append(prefix + key)
  return keys


def _get(config: ml_collections.ConfigDict, key: str):
  for part in key.split('.'):
    config = config[part]
  return config


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ``ValueError`` with a one-line message naming the first bad key.

  Checks that the config has exactly the keys of :func:`base_config` (a key a config file adds is
  a typo that would otherwise be ignored), each value against :data:`RULES`, then the constraints
  between keys.
  """
  keys, expected = leaf_keys(config), set(RULES)
  unknown = [k for k in keys if k not in expected]
  _check(not unknown, f'unknown key {unknown[0] if unknown else ""!r}; see config_lib.base_config.')
  missing = sorted(expected - set(keys))
  _check(not missing, f'missing key {missing[0] if missing else ""!r}; start from base_config().')
  for key, (test, requirement) in RULES.items():
    value = _get(config, key)
    _check(test(value), f'{key}={value!r} must be {requirement}.')
  _check(
    config.num_devices == -1 or config.batch_size % config.num_devices == 0,
    f'batch_size={config.batch_size} is not a multiple of num_devices={config.num_devices}.',
  )
  _check(
    config.optimizer.warmup_steps < config.num_train_steps,
    f'optimizer.warmup_steps={config.optimizer.warmup_steps} must be < num_train_steps='
    f'{config.num_train_steps}.',
  )
  _check(
    all(b <= config.data.max_length for b in config.data.bucket_lengths),
    f'data.bucket_lengths={tuple(config.data.bucket_lengths)} must not exceed '
    f'data.max_length={config.data.max_length}, the largest budget.',
  )
  _check(
    config.model.message_passing or config.model.attention,
    'model.message_passing and model.attention are both off: nodes would not interact.',
  )
  _check(
    config.model.hidden_dim % config.model.num_heads == 0,
    f'model.hidden_dim={config.model.hidden_dim} is not divisible by '
    f'model.num_heads={config.model.num_heads}.',
  )
  _check(
    config.loss.ce_warmup_steps == 0 or config.loss.mode == 'structural',
    f'loss.ce_warmup_steps={config.loss.ce_warmup_steps} applies to loss.mode="structural" only '
    f'(this config: {config.loss.mode!r}); in hybrid mode use loss.hybrid_schedule.',
  )
  _check(
    config.loss.ce_warmup_steps < config.num_train_steps,
    f'loss.ce_warmup_steps={config.loss.ce_warmup_steps} must be < num_train_steps='
    f'{config.num_train_steps}, or no step would train on the structural loss.',
  )
  _check(
    config.loss.hybrid_schedule == 'constant' or config.loss.mode == 'hybrid',
    f'loss.hybrid_schedule={config.loss.hybrid_schedule!r} applies to loss.mode="hybrid" only '
    f'(this config: {config.loss.mode!r}).',
  )
  _check(
    config.loss.matching == 'transport' or config.loss.node_cost == 'likelihood',
    f'loss.matching={config.loss.matching!r} prices nodes by their likelihood; '
    f'loss.node_cost={config.loss.node_cost!r} applies to loss.matching="transport" only.',
  )
  _check(
    config.loss.plan_insertions <= config.model.max_insertions,
    f'loss.plan_insertions={config.loss.plan_insertions} must be <= model.max_insertions='
    f'{config.model.max_insertions} (0: all of them).',
  )
  if config.data.name == 'jsonl':
    for key in ('train_path', 'eval_path'):
      _check(
        bool(config.data[key]),
        f'data.{key} is required for data.name="jsonl" (evaluation never silently falls back '
        'to the training data).',
      )
