"""Command line entry point: ``python -m grapheme_jax.main --config=configs/X.py --workdir=DIR``.

Flags only; the work is in :func:`grapheme_jax.train.train_and_evaluate`. Any config key can be
overridden with ``--config.section.key=value``. Only the config file named here is executed (as
Python, the ml_collections way); data files and checkpoints are read as data.
"""

from __future__ import annotations

import logging as py_logging
import os
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from grapheme_jax import config_lib, parallel, train

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and results.')
config_flags.DEFINE_config_file('config', None, 'Training configuration file.', lock_config=True)
flags.DEFINE_string(
  'compilation_cache',
  os.path.join(os.path.expanduser('~'), '.cache', 'grapheme_jax', 'jax'),
  "jax's persistent compilation cache: a rerun, a resumed run or a sweep point with the same "
  'shapes loads its compiled steps instead of compiling again. Empty: off. '
  'JAX_COMPILATION_CACHE_DIR, if set, takes precedence.',
)
flags.DEFINE_bool(
  'restart',
  False,
  'Start over: move the run that --workdir holds (config, checkpoints, metrics, results) to '
  'WORKDIR/previous_runs/TIME/ and train from step 0. Without it, a rerun resumes that run, '
  'and refuses a config that differs in anything but the length, reporting and devices.',
)
flags.mark_flags_as_required(['config', 'workdir'])


class _QuietOrbax(py_logging.Filter):
  """Drops orbax's INFO records (dozens per checkpoint); its warnings and errors still show."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING or '/orbax/' not in record.pathname


class _QuietBackendProbe(py_logging.Filter):
  """Drops jax's INFO note that an optional backend is absent ("Unable to initialize backend
  'tpu'" on every CPU machine), which reads as an error. A backend the user asked for
  (JAX_PLATFORMS) fails with an exception instead, and jax's hints stay (they are warnings)."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING or not str(record.msg).startswith(
      'Unable to initialize backend'
    )


# At import, not in setup_logging: a multi-host start probes the backends before that runs.
py_logging.getLogger('jax._src.xla_bridge').addFilter(_QuietBackendProbe())


def parse_flags(argv: list[str]) -> list[str]:
  """Parses flags; a bad flag or config override exits with one line naming it, not a traceback."""
  try:
    return FLAGS(argv)
  except Exception as e:  # noqa: BLE001 - config_flags raises many types for one mistake.
    cause = e
    while cause.__context__ is not None and not isinstance(cause, KeyError):
      cause = cause.__context__
    if isinstance(cause, KeyError):
      key = str(cause.args[0]).strip('"\'').split("'")[0]
      names = [a for a in argv[1:] if a.startswith('--config.') and f'.{key}' in a.split('=')[0]]
      sys.exit(
        f'error: unknown config key {key!r} in {names[0] if names else "an override"}; '
        f'see the config file for the valid keys.'
      )
    sys.exit('error: ' + ' '.join(str(e).split()))


def enable_compilation_cache() -> None:
  """Points jax's persistent compilation cache at ``--compilation_cache`` (unless already set)."""
  if FLAGS.compilation_cache and not jax.config.jax_compilation_cache_dir:
    jax.config.update('jax_compilation_cache_dir', FLAGS.compilation_cache)


def setup_logging() -> None:
  """Hides orbax's INFO records and logs the JAX version and devices."""
  logging.get_absl_handler().addFilter(_QuietOrbax())
  logging.info('JAX %s on %s', jax.__version__, jax.devices())


def validated_config():
  """``--config``, loaded and validated, or exit with one ``error:`` line.

  Before anything, the distributed set-up included, uses it.
  """
  try:
    config = FLAGS.config
    config.keys()  # A config file that failed to load raises on first attribute access.
    config_lib.validate(config)
  except (OSError, ValueError) as e:
    sys.exit('error: ' + ' '.join(str(e).split()))
  return config


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = validated_config()
  parallel.initialize_distributed(config)  # Before anything else touches jax's devices.
  enable_compilation_cache()
  setup_logging()
  try:
    train.train_and_evaluate(config, FLAGS.workdir, restart=FLAGS.restart)
  except train.USER_ERRORS as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
