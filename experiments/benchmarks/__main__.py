"""Runs every benchmark, prints a table and writes JSON.

python -m experiments.benchmarks [--out=benchmarks.json] [--quick]

``--quick`` uses tiny sizes (a smoke test of the code, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import platform

import jax

from experiments.benchmarks import edit_dp_vs_rapidfuzz, sinkhorn_vs_ott, train_step
from grapheme_jax import config_lib


def _tiny_config():
  config = config_lib.base_config()
  config.data.name = 'kindergarten'
  config.batch_size = 4
  config.model.embed_dim, config.model.hidden_dim, config.model.num_layers = 16, 32, 1
  config.model.num_heads = 2
  return config


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', default='', help='JSON file for the results')
  parser.add_argument('--quick', action='store_true', help='tiny sizes: checks the code only')
  args = parser.parse_args(argv)
  if args.quick:
    rows = [
      sinkhorn_vs_ott.run(batch=4, n=8, iterations=3, repeats=1),
      edit_dp_vs_rapidfuzz.run(count=16, length=8, repeats=1),
    ]
    steps = train_step.run(_tiny_config(), steps=3)
  else:
    rows = [sinkhorn_vs_ott.run(), edit_dp_vs_rapidfuzz.run()]
    steps = train_step.run()
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
  rows += steps
  if args.out:
    with open(args.out, 'w', encoding='utf-8') as f:
      json.dump({'jax': jax.__version__, 'device': device, 'results': rows}, f, indent=2)


if __name__ == '__main__':
  main()
