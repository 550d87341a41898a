"""grapheme_jax: graph-to-graph training on text graphs in JAX."""

__version__ = '0.1.0'
