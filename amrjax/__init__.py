"""amrjax: data-efficient automatic modulation recognition in JAX/Flax."""

__version__ = '0.1.0'
