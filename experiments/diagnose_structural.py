"""Where the structural loss puts a trained model's target nodes: matched, or left to the dummy.

python -m experiments.diagnose_structural WORKDIR [--examples=512] [--step=S]

Restores the run's checkpoint (the latest, or ``--step``), runs the model on the first
``--examples`` held-out examples (bucket by bucket, as evaluation does) and solves the structural
loss's matching exactly as training does. Prints, per target position and overall:

* ``gold_mass``: the probability that the source node the positional labels align to target
  node ``j`` survives, and ``gold_char``: that it then has the target character;
* the plan's split of each target node's unit of mass: ``to_gold`` (the positionally aligned
  candidate), ``to_other`` (any other candidate) and ``inserted`` (the dummy: a target node no
  candidate produces, priced at the fixed insertion cost);
* the node term's parts per target node: matched pairs, deleted candidates, inserted nodes;
* predicted and target lengths of the decoded predictions.

A loss that lets the model leave uncertain target nodes to the dummy shows up as ``inserted``
growing while ``gold_mass`` falls: the model learns to delete what it cannot yet predict.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags

from grapheme_jax import (
  checkpoints,
  edits,
  graphs,
  input_pipeline,
  losses,
  models,
  train,
)

FLAGS = flags.FLAGS
flags.DEFINE_integer('examples', 512, 'Held-out examples to use (at least; whole batches).')
flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')


def diagnose(workdir: str, examples: int = 512, step: int | None = None) -> dict[str, object]:
  """The measurements described in the module docstring, as a dict of floats and lists."""
  with open(os.path.join(workdir, 'config.json')) as f:
    config = ml_collections.ConfigDict(json.load(f))
  config.data.bucket_lengths = tuple(config.data.bucket_lengths)
  config.data.levels = tuple(config.data.levels)
  vocab, _, eval_ex = input_pipeline.load_data(config)
  lengths = input_pipeline.bucket_lengths(config.data)
  budgets = [graphs.Budget(config.batch_size, n, config.model.skip_window) for n in lengths]
  model = models.create_model(config.model, len(vocab))
  state = train.create_train_state(jax.random.key(0), config, model, budgets[0])
  state = checkpoints.Checkpointer(workdir).restore(state, step)
  weights = losses.loss_weights(config)
  spec = losses.loss_spec(config).structural

  @jax.jit  # One compilation per bucket; run eagerly, every primitive would compile on its own.
  def forward(params, batch):
    outputs = state.apply_fn({'params': params}, batch['graphs'], train=False)
    pred, target, costs = losses.structural_graph_costs(outputs, batch, weights, spec)
    agree = 1.0 - losses.node_cost_matrix(pred, target, batch['target_ids'])
    return outputs, pred.mass, costs['plan'], agree

  sums: dict[str, np.ndarray] = {}
  seen = 0
  for idx, batch in input_pipeline.eval_batches(eval_ex, budgets):
    if seen >= examples:
      break
    seen += len(idx)
    batch = jax.tree.map(jnp.asarray, batch)
    for key, value in _batch_stats(forward(state.params, batch), batch, len(idx)).items():
      if value.ndim:  # Per target position: pad to the largest bucket.
        value = np.pad(value, (0, lengths[-1] - len(value)))
      sums[key] = sums.get(key, 0) + value
  count = np.maximum(sums.pop('count'), 1)
  per_position = {k: (v / count).tolist() for k, v in sums.items() if v.ndim == 1}
  nodes = count.sum()
  overall = {k: float(v.sum() / nodes) for k, v in sums.items() if v.ndim == 1}
  overall.update({k: float(v / seen) for k, v in sums.items() if v.ndim == 0})
  return {'step': int(state.step), 'overall': overall, 'per_target_position': per_position}


def _batch_stats(computed, batch, real: int) -> dict[str, np.ndarray]:
  """Sums over the first ``real`` examples; per-target-position arrays [M] and scalars.

  ``computed``: what ``forward`` returns: the model's outputs, the candidates' masses, the plan
  ([B, N + 1, M + 1], the dummies last) and P(candidate i has target j's character | i exists),
  as the loss computes them.
  """
  outputs, mass, plan, agree = computed
  plan = np.asarray(plan)[:real]
  m = plan.shape[2] - 1
  # Candidates per group: the plan's insertion positions (all K, or loss.plan_insertions), then
  # the node; N = (L + 1) groups of them.
  k1 = (plan.shape[1] - 1) // outputs['ins_logits'].shape[1]
  tlen = np.asarray(batch['target_len'])[:real]
  slen = np.asarray(batch['source_len'])[:real]
  real_j = np.arange(m)[None, :] < tlen[:, None]
  aligned = real_j & (np.arange(m)[None, :] < slen[:, None])  # Target j <- source node j.
  gold = np.arange(m) * k1 + k1 - 1  # Candidate index of source node j.
  to_gold = np.take_along_axis(plan[:, :-1, :-1], gold[None, None, :m].repeat(real, 0), 1)[:, 0]
  matched = plan[:, :-1, :-1].sum(1)
  mass = np.asarray(mass)[:real]
  agree = np.asarray(agree)[:real]
  gold_mass = mass[:, gold[:m]]
  gold_char = agree[:, gold[:m], np.arange(m)]  # [B, M]: candidate gold[j] vs target j.
  zero = lambda x: np.where(aligned, x, 0.0)  # noqa: E731
  nll = lambda x: -np.log(np.maximum(x, 1e-6))  # noqa: E731
  pair_cost = nll(agree[:, :-1, :-1]) + nll(mass)[:, :, None]
  return {
    'count': real_j.sum(0).astype(np.float64),
    'gold_mass': zero(gold_mass).sum(0),
    'gold_char': zero(gold_char).sum(0),
    'to_gold': zero(to_gold).sum(0),
    'to_other': np.where(real_j, matched - to_gold, 0.0).sum(0),
    'inserted': np.where(real_j, plan[:, -1, :m], 0.0).sum(0),
    'node_matched': np.where(real_j, (plan[:, :-1, :m] * pair_cost[:, :, :m]).sum(1), 0.0).sum(0),
    'node_deleted_per_example': np.asarray((plan[:, :-1, -1] * nll(1.0 - mass)).sum()),
    'expected_candidates_per_example': np.asarray(mass.sum()),
    'target_length_per_example': np.asarray(tlen.sum(), np.float64),
    'decoded_length_per_example': np.asarray(
      (np.asarray(outputs['op_logits'])[:real].argmax(-1) != edits.DELETE)[
        np.arange(outputs['op_logits'].shape[1])[None, :] < slen[:, None]
      ].sum(),
      np.float64,
    ),
  }


def main(argv):
  for workdir in argv[1:]:
    result = diagnose(workdir, FLAGS.examples, FLAGS.step)
    print(f'{workdir} (step {result["step"]})')
    for key, value in result['overall'].items():
      print(f'  {key:34s} {value:8.4f}')
    print('  per target position j:')
    for key, values in result['per_target_position'].items():
      print(f'    {key:12s} ' + ' '.join(f'{v:6.3f}' for v in values[:8]))


if __name__ == '__main__':
  app.run(main)
