"""Keras layers of L2I (Parekh et al., 2024)."""
from l2i.layers.nmf_reconstruction import NMFReconstruction

__all__ = ["NMFReconstruction"]
