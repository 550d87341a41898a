"""Hybrid: hybrid_lambda * structural + (1 - hybrid_lambda) * cross-entropy on the gold labels.

python -m grapheme_jax.main --config=configs/hybrid.py --workdir=/tmp/hybrid \
    --config.loss.hybrid_lambda=0.5
"""

from grapheme_jax import config_lib


def get_config(arg=None):
  del arg
  config = config_lib.base_config()
  config.loss.mode = 'hybrid'
  return config


def sweep(add):
  """hybrid_lambda x gamma, 3 x 3: how much structure, and how much of it from cliques."""
  for hybrid_lambda in (0.25, 0.5, 0.75):
    for gamma in (0.0, 2.0, 4.0):
      add(**{'loss.hybrid_lambda': hybrid_lambda, 'loss.gamma': gamma})
