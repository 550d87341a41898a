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
