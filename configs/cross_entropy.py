"""Cross-entropy on the edit DP's gold labels (the supervised baseline).

python -m grapheme_jax.main --config=configs/cross_entropy.py --workdir=/tmp/ce \
    --config.data.levels='(1,)'
"""

from grapheme_jax import config_lib


def get_config(arg=None):
  del arg
  config = config_lib.base_config()
  config.loss.mode = 'cross_entropy'
  return config


def sweep(add):
  """Both label alignments over three seeds: the baseline and its seed-to-seed spread."""
  for alignment in ('positional', 'levenshtein'):
    for seed in (0, 1, 2):
      add(**{'data.alignment': alignment, 'seed': seed})
