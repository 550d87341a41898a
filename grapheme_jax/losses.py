"""Training losses. For now: cross-entropy on the gold edit labels of the edit DP.

Every loss is a masked mean over *positions* of the per-graph dense layout ``[B, 1 + L]``: position
0 is the insertion slot before the first character, position ``i + 1`` is node ``i`` together with
the insertion slot after it. Padding nodes, padding graphs and batch slots with weight 0 never
count.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

# Index used in label arrays for "no label here" (padding, or a character outside the vocabulary).
IGNORE = -1


def _masked_ce(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Softmax cross-entropy, zero where ``labels == IGNORE``."""
  valid = labels != IGNORE
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(valid, labels, 0))
  return jnp.where(valid, ce, 0.0)


def position_mask(batch: dict[str, jax.Array]) -> jax.Array:
  """[B, 1 + L] mask of real positions (slot 0 and one per real node) of real examples."""
  length = batch['ins_ids'].shape[1]
  mask = jnp.arange(length)[None, :] <= batch['source_len'][:, None]
  return mask & (batch['weights'][:, None] > 0)


def cross_entropy(
  outputs: dict[str, jax.Array], batch: dict[str, jax.Array]
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Cross-entropy of the op, MODIFY-character and insertion heads against the gold edits.

  Per position: op CE + char CE (MODIFY nodes only) for the node, plus the CE of every insertion
  character of the slot and of its end marker. Returns the masked mean and its parts.
  """
  mask = position_mask(batch)
  node_mask = mask[:, 1:]
  op_ce = jnp.where(node_mask, _masked_ce(outputs['op_logits'], batch['ops']), 0.0)
  char_labels = jnp.where(batch['ops'] == 2, batch['char_ids'], IGNORE)  # 2 == edits.MODIFY.
  char_ce = jnp.where(node_mask, _masked_ce(outputs['char_logits'], char_labels), 0.0)
  ins_ce = _masked_ce(outputs['ins_logits'], batch['ins_ids']).sum(-1)
  ins_ce = jnp.where(mask, ins_ce, 0.0)
  count = jnp.maximum(mask.sum(), 1)
  parts = {
    'op_ce': op_ce.sum() / count,
    'char_ce': char_ce.sum() / count,
    'insert_ce': ins_ce.sum() / count,
  }
  return parts['op_ce'] + parts['char_ce'] + parts['insert_ce'], parts
