"""Flax (Linen) network: a padded batch of text graphs in, per-node edit predictions out.

The network keeps node states in a per-graph dense layout ``[graphs, 1 + max_length, hidden]`` in
which position 0 is a learned global token (one per graph, like jraph's ``globals``) and position
``i + 1`` is node ``i``. Each block does, as configured:

* message passing over the batch's own edges (forward and reverse messages, scatter-added per
  graph, conditioned on the edge feature = the edge's distance, plus the graph's global state, as
  in jraph's ``GraphNetwork``) and a global update from the mean of the nodes;
* masked multi-head self-attention within each graph, with a learned bias per head for each
  relative offset (so the text graph's edge types are visible to attention);
* a feed-forward block.

Heads, all from the final states:

* ``op_logits`` [B, L, 3]: KEEP / DELETE / MODIFY for each node;
* ``char_logits`` [B, L, V]: the new character of a MODIFY, over the training-target vocabulary;
* ``ins_logits`` [B, L + 1, K, V + 1]: for insertion slot ``s`` (slot 0 = before the first
  character, read from the global token; slot ``i + 1`` = after node ``i``) up to ``K`` characters,
  class ``V`` meaning "end of insertion".

Characters enter through a factorised code-point embedding (``cp % buckets`` and ``cp // buckets``),
which is exact for every code point: no alphabet is fixed in the code.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from grapheme_jax import graphs as graphs_lib

NUM_OPS = 3


def sinusoidal(positions: jax.Array, dim: int) -> jax.Array:
  """Transformer sinusoidal features of integer positions (works for any length)."""
  freqs = np.exp(-np.log(10_000.0) * np.arange(dim // 2) / (dim // 2))
  angles = positions[..., None].astype(jnp.float32) * freqs
  return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class CodePointEmbed(nn.Module):
  """Embeds any Unicode code point as ``E_lo[cp % buckets] + E_hi[cp // buckets]`` (exact)."""

  features: int
  buckets: int = 4096

  @nn.compact
  def __call__(self, codes: jax.Array) -> jax.Array:
    high = -(-(graphs_lib.MAX_CODE_POINT + 1) // self.buckets)
    lo = nn.Embed(self.buckets, self.features, name='low')(codes % self.buckets)
    hi = nn.Embed(high, self.features, name='high')(jnp.clip(codes // self.buckets, 0, high - 1))
    return lo + hi


class MessagePassing(nn.Module):
  """One round of edge messages in both directions plus a global (mean-of-nodes) update.

  Works on the per-graph layout: gathers and scatter-adds are vmapped over graphs, so the whole
  block is batch-major and splits across devices with the batch.
  """

  hidden_dim: int
  skip_window: int

  @nn.compact
  def __call__(self, h, graphs: graphs_lib.DenseGraphs, mask):
    nodes = h[:, 1:]  # [B, L, H]; position 0 is the global token.
    real_edge = (jnp.arange(graphs.edges.shape[1])[None, :] < graphs.n_edge[:, None])[..., None]
    edge_emb = nn.Embed(self.skip_window + 1, self.hidden_dim, name='edge_embed')(graphs.edges)
    gather = jax.vmap(lambda x, i: x[i])
    fwd = nn.Dense(self.hidden_dim, name='forward')(gather(nodes, graphs.senders)) + edge_emb
    bwd = nn.Dense(self.hidden_dim, name='reverse')(gather(nodes, graphs.receivers)) + edge_emb
    scatter_add = jax.vmap(lambda i, v: jnp.zeros(nodes.shape[1:], v.dtype).at[i].add(v))
    agg = scatter_add(graphs.receivers, jnp.where(real_edge, fwd, 0.0)) + scatter_add(
      graphs.senders, jnp.where(real_edge, bwd, 0.0)
    )
    # Like jraph's GraphNetwork, the node update also sees its graph's global state.
    agg = agg + nn.Dense(self.hidden_dim, name='from_global')(h[:, :1])
    upd = nn.Dense(self.hidden_dim, name='node_update')(nn.gelu(agg))
    node_mask = mask[:, 1:, None]
    mean = (nodes * node_mask).sum(1) / jnp.maximum(node_mask.sum(1), 1)
    glob = nn.Dense(self.hidden_dim, name='global_update')(mean)
    return jnp.concatenate([glob[:, None], jnp.where(node_mask, upd, 0.0)], axis=1)


class RelativeAttention(nn.Module):
  """Masked multi-head self-attention within each graph with a learned relative-offset bias."""

  hidden_dim: int
  num_heads: int
  max_offset: int

  @nn.compact
  def __call__(self, h, mask):
    head_dim = self.hidden_dim // self.num_heads
    qkv = nn.DenseGeneral((3, self.num_heads, head_dim), name='qkv')(h)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    logits = jnp.einsum('bqhd,bkhd->bhqk', q, k) / np.sqrt(head_dim)
    n = h.shape[1]
    offset = (
      np.clip(np.arange(n)[None, :] - np.arange(n)[:, None], -self.max_offset, self.max_offset)
      + self.max_offset
    )
    bias = self.param(
      'offset_bias', nn.initializers.zeros, (self.num_heads, 2 * self.max_offset + 1)
    )
    logits = logits + bias[:, offset][None]
    logits = jnp.where(mask[:, None, None, :], logits, -1e9)
    out = jnp.einsum('bhqk,bkhd->bqhd', jax.nn.softmax(logits, axis=-1), v)
    return nn.DenseGeneral(self.hidden_dim, axis=(-2, -1), name='out')(out)


class GraphEditModel(nn.Module):
  """Predicts per-node edit operations, MODIFY characters and per-slot insertions."""

  vocab_size: int
  skip_window: int = 2
  embed_dim: int = 64
  hidden_dim: int = 128
  num_layers: int = 3
  num_heads: int = 4
  message_passing: bool = True
  attention: bool = True
  dropout_rate: float = 0.1
  codepoint_buckets: int = 4096
  max_insertions: int = 8
  mlp_ratio: int = 2
  max_offset: int = 32

  @nn.compact
  def __call__(self, graphs: graphs_lib.DenseGraphs, *, train: bool) -> dict[str, jax.Array]:
    """Runs the network.

    Args:
      graphs: a batch in the per-graph layout (``graphs.batch_dense``); its node width ``L`` is
        the number of node positions of the outputs.
      train: enables dropout (needs a ``'dropout'`` rng).
    """
    num_graphs, length = graphs.nodes.shape
    x = CodePointEmbed(self.embed_dim, self.codepoint_buckets)(graphs.nodes)
    x = nn.Dense(self.hidden_dim, name='input_proj')(
      jnp.concatenate(
        [x, jnp.broadcast_to(sinusoidal(jnp.arange(length), self.embed_dim), x.shape)], axis=-1
      )
    )
    glob = self.param('global_token', nn.initializers.normal(0.02), (self.hidden_dim,))
    # Position 0 is the global token, position i + 1 node i; padding positions hold the token too.
    mask = jnp.arange(length + 1)[None, :] <= graphs.n_node[:, None]
    x = jnp.concatenate([jnp.zeros_like(x[:, :1]), x], axis=1)
    h = jnp.where(mask[..., None] & (jnp.arange(length + 1) > 0)[None, :, None], x, glob)
    drop = nn.Dropout(self.dropout_rate, deterministic=not train)
    for i in range(self.num_layers):
      if self.message_passing:
        mp = MessagePassing(self.hidden_dim, self.skip_window, name=f'mp_{i}')
        h = h + drop(mp(nn.LayerNorm()(h), graphs, mask))
      if self.attention:
        att = RelativeAttention(self.hidden_dim, self.num_heads, self.max_offset, name=f'att_{i}')
        h = h + drop(att(nn.LayerNorm()(h), mask))
      y = nn.Dense(self.mlp_ratio * self.hidden_dim)(nn.LayerNorm()(h))
      h = h + drop(nn.Dense(self.hidden_dim)(nn.gelu(y)))
    h = nn.LayerNorm(name='final_norm')(h)
    return self._heads(h)

  def _heads(self, h: jax.Array) -> dict[str, jax.Array]:
    nodes = h[:, 1:]
    ins = nn.DenseGeneral((self.max_insertions, self.vocab_size + 1), name='ins_head')(h)
    return {
      'op_logits': nn.Dense(NUM_OPS, name='op_head')(nodes),
      'char_logits': nn.Dense(self.vocab_size, name='char_head')(nodes),
      'ins_logits': ins,
    }


def create_model(model_config, vocab_size: int) -> GraphEditModel:
  """Builds the model from the ``config.model`` section.

  Equal settings return the same instance, so its ``apply`` (static data of the train state) is
  equal too and jitted steps are not compiled again for a new but identical model.
  """
  c = model_config
  return _model(
    vocab_size=vocab_size,
    skip_window=c.skip_window,
    embed_dim=c.embed_dim,
    hidden_dim=c.hidden_dim,
    num_layers=c.num_layers,
    num_heads=c.num_heads,
    message_passing=c.message_passing,
    attention=c.attention,
    dropout_rate=c.dropout_rate,
    codepoint_buckets=c.codepoint_buckets,
    max_insertions=c.max_insertions,
    mlp_ratio=c.mlp_ratio,
    max_offset=c.max_relative_offset,
  )


@functools.lru_cache(maxsize=32)
def _model(**kwargs) -> GraphEditModel:
  return GraphEditModel(**kwargs)
