"""Tests for the experiment scripts."""

import json

from experiments import breakdown


def test_breakdown_groups_by_head_symbol(tmp_path):
  records = [('(+ 1 2)', '3', '3'), ('(+ 2 2)', '5', '4'), ('(* 2 3)', '6', '6'), ('', 'x', 'x')]
  with open(tmp_path / 'predictions.jsonl', 'w') as f:
    for i, p, t in records:
      f.write(json.dumps({'input': i, 'prediction': p, 'target': t}) + '\n')
  assert breakdown.breakdown(str(tmp_path)) == {'': (1, 1), '*': (1, 1), '+': (1, 2)}
  assert breakdown.head_symbol('(d/dx (sin x))') == 'd/dx'
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump({'model': {'skip_window': 1}}, f)  # A run from before metrics were configured.
  # Only '5' vs '4' differs: one node substitution, identical edges; WL 0.75 at t=0, 0 after.
  got = breakdown.structural(str(tmp_path))
  assert got['ged_lower'] == got['ged_upper'] == 0.25
  assert 0.0 < got['wl_similarity'] < 1.0
  # '3' and '6' cannot be copied from their inputs; '5' cannot either; '' -> 'x' neither.
  assert breakdown.copy_rates(str(tmp_path)) == (0.0, 0.0)
  assert breakdown.is_subsequence('29', '(+ 20 9)') and not breakdown.is_subsequence('92', '(+ 29)')
  assert breakdown.is_subsequence('', '')
