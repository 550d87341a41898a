"""Runs every benchmark, prints a table and writes JSON.

python -m experiments.benchmarks [--out=benchmarks.json] [--quick] [--skip_growth]

Every mode is measured at ``configs/structural.py``'s loss weights (the node term alone); the
bucket table adds the structural loss with its Sinkhorn edge and clique terms on. ``--quick`` uses
tiny sizes (a smoke test of the code, not a measurement). The growth curve
(16 ... 256 nodes per graph, three loss modes) takes most of the time: about 8 minutes on 2 CPU
cores; ``--skip_growth`` leaves it out.
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

  Each point is ``growth.measure`` (one batch of graphs of exactly that many nodes, compiled ahead
  of time); the structural rows carry their ratio to the cross-entropy's time at the same length.
  """
  with_terms = config.copy_and_resolve_references()
  with_terms.loss.update(SINKHORN_TERMS)
  variants = [
    ('cross_entropy', config, 'cross_entropy'),
    ('structural', config, 'structural'),
    ('structural, beta=0.5 gamma=2', with_terms, 'structural'),
  ]
  rows = []
  for name, variant, mode in variants:
    variant = variant.copy_and_resolve_references()
    variant.loss.mode = mode
    points = [growth.measure(variant, n, batch, steps) for n in lengths]
    rows.append({'name': f'bucket, {name}, batch {batch}', 'points': points})
  for row in rows:
    for point, anchor in zip(row['points'], rows[0]['points']):
      point['ratio_to_cross_entropy'] = point['ms_per_step'] / anchor['ms_per_step']
  return rows


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', default='', help='JSON file for the results')
  parser.add_argument('--quick', action='store_true', help='tiny sizes: checks the code only')
  parser.add_argument('--skip_growth', action='store_true', help='leave out the growth curve')
  args = parser.parse_args(argv)
  if args.quick:
    rows = [
      sinkhorn_vs_ott.run(batch=4, n=8, iterations=3, repeats=1),
      edit_dp_vs_rapidfuzz.run(count=16, length=8, repeats=1),
    ]
    steps = train_step.run(_tiny_config(), steps=3)
    buckets = _buckets(_tiny_config(), (8, 16), batch=4, steps=1)
    curves = [] if args.skip_growth else growth.run(_tiny_config(), (8, 16), steps=1, fit_from=8)
  else:
    rows = [sinkhorn_vs_ott.run(), edit_dp_vs_rapidfuzz.run()]
    steps = train_step.run(_structural_config())
    buckets = _buckets(_structural_config(), BUCKETS, batch=64, steps=5)
    curves = [] if args.skip_growth else growth.run(_structural_config())
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
