"""The structural loss: alpha * node + beta * edge + gamma * clique under a soft graph matching.

No edit labels are used for training (the cross-entropy is only logged, as a monitor).

python -m grapheme_jax.main --config=configs/structural.py --workdir=/tmp/structural \
    --config.loss.alpha=1.0 --config.loss.beta=0.5 --config.loss.gamma=2.0
"""

from grapheme_jax import config_lib


def get_config(arg=None):
  del arg
  config = config_lib.base_config()
  config.loss.mode = 'structural'
  return config


def sweep(add):
  """alpha x beta, 3 x 3 around the defaults (``python -m experiments.sweep``)."""
  for alpha in (0.5, 1.0, 2.0):
    for beta in (0.0, 0.5, 1.0):
      add(**{'loss.alpha': alpha, 'loss.beta': beta})
