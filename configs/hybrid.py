"""Hybrid: hybrid_lambda * structural + (1 - hybrid_lambda) * cross-entropy on the gold labels.

python -m grapheme_jax.main --config=configs/hybrid.py --workdir=/tmp/hybrid \
    --config.loss.hybrid_lambda=0.5

The structural part is the node term alone, as in configs/structural.py; add the edge and clique
terms with --config.loss.beta=0.5 --config.loss.gamma=2.0.
"""

from grapheme_jax import config_lib


def get_config(arg=None):
  del arg
  config = config_lib.base_config()
  config.loss.mode = 'hybrid'
  # The structural part is configs/structural.py's: the node term alone (see there).
  config.loss.beta = 0.0
  config.loss.gamma = 0.0
  return config


def sweep(add):
  """How much structure to mix in: lambda from 0 (cross-entropy) to 1 (structural), and a linear
  schedule from 0 to 1 over loss.hybrid_schedule_steps (README, Studies)."""
  for hybrid_lambda in (0.0, 0.25, 0.5, 0.75, 1.0):
    add(**{'loss.hybrid_lambda': hybrid_lambda})
  add(**{'loss.hybrid_lambda': 1.0, 'loss.hybrid_schedule': 'linear'})
