"""The configuration schema shared by every file in ``configs/``, and its validation.

Each ``configs/*.py`` starts from :func:`base_config` and changes what makes it that experiment, so
that every key exists in every config and ``--config.x.y=v`` overrides work the same everywhere.
:func:`validate` turns bad values into one-line errors before anything is compiled.
"""

from __future__ import annotations

import ml_collections

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
)
DATA_NAMES = ('math', 'kindergarten', 'jsonl')
ALIGNMENTS = ('levenshtein', 'positional')
NODE_COSTS = ('mismatch', 'likelihood')  # As losses.NODE_COSTS.


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
  # How the node term prices the plan: 'likelihood' (-log m - log p per matched node, -log(1 - m)
  # per deleted one, 3 per inserted one; losses.py) or 'mismatch' (1 - p, the expected GED
  # substitution cost, whose gradient vanishes on wrong answers: it did not learn; see README).
  config.loss.node_cost = 'likelihood'
  # Whether gradients flow through the matching (unrolled Sinkhorn) or the plan is held fixed, as a
  # Hungarian matching is in DETR-style set losses (see README, Results).
  config.loss.differentiate_plan = True
  config.loss.hybrid_lambda = 0.5
  return config


def _check(cond: bool, message: str) -> None:
  if not cond:
    raise ValueError(f'Invalid config: {message}')


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ``ValueError`` with a one-line message naming the first bad key."""
  _check(
    config.loss.mode in LOSS_MODES, f'loss.mode={config.loss.mode!r}, expected one of {LOSS_MODES}.'
  )
  for key in ('alpha', 'beta', 'gamma'):
    _check(config.loss[key] >= 0, f'loss.{key}={config.loss[key]} must be >= 0.')
  _check(config.loss.temperature > 0, f'loss.temperature={config.loss.temperature} must be > 0.')
  for key in ('sinkhorn_iterations', 'fgw_iterations'):
    value = config.loss[key]
    _check(isinstance(value, int) and value >= 1, f'loss.{key}={value!r} must be >= 1.')
  _check(
    config.loss.node_cost in NODE_COSTS,
    f'loss.node_cost={config.loss.node_cost!r}, expected one of {NODE_COSTS}.',
  )
  _check(
    isinstance(config.loss.differentiate_plan, bool),
    f'loss.differentiate_plan={config.loss.differentiate_plan!r} must be True or False.',
  )
  _check(
    0.0 <= config.loss.hybrid_lambda <= 1.0,
    f'loss.hybrid_lambda={config.loss.hybrid_lambda} must be in [0, 1].',
  )
  _check(
    config.data.name in DATA_NAMES, f'data.name={config.data.name!r}, expected one of {DATA_NAMES}.'
  )
  _check(
    config.data.alignment in ALIGNMENTS,
    f'data.alignment={config.data.alignment!r}, expected one of {ALIGNMENTS}.',
  )
  for key in (
    'num_train_steps',
    'batch_size',
    'log_every_steps',
    'eval_every_steps',
    'checkpoint_every_steps',
  ):
    value = config[key]
    _check(isinstance(value, int) and value >= 1, f'{key}={value!r} must be >= 1.')
  _check(
    isinstance(config.num_devices, int) and (config.num_devices == -1 or config.num_devices >= 1),
    f'num_devices={config.num_devices!r} must be -1 (all devices) or >= 1.',
  )
  _check(
    config.num_devices == -1 or config.batch_size % config.num_devices == 0,
    f'batch_size={config.batch_size} is not a multiple of num_devices={config.num_devices}.',
  )
  _check(config.data.max_length >= 1, f'data.max_length={config.data.max_length} must be >= 1.')
  _check(
    0.0 < config.data.eval_fraction < 1.0,
    f'data.eval_fraction={config.data.eval_fraction} must be in (0, 1).',
  )
  _check(
    config.model.skip_window >= 1, f'model.skip_window={config.model.skip_window} must be >= 1.'
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
    config.model.max_insertions >= 1,
    f'model.max_insertions={config.model.max_insertions} must be >= 1.',
  )
  _check(
    0.0 <= config.model.dropout_rate < 1.0,
    f'model.dropout_rate={config.model.dropout_rate} must be in [0, 1).',
  )
  _check(
    config.metrics.wl_iterations >= 0,
    f'metrics.wl_iterations={config.metrics.wl_iterations} must be >= 0.',
  )
  for key, value in config.metrics.ged_costs.items():
    _check(value >= 0, f'metrics.ged_costs.{key}={value} must be >= 0.')
  _check(
    config.optimizer.learning_rate > 0,
    f'optimizer.learning_rate={config.optimizer.learning_rate} must be > 0.',
  )
  _check(
    0 <= config.optimizer.warmup_steps < config.num_train_steps,
    f'optimizer.warmup_steps={config.optimizer.warmup_steps} must be in [0, num_train_steps='
    f'{config.num_train_steps}).',
  )
  _check(
    config.optimizer.weight_decay >= 0,
    f'optimizer.weight_decay={config.optimizer.weight_decay} must be >= 0.',
  )
