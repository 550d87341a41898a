"""Runs every benchmark, prints a table and writes JSON.

python -m experiments.benchmarks [--out=benchmarks.json] [--quick] [--skip_growth] \
    [--batches=64,512] [--sections=anchors,train_step,buckets,growth]

Every mode is measured at ``configs/structural.py``'s loss weights (the node term alone); the
bucket table adds the structural loss with its Sinkhorn edge and clique terms on. ``--quick`` uses
tiny sizes (a smoke test of the code, not a measurement). The growth curve
(16 ... 256 nodes per graph, three loss modes) takes most of the time: about 8 minutes on 2 CPU
cores; ``--skip_growth`` leaves it out, ``--sections`` picks any of the four parts (the anchors, the
train step, the bucket table, the growth curve). ``--batches`` repeats the train step and the bucket
table at each batch size (64 by default; an accelerator wants 512 too).
"""

from __future__ import annotations

import argparse
import json
import os
import platform

import jax

from experiments import sweep
from experiments.benchmarks import edit_dp_vs_rapidfuzz, growth, sinkhorn_vs_ott, train_step
from grapheme_jax import config_lib


def _tiny_config():
  config = config_lib.base_config()
  config.data.name = 'kindergarten'
  config.batch_size = 4
  config.model.embed_dim, config.model.hidden_dim, config.model.num_layers = 16, 32, 1
  config.model.num_heads = 2
  return config


BUCKETS = (16, 32, 64)  # Issue 16's cost goal: structural <= 1.5x the cross-entropy's step here.
# The structural loss with its Sinkhorn edge and clique terms on (the defaults turn them off).
SINKHORN_TERMS = {'beta': 0.5, 'gamma': 2.0}


def _structural_config():
  """``configs/structural.py``: every mode is measured at the README main command's loss weights."""
  path = os.path.join(os.path.dirname(__file__), '..', '..', 'configs', 'structural.py')
  return sweep.load_config_module(path).get_config()


def _buckets(config, lengths, batch: int, steps: int) -> list[dict]:
  """Train step per bucket for the cross-entropy and the structural loss, side by side.

  The structural loss alone (the node term), then with the Sinkhorn edge and clique terms on over
  every insertion position and over the first, on a fixed plan (the default), and differentiated
  through the plan (``differentiate_plan=True``) for comparison.

  Each length is ``growth.measure_interleaved`` (one batch of graphs of exactly that many nodes,
  every variant's step compiled ahead of time, then the steps called in turn, ``steps`` rounds
  after a warm-up, median); the rows carry their ratio to the cross-entropy's time at that length.
  """
  with_terms = config.copy_and_resolve_references()
  with_terms.loss.update(SINKHORN_TERMS)
  fewer = with_terms.copy_and_resolve_references()
  fewer.loss.plan_insertions = 1
  unrolled = fewer.copy_and_resolve_references()
  unrolled.loss.differentiate_plan = True
  variants = [
    ('cross_entropy', config, 'cross_entropy'),
    ('structural', config, 'structural'),
    ('structural, beta=0.5 gamma=2', with_terms, 'structural'),
    ('structural, beta=0.5 gamma=2, plan_insertions=1', fewer, 'structural'),
    ('structural, beta=0.5 gamma=2, plan_insertions=1, differentiate_plan', unrolled, 'structural'),
  ]
  configs = []
  for _, variant, mode in variants:
    configs.append(variant.copy_and_resolve_references())
    configs[-1].loss.mode = mode
  by_length = [growth.measure_interleaved(configs, n, batch, steps) for n in lengths]
  rows = [
    {'name': f'bucket, {name}, batch {batch}', 'points': [points[i] for points in by_length]}
    for i, (name, _, _) in enumerate(variants)
  ]
  for row in rows:
    for point, anchor in zip(row['points'], rows[0]['points']):
      point['ratio_to_cross_entropy'] = point['ms_per_step'] / anchor['ms_per_step']
  return rows


SECTIONS = ('anchors', 'train_step', 'buckets', 'growth')


def parse_list(parser: argparse.ArgumentParser, flag: str, text: str, convert, allowed=None):
  """``'64,512'`` -> ``[64, 512]`` (``convert`` each item); anything else is one argparse error."""
  try:
    items = [convert(item) for item in text.split(',')]
  except ValueError:
    items = []
  bad = not items or (allowed is None and min(items) < 1) or (allowed and set(items) - set(allowed))
  if bad:
    expected = 'positive integers, e.g. 64,512' if allowed is None else ', '.join(allowed)
    parser.error(f'--{flag}={text!r}: expected a comma-separated list of {expected}')
  return items


def _with_batch(rows: list[dict], batch: int) -> list[dict]:
  """Names the train-step rows by their batch size (the bucket rows already are)."""
  return [{**row, 'name': f'{row["name"]}, batch {batch}', 'batch': batch} for row in rows]


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', default='', help='JSON file for the results')
  parser.add_argument('--quick', action='store_true', help='tiny sizes: checks the code only')
  parser.add_argument('--skip_growth', action='store_true', help='leave out the growth curve')
  parser.add_argument(
    '--batches',
    default='',
    help='comma-separated batch sizes of the train step and the buckets (default 64; --quick: 4)',
  )
  parser.add_argument(
    '--sections', default=','.join(SECTIONS), help=f'comma-separated subset of {SECTIONS}'
  )
  args = parser.parse_args(argv)
  batches = parse_list(parser, 'batches', args.batches or ('4' if args.quick else '64'), int)
  sections = set(parse_list(parser, 'sections', args.sections, str, SECTIONS))
  if args.skip_growth:
    sections.discard('growth')
  if args.quick:  # Tiny sizes everywhere: a smoke test of the code.
    config_fn, lengths, step_count, bucket_steps = _tiny_config, (8, 16), 3, 1
    sinkhorn_args = {'batch': 4, 'n': 8, 'iterations': 3, 'repeats': 1}
    edits_args = {'count': 16, 'length': 8, 'repeats': 1}
    growth_args = {'lengths': (8, 16), 'steps': 1, 'fit_from': 8}
  else:
    config_fn, lengths, step_count, bucket_steps = _structural_config, BUCKETS, 50, 9
    sinkhorn_args, edits_args, growth_args = {}, {}, {}
  rows = []
  if 'anchors' in sections:
    rows = [sinkhorn_vs_ott.run(**sinkhorn_args), edit_dp_vs_rapidfuzz.run(**edits_args)]
  steps, buckets = [], []
  for batch in batches:
    if 'train_step' in sections:
      config = config_fn()
      config.batch_size = batch
      steps += _with_batch(train_step.run(config, steps=step_count), batch)
    if 'buckets' in sections:
      buckets += _buckets(config_fn(), lengths, batch=batch, steps=bucket_steps)
  curves = growth.run(config_fn(), **growth_args) if 'growth' in sections else []
  cpu = platform.processor() or platform.machine()
  device = f'{jax.devices()[0].device_kind} ({jax.default_backend()}), host {cpu}'
  print(f'jax {jax.__version__} on {device}')
  for row in rows:
    ours = row.get('ours_ms') or row.get('ours_pairs_per_s')
    anchor = row.get('anchor_ms') or row.get('anchor_pairs_per_s')
    unit = 'ms' if 'ours_ms' in row else 'pairs/s'
    print(
      f'{row["name"]:48s} ours {ours:10.1f} {unit:7s} {row["anchor"]:18s} {anchor:10.1f} {unit:7s} '
      f'ratio {row["ratio"]:6.3f}  goal {row["goal"]}: {"met" if row["met"] else "NOT met"}'
    )
  for row in steps:
    compile_s = ', '.join(f'{k}: {v:.1f} s' for k, v in row['first_call_s'].items())
    print(
      f'{row["name"]:48s} {row["graphs_per_s"]:8.0f} graphs/s  {row["ms_per_step"]:6.0f} ms/step  '
      f'first call per bucket {compile_s}  after warm-up: {row["traces_after_warmup"]} traces, '
      f'{row["compiles_after_warmup"]} compilations'
    )
  for row in buckets:
    cells = ', '.join(
      f'{p["nodes"]}: {p["ms_per_step"]:.0f} ms ({p["ratio_to_cross_entropy"]:.2f}x)'
      for p in row['points']
    )
    print(f'{row["name"]:48s} {cells}')
  for row in curves:
    cells = ', '.join(
      f'{p["nodes"]}: {p["ms_per_step"]:.0f} ms {(p["peak_bytes_xla"] or 0) / 2**20:.0f} MiB'
      for p in row['points']
    )
    fit = f'fit over {row["fit_lengths"]}: time ~ L^{row["time_exponent"]:.2f}'
    if 'memory_exponent' in row:
      fit += f', memory ~ L^{row["memory_exponent"]:.2f}'
    print(f'{row["name"]:48s} {cells}; {fit}')
  rows += steps + buckets + curves
  if args.out:
    with open(args.out, 'w', encoding='utf-8') as f:
      json.dump({'jax': jax.__version__, 'device': device, 'results': rows}, f, indent=2)


if __name__ == '__main__':
  main()
