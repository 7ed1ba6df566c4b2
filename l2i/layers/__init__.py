"""Keras layers of L2I (Parekh et al., 2024)."""
from l2i.layers.attention_pooling import AttentionPooling
from l2i.layers.class_specific_dense import ClassSpecificDense
from l2i.layers.gated_attention import GatedAttention
from l2i.layers.nmf_reconstruction import NMFReconstruction

__all__ = ["AttentionPooling", "ClassSpecificDense", "GatedAttention", "NMFReconstruction"]
